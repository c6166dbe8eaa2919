"""Builders for malicious and broken layers (built with the stdlib's tarfile, not with our writer).

Each builder returns the bytes of a tar (or compressed tar). :func:`corpus` names the
classic attacks so other areas (registry, formats) can serve them too::

    from tests.helpers.hostile import corpus
    for name, (blob, expect) in corpus().items(): ...
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path


@dataclass
class M:
    """One raw member: ``kind`` in file/dir/symlink/hardlink/char/block/fifo."""

    name: str
    kind: str = "file"
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    size: int | None = None      # header size; None = len(data) (a lie when different)
    pax: dict[str, str] | None = None


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
          "fifo": tarfile.FIFOTYPE}


def header(m: M, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    ti = tarfile.TarInfo(m.name)
    ti.type = _TYPES[m.kind]
    ti.mode = m.mode
    ti.linkname = m.linkname
    ti.size = len(m.data) if m.size is None else m.size
    ti.mtime = 0
    if m.kind in ("char", "block"):
        ti.devmajor, ti.devminor = 1, 3
    if m.pax:
        ti.pax_headers = dict(m.pax)
    if m.kind != "file":
        ti.size = 0
    return ti.tobuf(fmt, "utf-8", "surrogateescape")


def raw_tar(*members: M, end: bool = True, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of *members* exactly as given (hostile names kept), data padded honestly."""
    out = bytearray()
    for m in members:
        out += header(m, fmt)
        if m.kind == "file":
            out += m.data + bytes(-len(m.data) % 512)
    if end:
        out += bytes(1024)
    return bytes(out)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zst(data: bytes) -> bytes:
    import zstandard
    return zstandard.ZstdCompressor().compress(data)


def _bomb(c, size: int) -> bytes:  # noqa: ANN001 - a zlib or zstd compressobj
    chunk = bytes(1 << 20)
    out = bytearray()
    left = size
    while left:
        n = min(left, len(chunk))
        out += c.compress(chunk[:n])
        left -= n
    return bytes(out + c.flush())


def gzip_bomb(size: int) -> bytes:
    """A gzip stream that inflates to *size* zero bytes (streamed, ~1000:1)."""
    return _bomb(zlib.compressobj(9, zlib.DEFLATED, 31), size)


def zstd_bomb(size: int) -> bytes:
    import zstandard
    return _bomb(zstandard.ZstdCompressor(level=3).compressobj(), size)


def negative_size(loops_back: int = 512) -> bytes:
    """A member whose size is negative (GNU base-256) after a first one: tarfile jumps back for ever.

    (Python's tarfile stops quietly when a jump lands on offset 0, hence the first member.)
    """
    return (raw_tar(M("before", data=b"x"), end=False) + header(M("loop", size=-loops_back), tarfile.GNU_FORMAT)
            + raw_tar(M("after", data=b"x")))


def size_lie() -> bytes:
    """A member whose header claims 1 MiB but the stream ends after 10 bytes."""
    return raw_tar(M("etc/motd", data=b"0123456789", size=1 << 20), end=False)[:512 + 10]


def truncated_member() -> bytes:
    """A regular member cut in the middle of its data (no end marker)."""
    full = raw_tar(M("big", data=b"x" * 5000))
    return full[:512 + 3000]


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int, bytes | str]]:
    """(mode, size, content-or-link) of everything under *root*, except *skip*: to prove nothing changed.

    Iterative (hostile trees may be thousands of levels deep) and never follows symlinks.
    """
    import os
    import stat as st_
    out: dict[str, tuple[int, int, bytes | str]] = {}
    todo = [str(root)]
    while todo:
        d = todo.pop()
        for e in os.scandir(d):
            if skip is not None and e.path == str(skip):
                continue
            st = e.stat(follow_symlinks=False)
            if st_.S_ISLNK(st.st_mode):
                val: bytes | str = os.readlink(e.path)
            elif st_.S_ISREG(st.st_mode):
                with open(e.path, "rb") as f:
                    val = f.read()
            else:
                val = b""
                if st_.S_ISDIR(st.st_mode):
                    todo.append(e.path)
            out[os.path.relpath(e.path, root)] = (st.st_mode, st.st_size, val)
    return out


def corpus(sentinel: str = "/tmp/kilobox-sentinel") -> dict[str, bytes]:
    """Named hostile layers (uncompressed unless the name says otherwise)."""
    big = raw_tar(M("a", data=b"x" * 4096))
    return {
        "traversal": raw_tar(M("../../etc/kilobox-pwned", data=b"pwned")),
        "traversal-nested": raw_tar(M("usr/../../kilobox-pwned", data=b"pwned")),
        "absolute-path": raw_tar(M("/etc/passwd", data=b"root::0:0::/:/bin/sh\n")),
        "symlink-escape-write": raw_tar(M("evil", "symlink", linkname="../../../../.."),
                                        M("evil" + sentinel + "/pwned", data=b"pwned")),
        "abs-symlink-escape-write": raw_tar(M("evil", "symlink", linkname=sentinel),
                                            M("evil/pwned", data=b"pwned")),
        "symlink-then-overwrite": raw_tar(M("passwd", "symlink", linkname=sentinel + "/secret"),
                                          M("passwd", data=b"pwned")),
        "hardlink-host-file": raw_tar(M("shadow", "hardlink", linkname="/etc/shadow")),
        "hardlink-escape": raw_tar(M("shadow", "hardlink", linkname="../../etc/shadow")),
        "hardlink-via-symlink": raw_tar(M("up", "symlink", linkname="../../../.."),
                                        M("x", "hardlink", linkname="up" + sentinel + "/secret")),
        "symlink-loop": raw_tar(M("a", "symlink", linkname="b"), M("b", "symlink", linkname="a"),
                                M("a/x", data=b"loop")),
        "device-node": raw_tar(M("dev/sda", "block"), M("dev/mem", "char")),
        "size-lie": size_lie(),
        "truncated-member": truncated_member(),
        "negative-size": negative_size(),
        "truncated-gzip": gz(big)[:-20],
        "gzip-bomb": gzip_bomb(64 << 20),
        "zstd-bomb": zstd_bomb(64 << 20),
    }


def tar_bytes(build) -> bytes:  # noqa: ANN001 - tiny convenience for tests
    """Run *build(tarfile)* against an in-memory PAX tar and return its bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        build(tf)
    return buf.getvalue()
