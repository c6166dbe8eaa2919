"""Tar members as the audit reads them: kilobox's streaming layer reader, normalised.

Uses :func:`kilobox.layers.iter_layer` (bounded PAX headers, safe names) when it is
available; otherwise a small :mod:`tarfile` stream reader with the same bounds.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterator, Protocol

from ..errors import LayerError

MAX_PAX = 1 << 20          # a PAX header larger than this is hostile
MAX_NAME = 4096


class Member(Protocol):
    name: str
    kind: str
    size: int
    mode: int
    uid: int
    gid: int
    linkname: str
    mtime: float
    xattrs: dict[str, bytes]

    def read(self, n: int = -1) -> bytes: ...


@dataclass
class _TarMember:
    name: str
    kind: str
    size: int
    mode: int
    uid: int
    gid: int
    linkname: str
    mtime: float
    xattrs: dict[str, bytes] = field(default_factory=dict)
    _read: Callable[[int], bytes] | None = None

    def read(self, n: int = -1) -> bytes:
        return self._read(n) if self._read is not None else b""


_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
          tarfile.LNKTYPE: "hardlink", tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char",
          tarfile.BLKTYPE: "block", tarfile.DIRTYPE: "dir", tarfile.FIFOTYPE: "fifo"}


def iter_members(stream: BinaryIO, where: str) -> Iterator[Member]:
    """Members of the tar *stream*, names cleaned (no leading ``/``, ``..`` refused)."""
    try:
        from ..layers import iter_layer  # type: ignore[attr-defined]
    except ImportError:
        return _iter_tarfile(stream, where)
    return _adapt(iter_layer(stream), where)


def _adapt(members: Any, where: str) -> Iterator[Member]:
    for m in members:
        xattrs = getattr(m, "xattrs", None)
        if xattrs is None:
            xattrs = _xattrs_from_pax(getattr(m, "pax", {}) or {})
        m.xattrs = xattrs
        yield m


def _xattrs_from_pax(pax: dict) -> dict[str, bytes]:
    out = {}
    for k, v in pax.items():
        if k.startswith("SCHILY.xattr."):
            out[k[len("SCHILY.xattr."):]] = v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogateescape")
    return out


def _iter_tarfile(stream: BinaryIO, where: str) -> Iterator[Member]:
    from ..layers._paths import clean

    try:
        tf = tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape")
    except tarfile.TarError as e:
        raise LayerError(f"{where}: not a tar stream ({e})", hint="the layer is corrupt") from None
    try:
        while True:
            try:
                ti = tf.next()
            except tarfile.TarError as e:
                raise LayerError(f"{where}: corrupt tar ({e})", hint="the layer is corrupt") from None
            except (EOFError, OSError) as e:
                raise LayerError(f"{where}: truncated tar ({e})", hint="the layer is truncated") from None
            if ti is None:
                return
            tf.members.clear()  # stream mode keeps every TarInfo otherwise
            name = clean(ti.name, where)
            kind = _KINDS.get(ti.type)
            if kind is None or name == ".":
                continue
            reader = None
            if kind == "file":
                fobj = tf.extractfile(ti)
                reader = fobj.read if fobj is not None else None
            link = clean(ti.linkname, where) if kind == "hardlink" else ti.linkname
            yield _TarMember(name=name, kind=kind, size=ti.size if kind == "file" else 0, mode=ti.mode,
                             uid=ti.uid, gid=ti.gid, linkname=link, mtime=ti.mtime,
                             xattrs=_xattrs_from_pax(ti.pax_headers), _read=reader)
    finally:
        tf.close()


__all__ = ["Member", "iter_members"]
