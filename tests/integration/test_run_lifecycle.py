"""Detached services: survive kilobox, ps/logs/stop/rm, --rm, names, no leaks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.runtime import our_mounts, wait_http
from tests.helpers.tools import free_port, kilobox

pytestmark = pytest.mark.integration


def _ps(name: str) -> str:
    for line in kilobox("ps").stdout.splitlines()[1:]:
        if line.split()[0] == name:
            return line
    return ""


def _reaping_init() -> bool:
    """Does this host's PID 1 reap orphans? (This VM's does not: its zombies are not ours.)"""
    p = subprocess.run(["sh", "-c", "(sleep 0.05 &) ; echo"], capture_output=True)
    time.sleep(0.5)
    zombies = subprocess.run(["ps", "-eo", "ppid=,stat=,comm="], capture_output=True, text=True).stdout
    return p.returncode == 0 and not any(l.split()[0] == "1" and l.split()[1].startswith("Z") and "sleep" in l
                                         for l in zombies.splitlines())


def _zombies_not_under_init() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,stat=,comm="], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.split()[2].startswith("Z") and l.split()[1] != "1"]


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_httpd_detached_survives_and_stops_cleanly(run_state, example_images, runtime):
    port = free_port()
    r = kilobox("run", "-d", "--name", "web", "--runtime", runtime, "--network", "host", "-e", f"PORT={port}",
                example_images("httpd"))
    assert r.stdout.strip() == "web"
    # the kilobox process has exited: the service lives on
    assert wait_http(f"http://127.0.0.1:{port}/healthz").strip() == "ok"
    assert "running" in _ps("web")
    assert "listening" in kilobox("logs", "web").stdout
    clash = kilobox("run", "-d", "--name", "web", example_images("httpd"), check=False)
    assert clash.returncode == 125 and "already in use" in clash.stderr and clash.stderr.count("\n") == 1
    t0 = time.monotonic()
    kilobox("stop", "--time", "20", "web")
    assert time.monotonic() - t0 < 15          # httpd handles SIGTERM: no SIGKILL wait
    assert "exited (0)" in _ps("web")
    assert "stopped" in kilobox("logs", "web").stdout
    kilobox("rm", "web")
    assert _ps("web") == ""
    assert our_mounts(run_state) == []
    assert not os.path.exists(run_state / "runtime" / runtime / "web")
    assert _zombies_not_under_init() == []


def test_stop_escalates_to_sigkill(run_state, probe_image):
    kilobox("run", "-d", "--name", "stubborn", probe_image, "sleep=60000")
    assert "running" in _ps("stubborn")
    t0 = time.monotonic()
    kilobox("stop", "-t", "1", "stubborn")
    assert time.monotonic() - t0 >= 0.9
    assert "exited (137)" in _ps("stubborn")
    kilobox("rm", "stubborn")


def test_detached_rm_removes_itself(run_state, probe_image):
    kilobox("run", "-d", "--rm", "--name", "once", probe_image, "exit=3")
    deadline = time.monotonic() + 10
    while _ps("once") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ps("once") == ""


def test_detached_exit_code_and_logs(run_state, probe_image):
    kilobox("run", "-d", "--name", "batch", probe_image, "env=HOME", "exit=7")
    deadline = time.monotonic() + 10
    while "exited" not in _ps("batch") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "exited (7)" in _ps("batch")
    assert kilobox("logs", "batch").stdout.startswith("env.HOME=")
    kilobox("rm", "batch")


def test_logs_follow_until_exit(run_state, probe_image):
    kilobox("run", "-d", "--name", "talker", probe_image, "args", "sleep=800", "env=X", "exit=0")
    p = subprocess.run([str(Path(sys.executable).with_name("kilobox")), "logs", "-f", "talker"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert "arg0=/probe" in p.stdout and "env.X=<unset>" in p.stdout


def test_rm_running_needs_force(run_state, probe_image):
    kilobox("run", "-d", "--name", "busy", probe_image, "sleep=60000")
    r = kilobox("rm", "busy", check=False)
    assert r.returncode == 125 and "is running" in r.stderr
    kilobox("rm", "-f", "busy")
    assert _ps("busy") == ""


def test_state_survives_a_new_kilobox_and_unknown_names_fail(run_state, probe_image):
    kilobox("run", "-d", "--name", "keep", probe_image, "sleep=60000")
    # every kilobox call is a new process: it reads the state from disk
    assert "running" in _ps("keep")
    import json
    rows = json.loads(kilobox("ps", "--json").stdout)
    assert [r["status"] for r in rows if r["name"] == "keep"] == ["running"]
    for cmd in (("stop", "nope"), ("rm", "nope"), ("logs", "nope")):
        r = kilobox(*cmd, check=False)
        assert r.returncode == 3 and "no such container: nope" in r.stderr and r.stderr.count("\n") == 1
    kilobox("stop", "-t", "0", "keep")
    kilobox("rm", "keep")


def test_memory_and_pids_limits_are_applied(run_state, runtime_name, probe_image):
    kilobox("run", "-d", "--name", "lim", "--runtime", runtime_name, "-m", "48m", "--pids-limit", "17",
            "--cpus", "0.5", probe_image, "sleep=60000")
    try:
        pid = int((run_state / "containers" / "lim" / "pid").read_text())
        cg = dict(line.split(":", 2)[1:] for line in open(f"/proc/{pid}/cgroup").read().splitlines())
        from kilobox.run.runtimes import cgroup_mode
        if cgroup_mode() == "v2":
            base = Path("/sys/fs/cgroup") / cg[""].lstrip("/")
            assert int((base / "memory.max").read_text()) == 48 << 20
            assert (base / "pids.max").read_text().strip() == "17"
            assert (base / "cpu.max").read_text().split()[0] == "50000"
        else:
            mem = Path("/sys/fs/cgroup/memory") / cg["memory"].lstrip("/")
            assert int((mem / "memory.limit_in_bytes").read_text()) == 48 << 20
            pids = Path("/sys/fs/cgroup/pids") / cg["pids"].lstrip("/")
            assert (pids / "pids.max").read_text().strip() == "17"
            cpu = Path("/sys/fs/cgroup/cpu") / cg["cpu"].lstrip("/")
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
    finally:
        kilobox("rm", "-f", "lim")
