"""Image locations in skopeo's spelling.

``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]``, ``docker-archive:FILE[:REF]``,
``docker://REF``, and a bare ``REF`` meaning a registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ReferenceError_
from .oci.reference import Reference

TRANSPORTS = ("oci", "oci-archive", "docker-archive", "docker")


@dataclass(frozen=True)
class Location:
    """Where an image is read from or written to."""

    transport: str
    path: str = ""
    tag: str = ""
    ref: Reference | None = None

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
