"""The streaming reader and bounded decompression, on good and hostile input."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import tarfile
import tracemalloc

import pytest

from kilobox.errors import LayerError
from kilobox.layers import Entry, iter_layer, open_decompressed, write_layer
from kilobox.layers.compress import DEFAULT_MAX_BYTES, max_layer_bytes
from kilobox.oci import mediatypes
from tests.helpers.hostile import (M, gz, gzip_bomb, negative_size, raw_tar, size_lie, tar_bytes, truncated_member, zst,
                                   zstd_bomb)


def _members(blob: bytes, **kw) -> list:
    out = []
    for m in iter_layer(io.BytesIO(blob), **kw):
        out.append((m.name, m.kind, m.read(), m.linkname, m.mode, m.uid, m.gid, m.mtime))
    return out


# --------------------------------------------------------------------------- round trips
def test_round_trip_write_then_iter() -> None:
    entries = [Entry("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n", mode=0o600, mtime=5),
               Entry("bin/sh", data=b"\x7fELF" * 1000, mode=0o755, uid=1, gid=2),
               Entry("bin/ash", "hardlink", linkname="bin/sh"),
               Entry("lib", "symlink", linkname="/usr/lib"),
               Entry("dev/tty", "char", devmajor=5, devminor=0, mode=0o666),
               Entry("run/pipe", "fifo"),
               Entry("x" * 300, data=b"long name"),
               Entry("caps", data=b"", xattrs={"security.capability": b"\x01\x00\x00\x02\x00\x20",
                                               "user.note": "ünï".encode()})]
    buf = io.BytesIO()
    write_layer(entries, buf, epoch=42)
    got = {m.name: m for m in iter_layer(io.BytesIO(buf.getvalue()))}
    assert list(got) == ["bin", "bin/ash", "bin/sh", "caps", "dev", "dev/tty", "etc", "etc/passwd", "lib", "run",
                         "run/pipe", "x" * 300]
    assert got["bin/ash"].kind == "file" and got["bin/sh"].kind == "hardlink" and got["bin/sh"].linkname == "bin/ash"
    assert (got["bin/ash"].mode, got["bin/ash"].uid, got["bin/ash"].gid, got["bin/ash"].size) == (0o755, 1, 2, 4000)
    assert (got["etc/passwd"].mode, got["etc/passwd"].mtime, got["bin"].mtime) == (0o600, 5, 42)
    assert got["lib"].linkname == "/usr/lib"
    assert (got["dev/tty"].devmajor, got["dev/tty"].devminor) == (5, 0)
    assert got["caps"].xattrs == {"security.capability": b"\x01\x00\x00\x02\x00\x20", "user.note": "ünï".encode()}
    assert "SCHILY.xattr.user.note" not in got["caps"].pax


def test_content_read_in_pieces_and_open() -> None:
    data = bytes(range(256)) * 5000
    buf = io.BytesIO()
    write_layer([Entry("f", data=data), Entry("g", data=b"after")], buf, compression="zstd")
    it = iter_layer(io.BytesIO(buf.getvalue()))
    m = next(it)
    with m.open() as f:
        parts = [f.read(1000), f.read(7), f.read()]
    assert b"".join(parts) == data and m.read() == b""
    g = next(it)
    assert g.read() == b"after"
    with pytest.raises(LayerError, match="after iteration moved on"):
        m.read(1)


def test_unread_content_is_skipped() -> None:
    buf = io.BytesIO()
    write_layer([Entry(f"f{i}", data=bytes([i]) * (i * 1000 + 1)) for i in range(20)], buf)
    names = [m.name for m in iter_layer(io.BytesIO(buf.getvalue()))]
    assert len(names) == 20


def test_reads_gnu_format_long_names_and_base256() -> None:
    def build(tf: tarfile.TarFile) -> None:
        ti = tarfile.TarInfo("d/" + "n" * 200)
        ti.size, ti.uid = 3, 8 ** 8  # base-256 uid in GNU format
        tf.addfile(ti, io.BytesIO(b"abc"))
        li = tarfile.TarInfo("l" * 150)
        li.type, li.linkname = tarfile.SYMTYPE, "/" + "t" * 150
        tf.addfile(li)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        build(tf)
    got = _members(buf.getvalue())
    assert got[0][:3] == ("d/" + "n" * 200, "file", b"abc") and got[0][5] == 8 ** 8
    assert got[1][0] == "l" * 150 and got[1][3] == "/" + "t" * 150


def test_global_pax_header_applies() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"uid": "77"}) as tf:
        ti = tarfile.TarInfo("a")
        tf.addfile(ti, io.BytesIO(b""))
    assert _members(buf.getvalue())[0][5] == 77


def test_names_are_normalised() -> None:
    blob = raw_tar(M("./a/./b//c", data=b"1"), M("/abs/x", data=b"2"), M("d/../e", data=b"3"), M("./", "dir"))
    assert [n[0] for n in _members(blob)] == ["a/b/c", "abs/x", "e", "."]


def test_old_v7_directory() -> None:
    h = bytearray(raw_tar(M("olddir/", "file"))[:512])
    h[156:157] = b"\0"
    h[148:156] = b"        "
    h[148:156] = b"%06o\0 " % sum(h)
    assert _members(bytes(h) + bytes(1024))[0][:2] == ("olddir", "dir")


@pytest.mark.parametrize("blob", [b"", bytes(1024), bytes(512)])
def test_empty_archives(blob: bytes) -> None:
    assert _members(blob) == []


def test_transparent_decompression() -> None:
    tar = raw_tar(M("a", data=b"x"))
    assert _members(gz(tar)) == _members(zst(tar)) == _members(tar)


# --------------------------------------------------------------------------- hostile tars
def test_bad_checksum() -> None:
    blob = bytearray(raw_tar(M("a", data=b"x")))
    blob[0] = ord("b")
    with pytest.raises(LayerError, match="bad tar header checksum at byte 0"):
        _members(bytes(blob))


def test_size_lie_and_truncation() -> None:
    with pytest.raises(LayerError, match=r"'etc/motd': header says 1048576 bytes but the stream ends early"):
        _members(size_lie())
    with pytest.raises(LayerError, match=r"'big': header says 5000 bytes"):
        _members(truncated_member())
    # a clean end at a header boundary is accepted (Go and GNU tar do; umoci<0.4.8 `insert` writes it)
    assert [m[0] for m in _members(raw_tar(M("a", data=b"x"), end=False))] == ["a"]
    # ... and so is EOF right after a member's complete data (no padding either: umoci 0.4.7 `insert`)
    assert _members(raw_tar(M("etc/f", data=b"hi\n"), end=False)[:515])[0][:3] == ("etc/f", "file", b"hi\n")
    with pytest.raises(LayerError, match=r"'etc/f': header says 3 bytes"):
        _members(raw_tar(M("etc/f", data=b"hi\n"), end=False)[:600])  # padding cut short
    with pytest.raises(LayerError, match=r"'etc/f': header says 3 bytes"):
        _members(raw_tar(M("etc/f", data=b"hi\n"), end=False)[:514])  # data cut short
    with pytest.raises(LayerError, match=r"extended header"):
        _members(raw_tar(M("a" * 200, data=b"x"), end=False)[:1024])
    with pytest.raises(LayerError, match=r"truncated tar stream"):
        _members(raw_tar(M("a", data=b"x"))[:1024 + 100])


@pytest.mark.parametrize("blob", [negative_size(512), negative_size(1024), negative_size(1 << 40),
                                  raw_tar(M("p", data=b"x", pax={"size": "-512"})),
                                  raw_tar(M("p", data=b"x", pax={"size": "1e3"})),
                                  raw_tar(M("p", data=b"x", pax={"size": "9" * 400}))],
                         ids=["neg-512", "neg-1024", "neg-huge", "pax-neg", "pax-float", "pax-huge"])
def test_negative_or_absurd_sizes_are_refused(blob: bytes) -> None:
    """tarfile before 3.11.14 loops for ever on a negative size; our reader refuses it at once."""
    with pytest.raises(LayerError):
        _members(blob)


def test_size_lie_smaller_than_data() -> None:
    # header says 1 byte; the rest of the data is then read as a header and fails its checksum
    with pytest.raises(LayerError, match="checksum"):
        _members(raw_tar(M("a", data=b"y" * 2000, size=1)))


def test_traversal_in_reader() -> None:
    with pytest.raises(LayerError, match="climbs out"):
        _members(raw_tar(M("../etc/passwd", data=b"x")))
    with pytest.raises(LayerError, match="climbs out"):
        _members(raw_tar(M("x", "hardlink", linkname="../../etc/shadow")))
    with pytest.raises(LayerError, match="climbs out"):
        _members(raw_tar(M("x", pax={"path": "a/../../b"})))


def test_pax_abuse() -> None:
    hdr = tarfile.TarInfo("PaxHeaders/x")
    hdr.type, hdr.size = tarfile.XHDTYPE, 3 << 20
    with pytest.raises(LayerError, match="PAX header at byte 0 claims"):
        _members(hdr.tobuf(tarfile.USTAR_FORMAT) + bytes(3 << 20))
    bad = b"99 path=x\n"
    hdr.size = len(bad)
    with pytest.raises(LayerError, match="malformed PAX record"):
        _members(hdr.tobuf(tarfile.USTAR_FORMAT) + bad.ljust(512, b"\0") + raw_tar(M("a")))
    with pytest.raises(LayerError, match="invalid PAX size"):
        _members(raw_tar(M("a", pax={"size": "lots"})))


def test_sparse_and_unknown_types_refused() -> None:
    with pytest.raises(LayerError, match="sparse"):
        _members(raw_tar(M("a", pax={"GNU.sparse.major": "1"})))
    h = bytearray(raw_tar(M("weird"))[:512])
    h[156:157], h[148:156] = b"S", b"        "
    h[148:156] = b"%06o\0 " % sum(h)
    with pytest.raises(LayerError, match="GNU sparse file"):
        _members(bytes(h) + bytes(1024))


def test_empty_symlink_target_refused() -> None:
    with pytest.raises(LayerError, match="empty target"):
        _members(raw_tar(M("s", "symlink", linkname="")))


# --------------------------------------------------------------------------- decompression
def test_sniffing_beats_the_media_type() -> None:
    tar = raw_tar(M("a", data=b"x"))
    assert open_decompressed(io.BytesIO(tar), mediatypes.DOCKER_LAYER_GZIP).read() == tar
    assert open_decompressed(io.BytesIO(gz(tar)), mediatypes.OCI_LAYER).read() == tar
    assert open_decompressed(io.BytesIO(zst(tar)), "gzip").read() == tar
    with open_decompressed(io.BytesIO(gz(tar)), "gzip") as f:
        assert f.read(10) == tar[:10] and f.read(1 << 30) == tar[10:] and f.read() == b""
    with pytest.raises(LayerError, match="unknown layer compression"):
        open_decompressed(io.BytesIO(tar), "bzip2")


def test_gzip_multi_member_and_zero_padding() -> None:
    assert open_decompressed(io.BytesIO(gz(b"ab") + gz(b"cd") + bytes(100)), "gzip").read() == b"abcd"
    with pytest.raises(LayerError, match="garbage after the end of the gzip stream"):
        open_decompressed(io.BytesIO(gz(b"ab") + b"junk"), "gzip").read()


def test_gzip_corruption() -> None:
    blob = bytearray(gz(b"hello world" * 1000))
    blob[-6] ^= 0xFF  # crc
    with pytest.raises(LayerError, match="corrupt gzip data"):
        open_decompressed(io.BytesIO(bytes(blob)), "gzip").read()
    with pytest.raises(LayerError, match="truncated gzip stream"):
        open_decompressed(io.BytesIO(gz(b"hello world" * 1000)[:-1]), "gzip").read()
    with pytest.raises(LayerError, match="truncated gzip"):
        open_decompressed(io.BytesIO(b"\x1f\x8b\x08"), "gzip").read()


def test_zstd_corruption() -> None:
    blob = zst(bytes(range(256)) * 4000)
    with pytest.raises(LayerError, match="truncated zstd"):
        open_decompressed(io.BytesIO(blob[:len(blob) // 2]), "zstd").read()
    with pytest.raises(LayerError, match="truncated zstd"):
        open_decompressed(io.BytesIO(blob[:-1]), "zstd").read()
    with pytest.raises(LayerError, match="corrupt zstd"):
        open_decompressed(io.BytesIO(blob + b"garbage!"), "zstd").read()
    assert open_decompressed(io.BytesIO(zst(b"a") + zst(b"b")), "zstd").read() == b"ab"


def test_zstd_frame_asking_for_a_huge_window_is_refused() -> None:
    """A 2 GiB window would make the decoder allocate 2 GiB: refused before any allocation."""
    import zstandard
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=31)
    c = zstandard.ZstdCompressor(compression_params=params).compressobj()
    blob = c.compress(b"x" * 1000) + c.flush()
    assert zstandard.get_frame_parameters(blob).window_size == 1 << 31
    with pytest.raises(LayerError, match="corrupt zstd"):
        open_decompressed(io.BytesIO(blob), "zstd").read()


@pytest.mark.parametrize("make", [gzip_bomb, zstd_bomb])
def test_bombs_stop_at_limit(make) -> None:
    f = open_decompressed(io.BytesIO(make(32 << 20)), "", limit=1 << 20)
    with pytest.raises(LayerError, match=r"decompresses to more than 1048576 bytes \(gzip bomb\?\)") as ei:
        while f.read(1 << 16):
            pass
    assert "KILOBOX_MAX_LAYER_BYTES" in ei.value.hint
    assert f.total <= (1 << 20) + (1 << 20)


def test_limit_from_environment(monkeypatch) -> None:
    monkeypatch.delenv("KILOBOX_MAX_LAYER_BYTES", raising=False)
    assert max_layer_bytes() == DEFAULT_MAX_BYTES
    monkeypatch.setenv("KILOBOX_MAX_LAYER_BYTES", "1000")
    with pytest.raises(LayerError, match="more than 1000 bytes"):
        open_decompressed(io.BytesIO(gz(bytes(5000))), "gzip").read()
    monkeypatch.setenv("KILOBOX_MAX_LAYER_BYTES", "lots")
    with pytest.raises(LayerError, match="not an integer"):
        max_layer_bytes()


def test_iter_layer_bomb_through_limit() -> None:
    tar = raw_tar(M("a", data=b"", size=64 << 20), end=False)[:512]
    with pytest.raises(LayerError, match="gzip bomb"):
        _members(gz(tar) + gzip_bomb(64 << 20), limit=1 << 20)


def test_closing_closes_the_source() -> None:
    src = io.BytesIO(gz(b"x"))
    with open_decompressed(src, "gzip") as f:
        f.read()
    assert src.closed


# --------------------------------------------------------------------------- scale
_ITER_CHILD = """
import resource, sys
from kilobox.layers import iter_layer
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
count = 0
with open(sys.argv[1], "rb") as f:
    for m in iter_layer(f):
        if count % 3 == 0:
            m.read()
        count += 1
