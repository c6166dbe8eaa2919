"""oci-archive: read without extracting, deterministic writes, kept tags, hostile tars."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kilobox.copying import copy
from kilobox.errors import DigestMismatch, LayoutError, NotFound, UsageError
from kilobox.formats.ociarchive import OciArchive, OciArchiveSink, OciArchiveSource, list_tags
from kilobox.oci import Descriptor
from kilobox.testing import random_image, random_index, validate_image, write_image
from tests.helpers.schemas import validate_layout_dir


def _members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tf:
        return tf.getmembers()


def _extract(path: Path, dest: Path) -> Path:
    with tarfile.open(path) as tf:
        tf.extractall(dest, filter="data")
    return dest


def test_roundtrip_and_schema(tmp_path: Path) -> None:
    arc = tmp_path / "img.tar"
    root = write_image(random_index(["linux/amd64", "linux/arm64"], layers=2), f"oci-archive:{arc}:multi")
    assert validate_image(f"oci-archive:{arc}:multi")["configs"] == 2
    with OciArchiveSource(arc, "multi") as s:
        assert s.root().digest == root.digest
    validate_layout_dir(_extract(arc, tmp_path / "x"))


def test_deterministic_tar(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_image(random_image(layers=2, seed=4), f"oci-archive:{tmp_path / 'a.tar'}:t")
    finally:
        os.umask(old)
    (tmp_path / "sub").mkdir()
    write_image(random_image(layers=2, seed=4), f"oci-archive:{tmp_path / 'sub' / 'b.tar'}:t")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "sub" / "b.tar").read_bytes()
    infos = _members(tmp_path / "a.tar")
    names = [i.name for i in infos]
    assert names == sorted(names) and names[-2:] == ["index.json", "oci-layout"]
    for i in infos:
        assert (i.mtime, i.uid, i.gid, i.uname, i.gname) == (0, 0, 0, "", "")
        assert i.mode == (0o755 if i.isdir() else 0o644)


def test_other_tags_are_kept_and_same_tag_replaced(tmp_path: Path) -> None:
    arc = tmp_path / "img.tar"
    a = write_image(random_image(seed=1), f"oci-archive:{arc}:a")
    write_image(random_image(seed=2), f"oci-archive:{arc}:b")
    b2 = write_image(random_image(seed=3), f"oci-archive:{arc}:b")
    assert list_tags(arc) == ["a", "b"]
    with OciArchiveSource(arc, "b") as s:
        assert s.root().digest == b2.digest
    with OciArchiveSource(arc, "a") as s:
        assert s.root().digest == a.digest
    validate_image(f"oci-archive:{arc}:a")
    # the replaced image's blobs are gone: only what the two tags reach is stored
    with OciArchive(arc) as archive:
        blobs = [n for n, m in archive.members.items() if n.startswith("blobs/") and m.kind == "file"]
    assert len(blobs) == 2 * 3


def test_copy_archive_to_layout_and_back_is_byte_identical(tmp_path: Path) -> None:
    arc = tmp_path / "a.tar"
    write_image(random_image(layers=3, seed=9), f"oci-archive:{arc}:t")
    copy(f"oci-archive:{arc}:t", f"oci:{tmp_path / 'lay'}:t")
    copy(f"oci:{tmp_path / 'lay'}:t", f"oci-archive:{tmp_path / 'b.tar'}:t")
    assert arc.read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_reading_extracts_nothing(tmp_path: Path) -> None:
    arc = tmp_path / "a.tar"
    write_image(random_image(), f"oci-archive:{arc}:t")
    before = sorted(os.listdir(tmp_path))
    validate_image(f"oci-archive:{arc}:t")
    assert sorted(os.listdir(tmp_path)) == before


def test_close_without_commit_leaves_file_and_no_temp(tmp_path: Path) -> None:
    arc = tmp_path / "a.tar"
    write_image(random_image(seed=1), f"oci-archive:{arc}:t")
    before = arc.read_bytes()
    with OciArchiveSink(arc, "u") as sink:
        sink.write_manifest(Descriptor.for_bytes("x/y", b"{}"), b"{}")
    assert arc.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.tar"]


def test_failed_copy_leaves_no_file(tmp_path: Path) -> None:
    bad = random_image(seed=5)
    m = json.loads(bad.manifest_bytes(bad.root()))
    d = m["layers"][0]["digest"]
    bad.blobs[d] = bad.blobs[d][:-1] + b"!"
    with pytest.raises(DigestMismatch):
        write_image(bad, f"oci-archive:{tmp_path / 'x.tar'}:t")
    assert os.listdir(tmp_path) == []


def test_missing_tag_and_several_images(tmp_path: Path) -> None:
    arc = tmp_path / "a.tar"
    write_image(random_image(seed=1), f"oci-archive:{arc}:a")
    write_image(random_image(seed=2), f"oci-archive:{arc}:b")
    with pytest.raises(NotFound, match="'c'"):
        OciArchiveSource(arc, "c")
    with pytest.raises(UsageError):
        OciArchiveSource(arc)


# -- hostile archives ------------------------------------------------------------

def _rewrite(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001
    """Copy the members of *src* into *dst*, letting *edit(info, data)* change or add members."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for info in tin.getmembers():
            data = tin.extractfile(info).read() if info.isreg() else None
            for new_info, new_data in edit(info, data):
                tout.addfile(new_info, io.BytesIO(new_data) if new_data is not None else None)
    return dst


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    arc = tmp_path / "good.tar"
    write_image(random_image(layers=2, seed=3), f"oci-archive:{arc}:t")
    return arc


