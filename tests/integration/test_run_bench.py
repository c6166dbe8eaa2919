"""kilobox bench start: real contenders, alternating; JSON and plot output (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.tools import free_port, kilobox, need

pytestmark = pytest.mark.integration


def test_bench_batch_image(run_state, example_images, tmp_path):
    need("crun")
    need("runc")
    svg = tmp_path / "start.svg"
    r = kilobox("bench", "start", example_images("hello"), "--vs", "crun,runc,exec", "--runs", "2", "--json",
                "--plot", str(svg))
    res = json.loads(r.stdout)
    assert res["contenders"] == ["kilobox", "crun", "runc", "exec"]
    for name in res["contenders"]:
        assert len(res["samples_ms"][name]) == 2
        st = res["stats"][name]
        assert st["min"] <= st["median"] <= st["p95"] <= st["max"]
    assert res["stats"]["kilobox"]["ratio_to_kilobox"] == 1.0
    assert svg.read_text().lstrip().startswith("<?xml")


def test_bench_service_until_ready(run_state, example_images):
    port = free_port()
    r = kilobox("bench", "start", example_images("httpd"), "-e", f"PORT={port}", "--ready",
                f"http://127.0.0.1:{port}/healthz", "--vs", "crun,exec", "--runs", "2")
    assert "kilobox" in r.stdout and "crun" in r.stdout and "exec" in r.stdout
    # every sample was stopped: nothing answers any more
    import socket
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_bench_rejects_unknown_contenders(run_state, example_images):
    r = kilobox("bench", "start", example_images("hello"), "--vs", "lxc", "--runs", "1", check=False)
    assert r.returncode == 2 and "unknown contender 'lxc'" in r.stderr
