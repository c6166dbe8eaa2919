"""Image locations in skopeo's spelling.

``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]``, ``docker-archive:FILE[:REF]``,
``docker://REF``, and a bare ``REF`` meaning a registry.
"""

from __future__ import annotations

from .errors import ReferenceError_
from .oci.reference import Reference

TRANSPORTS = ("oci", "oci-archive", "docker-archive", "docker")


class Location:
    """Where an image is read from or written to (immutable, hashable)."""

    __slots__ = ("transport", "path", "tag", "ref")
    transport: str
    path: str
    tag: str
    ref: Reference | None

    def __init__(self, transport: str, path: str = "", tag: str = "", ref: Reference | None = None) -> None:
        s = object.__setattr__
        s(self, "transport", transport)
        s(self, "path", path)
        s(self, "tag", tag)
        s(self, "ref", ref)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of Location")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of Location")

    def _key(self) -> tuple[object, ...]:
        return (self.transport, self.path, self.tag, self.ref)

    def __reduce__(self) -> tuple[object, ...]:
        return (Location, self._key())

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Location:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Location(transport={self.transport!r}, path={self.path!r}, tag={self.tag!r}, ref={self.ref!r})"

    @classmethod
    def parse(cls, text: str) -> "Location":
        if not text:
            raise ReferenceError_("empty image location")
        if text.startswith("docker://"):
            return cls("docker", ref=Reference.parse(text[len("docker://"):]))
        head, sep, rest = text.partition(":")
        if sep and head in ("oci", "oci-archive", "docker-archive"):
            path, _, tag = rest.partition(":")
            if not path:
                raise ReferenceError_(f"{text!r}: missing path after {head}:",
                                      hint=f"use {head}:PATH[:TAG]")
            return cls(head, path=path, tag=tag)
        if sep and head in ("docker-daemon", "containers-storage", "dir"):
            raise ReferenceError_(f"transport {head!r} is not supported",
                                  hint="use oci:, oci-archive:, docker-archive: or docker://")
        return cls("docker", ref=Reference.parse(text))

    def __str__(self) -> str:
        if self.transport == "docker":
            return f"docker://{self.ref}"
        return f"{self.transport}:{self.path}" + (f":{self.tag}" if self.tag else "")