def _layer_member(arc: Path) -> str:
    with OciArchiveSource(arc, "t") as s:
        m = json.loads(s.manifest_bytes(s.root()))
    return "blobs/sha256/" + m["layers"][0]["digest"].split(":")[1]


@pytest.mark.parametrize("name", ["../../evil", "/etc/evil", "blobs/../../evil", "blobs/../index.json", "a/.."])
def test_traversal_members_refuse_the_archive(archive: Path, tmp_path: Path, name: str) -> None:
    """One policy with docker-archive: an absolute or '..' member name makes the whole archive invalid."""
    def edit(info, data):  # noqa: ANN001, ANN202
        yield info, data
        if info.name == "oci-layout":
            i = tarfile.TarInfo(name)
            i.size = 4
            yield i, b"evil"
    bad = _rewrite(archive, tmp_path / "bad.tar", edit)
    with pytest.raises(LayoutError, match="escapes the archive") as e:
        OciArchive(bad)
    assert e.value.message.startswith(f"oci-archive:{bad}") and "\n" not in e.value.message
    assert e.value.hint
    with pytest.raises(LayoutError):
        copy(f"oci-archive:{bad}:t", f"oci:{tmp_path / 'out'}:t")
    assert not (tmp_path / "out" / "index.json").exists()
    assert not (tmp_path.parent / "evil").exists()


def test_dot_slash_names_are_normalised(archive: Path, tmp_path: Path) -> None:
    """``./blobs/./x`` style names (GNU tar -C dir .) read as their clean form."""
    def edit(info, data):  # noqa: ANN001, ANN202
        info.name = "./" + info.name.replace("/", "/./", 1)
        yield info, data
    bad = _rewrite(archive, tmp_path / "dots.tar", edit)
    validate_image(f"oci-archive:{bad}:t")


def test_symlinked_blob_member_is_refused(archive: Path, tmp_path: Path) -> None:
    layer = _layer_member(archive)

    def edit(info, data):  # noqa: ANN001, ANN202
        if info.name == layer:
            link = tarfile.TarInfo(layer)
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            yield link, None
        else:
            yield info, data
    bad = _rewrite(archive, tmp_path / "bad.tar", edit)
    with pytest.raises(LayoutError, match="symlink to an absolute path"):
        validate_image(f"oci-archive:{bad}:t")


