"""Read a tar file in place: member headers indexed once, data served by offset (``os.pread``).

One policy for every outer archive kilobox reads (docker-archive, oci-archive).
The headers are parsed by kilobox's own bounded tar reader
(:func:`kilobox.layers.reader.index_tar`: linear PAX parsing, checksums,
1 MiB cap on extended headers, seeks over member data), never by Python's
``tarfile``. Nothing is extracted and member names are never trusted: a name
that is absolute or climbs with ``..``, or a non-directory member that
appears twice, makes the whole archive invalid; sparse and multi-volume
members too. Symlinks are followed only to regular members inside the
archive (at most ``MAX_LINK_HOPS``); hardlinks and devices are never served.
A compressed archive is refused with a hint to decompress it first.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import LayerError, LayoutError, NotFound
from ..oci import MAX_MANIFEST_BYTES

MAX_MEMBERS = 200_000
MAX_LINK_HOPS = 8
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_HOSTILE = "the archive is hostile or damaged; do not use it"


def clean_path(name: str, where: str) -> str:
    """A member path normalised (``./a//b`` → ``a/b``); absolute or ``..`` paths are refused."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise LayoutError(f"{where}: invalid path {str(name)[:80]!r}")
    if name.startswith("/") or ".." in name.split("/"):
        raise LayoutError(f"{where}: path {name[:80]!r} escapes the archive", hint=_HOSTILE)
    norm = posixpath.normpath(name)
    if norm in (".", ""):
        raise LayoutError(f"{where}: invalid path {name[:80]!r}")
    return norm


@dataclass(frozen=True)
class Member:
    """A tar member: where its data is (``offset``), what it is (``kind``: file, dir, symlink, hardlink, …)."""

    name: str
    offset: int
    size: int
    kind: str
    linkname: str = ""


class TarIndex:
    """The member headers of a tar file, read once; data is served by offset (``os.pread``)."""

    def __init__(self, path: Path, where: str, *, what: str = "archive") -> None:
        self.where = where
        try:
            self._f = open(path, "rb", buffering=0)   # noqa: SIM115 - closed by close() (or GC)
        except FileNotFoundError:
            raise NotFound(f"{where}: {path} does not exist") from None
        except IsADirectoryError:
            raise LayoutError(f"{where}: {path} is a directory, not an {what}") from None
        except OSError as e:
            raise LayoutError(f"{where}: cannot open {path} ({e.strerror})") from None
        self.fd = self._f.fileno()
        try:
            self.members = self._scan()
        except BaseException:
            self._f.close()
            raise

    def _scan(self) -> dict[str, Member]:
        from ..layers.reader import index_tar
        kind = sniff_compression(os.pread(self.fd, 6, 0))
        if kind:
            raise LayoutError(f"{self.where}: the archive is {kind}-compressed",
                              hint="decompress it first (e.g. gunzip), then read the uncompressed .tar")
        members: dict[str, Member] = {}
        try:
            for m in index_tar(self._f, name=self.where):
                if m.name == "." and m.kind == "dir":
                    continue                                        # ./ : the archive's root
                old = members.get(m.name)
                if old is not None and not (old.kind == "dir" and m.kind == "dir"):
                    raise LayoutError(f"{self.where}: member {m.name[:80]!r} appears twice", hint=_HOSTILE)
                if old is None and len(members) >= MAX_MEMBERS:
                    raise LayoutError(f"{self.where}: more than {MAX_MEMBERS} members", hint=_HOSTILE)
                members[m.name] = Member(m.name, m.data_offset, m.size, m.kind, m.linkname)
        except LayerError as e:
            msg = e.message if e.message.startswith(self.where) else f"{self.where}: {e.message}"
            raise LayoutError(msg.replace("\n", " "), hint=_HOSTILE) from None
        except OSError as e:
            raise LayoutError(f"{self.where}: cannot read the archive ({e.strerror})") from None
        return members

    def resolve(self, name: str, what: str) -> Member:
        """The regular member *name* stands for, following symlinks that stay inside the archive."""
        for _ in range(MAX_LINK_HOPS):
            m = self.members.get(name)
            if m is None:
                raise LayoutError(f"{self.where}: {what} {name!r} is missing from the archive",
                                  hint="the archive is incomplete")
            if m.kind == "file":
                return m
            if m.kind != "symlink":
                kind = "a hardlink" if m.kind == "hardlink" else "not a regular file"
                raise LayoutError(f"{self.where}: {what} {name!r} is {kind}", hint=_HOSTILE)
            target = m.linkname
            if target.startswith("/"):
                raise LayoutError(f"{self.where}: {what} {name!r} is a symlink to an absolute path "
                                  f"{target[:80]!r}", hint=_HOSTILE)
            name = posixpath.normpath(posixpath.join(posixpath.dirname(m.name), target))
            if name == ".." or name.startswith("../") or name == ".":
                raise LayoutError(f"{self.where}: {what} {m.name!r} is a symlink pointing outside the archive "
                                  f"({target[:80]!r})", hint=_HOSTILE)
        raise LayoutError(f"{self.where}: {what}: too many symlinks (a loop?)", hint=_HOSTILE)

    def get(self, name: str, what: str) -> Member | None:
        """:meth:`resolve`, or None when there is no member *name* at all."""
        return self.resolve(name, what) if name in self.members else None

    def pread(self, m: Member, n: int, pos: int = 0) -> bytes:
        n = max(0, min(n, m.size - pos))
        return os.pread(self.fd, n, m.offset + pos) if n else b""

    def read_small(self, m: Member, what: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
        if m.size > limit:
            cap = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} byte"
            raise LayoutError(f"{self.where}: {what} {m.name!r} is {m.size} bytes, over the {cap} limit")
        data = self.pread(m, m.size)
        if len(data) != m.size:
            raise LayoutError(f"{self.where}: {what} {m.name!r} is truncated")
        return data

    def open(self, m: Member) -> BinaryIO:
        return _Section(self, m)  # type: ignore[return-value]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._f.close()

    def __enter__(self) -> "TarIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Section(io.RawIOBase):
    """A read-only view of one member's bytes."""

    def __init__(self, tar: TarIndex, m: Member) -> None:
        self._tar, self._m, self._pos = tar, m, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._m.size - self._pos
        data = self._tar.pread(self._m, n, self._pos)
        self._pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def sniff_compression(head: bytes) -> str:
    """``''`` (plain tar), ``'gzip'``, ``'zstd'``, ``'bzip2'`` or ``'xz'``."""
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return ""


__all__ = ["Member", "TarIndex", "clean_path", "sniff_compression", "MAX_MEMBERS", "MAX_LINK_HOPS"]
