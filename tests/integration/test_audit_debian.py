"""The audit commands on a real fat image: Debian bookworm minbase + nginx-light, written by kilobox and by umoci."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from tests.helpers.tools import kilobox

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ref(layout: tuple[Path, str]) -> str:
    return f"oci:{layout[0]}:{layout[1]}"


@pytest.fixture(scope="module")
def fat_audit(debian_nginx_layout) -> dict:
    return json.loads(kilobox("audit", "--json", _ref(debian_nginx_layout)).stdout)


def _installed_packages(rootfs_tar: Path) -> dict[str, str]:
    """name -> version from the rootfs tarball's dpkg status, read independently of kilobox."""
    with tarfile.open(rootfs_tar) as tf:
        raw = tf.extractfile("./var/lib/dpkg/status").read().decode()
    out = {}
    for para in raw.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", para, re.M))
        if fields.get("Status", "").endswith(" installed"):
            out[fields["Package"]] = fields["Version"]
    return out


def test_expected_findings(fat_audit):
    by_rule: dict[str, set[str]] = {}
    for f in fat_audit["findings"]:
        by_rule.setdefault(f["id"], set()).add(f["path"])
    assert {"/usr/bin/bash", "/usr/bin/dash"} <= by_rule["shell"]
    dash = next(f for f in fat_audit["findings"] if f["id"] == "shell" and f["path"] == "/usr/bin/dash")
    assert "/usr/bin/sh" in dash["detail"]["links"] and dash["detail"]["detected_by"] == "content"
    assert {"/usr/bin/dpkg", "/usr/bin/apt-get", "/usr/bin/apt"} <= by_rule["package-manager"]
    assert "/usr/bin/perl" in by_rule["interpreter"]
    assert {"/usr/bin/su", "/usr/bin/passwd", "/usr/bin/mount"} <= by_rule["setuid"]
    assert {"/usr/bin/chage", "/usr/bin/expiry"} <= by_rule["setgid"]
    assert by_rule["root-user"] == {""}
    assert "/usr/sbin/nginx" in by_rule["dynamic-executable"]
    nginx = next(f for f in fat_audit["findings"] if f["path"] == "/usr/sbin/nginx")
    assert "/usr/lib/x86_64-linux-gnu/libssl.so.3" in nginx["detail"]["libraries"] and "missing" not in nginx["detail"]
    assert "timestamps" in by_rule
    assert "secret-content" not in by_rule and "secret-file" not in by_rule
    s = fat_audit["summary"]
    assert s["grade"] == "F" and s["score"] == 100 and not s["non_root"]
    assert s["executables"] > 300 and s["scope"]["files"] > 1000 and s["files"] > 5000


def test_packages_with_versions(fat_audit, debian_rootfs):
    want = _installed_packages(debian_rootfs)
    got = {p["name"]: p["version"] for p in fat_audit["packages"] if p["type"] == "deb"}
    assert got == want
    assert got["nginx-light"].startswith("1.22.1-9")
    nginx = next(p for p in fat_audit["packages"] if p["name"] == "nginx-light")
    assert re.fullmatch(r"pkg:deb/debian/nginx-light@1\.22\.1-9[^?]*\?arch=(all|amd64)", nginx["purl"])


def test_text_output_and_fail_on(debian_nginx_layout):
    ref = _ref(debian_nginx_layout)
    p = kilobox("audit", ref)
    assert "grade F" in p.stdout and "[HIGH] shell" in p.stdout and "audit scope:" in p.stdout
    bad = kilobox("audit", "--fail-on", "high", ref, check=False)
    assert bad.returncode == 1 and "at or above high" in bad.stderr and "grade F" in bad.stdout
    assert kilobox("audit", "--fail-on", "critical", ref, check=False).returncode == 0
    assert kilobox("audit", "--fail-on", "severe", ref, check=False).returncode == 2


def test_policy_file(debian_nginx_layout, tmp_path):
    pol = tmp_path / "policy.toml"
    pol.write_text('forbid_shells = true\nrequire_non_root = true\nmax_size = "10MiB"\nallowed_packages = ["nginx-*"]\n')
    p = kilobox("audit", "--policy", str(pol), _ref(debian_nginx_layout), check=False)
    assert p.returncode == 1
    for needle in ("forbidden: shell", "must not run as root", "max_size", "package not allowed: bash"):
        assert needle in p.stderr


