"""Validate documents against the official OCI JSON schemas shipped by Debian.

image-spec: golang-github-opencontainers-image-spec-dev
runtime-spec: golang-github-opencontainers-specs-dev
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

IMAGE_SPEC = Path("/usr/share/gocode/src/github.com/opencontainers/image-spec/schema")
RUNTIME_SPEC = Path("/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema")

IMAGE_SCHEMAS = {
    "manifest": "image-manifest-schema.json",
    "index": "image-index-schema.json",
    "config": "config-schema.json",
    "layout": "image-layout-schema.json",
    "descriptor": "content-descriptor.json",
}


@lru_cache(maxsize=None)
def _registry(base_dir: str, base_url: str) -> Registry:
    resources = []
    for f in Path(base_dir).glob("*.json"):
        doc = json.loads(f.read_text())
        res = Resource.from_contents(doc, default_specification=DRAFT4)
        resources.append((base_url + f.name, res))
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            resources.append((doc["id"], res))
    return Registry().with_resources(resources)


def _validate(doc: object, base_dir: Path, base_url: str, filename: str) -> None:
    if not base_dir.is_dir():
        raise FileNotFoundError(f"{base_dir} missing: apt-get install the OCI spec package")
    registry = _registry(str(base_dir), base_url)
    schema = json.loads((base_dir / filename).read_text())
    # resolve the schema's own relative refs against its file URL
    schema = dict(schema)
    schema["id"] = base_url + filename
    validator = jsonschema.Draft4Validator(schema, registry=registry,
                                           format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        raise AssertionError("; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5]))


def validate_image_doc(kind: str, doc: object | bytes) -> None:
    """Raise AssertionError unless *doc* is a valid OCI *kind* (manifest, index, config, layout, descriptor)."""
    if isinstance(doc, (bytes, str)):
        doc = json.loads(doc)
    _validate(doc, IMAGE_SPEC, "https://opencontainers.org/schema/image/", IMAGE_SCHEMAS[kind])


def validate_runtime_config(doc: object | bytes) -> None:
    """Raise AssertionError unless *doc* is a valid OCI runtime config.json."""
    if isinstance(doc, (bytes, str)):
        doc = json.loads(doc)
    _validate(doc, RUNTIME_SPEC, "https://opencontainers.org/schema/runtime/", "config-schema.json")


def validate_layout_dir(path: str | Path) -> int:
    """Validate every JSON document of an OCI layout directory; returns how many were checked."""
    from kilobox.oci import mediatypes as mt
    path = Path(path)
    validate_image_doc("layout", json.loads((path / "oci-layout").read_text()))
    index = json.loads((path / "index.json").read_text())
    validate_image_doc("index", index)
    n = 2
    todo = list(index["manifests"])
    while todo:
        d = todo.pop()
        algo, hexd = d["digest"].split(":")
        raw = (path / "blobs" / algo / hexd).read_bytes()
        if d["mediaType"] in (mt.OCI_INDEX,):
            doc = json.loads(raw)
            validate_image_doc("index", doc)
            todo.extend(doc["manifests"])
        elif d["mediaType"] == mt.OCI_MANIFEST:
            doc = json.loads(raw)
            validate_image_doc("manifest", doc)
            if doc["config"]["mediaType"] == mt.OCI_CONFIG:
                ca, ch = doc["config"]["digest"].split(":")
                validate_image_doc("config", json.loads((path / "blobs" / ca / ch).read_bytes()))
                n += 1
        n += 1
    return n
