"""kilobox run -d --restart: on-failure, always, no; stop and rm -f end it for good; published ports
(TCP and UDP) keep working across restarts."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest

from kilobox.run import state as st
from tests.fixtures.runtime import wait_http
from tests.helpers.tools import free_port, kilobox
from tests.helpers.udp import ask, can_bind, client, free_udp_port

pytestmark = pytest.mark.integration

MARK = "env.RUN=<unset>"          # the probe's line for "env=RUN": one per run


def _row(name: str) -> dict:
    rows = [r for r in json.loads(kilobox("ps", "--json").stdout) if r["name"] == name]
    return rows[0] if rows else {}


def _ps_line(name: str) -> str:
    for line in kilobox("ps").stdout.splitlines()[1:]:
        if line.split()[0] == name:
            return line
    return ""


def _until(name: str, pred, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        row = _row(name)
        if pred(row):
            return row
        assert time.monotonic() < deadline, f"{name}: still {row}"
        time.sleep(0.05)


def _runs(name: str) -> int:
    return kilobox("logs", name).stdout.count(MARK)


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_on_failure_max_gives_up_after_max_restarts(run_state, probe_image, runtime):
    kilobox("run", "-d", "--name", "flaky", "--runtime", runtime, "--restart", "on-failure:2", probe_image,
            "env=RUN", "exit=3")
    row = _until("flaky", lambda r: r["status"] == "exited")
    assert (row["exit_code"], row["restart_count"], row["restart"]) == (3, 2, "on-failure:2")
    assert _runs("flaky") == 3
    assert "exited (3)" in _ps_line("flaky")
    kilobox("rm", "flaky")
    assert not os.path.exists(run_state / "runtime" / runtime / "flaky")


def test_no_runs_once(run_state, probe_image):
    kilobox("run", "-d", "--name", "once", "--restart", "no", probe_image, "env=RUN", "exit=3")
    row = _until("once", lambda r: r["status"] == "exited")
    assert (row["exit_code"], row["restart_count"], row["restart"]) == (3, 0, "no")
    assert _runs("once") == 1


def test_on_failure_does_not_restart_a_success(run_state, probe_image):
    kilobox("run", "-d", "--name", "ok", "--restart", "on-failure", probe_image, "env=RUN", "exit=0")
    row = _until("ok", lambda r: r["status"] == "exited")
    assert (row["exit_code"], row["restart_count"]) == (0, 0) and _runs("ok") == 1


def test_always_restarts_until_stopped(run_state, probe_image):
    kilobox("run", "-d", "--name", "loop", "--restart", "always", probe_image, "env=RUN", "exit=0")
    _until("loop", lambda r: r["restart_count"] >= 2)
    kilobox("stop", "-t", "1", "loop")
    row = _until("loop", lambda r: r["status"] == "exited")
    count = row["restart_count"]
    assert row["exit_code"] == 0 and _runs("loop") == count + 1
    time.sleep(1.0)                         # well past the next back-off: nothing comes back
    row = _row("loop")
    assert (row["status"], row["restart_count"]) == ("exited", count) and _runs("loop") == count + 1
    kilobox("rm", "loop")


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_a_crash_is_restarted_and_ps_shows_it(run_state, probe_image, runtime):
    kilobox("run", "-d", "--name", "svc", "--runtime", runtime, "--restart", "unless-stopped", probe_image,
            "env=RUN", "sleep=60000")
    first = st.init_pid(st.load("svc", run_state))
    os.kill(first, signal.SIGKILL)          # the service crashes
    _until("svc", lambda r: r["status"] == "running" and r["restart_count"] == 1)
    assert "running (restarts 1)" in _ps_line("svc")
    deadline = time.monotonic() + 10         # "running" from the runtime's start; the pid file comes next
    while st.init_pid(st.load("svc", run_state)) in (None, first):
        assert time.monotonic() < deadline, "no new init after the restart"
        time.sleep(0.02)
    assert _runs("svc") == 2
    kilobox("stop", "-t", "0", "svc")
    row = _until("svc", lambda r: r["status"] == "exited")
    assert (row["exit_code"], row["restart_count"]) == (137, 1)
    kilobox("rm", "svc")
    assert _row("svc") == {}


def test_stop_during_the_backoff_ends_it(run_state, probe_image):
    env = {"KILOBOX_RESTART_BACKOFF_MS": "60000"}
    kilobox("run", "-d", "--name", "wait", "--restart", "always", probe_image, "env=RUN", "exit=1", env=env)
    row = _until("wait", lambda r: r["status"] == "restarting")
    assert row["exit_code"] == 1 and "restarting (1)" in _ps_line("wait")
    r = kilobox("rm", "wait", check=False)
    assert r.returncode == 125 and "is restarting" in r.stderr
    kilobox("stop", "wait")
    row = _row("wait")
    assert (row["status"], row["exit_code"], row["restart_count"]) == ("exited", 1, 0)
    assert _runs("wait") == 1
    monitor = json.loads((run_state / "containers" / "wait" / "state.json").read_text())
    deadline = time.monotonic() + 10
    while st.alive(monitor["monitor_pid"], monitor["monitor_started"]):
        assert time.monotonic() < deadline, "the monitor outlived the stop"
        time.sleep(0.05)
    kilobox("rm", "wait")


def test_rm_force_ends_it(run_state, probe_image):
    kilobox("run", "-d", "--name", "gone", "--restart", "always", probe_image, "env=RUN", "sleep=60000")
    doc = st.load("gone", run_state)
    kilobox("rm", "-f", "gone")
    assert _row("gone") == {}
    deadline = time.monotonic() + 10
    while st.alive(doc["monitor_pid"], doc["monitor_started"]):
        assert time.monotonic() < deadline, "the monitor outlived rm -f"
        time.sleep(0.05)
    assert not (run_state / "containers" / "gone").exists()


@pytest.mark.parametrize("args, message", [
    (["-d", "--restart", "sometimes"], "unknown policy"),
    (["-d", "--restart", "always:3"], "only goes with on-failure"),
    (["-d", "--restart", "on-failure:-1"], "whole number"),
    (["-d", "--restart=on-failure:x"], "whole number"),
    (["-d", "--rm", "--restart", "always"], "--rm"),
    (["--restart", "on-failure"], "needs -d"),
])
def test_invalid_restart_is_a_one_line_usage_error(run_state, probe_image, args, message):
    r = kilobox("run", *args, probe_image, check=False)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert kilobox("ps", "-q").stdout == ""


def _crash_and_wait_for_the_restart(name: str, run_state) -> None:
    """SIGKILL the container's init; return once ps shows restarts 1 and the new init is up."""
    first = st.init_pid(st.load(name, run_state))
    assert first
    os.kill(first, signal.SIGKILL)
    _until(name, lambda r: r["status"] == "running" and r["restart_count"] == 1)
    deadline = time.monotonic() + 10
    while st.init_pid(st.load(name, run_state)) in (None, first):
        assert time.monotonic() < deadline, "no new init after the restart"
        time.sleep(0.02)


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_a_published_tcp_port_survives_a_restart(run_state, probe_image, runtime):
    port = free_port()
    kilobox("run", "-d", "--name", "web", "--runtime", runtime, "--restart", "always",
            "-p", f"127.0.0.1:{port}:9000", probe_image, "env=RUN", "serve=9000")
    assert wait_http(f"http://127.0.0.1:{port}/").strip() == "ok"
    _crash_and_wait_for_the_restart("web", run_state)
    assert wait_http(f"http://127.0.0.1:{port}/").strip() == "ok"     # the same host port, the new run
    assert _runs("web") == 2 and _row("web")["ports"] == [f"127.0.0.1:{port}->9000/tcp"]
    kilobox("stop", "-t", "1", "web")
    assert _row("web")["status"] == "exited"
    assert can_bind(port, socket.SOCK_STREAM)                           # the monitor let the port go
    kilobox("rm", "web")


