"""kilobox run in the foreground, under crun and runc: output, exit codes, stdin, signals, overrides."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.runtime import parse_probe
from tests.helpers.tools import kilobox

pytestmark = pytest.mark.integration


def _kilobox_popen(*args: str, **kw) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("kilobox")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_hello_prints_ok(run_state, runtime_name, example_images):
    r = kilobox("run", "--rm", "--runtime", runtime_name, example_images("hello"))
    assert r.stdout == "ok\n"
    assert r.returncode == 0
    assert not (run_state / "containers").exists() or not any((run_state / "containers").iterdir())


def test_hello_without_rm_is_listed_then_removed(run_state, example_images):
    r = kilobox("run", "--name", "h1", example_images("hello"))
    assert r.stdout == "ok\n"
    ps = kilobox("ps").stdout
    assert "h1" in ps and "exited (0)" in ps
    assert kilobox("run", "--name", "h1", example_images("hello"), check=False).returncode == 125
    kilobox("rm", "h1")
    assert "h1" not in kilobox("ps", "-q").stdout


@pytest.mark.parametrize("code", [0, 3, 42, 255])
def test_exit_code_passes_through(run_state, runtime_name, probe_image, code):
    for _ in ("cold", "warm"):
        r = kilobox("run", "--rm", "--runtime", runtime_name, probe_image, f"exit={code}", check=False)
        assert r.returncode == code, r.stderr


def test_args_env_workdir_entrypoint(run_state, probe_image):
    r = kilobox("run", "--rm", "-e", "GREETING=hi there", "-e", "FROM_HOST", "-w", "/proc",
                probe_image, "env=GREETING", "env=FROM_HOST", "env=PATH", "cwd", "args",
                env={"FROM_HOST": "yes"})
    got = parse_probe(r.stdout)
    assert got["env.GREETING"] == "hi there"
    assert got["env.FROM_HOST"] == "yes"
    assert got["env.PATH"].startswith("/usr/local/sbin")
    assert got["cwd"] == "/proc"
    assert got["arg0"] == "/probe" and got["argc"] == "6"
    r = kilobox("run", "--rm", "--entrypoint", "/probe", probe_image, "args")
    assert parse_probe(r.stdout)["argc"] == "2"


def test_stdin_and_stderr_pass_through(run_state, probe_image):
    r = kilobox("run", "--rm", probe_image, "cat", input=b"line one\nline two\n")
    assert r.stdout == "line one\nline two\n"
    r = kilobox("run", "--rm", probe_image, "bogus-action", check=False)
    assert r.returncode == 2 and "unknown=bogus-action" in r.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_are_forwarded(run_state, runtime_name, probe_image, sig):
    p = _kilobox_popen("run", "--rm", "--runtime", runtime_name, probe_image, "trap", "pause")
    try:
        assert p.stdout.readline() == b"trap=ready\n"
        p.send_signal(sig)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert out == f"signal={int(sig)}\n".encode()
    assert p.returncode == 100 + int(sig), err


@pytest.mark.parametrize("path", ["cold", "warm"])
def test_second_signal_kills_a_container_that_ignores_it(run_state, probe_image, path):
    if path == "warm":
        kilobox("run", "--rm", probe_image, "sleep=1")         # same options: the bundle is cached now
    p = _kilobox_popen("run", "--rm", probe_image, "sleep=30000")
    try:
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)      # pid 1 without a handler: ignored
        time.sleep(0.3)
        assert p.poll() is None
        p.send_signal(signal.SIGTERM)      # the second one kills
        p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 137
    assert kilobox("ps", "-q").stdout == ""


def _ps_rows() -> list[dict]:
    import json
    return json.loads(kilobox("ps", "--json").stdout)


def test_foreground_run_is_listed_while_it_runs_then_gone(run_state, runtime_name, probe_image):
    from tests.fixtures.runtime import our_mounts
    for _ in ("cold", "warm"):
        p = _kilobox_popen("run", "--rm", "--runtime", runtime_name, probe_image, "trap", "pause")
        try:
            assert p.stdout.readline() == b"trap=ready\n"
            deadline = time.monotonic() + 10
            while not (rows := _ps_rows()) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [(r["status"], r["runtime"], r["detached"]) for r in rows] == [("running", runtime_name, False)]
            assert rows[0]["name"].startswith("kb-") and rows[0]["command"] == ["/probe", "trap", "pause"]
            p.send_signal(signal.SIGINT)
            p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
        assert p.returncode == 100 + int(signal.SIGINT)
        assert _ps_rows() == []
        assert our_mounts(run_state) == []
        assert list((run_state / "runtime" / runtime_name).iterdir()) == []     # the runtime deleted it


@pytest.mark.parametrize("extra, action", [
    ((), "write=/x"),
    (("--read-write", "--user", "0"), "write=/x"),
    (("--tmpfs", "/tmp"), "write=/tmp/x"),
    (("--memory", "64m", "--pids-limit", "20"), "report"),
    (("--network", "host", "--hostname", "h1", "-e", "A=1", "-w", "/proc"), "report"),
])
def test_warm_runs_behave_as_cold_runs(run_state, probe_image, extra, action):
    from tests.fixtures.runtime import our_mounts
    cold, warm = (kilobox("run", "--rm", *extra, probe_image, action, "cwd", check=False) for _ in range(2))
    assert (warm.returncode, warm.stdout, warm.stderr) == (cold.returncode, cold.stdout, cold.stderr)
    assert cold.returncode == 0, cold.stderr
    got = parse_probe(warm.stdout)
    if action.startswith("write="):
        assert got["write"] == ("EROFS" if not extra else "ok")
    assert our_mounts(run_state) == []
    assert kilobox("ps", "-q").stdout == ""


def test_warm_run_reuses_rootfs_and_bundle(run_state, probe_image, tmp_path, monkeypatch):
    from kilobox.store import Store
    monkeypatch.setenv("KILOBOX_CACHE", str(tmp_path / "store"))
    kilobox("run", "--rm", probe_image, "exit=0")
    store = Store()
    rootfs = set(os.listdir(store.area("rootfs")))
    bundles = set(os.listdir(store.area("bundles")))
    kilobox("run", "--rm", probe_image, "exit=0")
    assert set(os.listdir(store.area("rootfs"))) == rootfs
    assert set(os.listdir(store.area("bundles"))) == bundles
    kilobox("run", "--rm", "-e", "X=1", probe_image, "exit=0")       # new options: new bundle, same rootfs
    assert set(os.listdir(store.area("rootfs"))) == rootfs
    assert len(set(os.listdir(store.area("bundles"))) - bundles) == 1
    assert len(rootfs) == 1


def test_generated_configs_validate_against_the_runtime_spec(run_state, probe_image):
    import json
    from kilobox.store import Store
    from tests.helpers.schemas import validate_runtime_config
    kilobox("run", "--rm", "--network", "host", "--read-write", "--tmpfs", "/tmp", "--cap-add", "NET_RAW",
            "-m", "64m", "--pids-limit", "30", "--cpus", "0.5", probe_image, "exit=0")
    n = 0
    for cfg in Store().area("bundles").glob("*/config.json"):
        validate_runtime_config(json.loads(cfg.read_text()))
        n += 1
    assert n >= 1


def test_python_api_with_a_prepared_rootfs(run_state, probe_bin, tmp_path):
    import shutil
    import kilobox
    import kilobox.run  # noqa: F401  the package and the function share the name: both call
    root = tmp_path / "rootfs"
    root.mkdir()
    shutil.copy(probe_bin, root / "probe")
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        r = kilobox.run(rootfs=root, config={"Entrypoint": ["/probe"], "Cmd": ["report", "exit=6"], "User": "65532"},
                        remove=True, stdout=f.fileno())
    assert r.exit_code == 6 and r.name is None
    assert "uid=65532" in out.read_text()
    assert sorted(p.name for p in root.iterdir()) == ["probe"]      # the user's rootfs is left as it was