def test_sarif(debian_nginx_layout):
    from tests.unit.test_audit_sarif import validate_sarif
    doc = json.loads(kilobox("audit", "--format", "sarif", _ref(debian_nginx_layout)).stdout)
    validate_sarif(doc)
    assert {"shell", "setuid", "root-user"} <= {r["ruleId"] for r in doc["runs"][0]["results"]}


def test_inspect_files(debian_nginx_layout):
    ref = _ref(debian_nginx_layout)
    d = json.loads(kilobox("inspect", "--files", "--sort", "size", "--json", ref).stdout)
    t = d["totals"]
    assert t["layers"] == 2 and d["layers"][1]["whiteouts"] == 2
    lists = [w for w in d["wasted"] if w["path"].startswith("/var/lib/apt/lists/")]
    assert lists and all(w["reason"] == "deleted" for w in lists)
    from kilobox.audit.sizes import inspect_files
    every = inspect_files(ref, top=1_000_000).wasted
    assert any(w["path"] == "/etc/nginx/nginx.conf" and w["reason"] == "overwritten" for w in every)
    assert sum(w["bytes"] for w in every) == t["wasted_bytes"]
    assert t["wasted_bytes"] > 70 << 20 and 0.4 < t["efficiency"] < 0.8
    assert t["shipped_bytes"] == t["visible_bytes"] + t["wasted_bytes"]
    sizes = [x["bytes"] for x in d["directories"] if x["depth"] == 1]
    assert sizes == sorted(sizes, reverse=True) and d["directories"][0]["path"] == "/"
    text = kilobox("inspect", "--files", "--sort", "size", ref).stdout
    assert "efficiency" in text and "wasted" in text and "usr/" in text


def test_sbom_spdx_validated(debian_nginx_layout, tmp_path):
    from tests.unit.test_audit_sbom import validate_spdx
    doc = json.loads(kilobox("sbom", "--format", "spdx-json", _ref(debian_nginx_layout)).stdout)
    validate_spdx(doc, tmp_path)
    names = {p["name"]: p.get("versionInfo") for p in doc["packages"]}
    assert names["nginx-light"].startswith("1.22.1-9") and names["dpkg"]
    assert len(doc["files"]) > 5000
    bash = next(f for f in doc["files"] if f["fileName"] == "./usr/bin/bash")
    assert {c["algorithm"] for c in bash["checksums"]} == {"SHA1", "SHA256"}


def test_sbom_cyclonedx_validated(debian_nginx_layout, tmp_path):
    from tests.unit.test_audit_sbom import validate_cyclonedx
    out = tmp_path / "sbom.cdx.json"
    kilobox("sbom", "--format", "cyclonedx-json", "-o", str(out), _ref(debian_nginx_layout))
    doc = json.loads(out.read_text())
    validate_cyclonedx(doc)
    libs = {c["name"]: c["version"] for c in doc["components"] if c["type"] == "library"}
    assert libs["nginx-light"].startswith("1.22.1-9")


def test_umoci_image_same_findings(debian_nginx_umoci_layout, fat_audit):
    d = json.loads(kilobox("audit", "--json", _ref(debian_nginx_umoci_layout)).stdout)
    key = lambda doc: {(f["id"], f["path"]) for f in doc["findings"] if f["id"] != "timestamps"}  # noqa: E731
    assert key(d) == key(fat_audit)
    assert d["summary"]["packages"] == fat_audit["summary"]["packages"]
    files = json.loads(kilobox("inspect", "--files", "--json", _ref(debian_nginx_umoci_layout)).stdout)
    assert any(w["path"].startswith("/var/lib/apt/lists/") and w["reason"] == "deleted" for w in files["wasted"])


def test_diff_kilobox_writer_vs_umoci(debian_nginx_layout, debian_nginx_umoci_layout):
    """Two writers, one tree: no file content differs (cross-checks our writer and reader against umoci)."""
    d = json.loads(kilobox("diff", "--json", _ref(debian_nginx_layout), _ref(debian_nginx_umoci_layout)).stdout)
    assert [c for c in d["changed"] if "content" in c["changes"]] == []
    assert [a for a in d["added"] if a["kind"] == "file"] == []
    assert [r for r in d["removed"] if r["kind"] == "file"] == []
    assert d["totals"]["size"]["delta"] == 0


def test_rootfs_tar_is_readable(debian_rootfs):
    with tarfile.open(debian_rootfs) as tf:
        m = tf.getmember("./usr/bin/su")
        assert m.mode & 0o4000
    assert io is not None
