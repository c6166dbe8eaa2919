"""Read a tar file in place: member headers indexed once, data served by offset (``os.pread``).

Nothing is extracted and member names are never trusted: a name that is absolute
or climbs with ``..`` makes the whole archive invalid, duplicates are refused,
symlinks are followed only to regular members inside the archive (at most
``MAX_LINK_HOPS``), hardlinks, devices and sparse members are never served.
Used by :mod:`kilobox.formats.dockerarchive`.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import LayoutError, NotFound
from ..oci import MAX_MANIFEST_BYTES

MAX_MEMBERS = 200_000
MAX_LINK_HOPS = 8
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)


def clean_path(name: str, where: str) -> str:
    """A member path normalised (``./a//b`` → ``a/b``); absolute or ``..`` paths are refused."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise LayoutError(f"{where}: invalid path {str(name)[:80]!r}")
    if name.startswith("/") or ".." in name.split("/"):
        raise LayoutError(f"{where}: path {name[:80]!r} escapes the archive",
                          hint="the archive is hostile or damaged; do not use it")
    norm = posixpath.normpath(name)
    if norm in (".", ""):
        raise LayoutError(f"{where}: invalid path {name[:80]!r}")
    return norm


@dataclass(frozen=True)
class Member:
    """A tar member: where its data is, what it is."""

    name: str
    offset: int
    size: int
    type: bytes
    linkname: str = ""


class TarIndex:
    """The member headers of a tar file, read once; data is served by offset (``os.pread``)."""

    def __init__(self, path: Path, where: str) -> None:
        self.where = where
        try:
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise NotFound(f"{where}: {path} does not exist") from None
        except OSError as e:
            raise LayoutError(f"{where}: cannot open {path} ({e.strerror})") from None
        try:
            self.members = self._scan(path)
        except BaseException:
            os.close(self.fd)
            raise

    def _scan(self, path: Path) -> dict[str, Member]:
        total = os.fstat(self.fd).st_size
        head = os.pread(self.fd, 6, 0)
        for magic, kind in _MAGIC.items():
            if head.startswith(magic):
                raise LayoutError(f"{self.where}: the archive is {kind}-compressed",
                                  hint="decompress it first (e.g. gunzip), then read the .tar")
        members: dict[str, Member] = {}
        last = -1
        try:
            with open(self.fd, "rb", closefd=False) as f, tarfile.open(fileobj=f, mode="r:") as tf:
                for ti in tf:
                    if len(members) >= MAX_MEMBERS:
                        raise LayoutError(f"{self.where}: more than {MAX_MEMBERS} members")
                    if ti.size < 0 or ti.offset <= last:
                        # a negative size sends tarfile back to an earlier header, for ever (CVE-2025-8194)
                        raise LayoutError(f"{self.where}: member {ti.name[:80]!r} has a negative size",
                                          hint="the archive is hostile or damaged; do not use it")
                    last = ti.offset
                    name = clean_path(ti.name, f"{self.where} member")
                    if name in members:
                        raise LayoutError(f"{self.where}: member {name!r} appears twice",
                                          hint="the archive is hostile or damaged")
                    if ti.isreg() and ti.offset_data + ti.size > total:
                        raise LayoutError(f"{self.where}: member {name!r} is truncated")
                    kind = tarfile.GNUTYPE_SPARSE if ti.issparse() else ti.type   # never served
                    members[name] = Member(name, ti.offset_data, ti.size, kind, ti.linkname)
        except tarfile.TarError as e:
            raise LayoutError(f"{self.where}: not a valid tar archive ({e})") from None
        return members

    def resolve(self, name: str, what: str) -> Member:
        """The regular member *name* stands for, following symlinks that stay inside the archive."""
        for _ in range(MAX_LINK_HOPS):
            m = self.members.get(name)
            if m is None:
                raise LayoutError(f"{self.where}: {what} {name!r} is missing from the archive",
                                  hint="the archive is incomplete")
            if m.type in _REGULAR:
                return m
            if m.type != tarfile.SYMTYPE:
                kind = "a hardlink" if m.type == tarfile.LNKTYPE else "not a regular file"
                raise LayoutError(f"{self.where}: {what} {name!r} is {kind}",
                                  hint="the archive is hostile or damaged")
            target = m.linkname
            if target.startswith("/"):
                raise LayoutError(f"{self.where}: {what} {name!r} is a symlink to an absolute path "
                                  f"{target[:80]!r}", hint="the archive is hostile")
            name = posixpath.normpath(posixpath.join(posixpath.dirname(m.name), target))
            if name == ".." or name.startswith("../") or name == ".":
                raise LayoutError(f"{self.where}: {what} {m.name!r} is a symlink pointing outside the archive "
                                  f"({target[:80]!r})", hint="the archive is hostile")
        raise LayoutError(f"{self.where}: {what}: too many symlinks")

    def pread(self, m: Member, n: int, pos: int = 0) -> bytes:
        n = max(0, min(n, m.size - pos))
        return os.pread(self.fd, n, m.offset + pos) if n else b""

    def read_small(self, m: Member, what: str) -> bytes:
        if m.size > MAX_MANIFEST_BYTES:
            raise LayoutError(f"{self.where}: {what} {m.name!r} is {m.size} bytes, over the 4 MiB limit")
        data = self.pread(m, m.size)
        if len(data) != m.size:
            raise LayoutError(f"{self.where}: {what} {m.name!r} is truncated")
        return data

    def open(self, m: Member) -> BinaryIO:
        return _Section(self, m)  # type: ignore[return-value]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


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