def test_a_published_udp_port_survives_a_restart(run_state, udpecho_image):
    port = free_udp_port()
    kilobox("run", "-d", "--name", "echo", "--restart", "unless-stopped", "-p", f"127.0.0.1:{port}:7777/udp",
            udpecho_image)
    c = client()
    try:
        assert ask(c, port, b"first run") == b"first run"
        _crash_and_wait_for_the_restart("echo", run_state)
        assert ask(c, port, b"second run") == b"second run"             # same client, same host port
    finally:
        c.close()
    kilobox("stop", "-t", "1", "echo")
    assert _row("echo")["status"] == "exited"
    assert can_bind(port)
    kilobox("rm", "echo")


def test_the_port_stays_bound_during_the_backoff(run_state, probe_image):
    port = free_port()
    env = {"KILOBOX_RESTART_BACKOFF_MS": "60000"}
    kilobox("run", "-d", "--name", "held", "--restart", "always", "-p", f"127.0.0.1:{port}:9000", probe_image,
            "env=RUN", "exit=1", env=env)
    _until("held", lambda r: r["status"] == "restarting")
    with socket.socket() as s, pytest.raises(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))                                     # still the monitor's
    waiting = socket.create_connection(("127.0.0.1", port), timeout=10)   # queued for the next run
    try:
        kilobox("stop", "held")
        waiting.settimeout(10)
        try:
            assert waiting.recv(1) == b""                               # closed, not left hanging
        except ConnectionResetError:
            pass
    finally:
        waiting.close()
    assert can_bind(port, socket.SOCK_STREAM)
    kilobox("rm", "held")