print(count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
"""


def test_100k_entries_in_bounded_memory(tmp_path) -> None:
    """Iterating never accumulates: the child's peak RSS barely moves while it reads 100,000 entries."""
    n = 100_000
    layer = tmp_path / "big.tar.gz"
    with layer.open("wb") as f:
        write_layer((Entry(f"d{i // 1000:03d}/f{i:06d}", data=b"x" * (i % 7)) for i in range(n)), f, level=1)
    out = subprocess.run([sys.executable, "-c", _ITER_CHILD, str(layer)], capture_output=True, text=True, check=True)
    count, grew_kib = map(int, out.stdout.split())
    assert count == n + 100  # files + their directories
    assert grew_kib < 50 * 1024, f"peak RSS grew by {grew_kib / 1024:.1f} MiB"


def test_iteration_allocations_are_bounded() -> None:
    """tracemalloc view of the same property, on 5,000 entries of 64 KiB (the content is never kept)."""
    buf = io.BytesIO()
    write_layer((Entry(f"f{i:05d}", data=bytes([i % 256]) * 65536) for i in range(1000)), buf, level=1)
    blob = buf.getvalue()
    tracemalloc.start()
    try:
        for m in iter_layer(io.BytesIO(blob)):
            m.read(4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 1e6:.1f} MB for a 64 MiB layer"


def test_tar_bytes_helper_matches_tarfile() -> None:
    blob = tar_bytes(lambda tf: tf.addfile(tarfile.TarInfo("x"), io.BytesIO(b"")))
    assert _members(blob)[0][:2] == ("x", "file")
    assert gzip.decompress(gz(blob)) == blob
