"""OCI image layout: read, write, tags, atomicity, concurrency, hostile layouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kilobox.copying import copy
from kilobox.errors import DigestMismatch, LayoutError, ManifestError, NotFound, UsageError
from kilobox.formats.layout import (REF_NAME, Layout, LayoutSink, LayoutSource, list_tags,
                                    updated_index)
from kilobox.oci import Descriptor, Digest
from kilobox.oci import mediatypes as mt
from kilobox.testing import random_image, random_index, validate_image, write_image
from tests.helpers.schemas import validate_layout_dir


def _index(path: Path) -> dict:
    return json.loads((path / "index.json").read_text())


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# -- writing -------------------------------------------------------------------

def test_write_then_read_roundtrip(tmp_path: Path) -> None:
    src = random_image(layers=3, size=512, seed=7)
    root = write_image(src, f"oci:{tmp_path / 'lay'}:v1")
    lay = tmp_path / "lay"
    assert json.loads((lay / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    idx = _index(lay)
    assert idx["mediaType"] == mt.OCI_INDEX and idx["schemaVersion"] == 2
    assert idx["manifests"][0]["annotations"] == {REF_NAME: "v1"}
    assert idx["manifests"][0]["digest"] == str(root.digest)
    assert validate_layout_dir(lay) >= 4
    stats = validate_image(f"oci:{lay}:v1")
    assert stats == {"manifests": 1, "configs": 1, "layers": 3, "bytes": stats["bytes"]}
    with LayoutSource(lay, "v1") as s:
        assert s.root().digest == root.digest
        assert s.manifest_bytes(s.root()) == src.manifest_bytes(src.root())
    # no temp files left behind
    assert not [p for p in lay.rglob("*") if p.name.startswith(".")]


def test_index_image_roundtrip_validates(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    write_image(random_index(["linux/amd64", "linux/arm64", "linux/arm/v7"]), f"oci:{lay}:multi")
    validate_layout_dir(lay)
    assert validate_image(f"oci:{lay}:multi")["configs"] == 3


def test_several_tags_and_tag_replacement(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    a = write_image(random_image(seed=1), f"oci:{lay}:a")
    b = write_image(random_image(seed=2), f"oci:{lay}:b")
    assert list_tags(lay) == ["a", "b"]
    a2 = write_image(random_image(seed=3), f"oci:{lay}:a")    # the tag moves
    entries = _index(lay)["manifests"]
    assert [(e["annotations"][REF_NAME], e["digest"]) for e in entries] == [
        ("b", str(b.digest)), ("a", str(a2.digest))]
    assert a.digest != a2.digest
    with LayoutSource(lay, "a") as s:
        assert s.root().digest == a2.digest
    validate_layout_dir(lay)


def test_untagged_write_is_added_once(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    write_image(random_image(seed=1), f"oci:{lay}")
    write_image(random_image(seed=1), f"oci:{lay}")
    assert len(_index(lay)["manifests"]) == 1
    assert "annotations" not in _index(lay)["manifests"][0]
    with LayoutSource(lay) as s:          # the only entry
        assert s.root().media_type == mt.OCI_MANIFEST


def test_existing_unknown_fields_are_kept(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    write_image(random_image(seed=1), f"oci:{lay}:a")
    idx = _index(lay)
    idx["annotations"] = {"org.example": "kept"}
    idx["manifests"][0]["annotations"]["org.example.x"] = "y"
    (lay / "index.json").write_text(json.dumps(idx))
    write_image(random_image(seed=2), f"oci:{lay}:b")
    idx = _index(lay)
    assert idx["annotations"] == {"org.example": "kept"}
    assert idx["manifests"][0]["annotations"]["org.example.x"] == "y"


def test_source_without_tag_and_several_images_lists_tags(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    write_image(random_image(seed=1), f"oci:{lay}:one")
    write_image(random_image(seed=2), f"oci:{lay}:two")
    with pytest.raises(UsageError) as e:
        LayoutSource(lay)
    assert "one, two" in (e.value.hint or "")


def test_missing_tag_lists_available(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    write_image(random_image(seed=1), f"oci:{lay}:one")
    with pytest.raises(NotFound) as e:
        LayoutSource(lay, "nope")
    assert "one" in (e.value.hint or "") and "nope" in e.value.message


def test_select_by_digest(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    root = write_image(random_image(seed=1), f"oci:{lay}:one")
    with LayoutSource(lay, str(root.digest)) as s:
        assert s.root().digest == root.digest


def test_close_without_commit_leaves_existing_layout_unchanged(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    write_image(random_image(seed=1), f"oci:{lay}:a")
    before = (lay / "index.json").read_bytes()
    src = random_image(seed=9, layers=2)
    with LayoutSink(lay, "b") as sink:
        for blob in src.blobs.values():
            d = Descriptor.for_bytes("application/octet-stream", blob)
            sink.write_manifest(d, blob)
    assert (lay / "index.json").read_bytes() == before
    assert list_tags(lay) == ["a"]


def test_close_without_commit_removes_a_new_directory(tmp_path: Path) -> None:
    lay = tmp_path / "new" / "lay"
    with LayoutSink(lay, "b") as sink:
        sink.write_manifest(Descriptor.for_bytes("x/y", b"{}"), b"{}")
    assert not lay.exists() and not (tmp_path / "new").exists()


def test_failed_copy_leaves_no_index_change(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    write_image(random_image(seed=1), f"oci:{lay}:a")
    before = (lay / "index.json").read_bytes()
    bad = random_image(seed=5)
    m = json.loads(bad.manifest_bytes(bad.root()))
    layer_digest = m["layers"][0]["digest"]
    bad.blobs[layer_digest] = bad.blobs[layer_digest][:-1] + b"X"     # corrupt a layer
    with pytest.raises(DigestMismatch):
        write_image(bad, f"oci:{lay}:b")
    assert (lay / "index.json").read_bytes() == before
    assert not Layout(lay).blob_path(Digest.parse(layer_digest)).exists()
    assert not [p for p in lay.rglob("*") if p.name.startswith(".kilobox-tmp")]


def test_sink_refuses_non_layout_directory(tmp_path: Path) -> None:
    d = tmp_path / "stuff"
    d.mkdir()
    (d / "file.txt").write_text("hi")
    with pytest.raises(LayoutError):
        LayoutSink(d, "t")


def test_sink_refuses_bad_tag(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        LayoutSink(tmp_path / "x", "bad tag")


def test_copy_layout_to_layout_keeps_digests(image_layout: Path, tmp_path: Path) -> None:
    root = copy(f"oci:{image_layout}:t", f"oci:{tmp_path / 'b'}:u")
    with LayoutSource(image_layout, "t") as s:
        assert s.root().digest == root.digest
    assert _tree(image_layout)["blobs/sha256/" + root.digest.hex] == _tree(tmp_path / "b")["blobs/sha256/" + root.digest.hex]


def test_copy_without_sink_tag_takes_source_tag(image_layout: Path, tmp_path: Path) -> None:
    copy(f"oci:{image_layout}:t", f"oci:{tmp_path / 'b'}")
    assert list_tags(tmp_path / "b") == ["t"]


def test_reproducible_across_dirs_umask_and_time(tmp_path: Path) -> None:
    """Same image, different dirs / umask / time: byte-identical blobs and index.json."""
    code = (
        "import os,sys,time; os.umask(int(sys.argv[2], 8)); "
        "from kilobox.testing import random_index, write_image; "
        "write_image(random_index(['linux/amd64','linux/arm64'], layers=2, seed=3), 'oci:'+sys.argv[1]+':t')"
    )
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "a"), "022"], check=True, env=env)
    env["SOURCE_DATE_EPOCH"] = "1234567"
    env["TZ"] = "Asia/Tokyo"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "b"), "077"], check=True, env=env)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b
    assert len([k for k in a if k.startswith("blobs/")]) == 1 + 2 * (1 + 1 + 2)


def test_concurrent_writers_keep_every_tag(tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    code = (
        "import sys; from kilobox.testing import random_image, write_image\n"
        "for i in range(8):\n"
        "    write_image(random_image(seed=int(sys.argv[2]) * 100 + i), f'oci:{sys.argv[1]}:p{sys.argv[2]}-{i}')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(lay), str(n)], stderr=subprocess.PIPE)
             for n in range(4)]
    try:
        errs = [p.communicate(timeout=500)[1].decode(errors="replace")[-3000:] for p in procs]
    finally:
        for p in procs:                      # never leave a writer behind (a slow, loaded machine)
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0, 0, 0], "\n".join(errs)
    assert list_tags(lay) == sorted(f"p{n}-{i}" for n in range(4) for i in range(8))
    validate_layout_dir(lay)
    for tag in list_tags(lay):
        validate_image(f"oci:{lay}:{tag}")


# -- hostile layouts -----------------------------------------------------------

def test_missing_oci_layout_file(image_layout: Path) -> None:
    (image_layout / "oci-layout").unlink()
    with pytest.raises(LayoutError, match="oci-layout"):
        LayoutSource(image_layout, "t")


@pytest.mark.parametrize("content", [b'{"imageLayoutVersion": "2.0.0"}', b"[]", b"garbage", b"{}"])
def test_bad_oci_layout_file(image_layout: Path, content: bytes) -> None:
    (image_layout / "oci-layout").write_bytes(content)
    with pytest.raises(LayoutError):
        LayoutSource(image_layout, "t")


def test_deeply_nested_oci_layout_file(image_layout: Path) -> None:
    (image_layout / "oci-layout").write_bytes(b"[" * 4000)          # read up to 4 KiB: enough to recurse
    with pytest.raises(LayoutError):
        LayoutSource(image_layout, "t")


def test_oci_layout_that_is_a_device_or_a_directory(image_layout: Path) -> None:
    lf = image_layout / "oci-layout"
    lf.unlink()
    lf.symlink_to("/dev/zero")                                          # endless: the read is bounded
    with pytest.raises(LayoutError):
        LayoutSource(image_layout, "t")
    lf.unlink()
    lf.mkdir()
    with pytest.raises(LayoutError):
        LayoutSource(image_layout, "t")


@pytest.mark.parametrize("content", [
    b"garbage", b"[]", b"{}", b'{"schemaVersion": 2, "manifests": {}}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "sha256:../../../etc/passwd", "size": 1}]}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "md5:abc", "size": 1}]}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "sha256:' + b"A" * 64 + b'", "size": 1}]}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "sha256:' + b"a" * 64 + b'", "size": -1}]}',
    b'[' * 100000,
    b'{"schemaVersion": 2, "manifests": []' + b' ' * (5 << 20) + b'}',
])
def test_garbage_index_json(image_layout: Path, content: bytes) -> None:
    (image_layout / "index.json").write_bytes(content)
    with pytest.raises(LayoutError):
        LayoutSource(image_layout, "t")
    with pytest.raises(LayoutError):       # a sink refuses to overwrite a damaged index
        LayoutSink(image_layout, "u")


def test_missing_index_json(image_layout: Path) -> None:
    (image_layout / "index.json").unlink()
    with pytest.raises(LayoutError, match="index.json"):
        LayoutSource(image_layout, "t")


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        LayoutSource(tmp_path / "absent", "t")


def _layer_path(lay: Path) -> Path:
    with LayoutSource(lay, "t") as s:
        m = json.loads(s.manifest_bytes(s.root()))
    return lay / "blobs" / "sha256" / m["layers"][0]["digest"].split(":")[1]


def test_truncated_blob_is_digest_mismatch(image_layout: Path, tmp_path: Path) -> None:
    p = _layer_path(image_layout)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DigestMismatch):
        validate_image(f"oci:{image_layout}:t")
    with pytest.raises(DigestMismatch):
        copy(f"oci:{image_layout}:t", f"oci:{tmp_path / 'out'}:t")
    assert not (tmp_path / "out" / "index.json").exists()


def test_same_size_corrupt_blob_is_digest_mismatch(image_layout: Path, tmp_path: Path) -> None:
    p = _layer_path(image_layout)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        copy(f"oci:{image_layout}:t", f"oci:{tmp_path / 'out'}:t")


def test_corrupt_manifest_blob(image_layout: Path) -> None:
    with LayoutSource(image_layout, "t") as s:
        root = s.root()
    p = image_layout / "blobs" / "sha256" / root.digest.hex
    p.write_bytes(p.read_bytes().replace(b"layers", b"Layers"))
    with LayoutSource(image_layout, "t") as s, pytest.raises(DigestMismatch):
        s.manifest_bytes(s.root())


def test_missing_blob(image_layout: Path) -> None:
    _layer_path(image_layout).unlink()
    with pytest.raises(LayoutError, match="missing"):
        validate_image(f"oci:{image_layout}:t")


def test_symlinked_blob_outside_is_refused(image_layout: Path, tmp_path: Path) -> None:
    p = _layer_path(image_layout)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(p.read_bytes())
    p.unlink()
    p.symlink_to(outside)
    with pytest.raises(LayoutError, match="outside"):
        validate_image(f"oci:{image_layout}:t")


def test_symlinked_blobs_dir_outside_is_refused(image_layout: Path, tmp_path: Path) -> None:
    (image_layout / "blobs").rename(tmp_path / "elsewhere")
    (image_layout / "blobs").symlink_to(tmp_path / "elsewhere")
    with LayoutSource(image_layout, "t") as s, pytest.raises(LayoutError, match="outside"):
        s.manifest_bytes(s.root())


def test_blob_that_is_a_directory(image_layout: Path) -> None:
    p = _layer_path(image_layout)
    p.unlink()
    p.mkdir()
    with pytest.raises(LayoutError):
        validate_image(f"oci:{image_layout}:t")


def test_oversized_manifest_descriptor_is_refused(image_layout: Path) -> None:
    with LayoutSource(image_layout, "t") as s:
        big = s.root().with_(size=5 << 20)
        with pytest.raises(ManifestError, match="4 MiB"):
            s.manifest_bytes(big)


# -- the pure index update -------------------------------------------------------

_tags = st.text(alphabet="abcdefgh0123456789._-", min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(existing=st.lists(st.tuples(st.one_of(st.just(""), _tags), st.integers(0, 5)), max_size=8),
       tag=st.one_of(st.just(""), _tags), n=st.integers(0, 5))
def test_updated_index_properties(existing: list[tuple[str, int]], tag: str, n: int) -> None:
    def desc(i: int) -> dict:
        return Descriptor.for_bytes(mt.OCI_MANIFEST, str(i).encode()).to_dict()

    manifests = []
    for t, i in existing:
        d = desc(i)
        if t:
            d["annotations"] = {REF_NAME: t}
        manifests.append(d)
    root = Descriptor.for_bytes(mt.OCI_MANIFEST, str(n).encode())
    new = updated_index({"schemaVersion": 2, "manifests": manifests}, root, tag)
    names = [(m.get("annotations") or {}).get(REF_NAME, "") for m in new["manifests"]]
    assert new["manifests"][-1]["digest"] == str(root.digest)
    if tag:
        assert names.count(tag) == 1
        assert {t for t, _ in existing if t and t != tag} <= set(names)
    else:
        untagged_same = [m for m in new["manifests"] if not (m.get("annotations") or {}).get(REF_NAME)
                         and m["digest"] == str(root.digest)]
        assert len(untagged_same) == 1
    # every other entry is kept
    assert {t for t, _ in existing if t} - {tag} <= set(names)
