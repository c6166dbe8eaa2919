"""Image manifests, image indexes and image configs.

Each parsed object keeps the exact ``raw`` bytes it came from: a copy writes
those bytes, never a re-serialisation, so digests never change in transit.
Parsing is strict about types (outside data may be hostile) but tolerant of
unknown fields (forward compatibility).
"""

from __future__ import annotations

import json

from .._record import FrozenRecord
from ..errors import ManifestError
from . import mediatypes as mt
from .descriptor import Descriptor
from .digest import Digest
from .platform import Platform

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

MAX_MANIFEST_BYTES = 4 * 1024 * 1024



def canonical_json(obj: Any) -> bytes:
    """The bytes kilobox writes for a JSON document: sorted keys, compact, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_json(raw: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object of at most 4 MiB from outside data."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{what}: {len(raw)} bytes is over the 4 MiB limit for manifests")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ManifestError(f"{what}: not valid JSON ({str(e)[:100]})") from None
    if not isinstance(obj, dict):
        raise ManifestError(f"{what}: must be a JSON object")
    return obj


def sniff_media_type(raw_obj: dict[str, Any]) -> str:
    """The media type a manifest-like JSON object declares or implies."""
    declared = raw_obj.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in raw_obj:
        return mt.OCI_INDEX
    if "config" in raw_obj and "layers" in raw_obj:
        return mt.OCI_MANIFEST
    raise ManifestError("cannot tell whether this JSON is a manifest or an index (no mediaType)")


def _envelope(raw: bytes, default_type: str, allowed: "frozenset[str] | tuple[str, ...]", kind: str,
              what: str) -> "tuple[dict[str, Any], str, dict[str, Any]]":
    """The parts a manifest and an index share: the JSON object, its media type (declared, else
    *default_type*; must be in *allowed*) and its annotations object."""
    obj = load_json(raw, what)
    if obj.get("schemaVersion") != 2:
        raise ManifestError(f"{what}: schemaVersion must be 2")
    declared = obj.get("mediaType")
    mtype = declared if isinstance(declared, str) and declared else default_type
    if mtype not in allowed:
        raise ManifestError(f"{what}: media type {mtype!r} is not {kind}")
    ann = obj.get("annotations") or {}
    if not isinstance(ann, dict):
        raise ManifestError(f"{what}: annotations must be an object")
    return obj, mtype, ann


class Manifest(FrozenRecord):
    """An image manifest (OCI or Docker schema 2)."""

    __slots__ = ("raw", "media_type", "config", "layers", "annotations", "subject", "artifact_type")
    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str]
    subject: Descriptor | None
    artifact_type: str

    def __init__(self, raw: bytes, media_type: str, config: Descriptor, layers: tuple[Descriptor, ...],
                 annotations: dict[str, str] | None = None, subject: Descriptor | None = None,
                 artifact_type: str = "") -> None:
        self._set(raw=raw, media_type=media_type, config=config, layers=layers,
                  annotations={} if annotations is None else annotations, subject=subject,
                  artifact_type=artifact_type)

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None, what: str = "manifest") -> "Manifest":
        obj, mtype, ann = _envelope(raw, media_type or mt.OCI_MANIFEST, mt.MANIFEST_TYPES, "an image manifest", what)
        layers = obj.get("layers")
        if not isinstance(layers, list):
            raise ManifestError(f"{what}: layers must be a list")
        subject = obj.get("subject")
        return cls(
            raw=raw, media_type=mtype,
            config=Descriptor.from_dict(obj.get("config"), f"{what} config"),
            layers=tuple(Descriptor.from_dict(l, f"{what} layer {i}") for i, l in enumerate(layers)),
            annotations={str(k): str(v) for k, v in ann.items()},
            subject=Descriptor.from_dict(subject, f"{what} subject") if subject else None,
            artifact_type=str(obj.get("artifactType", "") or ""),
        )

    @classmethod
    def build(cls, config: Descriptor, layers: list[Descriptor] | tuple[Descriptor, ...], *,
              annotations: dict[str, str] | None = None, media_type: str = mt.OCI_MANIFEST,
              artifact_type: str = "", subject: Descriptor | None = None) -> "Manifest":
        """Serialise a new manifest (canonical JSON) and return it parsed."""
        obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type,
                               "config": config.to_dict(), "layers": [l.to_dict() for l in layers]}
        if artifact_type:
            obj["artifactType"] = artifact_type
        if subject is not None:
            obj["subject"] = subject.to_dict()
        if annotations:
            obj["annotations"] = dict(sorted(annotations.items()))
        return cls.parse(canonical_json(obj))

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    def descriptor(self, **kw: Any) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw), **kw)


class Index(FrozenRecord):
    """An image index (OCI) or manifest list (Docker)."""

    __slots__ = ("raw", "media_type", "manifests", "annotations")
    raw: bytes
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str]

    def __init__(self, raw: bytes, media_type: str, manifests: tuple[Descriptor, ...],
                 annotations: dict[str, str] | None = None) -> None:
        self._set(raw=raw, media_type=media_type, manifests=manifests,
                  annotations={} if annotations is None else annotations)

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None, what: str = "index") -> "Index":
        obj, mtype, ann = _envelope(raw, media_type or mt.OCI_INDEX, mt.INDEX_TYPES, "an index", what)
        ms = obj.get("manifests")
        if not isinstance(ms, list):
            raise ManifestError(f"{what}: manifests must be a list")
        return cls(raw=raw, media_type=mtype,
                   manifests=tuple(Descriptor.from_dict(m, f"{what} manifest {i}") for i, m in enumerate(ms)),
                   annotations={str(k): str(v) for k, v in ann.items()})

    @classmethod
    def build(cls, manifests: list[Descriptor] | tuple[Descriptor, ...], *,
              annotations: dict[str, str] | None = None, media_type: str = mt.OCI_INDEX) -> "Index":
        obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type,
                               "manifests": [m.to_dict() for m in manifests]}
        if annotations:
            obj["annotations"] = dict(sorted(annotations.items()))
        return cls.parse(canonical_json(obj))

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    def descriptor(self, **kw: Any) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw), **kw)

    def select(self, want: Platform) -> Descriptor:
        """The first image manifest whose platform matches *want*."""
        from ..errors import NotFound
        for d in self.manifests:
            if d.platform is not None and d.platform.matches(want) and d.media_type in mt.MANIFEST_TYPES:
                return d
        have = ", ".join(str(d.platform) for d in self.manifests if d.platform) or "none"
        raise NotFound(f"no image for platform {want} in index {self.digest} (has: {have})",
                       hint="choose one with --platform")


class ImageConfig(FrozenRecord):
    """An image configuration (OCI config.md / Docker image JSON).

    ``obj`` is the whole parsed JSON (unknown fields kept); the properties read it.
    """

    __slots__ = ("raw", "obj", "media_type")
    raw: bytes
    obj: dict[str, Any]
    media_type: str

    def __init__(self, raw: bytes, obj: dict[str, Any], media_type: str = mt.OCI_CONFIG) -> None:
        self._set(raw=raw, obj=obj, media_type=media_type)

    @classmethod
    def parse(cls, raw: bytes, media_type: str = mt.OCI_CONFIG, what: str = "config") -> "ImageConfig":
        obj = load_json(raw, what)
        rootfs = obj.get("rootfs", {})
        if rootfs is not None and not isinstance(rootfs, dict):
            raise ManifestError(f"{what}: rootfs must be an object")
        ids = (rootfs or {}).get("diff_ids", [])
        if not isinstance(ids, list):
            raise ManifestError(f"{what}: rootfs.diff_ids must be a list")
        for i in ids:
            Digest.parse(i)
        cfg = obj.get("config")
        if cfg is not None and not isinstance(cfg, dict):
            raise ManifestError(f"{what}: config must be an object")
        for key in ("Entrypoint", "Cmd", "Env"):
            v = (cfg or {}).get(key)
            if v is not None and not (isinstance(v, list) and all(isinstance(s, str) for s in v)):
                raise ManifestError(f"{what}: config.{key} must be a list of strings")
        return cls(raw=raw, obj=obj, media_type=media_type)

    @classmethod
    def build(cls, obj: dict[str, Any], media_type: str = mt.OCI_CONFIG) -> "ImageConfig":
        return cls.parse(canonical_json(obj), media_type)

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    @property
    def platform(self) -> Platform:
        return Platform(str(self.obj.get("os", "")), str(self.obj.get("architecture", "")),
                        str(self.obj.get("variant", "") or ""))

    @property
    def config(self) -> dict[str, Any]:
        """The ``config`` block (Entrypoint, Cmd, Env, User, WorkingDir, …)."""
        return self.obj.get("config") or {}

    @property
    def diff_ids(self) -> list[Digest]:
        return [Digest.parse(d) for d in (self.obj.get("rootfs") or {}).get("diff_ids", [])]

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config.get("Entrypoint") or [])

    @property
    def cmd(self) -> list[str]:
        return list(self.config.get("Cmd") or [])

    @property
    def env(self) -> list[str]:
        return list(self.config.get("Env") or [])

    @property
    def user(self) -> str:
        return str(self.config.get("User", "") or "")

    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir", "") or "")

    @property
    def history(self) -> list[dict[str, Any]]:
        h = self.obj.get("history") or []
        return h if isinstance(h, list) else []


def parse_manifest_or_index(raw: bytes, media_type: str | None = None, what: str = "manifest") -> Manifest | Index:
    """Parse *raw* as whichever it is: declared mediaType first, then the caller's, then shape."""
    obj = load_json(raw, what)
    declared = obj.get("mediaType")
    kind = declared if isinstance(declared, str) and declared else (media_type or sniff_media_type(obj))
    if kind in mt.INDEX_TYPES:
        return Index.parse(raw, kind, what)
    if kind in mt.MANIFEST_TYPES:
        return Manifest.parse(raw, kind, what)
    raise ManifestError(f"{what}: unsupported media type {kind!r}")
