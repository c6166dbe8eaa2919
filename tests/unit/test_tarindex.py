"""One tar policy for every outer archive (oci-archive, docker-archive), on kilobox's own parser.

Hostile tars are built by hand (stdlib ``tarfile`` only *writes* here, or reads
archives kilobox itself wrote) and each must be refused with a one-line
:class:`LayoutError` naming the archive — never a hang, a crash or a silent skip.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from pathlib import Path
from typing import Callable

import pytest

from kilobox.copying import copy
from kilobox.errors import LayerError, LayoutError, NotFound
from kilobox.formats import _tarindex
from kilobox.formats._tarindex import TarIndex
from kilobox.formats.dockerarchive import DockerArchiveSource
from kilobox.formats.ociarchive import OciArchiveSource
from kilobox.layers import iter_layer
from kilobox.layers.reader import index_tar
from kilobox.testing import random_image, validate_image, write_image
from tests.helpers.hostile import M, header, raw_tar

FORMATS = ("oci-archive", "docker-archive")
KEY = {"oci-archive": "index.json", "docker-archive": "manifest.json"}   # the member each format must read
MiB = 1 << 20
Parts = list[bytes]


# -- building archives ------------------------------------------------------------------

@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("good")
    out = {}
    for fmt in FORMATS:
        out[fmt] = d / f"{fmt}.tar"
        write_image(random_image(layers=2, size=3000, seed=11), f"{fmt}:{out[fmt]}:t")
    return out


def entries(path: Path) -> list[tuple[str, bytes]]:
    """(name, encoded member: header + data + padding) of an archive kilobox wrote (trusted input)."""
    out = []
    with tarfile.open(path) as tf:
        for ti in tf:
            data = tf.extractfile(ti).read() if ti.isreg() else b""  # type: ignore[union-attr]
            out.append((ti.name, ti.tobuf(tarfile.PAX_FORMAT) + data + bytes(-len(data) % 512)))
    return out


def open_archive(fmt: str, path: Path) -> None:
    src = OciArchiveSource(path, "t") if fmt == "oci-archive" else DockerArchiveSource(path)
    src.close()


def pax_block(payload: bytes, typeflag: bytes = tarfile.XHDTYPE) -> bytes:
    """An extended header (``x`` or ``g``) holding *payload* verbatim, as in the CVE-2024-6232 reproducer."""
    hdr = tarfile.TarInfo("././@PaxHeader")
    hdr.type, hdr.size = typeflag, len(payload)
    return hdr.tobuf(tarfile.USTAR_FORMAT) + payload + bytes(-len(payload) % 512)


def rec(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def typed(name: str, typeflag: bytes, size: int = 0, fmt: int = tarfile.GNU_FORMAT) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size = typeflag, size
    return ti.tobuf(fmt)


def replace_key(new: Callable[[str], Parts]) -> Callable[[str, list[tuple[str, bytes]]], Parts]:
    """Swap the key member for *new(key)* (e.g. a symlink)."""
    def edit(fmt: str, es: list[tuple[str, bytes]]) -> Parts:
        return [p for n, b in es for p in (new(KEY[fmt]) if n == KEY[fmt] else [b])]
    return edit


def prepend(*parts: bytes) -> Callable[[str, list[tuple[str, bytes]]], Parts]:
    return lambda fmt, es: [*parts, *(b for _, b in es)]


def append(*parts: bytes) -> Callable[[str, list[tuple[str, bytes]]], Parts]:
    return lambda fmt, es: [*(b for _, b in es), *parts]


def sym(name: str, target: str) -> bytes:
    return header(M(name, kind="symlink", linkname=target))


def _dup_key(fmt: str, es: list[tuple[str, bytes]]) -> Parts:
    return [b for _, b in es] + [b for n, b in es if n == KEY[fmt]]


def _cut_in_data(fmt: str, es: list[tuple[str, bytes]]) -> Parts:
    """Everything up to the middle of the largest member's data: the file ends there."""
    big = max(range(len(es)), key=lambda i: len(es[i][1]))
    return [b for _, b in es[:big]] + [es[big][1][: 512 * 3 + 100]]


