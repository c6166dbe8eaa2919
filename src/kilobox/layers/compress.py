"""Bounded decompression (gzip, zstd, plain) and deterministic compression of layer streams.

Reading: :func:`open_decompressed` sniffs the magic bytes (a media type may lie:
docker-archive layers are often plain tar), refuses truncated or corrupt
streams and stops a decompression bomb at ``limit`` bytes with a clear
:class:`~kilobox.errors.LayerError`.

Writing: :func:`compressor` returns a writer whose output depends only on the
bytes written and the level: the gzip header carries mtime 0, no file name and
OS byte 255 (as Go's ``compress/gzip``); zstd uses fixed parameters and no
content size. Identical across hosts that share the zlib / libzstd version.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

from ..errors import LayerError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs ~3 ms of a CLI start
    from typing import Any, BinaryIO

#: Default cap on the decompressed size of one layer (16 GiB); env KILOBOX_MAX_LAYER_BYTES overrides.
DEFAULT_MAX_BYTES = 16 << 30
CHUNK = 1 << 20

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_HINT_BOMB = "if the layer is genuine, raise the limit with KILOBOX_MAX_LAYER_BYTES=<bytes>"


def max_layer_bytes() -> int:
    """The decompression cap: ``$KILOBOX_MAX_LAYER_BYTES`` or :data:`DEFAULT_MAX_BYTES`."""
    env = os.environ.get("KILOBOX_MAX_LAYER_BYTES", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise LayerError(f"KILOBOX_MAX_LAYER_BYTES={env!r} is not an integer",
                             hint="set it to a number of bytes, e.g. 34359738368") from None
        if value > 0:
            return value
    return DEFAULT_MAX_BYTES


def normalize_compression(compression: str) -> str:
    """``'gzip'``, ``'zstd'`` or ``''`` from a compression name or a layer media type."""
    c = (compression or "").strip().lower()
    if c in ("gzip", "gz", "zstd", ""):
        return {"gz": "gzip"}.get(c, c)
    if c in ("none", "tar", "plain", "uncompressed"):
        return ""
    if "/" in c or "." in c:
        from ..oci.mediatypes import layer_compression
        return layer_compression(c)
    raise LayerError(f"unknown layer compression {compression!r}", hint="use 'gzip', 'zstd' or ''")


def sniff(head: bytes) -> str | None:
    """The compression the first bytes announce, or None when they are not compressed."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


class _Peek:
    """Put back the bytes consumed while sniffing."""

    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self.raw, self.head = raw, head

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                data, self.head = self.head + self.raw.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.raw.read(n)

    def close(self) -> None:
        close = getattr(self.raw, "close", None)
        if close is not None:
            close()


def _read_head(raw: BinaryIO, n: int) -> bytes:
    head = b""
    while len(head) < n:
        chunk = raw.read(n - len(head))
        if not chunk:
            break
        head += chunk
    return head


class DecompressedStream(io.RawIOBase):
    """A read-only stream of decompressed layer bytes, capped at ``limit``."""

    def __init__(self, raw: BinaryIO, kind: str, limit: int, what: str) -> None:
        super().__init__()
        self._raw = raw
        self.kind = kind
        self._limit = limit
        self._what = what
        self._total = 0
        self._eof = False
        self._in = b""            # compressed input not yet fed (gzip)
        self._z: Any = None       # zlib decompressobj (gzip)
        self._zr: Any = None      # zstandard stream reader
        if kind == "zstd":
            import zstandard
            self._zstd_error = zstandard.ZstdError
            self._zr = zstandard.ZstdDecompressor().stream_reader(
                _ZstdFramingTap(raw, what), read_size=CHUNK, read_across_frames=True, closefd=False)

    # -- io protocol ---------------------------------------------------------
    def readable(self) -> bool:
        return True

    @property
    def total(self) -> int:
        """Decompressed bytes delivered so far."""
        return self._total

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        if n == 0 or self._eof:
            return b""
        n = min(n, CHUNK)
        try:
            if self.kind == "gzip":
                data = self._read_gzip(n)
            elif self.kind == "zstd":
                data = self._read_zstd(n)
            else:
                data = self._raw.read(n)
        except LayerError:
            raise
        except (zlib.error, EOFError) as e:
            raise LayerError(f"{self._what}: corrupt {self.kind} data ({e})",
                             hint="the blob is damaged; fetch it again") from None
        except Exception as e:
            if self.kind == "zstd" and isinstance(e, self._zstd_error):
                raise LayerError(f"{self._what}: corrupt zstd data ({e})",
                                 hint="the blob is damaged; fetch it again") from None
            raise
        if not data:
            self._eof = True
            return b""
        self._total += len(data)
        if self._total > self._limit:
            raise LayerError(f"{self._what}: decompresses to more than {self._limit} bytes (gzip bomb?)",
                             hint=_HINT_BOMB)
        return data

    def close(self) -> None:
        if not self.closed:
            try:
                if self._zr is not None:
                    self._zr.close()
                close = getattr(self._raw, "close", None)
                if close is not None:
                    close()
            finally:
                super().close()

    # -- gzip (multi-member, trailing zero padding tolerated) -----------------
    def _fill(self) -> bool:
        chunk = self._raw.read(CHUNK)
        if chunk:
            self._in += chunk
            return True
        return False

    def _read_gzip(self, n: int) -> bytes:
        while True:
            if self._z is None:
                if not self._in and not self._fill():
                    return b""  # clean end between members
                if self._in.startswith(GZIP_MAGIC[:len(self._in)]) and len(self._in) < 2:
                    if not self._fill():
                        raise LayerError(f"{self._what}: truncated gzip stream (header cut short)")
                    continue
                if not self._in.startswith(GZIP_MAGIC):
                    if not self._in.strip(b"\0"):
                        self._in = b""      # zero padding after the last member
                        continue
                    raise LayerError(f"{self._what}: garbage after the end of the gzip stream")
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            z = self._z
            data = z.decompress(self._in, n)
            self._in = z.unconsumed_tail
            if z.eof:
                self._in = z.unused_data + self._in
                self._z = None
            if data:
                return data
            if self._z is not None and not self._in and not self._fill():
                raise LayerError(f"{self._what}: truncated gzip stream (ends before its trailer)",
                                 hint="the blob is incomplete; fetch it again")

    # -- zstd ------------------------------------------------------------------
    def _read_zstd(self, n: int) -> bytes:
        data = self._zr.read(n)
        return data


