"""A streaming, bounded-memory tar reader for layers (USTAR, PAX, GNU long names).

Nothing is accumulated across entries, so a 100,000-entry layer iterates in
constant memory. Every member name is normalised (no leading ``/`` or ``./``,
``..`` that climbs out raises); header checksums are checked; a header that
claims more data than the stream holds raises :class:`LayerError`; sparse
files and multi-volume archives are refused. A compressed stream (gzip/zstd
magic) is decompressed transparently, bounded like :func:`open_decompressed`.

:func:`index_tar` runs the same parser over an uncompressed tar *file* (an
oci-archive, a docker-archive) without reading member data: it seeks over
it, and each :class:`Member` records ``data_offset``; names that are
absolute or contain ``..`` are refused there.
"""

from __future__ import annotations

import os
import stat

from ..errors import LayerError
from ._paths import OPAQUE, WHITEOUT_PREFIX, clean
from .compress import CHUNK, _Peek, _read_head, open_decompressed, sniff

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs ~3 ms of a CLI start
    from typing import Any, BinaryIO, Callable, Iterator

_BLOCK = 512
_ZERO = bytes(_BLOCK)
_KIND = {b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink",
         b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo"}
_MAX_TIME = 1 << 40         # mtimes are clamped to +-35,000 years
_MAX_NAME = 4096            # PATH_MAX: nothing in a container could open a longer path
_MAX_META = 1 << 20          # a PAX header or GNU long name larger than this is hostile
_MAX_SIZE = 1 << 62          # larger sizes (PAX allows any) cannot be read by any file API
_HINT = "the layer is corrupt or hostile; do not use it"


class _Buf:
    """Exact reads and skips over a stream with a large buffer; tracks the offset."""

    chunk = CHUNK

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.buf = b""
        self.pos = 0
        self.offset = 0

    def read(self, n: int) -> bytes:
        avail = len(self.buf) - self.pos
        if avail >= n:
            out = self.buf[self.pos:self.pos + n]
            self.pos += n
            self.offset += n
            return out
        parts = [self.buf[self.pos:]] if avail else []
        need = n - avail
        self.buf, self.pos = b"", 0
        while need > 0:
            chunk = self.raw.read(self.chunk if need < self.chunk else need)
            if not chunk:
                break
            if len(chunk) > need:
                parts.append(chunk[:need])
                self.buf, self.pos = chunk, need
                need = 0
            else:
                parts.append(chunk)
                need -= len(chunk)
        out = b"".join(parts)
        self.offset += len(out)
        return out

    def skip(self, n: int) -> int:
        """Skip *n* bytes; the number actually skipped (short only at EOF)."""
        done = 0
        avail = len(self.buf) - self.pos
        if avail:
            step = min(avail, n)
            self.pos += step
            done = step
        while done < n:
            chunk = self.raw.read(min(n - done, CHUNK))
            if not chunk:
                break
            done += len(chunk)
        self.offset += done
        return done

    def drain(self) -> None:
        self.buf, self.pos = b"", 0
        while self.raw.read(CHUNK):
            pass


class _SeekBuf(_Buf):
    """A :class:`_Buf` over a regular file of *size* bytes: skips seek, reads are small."""

    chunk = 1 << 16

    def __init__(self, raw: Any, size: int) -> None:
        super().__init__(raw)
        self.size = size

    def skip(self, n: int) -> int:
        done = min(len(self.buf) - self.pos, n)
        self.pos += done
        if done < n:
            here = self.raw.tell()
            step = max(0, min(n - done, self.size - here))
            self.raw.seek(here + step)
            done += step
        self.offset += done
        return done

    def drain(self) -> None:
        self.buf, self.pos = b"", 0       # a file has no digest or trailer to check


class Member:
    """One tar entry. Its content (``read``/``open``) is only readable while it is the current member."""

    __slots__ = ("name", "kind", "size", "mode", "uid", "gid", "linkname", "mtime", "pax", "xattrs",
                 "devmajor", "devminor", "offset", "data_offset", "_it", "_left", "_gen", "_where")

    def __init__(self, name: str, kind: str, size: int, mode: int, uid: int, gid: int, linkname: str,
                 mtime: int, pax: dict[str, str], xattrs: dict[str, bytes], devmajor: int, devminor: int,
                 offset: int, _it: Any = None, _gen: int = 0, _where: str = "layer", data_offset: int = 0) -> None:
        self.name, self.kind, self.size, self.mode, self.uid, self.gid = name, kind, size, mode, uid, gid
        self.linkname, self.mtime, self.pax, self.xattrs = linkname, mtime, pax, xattrs
        self.devmajor, self.devminor, self.offset, self.data_offset = devmajor, devminor, offset, data_offset
        self._it, self._left, self._gen, self._where = _it, size, _gen, _where

    def __repr__(self) -> str:
        extra = f" -> {self.linkname}" if self.linkname else ""
        return f"<Member {self.kind} {self.name!r}{extra} size={self.size} mode={self.mode:o}>"

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def is_opaque(self) -> bool:
        """An OCI opaque-directory marker (``.wh..wh..opq``)."""
        return self.basename == OPAQUE

    @property
    def is_whiteout(self) -> bool:
        """An OCI whiteout ``.wh.NAME`` (not the opaque marker)."""
        b = self.basename
        return b.startswith(WHITEOUT_PREFIX) and b != OPAQUE

    @property
    def whiteout_target(self) -> str:
        """For ``dir/.wh.NAME``: ``dir/NAME``."""
        b = self.basename[len(WHITEOUT_PREFIX):]
        head = self.name.rsplit("/", 1)[0] if "/" in self.name else ""
        return f"{head}/{b}" if head else b

    def read(self, n: int = -1) -> bytes:
        """Up to *n* bytes of content (all that is left for ``n < 0``)."""
        it = self._it
        if it is None or it.gen != self._gen:
            raise LayerError(f"{self._where}: entry {self.name!r}: content read after iteration moved on")
        if n is None or n < 0 or n > self._left:
            n = self._left
        if n == 0:
            return b""
        data = it.buf.read(n)
        self._left -= len(data)
        if len(data) < n:
            raise it.truncated(self)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def open(self) -> "Member":
        """A file-like view (``read``) of the content; same lifetime rules."""
        return self

    def close(self) -> None:
        pass

    def __enter__(self) -> "Member":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _cstr(field: bytes) -> bytes:
    i = field.find(b"\0")
    return field if i < 0 else field[:i]


def _num(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # base-256 (GNU) for big values
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big") if field[0] == 0x80 \
            else int.from_bytes(field, "big", signed=True)
    try:
        return int(field.strip(b" \0") or b"0", 8)
    except ValueError:
        pass
    try:  # digits, NUL, then junk
        return int(_cstr(field).strip(b" ") or b"0", 8)
    except ValueError:
        raise LayerError(f"{what}: invalid number {field!r} in tar header", hint=_HINT) from None


def _parse_pax(data: bytes, where: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # NUL padding some writers leave at the end
            break
        sp = data.find(b" ", pos)
        try:
            length = int(data[pos:sp]) if sp > pos else -1
        except ValueError:
            length = -1
        if length <= 0 or pos + length > len(data) or data[pos + length - 1] != 0x0A:
            raise LayerError(f"{where}: malformed PAX record (offset {pos} in the header)", hint=_HINT)
        rec = data[sp + 1:pos + length - 1]
        key, eq, value = rec.partition(b"=")
        if not eq or not key:
            raise LayerError(f"{where}: malformed PAX record (offset {pos} in the header)", hint=_HINT)
        out[key.decode("utf-8", "surrogateescape")] = value
        pos += length
    return out


def _clean_strict(name: str, where: str = "archive") -> str:
    """:func:`clean`, but an absolute name or any ``..`` is refused (outer archives)."""
    if name.startswith("/") or ".." in name.split("/"):
        raise LayerError(f"{where}: entry {name[:80]!r} escapes the archive (absolute or '..')", hint=_HINT)
    return clean(name, where)


class _Iter:
    def __init__(self, stream: Any, where: str, buf: _Buf | None = None,
                 clean_name: Callable[..., str] = clean) -> None:
        self.buf = _Buf(stream) if buf is None else buf
        self.where = where
        self.gen = 0
        self.clean = clean_name

    def truncated(self, m: Member) -> LayerError:
        return LayerError(f"{self.where}: entry {m.name!r}: header says {m.size} bytes but the stream ends early "
                          "(truncated, or a size lie)", hint=_HINT)

    def _meta(self, size: int, what: str, hdr_off: int) -> bytes:
        if size < 0 or size > _MAX_META:
            raise LayerError(f"{self.where}: {what} at byte {hdr_off} claims {size} bytes (limit {_MAX_META})",
                             hint=_HINT)
        data = self.buf.read(size)
        pad = -size % _BLOCK
        if len(data) < size or self.buf.skip(pad) < pad:
            raise LayerError(f"{self.where}: {what} at byte {hdr_off} is truncated", hint=_HINT)
        return data

    def __iter__(self) -> Iterator[Member]:
        buf, where = self.buf, self.where
        gpax: dict[str, bytes] = {}
        pax: dict[str, bytes] = {}
        longname = longlink = None
        while True:
            hdr_off = buf.offset
            block = buf.read(_BLOCK)
            if not block:
                # A clean end at a header boundary without the two zero blocks: Go's archive/tar
                # and GNU tar accept it, and umoci < 0.4.8 `insert` writes such layers (umoci#436).
                # Blobs are digest-verified; a header or a member cut short is still an error.
                if pax or longname is not None or longlink is not None:
                    raise LayerError(f"{where}: archive ends right after an extended header", hint=_HINT)
                return
            if len(block) < _BLOCK:
                raise LayerError(f"{where}: truncated tar stream at byte {hdr_off} (a header cut short)",
                                 hint=_HINT)
            if block == _ZERO:
                if pax or longname is not None or longlink is not None:
                    raise LayerError(f"{where}: archive ends right after an extended header", hint=_HINT)
                buf.drain()  # reach the end of the blob so compression trailers and digests get checked
                return
            try:
                stored = _num(block[148:156], where)
            except LayerError:
                stored = -1
            if stored != sum(block[:148]) + 256 + sum(block[156:]) and \
                    stored != sum((b - 256 if b > 127 else b) for b in block[:148] + b" " * 8 + block[156:]):
                raise LayerError(f"{where}: bad tar header checksum at byte {hdr_off} (not a tar, or corrupt)",
                                 hint=_HINT)
            typeflag = block[156:157]
            size = _num(block[124:136], where)
            if typeflag in (b"x", b"g", b"L", b"K"):
                data = self._meta(size, {b"x": "PAX header", b"g": "global PAX header",
                                         b"L": "GNU long name", b"K": "GNU long link"}[typeflag], hdr_off)
                if typeflag == b"x":
                    pax.update(_parse_pax(data, f"{where} at byte {hdr_off}"))
                elif typeflag == b"g":
                    gpax.update(_parse_pax(data, f"{where} at byte {hdr_off}"))
                elif typeflag == b"L":
                    longname = _cstr(data)
                else:
                    longlink = _cstr(data)
                continue
            magic = block[257:263]
            name = _cstr(block[0:100])
            if magic == b"ustar\0":
                prefix = _cstr(block[345:500])
                if prefix:
                    name = prefix + b"/" + name
            kind = _KIND.get(typeflag)
            if typeflag == b"V":  # volume label: metadata only
                kind = "label"
            elif kind is None:
                what = {b"S": "GNU sparse file", b"M": "multi-volume continuation", b"D": "GNU dump directory"}
                raise LayerError(f"{where} at byte {hdr_off}: unsupported tar entry type {typeflag!r} "
                                 f"({what.get(typeflag, 'unknown')}) for {name!r}", hint=_HINT)
            link = _cstr(block[157:257])
            merged = {**gpax, **pax} if gpax else pax
            pax, extra_name, extra_link = {}, longname, longlink
            longname = longlink = None
            if extra_name is not None:
                name = extra_name
            if extra_link is not None:
                link = extra_link
            uid, gid = _num(block[108:116], where), _num(block[116:124], where)
            mtime = _num(block[136:148], where)
            xattrs: dict[str, bytes] = {}
            strpax: dict[str, str] = {}
            for k, v in merged.items():
                if k.startswith("GNU.sparse."):
                    raise LayerError(f"{where} at byte {hdr_off}: GNU sparse files are not supported ({name!r})", hint=_HINT)
                if k.startswith("SCHILY.xattr."):
                    xattrs[k[len("SCHILY.xattr."):]] = v
                    continue
                sv = v.decode("utf-8", "surrogateescape")
                strpax[k] = sv
                try:
                    if k == "path":
                        name = v
                    elif k == "linkpath":
                        link = v
                    elif k == "size":
                        size = int(sv)
                    elif k == "uid":
                        uid = int(sv)
                    elif k == "gid":
                        gid = int(sv)
                    elif k == "mtime":
                        mtime = int(sv.split(".", 1)[0] or 0)
                except ValueError:
                    raise LayerError(f"{where} at byte {hdr_off}: invalid PAX {k}={sv!r}", hint=_HINT) from None
            raw_name = name.decode("utf-8", "surrogateescape")
            if kind == "file" and typeflag == b"\0" and raw_name.endswith("/"):
                kind = "dir"  # old V7 archives
            if not 0 <= size <= _MAX_SIZE or not (0 <= uid < 1 << 32 and 0 <= gid < 1 << 32):
                bad = f"size {size}" if not 0 <= size <= _MAX_SIZE else "owner id"
                raise LayerError(f"{where} at byte {hdr_off}: invalid {bad} in header of {raw_name!r}", hint=_HINT)
            mtime = min(max(mtime, -_MAX_TIME), _MAX_TIME)
            if kind == "label":
                n = size
                if buf.skip(n + (-n % _BLOCK)) < n + (-n % _BLOCK):
                    raise LayerError(f"{where} at byte {hdr_off}: truncated volume label", hint=_HINT)
                continue
            if len(name) > _MAX_NAME or len(link) > _MAX_NAME:
                raise LayerError(f"{where} at byte {hdr_off}: entry name or link target longer than "
                                 f"{_MAX_NAME} bytes (PATH_MAX)", hint=_HINT)
            path = self.clean(raw_name, where=where)
            linkname = link.decode("utf-8", "surrogateescape")
            if "\0" in linkname:
                raise LayerError(f"{where}: entry {path!r}: link target contains a NUL byte", hint=_HINT)
            if kind == "hardlink":
                linkname = clean(linkname, where=f"{where}: hardlink {path!r}")
            elif kind == "symlink" and not linkname:
                raise LayerError(f"{where}: entry {path!r}: symlink with an empty target", hint=_HINT)
            has_data = kind == "file"
            self.gen += 1
            dev = kind == "char" or kind == "block"
            if dev and not (0 <= _num(block[329:337], where) < 1 << 32 and 0 <= _num(block[337:345], where) < 1 << 32):
                raise LayerError(f"{where}: entry {path!r}: invalid device number", hint=_HINT)
            m = Member(path, kind, size if has_data else 0, _num(block[100:108], where) & 0o7777, uid, gid, linkname,
                       mtime, strpax, xattrs, _num(block[329:337], where) if dev else 0,
                       _num(block[337:345], where) if dev else 0, hdr_off, self, self.gen, where, buf.offset)
            yield m
            self.gen += 1
            if m._left:
                if buf.skip(m._left) < m._left:
                    raise self.truncated(m)
                m._left = 0
            pad = -m.size % _BLOCK
            # EOF right after complete data (no padding, no end blocks) is a clean end, as in Go's
            # archive/tar: umoci < 0.4.8 `insert` never closes its tar writer. Partial padding is not.
            if pad and 0 < buf.skip(pad) < pad:
                raise self.truncated(m)


def iter_layer(tar_stream: BinaryIO, *, name: str = "layer", limit: int | None = None) -> Iterator[Member]:
    """The members of the tar in *tar_stream*, streamed (gzip/zstd input is detected and decompressed).

    *name* is used in error messages (e.g. the layer digest). At the end of the
    archive the stream is read to its end, so a wrapped VerifyingReader checks
    the digest and compressed trailers are validated.
    """
    head = _read_head(tar_stream, 4)
    stream: Any = _Peek(tar_stream, head) if head else tar_stream
    if sniff(head):
        stream = open_decompressed(stream, "", limit=limit, what=name)
    return iter(_Iter(stream, name))


def index_tar(fileobj: BinaryIO, *, name: str = "archive") -> Iterator[Member]:
    """The members of the uncompressed tar *fileobj*, without reading their data.

    Same parser and limits as :func:`iter_layer`, with ``data_offset`` telling
    where each member's content starts (counted from the position *fileobj*
    is at). On a seekable regular file member data is skipped with ``seek``,
    so only headers are read. A name that is absolute or contains ``..`` is
    refused (:class:`LayerError`), not normalised. Compressed input is not
    decompressed (it fails as "not a tar").
    """
    buf: _Buf | None = None
    try:
        if stat.S_ISREG(os.fstat(fileobj.fileno()).st_mode) and fileobj.seekable():
            buf = _SeekBuf(fileobj, os.fstat(fileobj.fileno()).st_size)
    except (AttributeError, OSError, ValueError):
        pass                                   # not a file: stream it
    return iter(_Iter(fileobj, name, buf, _clean_strict))
