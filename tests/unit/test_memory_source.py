"""The one in-memory image: MemorySource, MemorySink and their digest-keyed BlobMap."""

from __future__ import annotations

from pathlib import Path

import pytest

from kilobox.copying import copy_root
from kilobox.errors import DigestMismatch, ManifestError, NotFound
from kilobox.formats.memory import BlobMap, MemorySink, MemorySource
from kilobox.oci import MAX_MANIFEST_BYTES, Descriptor, Digest
from kilobox.oci import mediatypes as mt
from kilobox.testing import random_index, validate_image


def test_blob_map_takes_digests_or_their_text() -> None:
    d = Digest.of(b"x")
    m = BlobMap({str(d): b"x"})
    assert m[d] == m[str(d)] == b"x" and d in m and str(d) in m
    assert list(m) == [d]                                   # keys are always Digest
    assert "garbage" not in m and 5 not in m and m.get("sha256:nope") is None
    with pytest.raises(KeyError):
        m["sha256:" + "0" * 64]
    m.update({str(Digest.of(b"y")): b"y"})
    assert m.pop(str(d)) == b"x" and m.pop("bad", None) is None and len(m) == 1


def test_root_must_be_among_the_blobs_when_both_are_given() -> None:
    root = Descriptor.for_bytes(mt.OCI_MANIFEST, b"{}")
    with pytest.raises(NotFound):
        MemorySource(root, {})
    assert MemorySource(root, [b"{}"]).manifest_bytes(root) == b"{}"   # an iterable of blobs
    with pytest.raises(NotFound, match="no root"):
        MemorySource(name="empty").root()


def test_reads_verify_and_are_bounded() -> None:
    src = MemorySource(name="m")
    desc = src.add(mt.OCI_CONFIG, b'{"a": 1}')
    src.blobs[desc.digest] = b'{"a": 2}'                      # tests corrupt blobs like this
    with pytest.raises(DigestMismatch):
        src.manifest_bytes(desc)
    with pytest.raises(ManifestError, match="4 MiB"):
        src.manifest_bytes(desc.with_(size=MAX_MANIFEST_BYTES + 1))
    with pytest.raises(NotFound):
        src.open_blob(Descriptor.for_bytes(mt.OCI_LAYER, b"absent"))


def test_file_backed_blobs_are_served_without_reading_them(tmp_path: Path) -> None:
    big = tmp_path / "layer.tar"
    big.write_bytes(b"layer bytes")
    layer = Descriptor.for_bytes(mt.OCI_LAYER, b"layer bytes")
    src = MemorySource(files={str(layer.digest): big})
    assert src.blob_path(layer) == big and src.open_blob(layer).read() == b"layer bytes"
    assert src.opened == [layer.digest]


def test_sink_collects_a_copy_that_copies_on() -> None:
    src = random_index(["linux/amd64", "linux/arm64"], layers=2, seed=4)
    sink = MemorySink()
    root = copy_root(src, sink)
    assert sink.root == root == src.root() and sink.blobs == src.blobs
    assert validate_image(sink.source())["layers"] == 4
    bad = MemorySink()
    with pytest.raises(DigestMismatch):
        bad.commit(root, b"{}")
    assert bad.root is None
