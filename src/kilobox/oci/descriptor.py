"""Content descriptors (OCI image-spec descriptor.md)."""

from __future__ import annotations

from .._record import FrozenRecord
from ..errors import ManifestError
from .digest import Digest
from .platform import Platform

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

_FIELDS = ("media_type", "digest", "size", "annotations", "platform", "artifact_type", "urls", "data")


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ManifestError(f"{where}: annotations must map strings to strings")
    return dict(value)


class Descriptor(FrozenRecord):
    """A typed, sized, digested reference to content (immutable).

    Equality and hash cover media type, digest, size, platform, artifact type and
    urls — not ``annotations`` or embedded ``data``.
    """

    __slots__ = _FIELDS
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str]
    platform: Platform | None
    artifact_type: str
    urls: tuple[str, ...]
    data: bytes | None

    def __init__(self, media_type: str, digest: Digest, size: int, annotations: dict[str, str] | None = None,
                 platform: Platform | None = None, artifact_type: str = "", urls: tuple[str, ...] = (),
                 data: bytes | None = None) -> None:
        self._set(media_type=media_type, digest=digest, size=size,
                  annotations={} if annotations is None else annotations, platform=platform,
                  artifact_type=artifact_type, urls=urls, data=data)

    def _key(self) -> tuple[object, ...]:
        return (self.media_type, self.digest, self.size, self.platform, self.artifact_type, self.urls)

    @classmethod
    def from_dict(cls, d: Any, where: str = "descriptor") -> "Descriptor":
        if not isinstance(d, dict):
            raise ManifestError(f"{where}: must be an object")
        mt = d.get("mediaType")
        if not isinstance(mt, str) or not mt:
            raise ManifestError(f"{where}: mediaType missing or not a string")
        size = d.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}: size must be a non-negative integer")
        digest = Digest.parse(d.get("digest"))  # type: ignore[arg-type]
        plat = d.get("platform")
        if plat is not None and not isinstance(plat, dict):
            raise ManifestError(f"{where}: platform must be an object")
        urls = d.get("urls") or ()
        if not isinstance(urls, (list, tuple)) or not all(isinstance(u, str) for u in urls):
            raise ManifestError(f"{where}: urls must be a list of strings")
        data = None
        if "data" in d:
            if not isinstance(d["data"], str):
                raise ManifestError(f"{where}: data must be base64 text")
            import base64
            try:
                data = base64.b64decode(d["data"], validate=True)
            except ValueError as e:
                raise ManifestError(f"{where}: data is not valid base64") from e
            digest.verify(data, size, what=f"{where} embedded data")
        at = d.get("artifactType", "")
        if not isinstance(at, str):
            raise ManifestError(f"{where}: artifactType must be a string")
        return cls(
            media_type=mt, digest=digest, size=size,
            annotations=_str_map(d.get("annotations"), where),
            platform=Platform.from_dict(plat) if plat else None,
            artifact_type=at, urls=tuple(urls), data=data,
        )

    @classmethod
    def for_bytes(cls, media_type: str, data: bytes, **kw: Any) -> "Descriptor":
        """A descriptor of *data*."""
        return cls(media_type=media_type, digest=Digest.of(data), size=len(data), **kw)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(sorted(self.annotations.items()))
        if self.data is not None:
            import binascii
            d["data"] = binascii.b2a_base64(self.data, newline=False).decode()
        if self.platform is not None:
            d["platform"] = self.platform.to_dict()
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        return d

    def with_(self, **changes: Any) -> "Descriptor":
        """A copy with *changes* (field names; an unknown name is a :class:`TypeError`)."""
        unknown = set(changes).difference(_FIELDS)
        if unknown:
            raise TypeError(f"Descriptor has no field(s) {', '.join(sorted(unknown))}")
        return Descriptor(**{k: changes[k] if k in changes else getattr(self, k) for k in _FIELDS})

    @property
    def ref_name(self) -> str:
        """The ``org.opencontainers.image.ref.name`` annotation, or ''."""
        return self.annotations.get("org.opencontainers.image.ref.name", "")
