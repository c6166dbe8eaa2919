"""diff and compare over synthetic images."""

from __future__ import annotations

import json

from kilobox.audit.compare import COLUMNS, plot, render_table, row
from kilobox.audit.diff import diff_scans, render_diff
from kilobox.audit import build_report
from tests.fixtures.debian import scan_of, static_elf, tar_of


def fat():
    return scan_of(tar_of({"bin/sh": ("file", static_elf(b"GNU bash, version"), 0o755),
                           "usr/bin/su": ("file", static_elf(), 0o4755),
                           "app": ("file", static_elf(b"v1"), 0o755), "etc/conf": b"old"}),
                   config={"config": {}}, name="fat")


def slim():
    return scan_of(tar_of({"app": ("file", static_elf(b"v2"), 0o755), "etc/conf": ("file", b"old", 0o600),
                           "etc/new": b"new"}), name="slim")


def test_diff_files_findings_and_deltas():
    d = diff_scans(fat(), slim())
    assert [a["path"] for a in d.added] == ["/etc/new"]
    assert sorted(r["path"] for r in d.removed) == ["/bin/sh", "/usr/bin/su"]
    assert {c["path"]: c["changes"] for c in d.changed} == {"/app": ["content"], "/etc/conf": ["mode"]}
    assert sorted(f["id"] for f in d.findings_removed) == ["root-user", "setuid", "shell"]
    assert d.findings_added == []
    t = d.totals()
    assert t["grade"]["a"] != "A" and t["grade"]["b"] == "A" and t["score"]["delta"] < 0
    assert t["executables"] == {"a": 3, "b": 1, "delta": -2}
    text = render_diff(d)
    assert "- /bin/sh" in text and "+ /etc/new" in text and "grade" in text
    assert json.loads(json.dumps(d.to_dict()))["schema"] == "kilobox.diff/v1"


def test_compare_table_and_plot(tmp_path):
    rows = [row(build_report(fat())), row(build_report(slim()))]
    assert set(COLUMNS) <= set(rows[0])
    assert rows[0]["shells"] == 1 and rows[1]["shells"] == 0 and rows[1]["grade"] == "A"
    text = render_table(rows)
    assert text.splitlines()[0].split()[:3] == ["image", "compressed", "unpacked"] and "slim" in text
    out = plot(rows, tmp_path / "c.svg")
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
