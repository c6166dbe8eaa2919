"""The deterministic writer: same input, same bytes; readable by GNU tar and Python's tarfile."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kilobox.errors import LayerError
from kilobox.layers import Entry, LayerInfo, entries_from_dir, open_decompressed, write_layer
from kilobox.oci import Digest, mediatypes

IS_ROOT = os.geteuid() == 0


def _entries() -> list[Entry]:
    return [
        Entry("usr/bin/hello", data=b"#!/bin/sh\necho hi\n", mode=0o755),
        Entry("etc/hostname", data=b"kilobox\n"),
        Entry("bin", "symlink", linkname="usr/bin"),
        Entry("usr/bin/awk", "symlink", linkname="/etc/alternatives/awk"),
        Entry("usr/bin/hi", "hardlink", linkname="usr/bin/hello"),
        Entry("var/empty", "dir", mode=0o700, uid=65534, gid=65534),
        Entry("caps", data=b"x", xattrs={"security.capability": b"\x01\x00\x00\x02" + bytes(16)}),
        Entry("p" * 120 + "/" + "q" * 120, data=b"long"),
        Entry("ünïcode", data=b"u"),
    ]


def _write(entries, **kw) -> tuple[bytes, LayerInfo]:
    buf = io.BytesIO()
    info = write_layer(entries, buf, **kw)
    return buf.getvalue(), info


def _tar(blob: bytes) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(open_decompressed(io.BytesIO(blob), "").read()))


def test_same_entries_same_bytes() -> None:
    a, ia = _write(_entries())
    b, ib = _write(list(reversed(_entries())))
    assert a == b and ia == ib
    assert ia.digest == Digest.of(a) and ia.size == len(a)


def test_gzip_header_is_fixed() -> None:
    blob, info = _write(_entries())
    assert blob[:10] == bytes.fromhex("1f8b08 00 00000000 02 ff")  # no mtime, no name, XFL=2, OS=255
    assert info.media_type == mediatypes.OCI_LAYER_GZIP
    raw = gzip.decompress(blob)
    assert Digest.of(raw) == info.diff_id and len(raw) == info.uncompressed_size


@pytest.mark.parametrize("compression,media_type", [("zstd", mediatypes.OCI_LAYER_ZSTD), ("", mediatypes.OCI_LAYER),
                                                    (mediatypes.OCI_LAYER_GZIP, mediatypes.OCI_LAYER_GZIP)])
def test_compressions(compression: str, media_type: str) -> None:
    a, ia = _write(_entries(), compression=compression)
    b, _ = _write(_entries(), compression=compression)
    assert a == b and ia.media_type == media_type
    gz, igz = _write(_entries())
    assert ia.diff_id == igz.diff_id  # the tar is the same whatever the compression
    d = ia.descriptor(annotations={"a": "b"})
    assert (d.media_type, d.digest, d.size, d.annotations) == (media_type, ia.digest, ia.size, {"a": "b"})


def test_headers_are_clean() -> None:
    blob, _ = _write(_entries(), epoch=1700000000)
    members = _tar(blob).getmembers()
    names = [m.name for m in members]
    assert names.index("usr") < names.index("usr/bin") < names.index("usr/bin/awk") < names.index("usr/bin/hello")
    for m in members:
        assert m.uname == "" and m.gname == "" and m.mtime == 1700000000
        assert not ({"atime", "ctime", "uname", "gname"} & set(m.pax_headers))
    by = {m.name: m for m in members}
    assert by["usr"].mode == 0o755 and by["usr"].isdir() and (by["usr"].uid, by["usr"].gid) == (0, 0)  # implicit
    assert (by["var/empty"].mode, by["var/empty"].uid) == (0o700, 65534)
    assert by["usr/bin/hi"].islnk() and by["usr/bin/hi"].linkname == "usr/bin/hello"
    assert by["usr/bin/hello"].isfile() and by["usr/bin/hello"].mode == 0o755
    assert by["caps"].pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape")[:4] == \
        b"\x01\x00\x00\x02"
    assert set(by["p" * 120 + "/" + "q" * 120].pax_headers) == {"path"}
    assert by["etc/hostname"].pax_headers == {}


def test_pax_only_when_needed() -> None:
    blob, _ = _write([Entry("a/b", data=b"x"), Entry("d", "dir")], compression="")
    assert b"PaxHeaders" not in blob and blob[257:263] == b"ustar\0"
    blob, _ = _write([Entry("x" * 101, data=b"x")], compression="")
    assert blob[156:157] == b"x"
    blob, _ = _write([Entry("big", data=b"x", uid=1 << 22)], compression="")  # does not fit 7 octal digits
    assert _tar(blob).getmember("big").uid == 1 << 22


def test_ustar_prefix_split() -> None:
    name = "d" * 80 + "/" + "f" * 90  # 171 bytes: fits prefix + name without PAX
    blob, _ = _write([Entry(name, data=b"x")], compression="")
    assert b"PaxHeaders" not in blob
    assert _tar(blob).getmember(name).isfile()


def test_epoch_sources(monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234")
    blob, _ = _write([Entry("f", data=b"")])
    assert _tar(blob).getmember("f").mtime == 1234
    blob, _ = _write([Entry("f", data=b"")], epoch=99)
    assert _tar(blob).getmember("f").mtime == 99
    blob, _ = _write([Entry("f", data=b"", mtime=7)], epoch=99)
    assert _tar(blob).getmember("f").mtime == 7
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(LayerError, match="SOURCE_DATE_EPOCH"):
        _write([Entry("f", data=b"")])
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    blob, _ = _write([Entry("f", data=b"")])
    assert _tar(blob).getmember("f").mtime == 0


@pytest.mark.skipif(not shutil.which("tar"), reason="GNU tar missing")
def test_gnu_tar_reads_it(tmp_path: Path) -> None:
    blob, _ = _write(_entries())
    (tmp_path / "l.tar.gz").write_bytes(blob)
    out = subprocess.run(["tar", "-tvzf", str(tmp_path / "l.tar.gz"), "--numeric-owner"],
                         capture_output=True, text=True, check=True)
    assert "usr/bin/awk -> /etc/alternatives/awk" in out.stdout
    assert "usr/bin/hi link to usr/bin/hello" in out.stdout
    assert "p" * 120 + "/" + "q" * 120 in out.stdout and out.stderr == ""


def test_hardlink_group_first_in_order_carries_data() -> None:
    blob, _ = _write([Entry("z/data", data=b"payload", mode=0o750, uid=5), Entry("a/link", "hardlink", linkname="z/data"),
                      Entry("m/link", "hardlink", linkname="a/link")])
    by = {m.name: m for m in _tar(blob).getmembers()}
    assert by["a/link"].isfile() and (by["a/link"].mode, by["a/link"].uid) == (0o750, 5)
    assert by["z/data"].linkname == "a/link" and by["m/link"].linkname == "a/link"
    assert _tar(blob).extractfile("a/link").read() == b"payload"


def test_refuses_bad_input() -> None:
    with pytest.raises(LayerError, match="appears twice"):
        _write([Entry("a", data=b""), Entry("./a", data=b"")])
    with pytest.raises(LayerError, match="climbs out"):
        _write([Entry("../a", data=b"")])
    with pytest.raises(LayerError, match="not a directory"):
        _write([Entry("f", data=b""), Entry("f/g", data=b"")])
    with pytest.raises(LayerError, match="hardlink target"):
        _write([Entry("h", "hardlink", linkname="missing")])
    with pytest.raises(LayerError, match="hardlink target"):
        _write([Entry("d", "dir"), Entry("h", "hardlink", linkname="d")])
    with pytest.raises(LayerError, match="unknown kind"):
        Entry("x", "socket")
    with pytest.raises(LayerError, match="without a target"):
        _write([Entry("s", "symlink")])


def test_entry_defaults() -> None:
    assert Entry("f").mode == 0o644 and Entry("d", "dir").mode == 0o755 and Entry("s", "symlink").mode == 0o777


def test_root_and_leading_slash_normalised() -> None:
    a, _ = _write([Entry("/", "dir"), Entry("/etc/x", data=b"1"), Entry("./etc/y", data=b"2")])
    b, _ = _write([Entry("etc/x", data=b"1"), Entry("etc/y", data=b"2")])
    assert a == b


def test_streams_source_files(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(3 << 20))
    blob, info = _write([Entry("big", source=src)], compression="")
    assert _tar(blob).extractfile("big").read() == src.read_bytes()
    assert info.uncompressed_size == 512 + (3 << 20) + 1024


def _tree(root: Path, umask: int, mtime: int) -> None:
    old = os.umask(umask)
    try:
        (root / "usr/bin").mkdir(parents=True)
        (root / "usr/bin/tool").write_bytes(b"\x7fELF tool")
        os.chmod(root / "usr/bin/tool", 0o755)
        os.link(root / "usr/bin/tool", root / "usr/bin/alias")
        (root / "etc").mkdir()
        (root / "etc/conf").write_text("k=v\n")
        os.chmod(root / "etc/conf", 0o644)
        for d in ("usr", "usr/bin", "etc"):
            os.chmod(root / d, 0o755)
        os.symlink("/usr/bin/tool", root / "etc/tool")
        os.mkfifo(root / "etc/fifo", 0o600)
        os.chmod(root / "etc/fifo", 0o600)
        for p in [*root.rglob("*"), root]:
            os.utime(p, (mtime, mtime), follow_symlinks=False)
    finally:
        os.umask(old)


def test_tree_reproducible_across_dirs_umask_and_times(tmp_path: Path) -> None:
    a, b = tmp_path / "one", tmp_path / "elsewhere" / "two"
    a.mkdir(), b.mkdir(parents=True)
    _tree(a, 0o022, 1_000_000)
    _tree(b, 0o077, 1_700_000_000)
    blob_a, info_a = _write(entries_from_dir(a, keep_owner=False))
    blob_b, info_b = _write(entries_from_dir(b, keep_owner=False))
    assert blob_a == blob_b and info_a.digest == info_b.digest
    by = {m.name: m for m in _tar(blob_a).getmembers()}
    assert by["usr/bin/alias"].isfile() and by["usr/bin/tool"].islnk()  # hardlink found by inode
    assert by["etc/tool"].issym() and by["etc/fifo"].isfifo()


def test_reproducible_in_another_process(tmp_path: Path) -> None:
    """Different cwd, umask, TZ and clock: the same digest."""
    tree = tmp_path / "tree"
    tree.mkdir()
    _tree(tree, 0o022, 5)
    code = ("import io,sys,os;from pathlib import Path;from kilobox.layers import *;"
            "b=io.BytesIO();i=write_layer(entries_from_dir(Path(sys.argv[1]),keep_owner=False),b);print(i.digest)")
    outs = set()
    for umask, tz, cwd in (("022", "UTC", "/"), ("077", "Asia/Tokyo", str(tmp_path))):
        env = {**os.environ, "TZ": tz}
        env.pop("SOURCE_DATE_EPOCH", None)
        out = subprocess.run(["sh", "-c", f'umask {umask}; exec "$0" "$@"', sys.executable, "-c", code, str(tree)],
                             capture_output=True, text=True, env=env, cwd=cwd, check=True)
        outs.add(out.stdout.strip())
    assert len(outs) == 1


@pytest.mark.skipif(not IS_ROOT, reason="mknod and chown need root")
def test_entries_from_dir_devices_and_owners(tmp_path: Path) -> None:
    os.mknod(tmp_path / "null", 0o666 | 0o020000, os.makedev(1, 3))
    (tmp_path / "owned").write_text("x")
    os.chown(tmp_path / "owned", 1000, 1001)
    by = {e.path: e for e in entries_from_dir(tmp_path)}
    assert (by["null"].kind, by["null"].devmajor, by["null"].devminor) == ("char", 1, 3)
    assert (by["owned"].uid, by["owned"].gid) == (1000, 1001)
    by = {e.path: e for e in entries_from_dir(tmp_path, keep_owner=False)}
    assert (by["owned"].uid, by["owned"].gid) == (0, 0)


def test_source_changing_size_is_an_error(tmp_path: Path) -> None:
    from kilobox.layers.writer import _stream_source, _TarOut
    from kilobox.layers.compress import compressor
    src = tmp_path / "f"
    src.write_bytes(b"abcdef")
    for announced in (3, 10):  # grew / shrank between lstat and read
        with pytest.raises(LayerError, match="changed size"):
            _stream_source(Entry("f", source=src), _TarOut(compressor(io.BytesIO(), "")), announced)
