"""A real registry serving damaged content (its storage edited under it): clear errors, a clean store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kilobox.copying import copy_root
from kilobox.errors import DigestMismatch, ManifestError, RegistryError
from kilobox.formats import Options
from kilobox.formats.registry import RegistrySink, RegistrySource
from kilobox.oci import ImageConfig, Manifest, Reference, canonical_json, mediatypes as mt
from tests.helpers.memimage import MemImage, MemSink

pytestmark = pytest.mark.integration


@pytest.fixture
def store(private_store: Path) -> Path:
    return private_store


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from kilobox.formats.registry import client
    monkeypatch.setattr(client, "BACKOFF_BASE", 0.01)


def stored(store: Path) -> list[str]:
    files = [p for sub in ("blobs", "tmp") if (store / sub).exists() for p in (store / sub).rglob("*") if p.is_file()]
    return sorted(p.name for p in files)


def pushed(registry, tag: str = "demo/img:1", size: int = 4000) -> tuple[MemImage, Manifest]:
    img = MemImage()
    root = img.add_image(layers=1, size=size)
    with RegistrySink(Reference.parse(registry.ref(tag)), Options()) as sink:
        copy_root(img, sink)
    return img, Manifest.parse(img.blobs[root.digest])


def pull(registry, tag: str = "demo/img:1") -> MemSink:
    out = MemSink()
    with RegistrySource(Reference.parse(registry.ref(tag)), Options()) as src:
        copy_root(src, out)
    return out


def test_corrupted_layer_same_size(registry, store: Path) -> None:
    _, m = pushed(registry)
    layer = registry.blob_file(m.layers[0].digest)
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="digest mismatch") as ei:
        pull(registry)
    assert str(m.layers[0].digest) in str(ei.value)
    assert str(m.layers[0].digest.hex) not in stored(store)     # the config may be there; the layer is not
    assert not [n for n in stored(store) if n.startswith("blob.")]


def test_truncated_layer(registry, store: Path) -> None:
    _, m = pushed(registry)
    layer = registry.blob_file(m.layers[0].digest)
    layer.write_bytes(layer.read_bytes()[:100])
    with pytest.raises(DigestMismatch, match="announces 100 bytes"):
        pull(registry)
    assert m.layers[0].digest.hex not in stored(store)


def test_corrupted_config(registry, store: Path) -> None:
    _, m = pushed(registry)
    cfg = registry.blob_file(m.config.digest)
    cfg.write_bytes(cfg.read_bytes().replace(b"amd64", b"arm64"))
    with pytest.raises(DigestMismatch):
        pull(registry)
    assert stored(store) == []


def test_config_swapped_for_ten_megabytes(registry, store: Path) -> None:
    """The descriptor says a few hundred bytes; the registry serves 10 MB: refused on Content-Length."""
    _, m = pushed(registry)
    registry.blob_file(m.config.digest).write_bytes(b"{" + b" " * (10 << 20) + b"}")
    with pytest.raises(DigestMismatch, match="announces"):
        pull(registry)
    assert stored(store) == []


def test_ten_megabyte_manifest_planted_in_storage(registry, store: Path) -> None:
    """distribution itself refuses to serve a manifest over 4 MiB (a 500, retried, then a clear error)."""
    cfg = ImageConfig.build({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    raw = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cfg.descriptor().to_dict(),
                          "layers": [], "annotations": {"pad": "x" * (10 << 20)}})
    registry.plant_manifest("demo/big", "t", raw)
    with pytest.raises((ManifestError, RegistryError)) as ei:
        pull(registry, "demo/big:t")
    assert "/v2/demo/big/manifests/t" in str(ei.value) or "limit" in str(ei.value)
    assert stored(store) == []


def test_four_mebibyte_manifest_passes_the_cap(registry, store: Path) -> None:
    """Just under 4 MiB is still a manifest (planted: the registry's PUT limit is lower)."""
    img, m = pushed(registry)
    obj = json.loads(m.raw)
    obj["annotations"] = {"pad": ""}
    base = len(canonical_json(obj))
    obj["annotations"]["pad"] = "x" * ((4 << 20) - base - 64)
    raw = canonical_json(obj)
    registry.plant_manifest("demo/img", "big", raw)
    out = pull(registry, "demo/img:big")
    assert out.root.size == len(raw) and out.root.size <= 4 << 20
