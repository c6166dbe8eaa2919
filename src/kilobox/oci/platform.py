"""Platforms: ``os/arch[/variant]`` as in ``linux/arm/v7`` (image-index spec)."""

from __future__ import annotations

import os

from .._record import FrozenRecord
from ..errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
                 "armv7l": "arm", "armel": "arm", "i386": "386", "i686": "386"}
_DEFAULT_VARIANT = {"arm64": "v8"}


class Platform(FrozenRecord):
    """An OCI platform (immutable, hashable). ``Platform.parse("linux/arm/v7")``."""

    __slots__ = ("os", "architecture", "variant", "os_version", "os_features")
    os: str
    architecture: str
    variant: str
    os_version: str
    os_features: tuple[str, ...]

    def __init__(self, os: str, architecture: str, variant: str = "", os_version: str = "",  # noqa: A002
                 os_features: tuple[str, ...] = ()) -> None:
        self._set(os=os, architecture=architecture, variant=variant, os_version=os_version, os_features=os_features)

    @classmethod
    def parse(cls, text: str) -> "Platform":
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"invalid platform {text!r}", hint="use os/arch[/variant], e.g. linux/arm64 or linux/arm/v7")
        os_, arch = parts[0].lower(), _ARCH_ALIASES.get(parts[1].lower(), parts[1].lower())
        variant = parts[2].lower() if len(parts) == 3 else ""
        return cls(os_, arch, variant)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Platform":
        from ..errors import ManifestError
        for key in ("os", "architecture", "variant", "os.version"):
            if d.get(key) is not None and not isinstance(d.get(key), str):
                raise ManifestError(f"platform: {key} must be a string")
        feats = d.get("os.features")
        if feats is not None and not (isinstance(feats, list) and all(isinstance(f, str) for f in feats)):
            raise ManifestError("platform: os.features must be a list of strings")
        return cls(
            os=str(d.get("os", "")),
            architecture=str(d.get("architecture", "")),
            variant=str(d.get("variant", "") or ""),
            os_version=str(d.get("os.version", "") or ""),
            os_features=tuple(d.get("os.features", ()) or ()),
        )

    @classmethod
    def host(cls) -> "Platform":
        m = os.uname().machine.lower()  # not the platform module: slow to import
        arch = _ARCH_ALIASES.get(m, m)
        variant = "v7" if m.startswith("armv7") else ""
        return cls("linux", arch, variant)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            d["os.version"] = self.os_version
        if self.os_features:
            d["os.features"] = list(self.os_features)
        if self.variant:
            d["variant"] = self.variant
        return d

    def matches(self, want: "Platform") -> bool:
        """True when this (an image's) platform satisfies *want* (a request)."""
        if self.os != want.os or self.architecture != want.architecture:
            return False
        if not want.variant:
            return True
        mine = self.variant or _DEFAULT_VARIANT.get(self.architecture, "")
        return mine == want.variant or (not self.variant and want.variant == _DEFAULT_VARIANT.get(want.architecture))

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)
