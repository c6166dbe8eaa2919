"""Our micro examples audit clean (grade A, no shell, non-root, scope = 1 binary); audit from a registry; compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.tools import kilobox

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def micro_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/hello and examples/httpd built by ``kilobox build`` into one layout (tags hello, httpd)."""
    out = tmp_path_factory.mktemp("micro") / "out"
    kilobox("build", str(ROOT / "examples/hello"), "--platform", "linux/amd64", "-o", f"oci:{out}:hello")
    kilobox("build", str(ROOT / "examples/httpd"), "--platform", "linux/amd64", "--max-size", "1MiB",
            "-o", f"oci:{out}:httpd")
    return out


@pytest.mark.parametrize("tag", ["hello", "httpd"])
def test_micro_examples_audit_clean(micro_layout, tag):
    ref = f"oci:{micro_layout}:{tag}"
    d = json.loads(kilobox("audit", "--json", ref).stdout)
    s = d["summary"]
    assert [f for f in d["findings"] if f["severity"] != "info"] == []
    assert s["grade"] == "A" and s["score"] == 0
    assert s["shells"] == [] and s["non_root"] and s["executables"] == 1
    assert s["scope"]["files"] == 1 and s["scope"]["paths"] == [s["entrypoint"][0]]
    assert kilobox("audit", "--fail-on", "low", ref).returncode == 0


@pytest.mark.parametrize("fmt", ["spdx-json", "cyclonedx-json"])
def test_micro_sbom_has_the_binary_as_component(micro_layout, fmt, tmp_path):
    from tests.unit.test_audit_sbom import validate_cyclonedx, validate_spdx
    doc = json.loads(kilobox("sbom", "--format", fmt, f"oci:{micro_layout}:httpd").stdout)
    if fmt == "spdx-json":
        validate_spdx(doc, tmp_path)
        apps = [p for p in doc["packages"] if p.get("primaryPackagePurpose") == "APPLICATION"]
    else:
        validate_cyclonedx(doc)
        apps = [c for c in doc["components"] if c["type"] == "application"]
    assert len(apps) == 1


def test_audit_from_registry(micro_layout, registry):
    ref = registry.ref("team/api:1")
    kilobox("copy", f"oci:{micro_layout}:httpd", ref)
    d = json.loads(kilobox("audit", "--json", ref).stdout)
    assert d["summary"]["grade"] == "A" and d["image"]["digest"].startswith("sha256:")
    text = kilobox("audit", ref).stdout
    assert "grade A" in text


@pytest.mark.slow
def test_diff_and_compare_fat_vs_micro(micro_layout, debian_nginx_layout, debian_nginx_umoci_layout, tmp_path):
    fat = f"oci:{debian_nginx_layout[0]}:{debian_nginx_layout[1]}"
    umoci = f"oci:{debian_nginx_umoci_layout[0]}:{debian_nginx_umoci_layout[1]}"
    httpd = f"oci:{micro_layout}:httpd"
    d = json.loads(kilobox("diff", "--json", fat, httpd).stdout)
    assert len(d["removed"]) > 5000 and d["totals"]["grade"] == {"a": "F", "b": "A"}
    assert {"shell", "setuid", "root-user"} <= {f["id"] for f in d["findings_removed"]}
    assert d["findings_added"] == []
    text = kilobox("diff", fat, httpd).stdout
    assert "grade F → A" in text
    svg = tmp_path / "compare.svg"
    p = kilobox("compare", fat, umoci, httpd, "--plot", str(svg))
    lines = p.stdout.splitlines()
    assert lines[0].split()[0] == "image" and len(lines) == 5
    assert svg.read_text().count("<svg") == 1
    rows = json.loads(kilobox("compare", "--json", fat, httpd).stdout)["images"]
    assert rows[0]["shells"] == 2 and rows[1]["shells"] == 0 and rows[1]["scope"] == 1
