"""SBOMs accepted by the official validators (spdx-tools, cyclonedx-python-lib), deterministic."""

from __future__ import annotations

import json
from pathlib import Path

from kilobox.audit.sbom import cyclonedx_document, image_purl, spdx_document
from tests.fixtures.debian import scan_of, static_elf, tar_of
from tests.unit.test_audit_elf import go_blob
from tests.unit.test_audit_packages import DPKG


def sample():
    return scan_of(tar_of({"etc/os-release": b"ID=debian\n", "var/lib/dpkg/status": DPKG,
                           "usr/bin/goapp": ("file", static_elf(go_blob()), 0o755),
                           "usr/bin/link": ("hardlink", "usr/bin/goapp", 0o755),
                           "usr/share/x y.txt": b"text", "empty": b""}),
                   config={"architecture": "amd64", "os": "linux", "created": "2024-05-06T07:08:09Z",
                           "config": {"User": "1"}}, name="oci:out:goapp", hashes=("sha256", "sha1"))


def validate_spdx(doc: dict, tmp: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    p = tmp / "sbom.spdx.json"
    p.write_text(json.dumps(doc))
    msgs = validate_full_spdx_document(parse_file(str(p)))
    assert msgs == [], [m.validation_message for m in msgs[:5]]


def validate_cyclonedx(doc: dict) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    assert err is None, str(err)[:2000]


def test_spdx_valid_and_complete(tmp_path):
    doc = spdx_document(sample())
    validate_spdx(doc, tmp_path)
    names = {p["name"]: p for p in doc["packages"]}
    assert names["nginx-light"]["versionInfo"] == "1.22.1-9+deb12u1"
    assert names["example.com/app"]["externalRefs"][0]["referenceLocator"] == "pkg:golang/example.com/app@v1.2.3"
    assert names["goapp"]["primaryPackagePurpose"] == "APPLICATION" and names["goapp"]["versionInfo"] == "v1.2.3"
    assert names["goapp"]["SPDXID"].startswith("SPDXRef-Binary-")
    files = {f["fileName"]: f for f in doc["files"]}
    assert set(files) == {"./etc/os-release", "./var/lib/dpkg/status", "./usr/bin/goapp", "./usr/bin/link",
                          "./usr/share/x y.txt", "./empty"}
    assert {c["algorithm"] for c in files["./usr/bin/goapp"]["checksums"]} == {"SHA1", "SHA256"}
    assert doc["creationInfo"]["created"] == "2024-05-06T07:08:09Z"


def test_cyclonedx_valid_and_complete():
    doc = cyclonedx_document(sample())
    validate_cyclonedx(doc)
    types = {}
    for c in doc["components"]:
        types.setdefault(c["type"], []).append(c["name"])
    assert "nginx-light" in types["library"] and types["application"] == ["goapp"]
    assert len(types["file"]) == 6
    assert doc["metadata"]["component"]["type"] == "container"


def test_deterministic():
    a, b = sample(), sample()
    assert json.dumps(spdx_document(a)) == json.dumps(spdx_document(b))
    assert json.dumps(cyclonedx_document(a)) == json.dumps(cyclonedx_document(b))


def test_image_purl():
    s = sample()
    assert image_purl(s) == "pkg:oci/goapp@sha256%3A" + "0" * 64 + "?arch=amd64"
