"""Runtime selection and command lines, including the hybrid-cgroup workaround."""

from __future__ import annotations

import stat

import pytest

from kilobox.errors import RunError, ToolMissing
from kilobox.run.runtimes import cgroup_mode, find_runtime, launch


def _fake(d, name):
    p = d / name
    p.write_text("#!/bin/sh\n")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def test_preference_and_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing) as e:
        find_runtime()
    assert "apt-get install -y crun" in e.value.hint
    _fake(tmp_path, "runc")
    assert find_runtime().name == "runc"
    _fake(tmp_path, "crun")
    assert find_runtime().name == "crun"
    assert find_runtime("runc").name == "runc"
    with pytest.raises(ToolMissing):
        find_runtime("youki")
    with pytest.raises(RunError):
        find_runtime(str(_fake(tmp_path, "notaruntime")))


def test_cgroup_modes(tmp_path):
    assert cgroup_mode(tmp_path) == "v1"
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("")
    assert cgroup_mode(tmp_path) == "hybrid"
    (tmp_path / "cgroup.controllers").write_text("")
    assert cgroup_mode(tmp_path) == "v2"


@pytest.mark.parametrize("rt, mode, limits, fix, flag", [
    ("crun", "hybrid", False, "cgroup2", True),
    ("crun", "hybrid", True, "legacy", False),
    ("crun", "v2", False, "", False),
    ("crun", "v1", True, "", False),
    ("runc", "hybrid", True, "", False),
    ("runc", "hybrid", False, "", False),
])
def test_launch_plans(tmp_path, monkeypatch, rt, mode, limits, fix, flag):
    monkeypatch.setenv("PATH", str(tmp_path))
    _fake(tmp_path, rt)
    ln = launch(find_runtime(rt), bundle="/b", cid="c", pid_file="/p", root="/r", has_limits=limits, mode=mode)
    assert ln.cgroup_fix == fix
    assert ("--cgroup-manager=disabled" in ln.argv) == flag
    assert ln.argv[-6:] == ["run", "--bundle", "/b", "--pid-file", "/p", "c"]
    assert ln.argv[1:3] == ["--root", "/r"]
