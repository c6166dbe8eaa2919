"""A deterministic tar layer writer.

Same entries ⇒ same bytes ⇒ same digest, whatever the umask, cwd, clock or
host (given the same zlib/libzstd): entries sorted as a tree walk (parents
first, whiteouts before their siblings), missing parent directories added
(0755, root:root), mtime = entry's, else ``epoch``, else ``$SOURCE_DATE_EPOCH``,
else 0; no atime/ctime/uname/gname; USTAR headers, PAX records only when a
field does not fit (long or non-ASCII names, xattrs, big ids/sizes/times).
File content is streamed from ``Entry.source`` in 1 MiB chunks.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from .._record import FrozenRecord, Record
from ..errors import LayerError
from ..oci import Descriptor, Digest, mediatypes
from ._paths import clean, sort_key, split
from .compress import CHUNK, compressor, normalize_compression

KINDS = ("file", "dir", "symlink", "hardlink", "char", "block", "fifo")
_TYPEFLAG = {"file": b"0", "hardlink": b"1", "symlink": b"2", "char": b"3", "block": b"4",
             "dir": b"5", "fifo": b"6"}
_DEFAULT_MODE = {"dir": 0o755, "symlink": 0o777}
_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing and dataclasses cost ~8 ms of a CLI start
    from typing import Any, BinaryIO, Collection, Iterable, Iterator


class Entry(Record):
    """One filesystem object to put in a layer. ``path`` is relative to the image root.

    ``mode`` None means 0o644 (0o755 for dirs, 0o777 for symlinks); ``data`` is the file's
    content, or ``source`` a host file streamed at write time; ``linkname`` is a symlink's
    target (verbatim) or a hardlink's target (a layer path).
    """

    __slots__ = ("path", "kind", "mode", "uid", "gid", "data", "source", "linkname", "mtime", "xattrs",
                 "devmajor", "devminor")
    path: str
    kind: str
    mode: int
    uid: int
    gid: int
    data: bytes | None
    source: Path | None
    linkname: str
    mtime: int | None
    xattrs: dict[str, bytes]
    devmajor: int
    devminor: int

    def __init__(self, path: str, kind: str = "file", mode: int | None = None, uid: int = 0, gid: int = 0,
                 data: bytes | None = None, source: Path | None = None, linkname: str = "",
                 mtime: int | None = None, xattrs: dict[str, bytes] | None = None, devmajor: int = 0,
                 devminor: int = 0) -> None:
        if kind not in KINDS:
            raise LayerError(f"entry {path!r}: unknown kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
        self.path, self.kind, self.uid, self.gid = path, kind, uid, gid
        self.mode = _DEFAULT_MODE.get(kind, 0o644) if mode is None else mode
        self.data, self.source, self.linkname, self.mtime = data, source, linkname, mtime
        self.xattrs = {} if xattrs is None else xattrs
        self.devmajor, self.devminor = devmajor, devminor


class LayerInfo(FrozenRecord):
    """What :func:`write_layer` produced: digests and sizes of the blob and of its tar."""

    __slots__ = ("digest", "size", "diff_id", "uncompressed_size", "media_type")
    digest: Digest             # of the compressed blob
    size: int                  # compressed size
    diff_id: Digest            # of the uncompressed tar
    uncompressed_size: int
    media_type: str

    def __init__(self, digest: Digest, size: int, diff_id: Digest, uncompressed_size: int, media_type: str) -> None:
        self._set(digest=digest, size=size, diff_id=diff_id, uncompressed_size=uncompressed_size,
                  media_type=media_type)

    def descriptor(self, **kw: Any) -> Descriptor:
        """The layer's descriptor (extra fields, e.g. ``annotations=``, passed through)."""
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size, **kw)


# --------------------------------------------------------------------------- tar headers
def _fits(n: int, width: int) -> bool:
    return 0 <= n < 8 ** (width - 1)


def _octal(n: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, n)


def _pax_records(records: dict[str, bytes]) -> bytes:
    out = bytearray()
    for key in sorted(records):
        body = b" " + key.encode("utf-8") + b"=" + records[key] + b"\n"
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n = len(str(n)) + len(body)
        out += str(n).encode() + body
    return bytes(out)


