"""kilobox.unpack: flattened rootfs, whiteouts, platform choice, clean failure."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from kilobox import api
from kilobox.errors import DigestMismatch, LayerError, UsageError
from kilobox.testing import random_image, random_index, tar_bytes, write_image


def _raw_tar(*members: tuple[str, bytes | None, str]) -> bytes:
    """A tar of (name, data, linkname) members written verbatim (hostile names allowed)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, link in members:
            i = tarfile.TarInfo(name)
            if link:
                i.type = tarfile.SYMTYPE
                i.linkname = link
                tf.addfile(i)
            else:
                i.size = len(data or b"")
                tf.addfile(i, io.BytesIO(data or b""))
    return buf.getvalue()


def test_unpack_applies_layers_and_whiteouts(tmp_path: Path) -> None:
    img = random_image(layer_files=[
        {"a/keep": b"1", "a/gone": b"2", "b/old": b"3", "etc/conf": b"v1"},
        {"a/.wh.gone": b"", "b/.wh..wh..opq": b"", "b/new": b"4", "etc/conf": b"v2"},
    ])
    write_image(img, f"oci:{tmp_path / 'lay'}:t")
    info = api.unpack(f"oci:{tmp_path / 'lay'}:t", tmp_path / "root")
    root = tmp_path / "root"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["a/keep", "b/new", "etc/conf"]
    assert (root / "etc/conf").read_bytes() == b"v2"
    assert info["layers"] == 2 and info["digest"] == str(img.root().digest)


def test_unpack_picks_platform_from_index(tmp_path: Path) -> None:
    idx = random_index(["linux/amd64", "linux/arm64"])
    write_image(idx, f"oci:{tmp_path / 'lay'}:m")
    manifests = json.loads(idx.manifest_bytes(idx.root()))["manifests"]
    info = api.unpack(f"oci:{tmp_path / 'lay'}:m", tmp_path / "r", platform="linux/arm64")
    assert info["digest"] == manifests[1]["digest"]
    assert any((tmp_path / "r").rglob("*.bin"))


def test_unpack_into_existing_empty_dir(tmp_path: Path) -> None:
    write_image(random_image(), f"oci:{tmp_path / 'lay'}:t")
    (tmp_path / "empty").mkdir()
    api.unpack(f"oci:{tmp_path / 'lay'}:t", tmp_path / "empty")
    assert any((tmp_path / "empty").iterdir())


@pytest.mark.parametrize("kind", ["file", "nonempty", "symlink"])
def test_unpack_refuses_bad_targets(tmp_path: Path, kind: str) -> None:
    write_image(random_image(), f"oci:{tmp_path / 'lay'}:t")
    target = tmp_path / "t"
    if kind == "file":
        target.write_text("x")
    elif kind == "nonempty":
        target.mkdir()
        (target / "f").write_text("x")
    else:
        (tmp_path / "real").mkdir()
        target.symlink_to(tmp_path / "real")
    with pytest.raises(UsageError):
        api.unpack(f"oci:{tmp_path / 'lay'}:t", target)


@pytest.mark.parametrize("existing", [False, True])
def test_hostile_layer_leaves_nothing(tmp_path: Path, existing: bool) -> None:
    evil = _raw_tar(("ok", b"fine", ""), ("../../escaped", b"evil", ""))
    write_image(random_image(layer_files=[tar_bytes({"first": b"1"}), evil]), f"oci:{tmp_path / 'lay'}:t")
    target = tmp_path / "out" / "root"
    if existing:
        target.mkdir(parents=True)
    with pytest.raises(LayerError):
        api.unpack(f"oci:{tmp_path / 'lay'}:t", target)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "out" / "escaped").exists()
    if existing:
        assert target.is_dir() and not any(target.iterdir())
    else:
        assert not (tmp_path / "out").exists()


def test_symlink_escape_writes_nothing_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = _raw_tar(("link", None, str(outside)), ("link/pwned", b"x", ""))
    write_image(random_image(layer_files=[evil]), f"oci:{tmp_path / 'lay'}:t")
    try:
        api.unpack(f"oci:{tmp_path / 'lay'}:t", tmp_path / "root")
    except LayerError:
        assert not (tmp_path / "root").exists()
    assert list(outside.iterdir()) == []


def test_corrupt_layer_is_digest_mismatch_and_cleaned(tmp_path: Path) -> None:
    write_image(random_image(layers=2), f"oci:{tmp_path / 'lay'}:t")
    lay = tmp_path / "lay"
    man = json.loads(api.inspect_raw(f"oci:{lay}:t"))
    blob = lay / "blobs" / "sha256" / man["layers"][1]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[9] ^= 0x01                          # the gzip header's OS byte: decompresses fine, wrong digest
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        api.unpack(f"oci:{lay}:t", tmp_path / "root")
    assert not (tmp_path / "root").exists()
