"""inspect --files: per-layer and per-directory sizes, wasted bytes without double counting, efficiency."""

from __future__ import annotations

import pytest

from kilobox.audit.sizes import files_report, render_files
from kilobox.errors import UsageError
from tests.fixtures.debian import scan_of, tar_of


def fat():
    l0 = tar_of({"usr/bin/a": b"a" * 1000, "usr/lib/big": b"b" * 5000, "var/cache/x": b"x" * 3000,
                 "etc/conf": b"c" * 100})
    l1 = tar_of({"usr/lib/big": b"B" * 6000, "var/cache/.wh.x": b""})
    l2 = tar_of({"usr/lib/big": b"b" * 10})
    return scan_of(l0, l1, l2)


def test_wasted_counts_each_hidden_copy_once_and_never_the_visible_one():
    r = files_report(fat())
    t = r.totals
    assert t["shipped_bytes"] == 9100 + 6000 + 10
    assert t["visible_bytes"] == 1000 + 100 + 10
    assert t["wasted_bytes"] == 5000 + 6000 + 3000       # dive would also count the visible 10 bytes
    assert t["efficiency"] == round(1110 / 15110, 6)
    assert [ly["wasted_bytes"] for ly in r.layers] == [8000, 6000, 0]
    assert r.wasted[0] == {"path": "/usr/lib/big", "bytes": 11000, "copies": 2, "layers": [0, 1], "reason": "overwritten"}
    assert r.wasted[1]["reason"] == "deleted"


def test_directory_tree_sorted_by_size_or_name():
    r = files_report(fat(), "size", depth=2)
    paths = [(d["path"], d["bytes"], d["depth"]) for d in r.directories]
    assert paths[0] == ("/", 1110, 0)
    assert paths[1:] == [("/usr", 1010, 1), ("/usr/bin", 1000, 2), ("/usr/lib", 10, 2), ("/etc", 100, 1)]
    by_name = [d["path"] for d in files_report(fat(), "name", depth=1).directories]
    assert by_name == ["/", "/etc", "/usr"]
    text = render_files(r)
    assert "efficiency 7.3%" in text and "/usr/lib/big" in text


def test_bad_arguments():
    from kilobox.audit.sizes import inspect_files
    with pytest.raises(UsageError):
        inspect_files(fat(), sort="colour")


def test_json_shape():
    d = files_report(fat()).to_dict()
    assert d["schema"] == "kilobox.inspect-files/v1"
    assert list(d) == ["schema", "image", "totals", "layers", "directories", "largest", "wasted"]