def _header(name: bytes, prefix: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
            typeflag: bytes, linkname: bytes, devmajor: int = 0, devminor: int = 0) -> bytes:
    h = bytearray(_BLOCK)
    h[0:len(name)] = name
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(uid, 8)
    h[116:124] = _octal(gid, 8)
    h[124:136] = _octal(size, 12)
    h[136:148] = _octal(mtime, 12)
    h[148:156] = b"        "
    h[156:157] = typeflag
    h[157:157 + len(linkname)] = linkname
    h[257:265] = b"ustar\x0000"
    h[329:337] = _octal(devmajor, 8)
    h[337:345] = _octal(devminor, 8)
    h[345:345 + len(prefix)] = prefix
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for a USTAR header, or None when it needs PAX."""
    if len(name) <= 100:
        return b"", name
    for i in range(len(name) - 1, -1, -1):
        if name[i:i + 1] == b"/" and i <= 155 and len(name) - i - 1 <= 100 and i > 0:
            rest = name[i + 1:]
            if rest:
                return name[:i], rest
    return None


def encode_entry(e: Entry, size: int, mtime: int) -> bytes:
    """The header block(s) of one entry, with a PAX header in front when needed."""
    pax: dict[str, bytes] = {}
    raw = e.path.encode("utf-8", "surrogateescape") + (b"/" if e.kind == "dir" else b"")
    split_ = _split_name(raw) if raw.isascii() else None
    if split_ is None:
        pax["path"] = raw
        prefix, name = b"", raw[:100]
    else:
        prefix, name = split_
    link = e.linkname.encode("utf-8", "surrogateescape")
    if len(link) > 100 or not link.isascii():
        pax["linkpath"] = link
        link = link[:100]
    uid, gid = e.uid, e.gid
    if not _fits(uid, 8):
        pax["uid"], uid = str(uid).encode(), 0
    if not _fits(gid, 8):
        pax["gid"], gid = str(gid).encode(), 0
    if not _fits(size, 12):
        pax["size"], size = str(size).encode(), 0
    if not _fits(mtime, 12):
        pax["mtime"], mtime = str(mtime).encode(), 0
    if not (_fits(e.devmajor, 8) and _fits(e.devminor, 8)):
        raise LayerError(f"entry {e.path!r}: device number {e.devmajor},{e.devminor} does not fit a tar header")
    for key, value in e.xattrs.items():
        if "=" in key or "\0" in key or not key:
            raise LayerError(f"entry {e.path!r}: invalid xattr name {key!r}")
        pax["SCHILY.xattr." + key] = bytes(value)
    body = _header(name, prefix, e.mode & 0o7777, uid, gid, size, mtime, _TYPEFLAG[e.kind], link,  # type: ignore[operator]
                   e.devmajor, e.devminor)
    if not pax:
        return body
    records = _pax_records(pax)
    base = raw.rstrip(b"/").rsplit(b"/", 1)[-1]
    pname = (b"PaxHeaders/" + base)[:100]
    pad = -len(records) % _BLOCK
    return (_header(pname, b"", 0o644, 0, 0, len(records), max(0, min(mtime, 8 ** 11 - 1)), b"x", b"")
            + records + bytes(pad) + body)


# --------------------------------------------------------------------------- writing
class _HashCount:
    """A write-through sink that hashes and counts (compressed side)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.h, self.n = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.h.update(data)
        self.n += len(data)
        self.out.write(data)
        return len(data)