class _ZstdFramingTap:
    """Pass compressed bytes through while walking the zstd frame/block headers.

    libzstd's streaming reader reports a stream cut inside a frame as a clean
    end; walking the block headers (no decompression) tells a truncated
    stream from a complete one at EOF.
    """

    def __init__(self, raw: BinaryIO, what: str) -> None:
        self._raw = raw
        self._what = what
        self._buf = b""          # header bytes being collected
        self._skip = 0           # payload bytes to pass over
        self._state = "magic"    # magic | fhd | fheader | skiplen | block | checksum
        self._need = 4
        self._fhd = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._feed(data)
        elif self._state != "magic" or self._buf or self._skip:
            raise LayerError(f"{self._what}: truncated zstd stream (ends inside a frame)",
                             hint="the blob is incomplete; fetch it again")
        return data

    def _feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._need - len(self._buf), end - pos)
            self._buf += data[pos:pos + take]
            pos += take
            if len(self._buf) == self._need:
                hdr, self._buf = self._buf, b""
                self._advance(hdr)

    def _advance(self, hdr: bytes) -> None:
        st = self._state
        if st == "magic":
            magic = int.from_bytes(hdr, "little")
            if hdr == ZSTD_MAGIC:
                self._state, self._need = "fhd", 1
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._need = "skiplen", 4
            else:  # libzstd reports the precise error
                self._state, self._need = "magic", 4
        elif st == "skiplen":
            self._skip = int.from_bytes(hdr, "little")
            self._state, self._need = "magic", 4
        elif st == "fhd":
            fhd = self._fhd = hdr[0]
            fcs_flag, single, did_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
            rest = (0 if single else 1) + (0, 1, 2, 4)[did_flag] + ((1 if single else 0), 2, 4, 8)[fcs_flag]
            if rest:
                self._state, self._need = "fheader", rest
            else:
                self._state, self._need = "block", 3
        elif st == "fheader":
            self._state, self._need = "block", 3
        elif st == "block":
            b = int.from_bytes(hdr, "little")
            last, btype, size = b & 1, (b >> 1) & 3, b >> 3
            self._skip = 1 if btype == 1 else size
            if last:
                if self._fhd & 4:
                    self._state, self._need = "checksum", 4
                else:
                    self._state, self._need = "magic", 4
        elif st == "checksum":
            self._state, self._need = "magic", 4

    def close(self) -> None:
        pass


def open_decompressed(stream: BinaryIO, compression: str = "", *, limit: int | None = None,
                      what: str = "layer") -> DecompressedStream:
    """The uncompressed bytes of a layer *stream*; closing the result closes *stream*.

    *compression* is ``'gzip'``, ``'zstd'``, ``''`` or a layer media type; the
    magic bytes win when they disagree (a ``+gzip`` media type over a plain tar
    reads as plain). More than *limit* decompressed bytes (default
    :func:`max_layer_bytes`) or a corrupt/truncated stream raise LayerError.
    """
    normalize_compression(compression)  # validates the name
    head = _read_head(stream, 4)
    kind = sniff(head) or ""
    if limit is None:
        limit = max_layer_bytes()
    return DecompressedStream(_Peek(stream, head) if head else stream, kind, limit, what)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- writing
class _GzipWriter:
    """Deterministic gzip: fixed 10-byte header, raw deflate, crc32 + size trailer."""

    def __init__(self, out: BinaryIO, level: int) -> None:
        self._out = out
        xfl = 2 if level == 9 else (4 if level == 1 else 0)
        out.write(b"\x1f\x8b\x08\x00" + b"\0\0\0\0" + bytes([xfl, 255]))
        self._c = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY)
        self._crc = 0
        self._size = 0

    def write(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        out = self._c.compress(data)
        if out:
            self._out.write(out)

    def finish(self) -> None:
        self._out.write(self._c.flush())
        self._out.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))


class _ZstdWriter:
    def __init__(self, out: BinaryIO, level: int) -> None:
        import zstandard
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=0, write_checksum=True, write_content_size=False, write_dict_id=False)
        self._out = out
        self._c = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def write(self, data: bytes) -> None:
        out = self._c.compress(data)
        if out:
            self._out.write(out)

    def finish(self) -> None:
        self._out.write(self._c.flush())


class _PlainWriter:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, data: bytes) -> None:
        self._out.write(data)

    def finish(self) -> None:
        pass


def compressor(out: BinaryIO, compression: str, level: int = 9) -> "_GzipWriter | _ZstdWriter | _PlainWriter":
    """A ``write``/``finish`` object compressing deterministically into *out*."""
    kind = normalize_compression(compression)
    if kind == "gzip":
        return _GzipWriter(out, max(1, min(level, 9)))
    if kind == "zstd":
        return _ZstdWriter(out, max(1, min(level, 22)))
    return _PlainWriter(out)
