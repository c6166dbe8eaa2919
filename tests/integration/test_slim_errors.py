"""kilobox slim refuses bad input before slimming anything."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.fixtures.slim import (  # noqa: F401 - fixtures
    FatImage, slim_nginx_image, slim_cache, slim_store_dir,
)
from tests.helpers.tools import free_port, kilobox, need

pytestmark = pytest.mark.usefixtures("run_state", "slim_cache")


def test_no_entrypoint_is_a_usage_error(make_image, tmp_path: Path):
    need("strace")
    loc = make_image({"/etc/motd": b"hi\n"}, {"User": "65532"}, tag="noentry", name="noentry")
    out = kilobox("slim", loc, "-o", f"oci:{tmp_path / 'out'}:x", "--probe", "http://127.0.0.1:1/", check=False)
    assert out.returncode == 2
    assert "has no Entrypoint or Cmd" in out.stderr
    assert not (tmp_path / "out").exists()


def test_probe_that_never_succeeds_on_the_fat_image(slim_nginx_image: FatImage, tmp_path: Path):
    need("strace")
    port = free_port()   # nothing listens there
    t0 = time.monotonic()
    out = kilobox("slim", slim_nginx_image.location, "-o", f"oci:{tmp_path / 'out'}:x", "--probe",
                  f"http://127.0.0.1:{port}/", "--probe-timeout", "2", "--network", "host", "--tmpfs", "/tmp",
                  check=False)
    assert out.returncode == 1, out.stderr
    assert "never succeeded on the fat image" in out.stderr and "Connection refused" in out.stderr
    assert "nothing was slimmed" in out.stderr
    assert not (tmp_path / "out").exists()
    assert time.monotonic() - t0 < 60


def test_probe_command_failing_names_its_output(slim_nginx_image: FatImage, tmp_path: Path):
    need("strace")
    out = kilobox("slim", slim_nginx_image.location, "-o", f"oci:{tmp_path / 'out'}:x", "--probe-cmd",
                  "false", "--probe-timeout", "1", "--network", "host", "--tmpfs", "/tmp", check=False)
    assert out.returncode == 1 and "exit 1" in out.stderr


def test_strace_missing_says_which_package(tmp_path: Path):
    out = kilobox("slim", "oci:/nonexistent:x", "-o", f"oci:{tmp_path / 'out'}:x", "--probe", "http://127.0.0.1:1/",
                  env={"PATH": str(tmp_path)}, check=False)
    assert out.returncode == 127
    assert "strace is not installed" in out.stderr and "apt-get install -y strace" in out.stderr


def test_bad_options(tmp_path: Path):
    need("strace")
    out = kilobox("slim", "oci:x:y", "-o", "oci:z:w", "--probe", "ftp://x/", check=False)
    assert out.returncode == 2 and "not an http(s) URL" in out.stderr
    out = kilobox("slim", "oci:x:y", "-o", "oci:z:w", "--include", "relative/**", check=False)
    assert out.returncode == 2 and "absolute image path" in out.stderr
    out = kilobox("slim", "oci:x:y", "--probe", "http://a/", check=False)
    assert out.returncode == 2 and "--output" in out.stderr
    assert os.path.exists(tmp_path)
