"""--engine podman: the same image, loaded into podman and run with the same hardening."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.fixtures.runtime import parse_probe
from tests.helpers.tools import kilobox

pytestmark = pytest.mark.integration




def test_hello_under_podman(podman_env, example_images):
    r = kilobox("run", "--rm", "--engine", "podman", example_images("hello"))
    assert r.stdout == "ok\n" and r.returncode == 0
    images = subprocess.run(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                            text=True).stdout
    assert ":run" in images
    assert kilobox("run", "--rm", "--engine", "podman", example_images("hello")).stdout == "ok\n"  # no reload


def test_podman_gets_the_same_hardening(podman_env, probe_image):
    r = kilobox("run", "--rm", "--engine", "podman", probe_image, "report", "write=/x", "exit=9", check=False)
    assert r.returncode == 9, r.stderr
    got = parse_probe(r.stdout)
    assert got["uid"] == "65532" and got["capeff"] == "0000000000000000"
    assert got["nonewprivs"] == "1" and got["seccomp"] == "2"
    assert got["write"] in ("EROFS", "EACCES")


def test_podman_refuses_root_images_too(podman_env, make_image, probe_bin):
    img = make_image({"/probe": probe_bin}, {"Entrypoint": ["/probe"]}, tag="root", name="rootimg")
    r = kilobox("run", "--rm", "--engine", "podman", img, check=False)
    assert r.returncode == 125 and "would run as root" in r.stderr


def test_podman_detached_lifecycle(podman_env, probe_image):
    kilobox("run", "-d", "--engine", "podman", "--name", "pd", probe_image, "args", "sleep=60000")
    ps = kilobox("ps").stdout
    assert "pd" in ps and "running" in ps and "podman" in ps
    deadline = time.monotonic() + 10
    while "arg0=/probe" not in kilobox("logs", "pd").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "arg0=/probe" in kilobox("logs", "pd").stdout
    kilobox("stop", "-t", "1", "pd")
    assert "exited (137)" in kilobox("ps").stdout
    kilobox("rm", "pd")
    assert "pd" not in kilobox("ps", "-q").stdout


def test_missing_engine(run_state, probe_image, tmp_path):
    r = kilobox("run", "--engine", "docker", probe_image, check=False, env={"PATH": str(tmp_path)})
    assert r.returncode == 127 and "docker is not installed" in r.stderr