def test_hardlinked_index_is_refused(archive: Path, tmp_path: Path) -> None:
    def edit(info, data):  # noqa: ANN001, ANN202
        if info.name == "index.json":
            link = tarfile.TarInfo("index.json")
            link.type = tarfile.LNKTYPE
            link.linkname = "oci-layout"
            yield link, None
        else:
            yield info, data
    with pytest.raises(LayoutError, match="index.json"):
        OciArchiveSource(_rewrite(archive, tmp_path / "bad.tar", edit), "t")


def test_blob_with_wrong_size(archive: Path, tmp_path: Path) -> None:
    layer = _layer_member(archive)

    def edit(info, data):  # noqa: ANN001, ANN202
        if info.name == layer:
            info.size -= 1
            yield info, data[:-1]
        else:
            yield info, data
    bad = _rewrite(archive, tmp_path / "bad.tar", edit)
    with pytest.raises(DigestMismatch):
        validate_image(f"oci-archive:{bad}:t")


def test_corrupt_blob_same_size(archive: Path, tmp_path: Path) -> None:
    layer = _layer_member(archive)

    def edit(info, data):  # noqa: ANN001, ANN202
        yield info, (data[:-1] + bytes([data[-1] ^ 1])) if info.name == layer else data
    bad = _rewrite(archive, tmp_path / "bad.tar", edit)
    with pytest.raises(DigestMismatch):
        copy(f"oci-archive:{bad}:t", f"oci:{tmp_path / 'out'}:t")
    assert not (tmp_path / "out" / "index.json").exists()


@pytest.mark.parametrize("cut", [100, 1500, -700])
def test_truncated_archive(archive: Path, tmp_path: Path, cut: int) -> None:
    data = archive.read_bytes()
    bad = tmp_path / "cut.tar"
    bad.write_bytes(data[:cut] if cut > 0 else data[:cut - 10240])
    with pytest.raises(LayoutError):
        validate_image(f"oci-archive:{bad}:t")


@pytest.mark.parametrize("content", [b"", b"not a tar at all" * 100, gzip.compress(b"x" * 2000)])
def test_not_a_tar(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(content)
    with pytest.raises(LayoutError):
        OciArchiveSource(bad, "t")


def test_gzipped_archive_is_refused_with_hint(archive: Path, tmp_path: Path) -> None:
    gz = tmp_path / "a.tar.gz"
    gz.write_bytes(gzip.compress(archive.read_bytes()))
    with pytest.raises(LayoutError) as e:
        OciArchiveSource(gz, "t")
    assert "uncompressed" in (e.value.hint or "")


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        OciArchiveSource(tmp_path / "absent.tar", "t")
    with pytest.raises(LayoutError):
        OciArchiveSource(tmp_path, "t")


def test_sink_refuses_to_replace_a_damaged_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.tar"
    bad.write_bytes(b"precious data, not an archive")
    with pytest.raises(LayoutError):
        write_image(random_image(), f"oci-archive:{bad}:t")
    assert bad.read_bytes() == b"precious data, not an archive"


def test_huge_index_member(archive: Path, tmp_path: Path) -> None:
    def edit(info, data):  # noqa: ANN001, ANN202
        if info.name == "index.json":
            data = data[:-1] + b" " * (5 << 20) + b"}"
            info.size = len(data)
        yield info, data
    with pytest.raises(LayoutError):
        OciArchiveSource(_rewrite(archive, tmp_path / "bad.tar", edit), "t")


def test_negative_member_size_is_refused_not_looped(archive: Path, tmp_path: Path) -> None:
    from tests.helpers.hostile import negative_size
    bad = tmp_path / "neg.tar"
    bad.write_bytes(negative_size() + archive.read_bytes())
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "from kilobox.errors import LayoutError\nfrom kilobox.formats.ociarchive import OciArchiveSource\n"
            "try:\n    OciArchiveSource(sys.argv[1], 't')\nexcept LayoutError as e:\n    print('refused:', e)\n")
    try:                                  # in a child with a memory cap: the bug is a loop that allocates
        p = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("OciArchiveSource did not return within 5 s on a negative member size (infinite loop)")
    assert p.returncode == 0 and p.stdout.startswith("refused:"), p.stdout + p.stderr[-2000:]