def _cut_in_header(fmt: str, es: list[tuple[str, bytes]]) -> Parts:
    return [es[0][1], es[1][1][:200]]


def _bad_checksum(fmt: str, es: list[tuple[str, bytes]]) -> Parts:
    first = bytearray(es[0][1])
    first[5] ^= 0x01
    return [bytes(first), *(b for _, b in es[1:])]


# edit, regex the message must match. Every edit makes the whole archive invalid in both formats.
HOSTILE: dict[str, tuple[Callable[[str, list[tuple[str, bytes]]], Parts], str]] = {
    # CVE-2024-6232: Python's tarfile (3.11.7) parses these PAX headers in quadratic time
    "cve pax 1e6 digits": (prepend(pax_block(b"1" * 1_000_000), typed("a", tarfile.REGTYPE)), "malformed PAX"),
    "cve pax 1 MiB digits": (prepend(pax_block(b"1" * MiB), typed("a", tarfile.REGTYPE)), "malformed PAX"),
    "cve pax over 1 MiB": (prepend(pax_block(b"1" * (MiB + 1)), typed("a", tarfile.REGTYPE)), "limit"),
    "cve pax digits then record": (prepend(pax_block(b"1" * 900_000 + b" a=b\n"), typed("a", tarfile.REGTYPE)),
                                   "malformed PAX"),
    "pax many short records": (prepend(pax_block(b"1 " * 400_000), typed("a", tarfile.REGTYPE)), "malformed PAX"),
    "global pax digits": (prepend(pax_block(b"9" * 500_000, tarfile.XGLTYPE)), "malformed PAX"),
    "pax without newline": (prepend(pax_block(b"9 a=bc"), typed("a", tarfile.REGTYPE)), "malformed PAX"),
    "pax header at the end": (append(pax_block(rec("comment", "x"))), "ends right after an extended header"),
    "pax header truncated": (append(pax_block(b"1" * 4000)[:1024]), "truncated"),
    # names
    "absolute name": (append(raw_tar(M("/etc/evil", data=b"x"), end=False)), "escapes the archive"),
    "dotdot name": (append(raw_tar(M("../evil", data=b"x"), end=False)), "escapes the archive"),
    "inner dotdot name": (append(raw_tar(M("blobs/../../evil", data=b"x"), end=False)), "escapes the archive"),
    "harmless-looking dotdot": (append(raw_tar(M("blobs/../oci-layout2", data=b"x"), end=False)),
                                "escapes the archive"),
    "pax path absolute": (append(raw_tar(M("ok", data=b"x", pax={"path": "/etc/evil"}), end=False)),
                          "escapes the archive"),
    "pax path dotdot": (append(raw_tar(M("ok", data=b"x", pax={"path": "a/../../evil"}), end=False)),
                        "escapes the archive"),
    "gnu long name dotdot": (append(raw_tar(M("../" + "a" * 200, data=b"x"), end=False, fmt=tarfile.GNU_FORMAT)),
                             "escapes the archive"),
    "global pax path": (prepend(pax_block(rec("path", "../evil"), tarfile.XGLTYPE)), "escapes the archive"),
    "name over PATH_MAX": (append(raw_tar(M("ok", data=b"x", pax={"path": "a/" * 3000}), end=False)), "PATH_MAX"),
    "NUL in pax path": (append(raw_tar(M("ok", data=b"x", pax={"path": "a\0b"}), end=False)), "NUL"),
    # duplicates
    "duplicate key member": (_dup_key, "appears twice"),
    "file over a directory": (append(raw_tar(M("blobs", data=b"x"), end=False)), "appears twice"),
    "directory over a file": (append(raw_tar(M("oci-layout", kind="dir"), end=False)), "appears twice"),
    # sizes
    "negative size": (prepend(header(M("loop", size=-512), tarfile.GNU_FORMAT)), r"invalid size -512"),
    "huge base-256 size": (prepend(header(M("big", size=1 << 70), tarfile.GNU_FORMAT)), "invalid size"),
    "pax size over 2**62": (prepend(header(M("big", pax={"size": str(1 << 63)}))), "invalid size"),
    "pax size negative": (prepend(header(M("big", pax={"size": "-5"}))), "invalid size"),
    "pax size not a number": (prepend(header(M("big", pax={"size": "12abc"}))), "invalid PAX size"),
    "size past the end": (append(header(M("big", size=1 << 40))), "truncated"),
    "truncated in member data": (_cut_in_data, "truncated|ends early"),
    "truncated in a header": (_cut_in_header, "truncated"),
    "bad header checksum": (_bad_checksum, "checksum"),
    # member types
    "sparse member": (append(typed("sp", tarfile.GNUTYPE_SPARSE)), "sparse"),
    "pax sparse member": (append(header(M("sp", pax={"GNU.sparse.major": "1"}))), "sparse"),
    "multi-volume member": (append(typed("mv", b"M")), "multi-volume"),
    "unknown member type": (append(typed("u", b"Z")), "unsupported tar entry type"),
    "hardlink key": (replace_key(lambda k: [header(M(k, kind="hardlink", linkname="oci-layout"))]), "hardlink"),
    "char device key": (replace_key(lambda k: [header(M(k, kind="char"))]), "not a regular file"),
    "fifo key": (replace_key(lambda k: [header(M(k, kind="fifo"))]), "not a regular file"),
    "directory key": (replace_key(lambda k: [header(M(k, kind="dir"))]), "not a regular file"),
    # symlinks
    "symlink to itself": (replace_key(lambda k: [sym(k, k)]), "too many symlinks"),
    "symlink loop": (replace_key(lambda k: [sym(k, "x"), sym("x", k)]), "too many symlinks"),
    "symlink chain too long": (replace_key(lambda k: [sym(k, "l0")] + [sym(f"l{i}", f"l{i + 1}") for i in range(9)]
                                          + [raw_tar(M("l9", data=b"{}"), end=False)]), "too many symlinks"),
    "symlink absolute": (replace_key(lambda k: [sym(k, "/etc/passwd")]), "absolute path"),
    "symlink escapes": (replace_key(lambda k: [sym(k, f"../{k}")]), "outside the archive"),
    "symlink escapes from a dir": (replace_key(lambda k: [header(M("d", kind="dir")), sym("d/x", "../../etc"),
                                                          sym(k, "d/x/passwd")]), "outside the archive|missing"),
    "symlink dangling": (replace_key(lambda k: [sym(k, "nothere")]), "missing"),
    "empty symlink target": (replace_key(lambda k: [header(M(k, kind="symlink", linkname=""))]), "empty target"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused(good: dict[str, Path], tmp_path: Path, fmt: str, case: str) -> None:
    edit, match = HOSTILE[case]
    bad = tmp_path / "bad.tar"
    data = b"".join(edit(fmt, entries(good[fmt])))
    bad.write_bytes(data if case.startswith("truncated") else data + bytes(1024))
    with pytest.raises(LayoutError, match=match) as e:
        open_archive(fmt, bad)
    msg = e.value.message
    assert msg.startswith(f"{fmt}:{bad}") and "\n" not in msg, msg
    assert e.value.hint, msg


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", FORMATS)
def test_cve_2024_6232_copy_fails_fast_and_writes_nothing(good: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    """The reproducer's tar (a PAX header of ~1 MiB of digits) in front of a valid archive.

    Python 3.11.7's tarfile needs many minutes for it (quadratic regex); kilobox's
    parser refuses it in one linear pass, so this test would time out with tarfile.
    """
    bad = tmp_path / "cve.tar"
    bad.write_bytes(pax_block(b"1" * (MiB - 512)) + typed("a", tarfile.REGTYPE, fmt=tarfile.USTAR_FORMAT)
                    + b"".join(b for _, b in entries(good[fmt])) + bytes(1024))
    for dest in (f"oci:{tmp_path / 'lay'}:x", f"oci-archive:{tmp_path / 'out.tar'}:x"):
        with pytest.raises(LayoutError, match="malformed PAX"):
            copy(f"{fmt}:{bad}", dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cve.tar"]


# -- what still reads -------------------------------------------------------------------

ACCEPTED: dict[str, Callable[[str, list[tuple[str, bytes]]], Parts]] = {
    "as written": lambda fmt, es: [b for _, b in es],
    "directory twice": append(header(M("blobs", kind="dir")), header(M("blobs/", kind="dir"))),
    "root ./ entry and ./ names": lambda fmt, es: [header(M("./", kind="dir"))] + [
        typed_rename(b, "./" + n) for n, b in es],
    "key member symlinked inside": replace_key(lambda k: [header(M("real", kind="dir")),
                                                          sym(k, "real/../real/k")]),
    "large but valid PAX comment": prepend(pax_block(rec("comment", "x" * 900_000)),
                                           header(M("note", kind="dir"))),
    "no end-of-archive blocks": lambda fmt, es: [b for _, b in es],   # written without the 1024 zeros below
    "devices and hardlinks not used": append(header(M("dev", kind="char")), header(M("fifo", kind="fifo")),
                                             header(M("hl", kind="hardlink", linkname="oci-layout"))),
}


def typed_rename(encoded: bytes, name: str) -> bytes:
    """Re-encode one member (from :func:`entries`) under a new name."""
    with tarfile.open(fileobj=io.BytesIO(encoded + bytes(1024))) as tf:
        ti = tf.next()
        assert ti is not None
        data = tf.extractfile(ti).read() if ti.isreg() else b""  # type: ignore[union-attr]
    ti.name = name
    return ti.tobuf(tarfile.PAX_FORMAT) + data + bytes(-len(data) % 512)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_unusual_but_valid_archive_reads(good: dict[str, Path], tmp_path: Path, fmt: str, case: str) -> None:
    parts = ACCEPTED[case](fmt, entries(good[fmt]))
    if case == "key member symlinked inside":
        key = next(b for n, b in entries(good[fmt]) if n == KEY[fmt])
        parts.append(typed_rename(key, "real/k"))
    ok = tmp_path / "ok.tar"
    ok.write_bytes(b"".join(parts) + (b"" if case.startswith("no end") else bytes(1024)))
    validate_image(f"{fmt}:{ok}" + (":t" if fmt == "oci-archive" else ""))


# -- compressed and non-tar files ------------------------------------------------------------

def _zstd(data: bytes) -> bytes:
    import zstandard
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind,compress", [("gzip", gzip.compress), ("zstd", _zstd), ("bzip2", bz2.compress),
                                           ("xz", lzma.compress)])
def test_compressed_archive_says_decompress_first(good: dict[str, Path], tmp_path: Path, fmt: str, kind: str,
                                                  compress: Callable[[bytes], bytes]) -> None:
    p = tmp_path / "a.tar.x"
    p.write_bytes(compress(good[fmt].read_bytes()))
    with pytest.raises(LayoutError, match=f"{kind}-compressed") as e:
        open_archive(fmt, p)
    assert "decompress it first" in (e.value.hint or "")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("content", [b"", b"hello world\n" * 300, bytes(range(256)) * 8, bytes(10240),
                                     b"PK\x03\x04" + bytes(600)], ids=["empty", "text", "bytes", "zeros", "zip"])
def test_not_a_tar(tmp_path: Path, fmt: str, content: bytes) -> None:
    p = tmp_path / "junk.tar"
    p.write_bytes(content)
    with pytest.raises(LayoutError) as e:
        open_archive(fmt, p)
    assert "\n" not in e.value.message


@pytest.mark.parametrize("fmt", FORMATS)
def test_directory_and_missing_file(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(LayoutError, match="directory"):
        open_archive(fmt, tmp_path)
    with pytest.raises(NotFound):
        open_archive(fmt, tmp_path / "absent.tar")


def test_member_count_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tarindex, "MAX_MEMBERS", 3)
    p = tmp_path / "many.tar"
    p.write_bytes(raw_tar(*(M(f"f{i}", data=b"x") for i in range(5))))
    with pytest.raises(LayoutError, match="more than 3 members"):
        TarIndex(p, "t")


# -- index_tar ----------------------------------------------------------------------------

class _CountingFile(io.FileIO):
    """A regular file that counts the bytes read from it."""

    nread = 0

    def read(self, n: int = -1) -> bytes:   # type: ignore[override]
        data = super().read(n)
        self.nread += len(data or b"")
        return data  # type: ignore[return-value]

    def readall(self) -> bytes:
        data = super().readall()
        self.nread += len(data)
        return data


def _big_tar(path: Path) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for i, size in enumerate([8 * MiB, 10, 0, 3 * MiB + 1]):
            ti = tarfile.TarInfo(f"d/f{i}" + ("x" * 120 if i == 3 else ""))   # a long name: a PAX header
            ti.size = size
            tf.addfile(ti, io.BytesIO(bytes([i + 1]) * size))
        ti = tarfile.TarInfo("d/link")
        ti.type, ti.linkname = tarfile.SYMTYPE, "f1"
        tf.addfile(ti)
    return path


def test_index_tar_seeks_over_data_and_records_offsets(tmp_path: Path) -> None:
    p = _big_tar(tmp_path / "big.tar")
    with tarfile.open(p) as tf:
        want = [(ti.name, ti.offset_data, ti.size) for ti in tf]
    with _CountingFile(p) as f:
        got = [(m.name, m.data_offset, m.size) for m in index_tar(f, name="big")]
        assert f.nread < 512 * 1024, f.nread                 # headers only, never the 11 MiB of data
    assert got == want
    data = p.read_bytes()
    for i, (_, off, size) in enumerate(got[:4]):
        assert data[off:off + size] == bytes([i + 1]) * size
    with TarIndex(p, "big") as t:
        m = t.members[got[0][0]]
        assert t.pread(m, 4, m.size - 4) == b"\x01" * 4
        assert t.resolve("d/link", "link").name == "d/f1"
        assert t.open(t.resolve("d/link", "link")).read() == b"\x02" * 10


def test_index_tar_on_a_stream_matches_the_file(tmp_path: Path) -> None:
    p = _big_tar(tmp_path / "big.tar")
    data = p.read_bytes()
    with open(p, "rb") as f:
        from_file = [(m.name, m.kind, m.data_offset, m.size, m.linkname) for m in index_tar(f, name="x")]
    from_stream = [(m.name, m.kind, m.data_offset, m.size, m.linkname) for m in index_tar(io.BytesIO(data), name="x")]
    layer = [(m.name, m.kind, m.data_offset, m.size, m.linkname) for m in iter_layer(io.BytesIO(data))]
    assert from_file == from_stream == layer


def test_index_tar_truncated_file_and_strict_names(tmp_path: Path) -> None:
    p = _big_tar(tmp_path / "big.tar")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(p.read_bytes()[: 4 * MiB])
    with open(cut, "rb") as f, pytest.raises(LayerError, match="ends early"):
        list(index_tar(f, name="cut"))
    evil = tmp_path / "evil.tar"
    evil.write_bytes(raw_tar(M("/abs", data=b"x")))
    with open(evil, "rb") as f, pytest.raises(LayerError, match="escapes the archive"):
        list(index_tar(f, name="evil"))
    # iter_layer keeps its layer rule: a leading / is normalised away
    assert [m.name for m in iter_layer(io.BytesIO(evil.read_bytes()))] == ["abs"]


def test_index_tar_from_an_offset(tmp_path: Path) -> None:
    """data_offset counts from where the file object stood; seeks stay within the file."""
    p = tmp_path / "off.tar"
    p.write_bytes(b"J" * 1000 + raw_tar(M("a", data=b"hello"), M("b", data=b"x" * 700)))
    with open(p, "rb") as f:
        f.seek(1000)
        ms = [(m.name, m.data_offset, m.size) for m in index_tar(f, name="off")]
        assert os.path.getsize(p) >= f.tell()
    assert ms == [("a", 512, 5), ("b", 1024 + 512, 700)]