class _TarOut:
    """Buffers small writes; hashes the tar (diff_id) and feeds the compressor."""

    def __init__(self, comp: Any) -> None:
        self.comp, self.h, self.n, self.buf = comp, hashlib.sha256(), 0, bytearray()

    def write(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            data = bytes(self.buf)
            self.buf.clear()
            self.h.update(data)
            self.n += len(data)
            self.comp.write(data)


def default_epoch(epoch: int | None = None) -> int:
    """*epoch*, else ``$SOURCE_DATE_EPOCH``, else 0."""
    if epoch is not None:
        return int(epoch)
    env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if env:
        try:
            return int(env)
        except ValueError:
            raise LayerError(f"SOURCE_DATE_EPOCH={env!r} is not an integer",
                             hint="set it to seconds since 1970, e.g. $(git log -1 --format=%ct)") from None
    return 0


def _prepare(entries: Iterable[Entry]) -> list[Entry]:
    """Clean paths, refuse duplicates, sort, add missing parent directories."""
    by_path: dict[str, Entry] = {}
    for e in entries:
        path = clean(e.path, where=f"entry {e.path!r}")
        if path == ".":
            continue  # the root is the extraction target's business
        if path in by_path:
            raise LayerError(f"entry {path!r} appears twice in the layer", hint="give each path once")
        if path != e.path:
            e = e._replace(path=path)
        by_path[path] = e
    _reorder_hardlinks(by_path)
    ordered = sorted(by_path.values(), key=lambda x: sort_key(x.path))
    out: list[Entry] = []
    dirs: set[str] = set()
    for e in ordered:
        parts = split(e.path)
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in dirs:
                continue
            explicit = by_path.get(parent)
            if explicit is not None and explicit.kind != "dir":
                raise LayerError(f"entry {e.path!r}: its parent {parent!r} is a {explicit.kind}, not a directory")
            if explicit is None:
                out.append(Entry(parent, "dir"))
            dirs.add(parent)
        if e.kind == "dir":
            dirs.add(e.path)
        out.append(e)
    return out


def _reorder_hardlinks(by_path: dict[str, Entry]) -> None:
    """Make the first path of each hardlink group (in layer order) carry the data."""
    groups: dict[str, list[str]] = {}
    for e in list(by_path.values()):
        if e.kind != "hardlink":
            continue
        target, hops = clean(e.linkname, where=f"entry {e.path!r} hardlink"), 0
        while target in by_path and by_path[target].kind == "hardlink" and hops < 64:
            target, hops = clean(by_path[target].linkname), hops + 1
        t = by_path.get(target)
        if t is None or t.kind == "dir" or t.kind == "hardlink":
            raise LayerError(f"entry {e.path!r}: hardlink target {e.linkname!r} is not a file in the layer",
                             hint="hardlinks must point at a non-directory entry of the same layer")
        groups.setdefault(target, []).append(e.path)
    for target, links in groups.items():
        first = min([target, *links], key=sort_key)
        for p in links:
            by_path[p] = by_path[p]._replace(linkname=first)
        if first != target:
            carrier = by_path[target]
            by_path[first] = carrier._replace(path=first)
            by_path[target] = Entry(target, "hardlink", linkname=first, mtime=carrier.mtime)


def _stream_source(e: Entry, tar: _TarOut, size: int) -> None:
    assert e.source is not None
    fd = os.open(e.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        left = size
        while left:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                break
            tar.write(chunk)
            left -= len(chunk)
        if left or os.read(fd, 1):
            raise LayerError(f"entry {e.path!r}: {e.source} changed size while it was being written",
                             hint="do not modify the source tree during a build")
    finally:
        os.close(fd)


def write_layer(entries: Iterable[Entry], out: BinaryIO, *, compression: str = "gzip",
                epoch: int | None = None, level: int = 9) -> LayerInfo:
    """Write *entries* as a deterministic (compressed) tar layer to *out*.

    *compression*: ``'gzip'``, ``'zstd'``, ``''`` or a layer media type.
    Returns digests and sizes; *out* is not closed.
    """
    kind = normalize_compression(compression)
    when = default_epoch(epoch)
    sink = _HashCount(out)
    tar = _TarOut(compressor(sink, kind, level))  # type: ignore[arg-type]
    written: set[str] = set()
    for e in _prepare(entries):
        mtime = e.mtime if e.mtime is not None else when
        size = 0
        if e.kind == "file":
            if e.data is not None:
                size = len(e.data)
            elif e.source is not None:
                try:
                    st = os.lstat(e.source)
                except OSError as err:
                    raise LayerError(f"entry {e.path!r}: cannot read {e.source}: {err.strerror}") from None
                if not stat.S_ISREG(st.st_mode):
                    raise LayerError(f"entry {e.path!r}: {e.source} is not a regular file")
                size = st.st_size
        elif e.kind == "hardlink":
            target = clean(e.linkname, where=f"entry {e.path!r} hardlink")
            if target not in written:
                raise LayerError(f"entry {e.path!r}: hardlink target {target!r} is not earlier in the layer",
                                 hint="hardlinks must point at a file written before them (sorted order)")
            e = e._replace(linkname=target)
        elif e.kind == "symlink" and not e.linkname:
            raise LayerError(f"entry {e.path!r}: symlink without a target")
        tar.write(encode_entry(e, size, int(mtime)))
        if e.kind == "file":
            if e.data is not None:
                tar.write(e.data)
            elif e.source is not None:
                _stream_source(e, tar, size)
            tar.write(bytes(-size % _BLOCK))
        if e.kind != "dir":
            written.add(e.path)
    tar.write(_ZERO_BLOCK * 2)
    tar.flush()
    tar.comp.finish()
    media_type = {"gzip": mediatypes.OCI_LAYER_GZIP, "zstd": mediatypes.OCI_LAYER_ZSTD}.get(kind, mediatypes.OCI_LAYER)
    return LayerInfo(digest=Digest("sha256", sink.h.hexdigest()), size=sink.n,
                     diff_id=Digest("sha256", tar.h.hexdigest()), uncompressed_size=tar.n, media_type=media_type)


# --------------------------------------------------------------------------- from a directory
def entries_from_dir(root: Path, *, keep_owner: bool = True, keep_mtime: bool = False,
                     xattr_names: Collection[str] = ("security.capability",)) -> Iterator[Entry]:
    """Entries for the tree under *root* (not *root* itself), in layer order.

    Hardlinks are found by inode (the first path in layer order carries the
    data), device nodes and fifos are kept, sockets skipped. Owners are kept
    unless ``keep_owner=False``; mtimes are dropped (the writer's epoch
    applies) unless ``keep_mtime``; only the xattrs named in *xattr_names*.
    """
    root = Path(root)
    seen: dict[tuple[int, int], str] = {}

    def walk(dirpath: str, rel: str) -> Iterator[Entry]:
        try:
            with os.scandir(dirpath) as it:
                names = sorted((d.name for d in it), key=lambda n: sort_key(n))
        except OSError as err:
            raise LayerError(f"cannot list {dirpath}: {err.strerror}") from None
        for name in names:
            full = os.path.join(dirpath, name)
            path = f"{rel}/{name}" if rel else name
            st = os.lstat(full)
            m = st.st_mode
            common: dict[str, Any] = dict(
                mode=stat.S_IMODE(m),
                uid=st.st_uid if keep_owner else 0, gid=st.st_gid if keep_owner else 0,
                mtime=int(st.st_mtime) if keep_mtime else None)
            if stat.S_ISDIR(m):
                yield Entry(path, "dir", xattrs=_xattrs(full, xattr_names), **common)
                yield from walk(full, path)
                continue
            if st.st_nlink > 1 and not stat.S_ISDIR(m):
                first = seen.get((st.st_dev, st.st_ino))
                if first is not None:
                    yield Entry(path, "hardlink", linkname=first, **common)
                    continue
                seen[(st.st_dev, st.st_ino)] = path
            if stat.S_ISREG(m):
                yield Entry(path, "file", source=Path(full), xattrs=_xattrs(full, xattr_names), **common)
            elif stat.S_ISLNK(m):
                yield Entry(path, "symlink", linkname=os.readlink(full), **common)
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
                yield Entry(path, "char" if stat.S_ISCHR(m) else "block", devmajor=os.major(st.st_rdev),
                            devminor=os.minor(st.st_rdev), **common)
            elif stat.S_ISFIFO(m):
                yield Entry(path, "fifo", **common)
            # sockets and anything else: not representable in a layer

    return walk(str(root), "")


def _xattrs(path: str, names: Collection[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name in names:
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            pass
    return out
