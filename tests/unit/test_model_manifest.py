"""Manifests, indexes and descriptors: round trips, raw bytes kept, hostile JSON (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kilobox.errors import FormatError, KiloboxError, NotFound
from kilobox.oci import (Descriptor, Digest, Index, Manifest, Platform, canonical_json,
                         parse_manifest_or_index)
from kilobox.oci import mediatypes as mt
from tests.helpers.schemas import validate_image_doc

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64

# -- strategies ------------------------------------------------------------------

_digests = st.binary(max_size=16).map(lambda b: Digest.of(b))
_annotations = st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=3)
_platforms = st.builds(Platform, st.sampled_from(["linux", "windows"]),
                       st.sampled_from(["amd64", "arm64", "arm", "riscv64"]), st.sampled_from(["", "v7", "v8"]))
_descriptors = st.builds(
    Descriptor, st.sampled_from([mt.OCI_LAYER_GZIP, mt.OCI_LAYER, mt.OCI_LAYER_ZSTD, "application/x-custom"]),
    _digests, st.integers(0, 1 << 40), annotations=_annotations)

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=25)
_keys = ["schemaVersion", "mediaType", "config", "layers", "manifests", "annotations", "subject",
         "artifactType", "digest", "size", "platform", "urls", "data", "os", "architecture", "os.features"]
_shaped = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.sampled_from([D1, "sha256:x", mt.OCI_MANIFEST, mt.OCI_INDEX, "", "eA=="]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(_keys), kids, max_size=6),
    max_leaves=30)


# -- manifests ---------------------------------------------------------------------

@settings(max_examples=150)
@given(layers=st.lists(_descriptors, max_size=5), ann=_annotations, cfg=_digests)
def test_manifest_build_parse_roundtrip(layers: list[Descriptor], ann: dict[str, str], cfg: Digest) -> None:
    config = Descriptor(mt.OCI_CONFIG, cfg, 10)
    m = Manifest.build(config, layers, annotations=ann)
    again = Manifest.parse(m.raw)
    assert again == m and again.raw == m.raw
    assert again.layers == tuple(layers) and again.config == config
    assert [l.annotations for l in again.layers] == [l.annotations for l in layers]
    assert m.digest == Digest.of(m.raw) and m.descriptor().size == len(m.raw)
    assert canonical_json(json.loads(m.raw)) == m.raw


@settings(max_examples=100)
@given(children=st.lists(st.tuples(_digests, _platforms), max_size=5))
def test_index_build_parse_roundtrip(children: list[tuple[Digest, Platform]]) -> None:
    descs = [Descriptor(mt.OCI_MANIFEST, d, 100, platform=p) for d, p in children]
    idx = Index.build(descs)
    again = parse_manifest_or_index(idx.raw)
    assert isinstance(again, Index) and again.manifests == tuple(descs) and again.raw == idx.raw


def test_raw_bytes_are_kept_exactly() -> None:
    raw = (b'{ "schemaVersion" : 2,\n "mediaType": "application/vnd.docker.distribution.manifest.v2+json",'
           b'"config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": "'
           + D1.encode() + b'"}, "layers": [], "x-unknown": {"kept": true}}')
    m = Manifest.parse(raw)
    assert m.raw == raw and m.media_type == mt.DOCKER_MANIFEST and m.digest == Digest.of(raw)


def test_written_documents_validate_against_the_oci_schemas() -> None:
    cfg = Descriptor(mt.OCI_CONFIG, Digest.parse(D1), 10)
    layer = Descriptor(mt.OCI_LAYER_GZIP, Digest.parse(D2), 20, annotations={"a": "b"})
    m = Manifest.build(cfg, [layer], annotations={"org.opencontainers.image.title": "x"})
    validate_image_doc("manifest", m.raw)
    idx = Index.build([m.descriptor(platform=Platform.parse("linux/arm/v7"))])
    validate_image_doc("index", idx.raw)
    validate_image_doc("descriptor", layer.to_dict())


def test_artifact_and_subject() -> None:
    cfg = Descriptor(mt.OCI_EMPTY, Digest.of(b"{}"), 2, data=b"{}")
    subj = Descriptor(mt.OCI_MANIFEST, Digest.parse(D1), 5)
    m = Manifest.build(cfg, [], artifact_type="application/x.sbom", subject=subj)
    again = Manifest.parse(m.raw)
    assert again.artifact_type == "application/x.sbom" and again.subject == subj
    assert again.config.data == b"{}"


def test_index_select() -> None:
    a = Descriptor(mt.OCI_MANIFEST, Digest.parse(D1), 1, platform=Platform.parse("linux/amd64"))
    b = Descriptor(mt.OCI_MANIFEST, Digest.parse(D2), 1, platform=Platform.parse("linux/arm/v7"))
    idx = Index.build([a, b])
    assert idx.select(Platform.parse("linux/arm")) == b
    assert idx.select(Platform.parse("linux/amd64")) == a
    with pytest.raises(NotFound, match="linux/amd64, linux/arm/v7"):
        idx.select(Platform.parse("linux/s390x"))


def test_sniffing_without_media_type() -> None:
    idx = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    man = json.dumps({"schemaVersion": 2, "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 1},
                      "layers": []}).encode()
    assert isinstance(parse_manifest_or_index(idx), Index)
    assert isinstance(parse_manifest_or_index(man), Manifest)


# -- hostile JSON --------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"", b"null", b"[]", b"1", b'"x"', b"{", b"\xff\xfe", b"[" * 100000 + b"]" * 100000,
    b'{"schemaVersion": 1}', b'{"schemaVersion": "2", "manifests": []}', b'{"schemaVersion": 2}',
    b'{"schemaVersion": 2, "manifests": [1]}', b'{"schemaVersion": 2, "manifests": null}',
    b'{"schemaVersion": 2, "mediaType": "text/plain", "manifests": []}',
    b'{"schemaVersion": 2, "config": {}, "layers": []}',
    b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}, "layers": []}',
    b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "' + D1.encode() + b'", "size": true}, "layers": []}',
    b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "' + D1.encode() + b'", "size": 1.5}, "layers": []}',
    b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "' + D1.encode() + b'", "size": 1}, "layers": {}}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "' + D1.encode() + b'", "size": 1, "platform": 5}]}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "' + D1.encode() + b'", "size": 1, "annotations": {"a": 1}}]}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "' + D1.encode() + b'", "size": 1, "data": "!!"}]}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "' + D1.encode() + b'", "size": 1, "data": "eA=="}]}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "' + D1.encode() + b'", "size": 1, "platform": {"os.features": 3}}]}',
    b'{"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "' + D1.encode() + b'", "size": 1, "platform": {"os": ["linux"]}}]}',
    b'{"schemaVersion": 2, "manifests": []' + b" " * (4 << 20) + b"}",
])
def test_hostile_manifests_are_manifest_errors(raw: bytes) -> None:
    with pytest.raises(FormatError):        # ManifestError, or DigestMismatch for embedded data
        parse_manifest_or_index(raw)


def _only_kilobox_errors(raw: bytes) -> None:
    for parse in (parse_manifest_or_index, Manifest.parse, Index.parse):
        try:
            parse(raw)
        except KiloboxError:
            pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_arbitrary_json_raises_only_kilobox_errors(doc: object) -> None:
    _only_kilobox_errors(json.dumps(doc).encode())


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_shaped)
def test_manifest_shaped_json_raises_only_kilobox_errors(doc: object) -> None:
    if isinstance(doc, dict):
        doc.setdefault("schemaVersion", 2)
    _only_kilobox_errors(json.dumps(doc).encode())


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_kilobox_errors(raw: bytes) -> None:
    _only_kilobox_errors(raw)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(_keys), _shaped, max_size=8))
def test_descriptor_from_hostile_dicts(d: dict) -> None:
    try:
        desc = Descriptor.from_dict(d)
    except KiloboxError:
        return
    assert Descriptor.from_dict(desc.to_dict()) == desc


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["os", "architecture", "variant", "os.version", "os.features"]),
                       _shaped, max_size=5))
def test_descriptor_with_hostile_platform(platform: dict) -> None:
    try:
        desc = Descriptor.from_dict({"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 1, "platform": platform})
    except KiloboxError:
        return
    assert Descriptor.from_dict(desc.to_dict()) == desc
