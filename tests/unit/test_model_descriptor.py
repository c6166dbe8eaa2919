"""Descriptors: fields of the spec (annotations, platform, artifactType, data, urls)."""

from __future__ import annotations

import base64

import pytest

from kilobox.errors import DigestMismatch, ManifestError
from kilobox.oci import Descriptor, Digest, Platform
from kilobox.oci import mediatypes as mt
from tests.helpers.schemas import validate_image_doc

D1 = "sha256:" + "1" * 64


def test_full_roundtrip_and_schema() -> None:
    data = b'{"hello":1}'
    d = Descriptor(mt.OCI_MANIFEST, Digest.of(data), len(data), annotations={"b": "2", "a": "1"},
                   platform=Platform.parse("linux/arm/v7"), artifact_type="application/x.a",
                   urls=("https://example.com/x",), data=data)
    obj = d.to_dict()
    assert list(obj["annotations"]) == ["a", "b"]
    assert obj["data"] == base64.b64encode(data).decode()
    again = Descriptor.from_dict(obj)
    assert again == d and again.data == data and again.annotations == d.annotations
    validate_image_doc("descriptor", obj)


def test_ref_name_and_with() -> None:
    d = Descriptor.for_bytes(mt.OCI_MANIFEST, b"x", annotations={"org.opencontainers.image.ref.name": "v1"})
    assert d.ref_name == "v1" and d.with_(annotations={}).ref_name == ""


@pytest.mark.parametrize("obj", [
    None, [], {"digest": D1, "size": 1}, {"mediaType": "", "digest": D1, "size": 1},
    {"mediaType": 1, "digest": D1, "size": 1}, {"mediaType": "x", "digest": D1},
    {"mediaType": "x", "digest": D1, "size": -1}, {"mediaType": "x", "digest": D1, "size": "1"},
    {"mediaType": "x", "digest": D1, "size": False}, {"mediaType": "x", "digest": "sha256:1", "size": 1},
    {"mediaType": "x", "digest": D1, "size": 1, "urls": "http://x"},
    {"mediaType": "x", "digest": D1, "size": 1, "urls": [1]},
    {"mediaType": "x", "digest": D1, "size": 1, "annotations": {"a": None}},
    {"mediaType": "x", "digest": D1, "size": 1, "artifactType": 3},
    {"mediaType": "x", "digest": D1, "size": 1, "data": 3},
    {"mediaType": "x", "digest": D1, "size": 1, "platform": "linux/amd64"},
])
def test_rejects(obj: object) -> None:
    with pytest.raises(ManifestError):
        Descriptor.from_dict(obj)


def test_embedded_data_must_match() -> None:
    with pytest.raises(DigestMismatch):
        Descriptor.from_dict({"mediaType": "x", "digest": D1, "size": 1, "data": "eA=="})
