"""--publish: a host port forwarded into the container's own network namespace."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.runtime import wait_http
from tests.helpers.tools import free_port, kilobox

pytestmark = pytest.mark.integration


def test_detached_service_behind_a_published_port(run_state, runtime_name, example_images):
    port = free_port()
    kilobox("run", "-d", "--name", "pub", "--runtime", runtime_name, "-p", f"{port}:8080", example_images("httpd"))
    assert wait_http(f"http://127.0.0.1:{port}/healthz").strip() == "ok"
    taken = kilobox("run", "-d", "--name", "pub2", "-p", f"{port}:8080", example_images("httpd"), check=False)
    assert taken.returncode == 125 and "Address already in use" in taken.stderr
    assert "pub2" not in kilobox("ps", "-q").stdout
    kilobox("stop", "pub")
    kilobox("rm", "pub")
    import socket
    with pytest.raises(OSError):      # the forwarder went with the container
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_foreground_publish(run_state, probe_image):
    port = free_port()
    p = subprocess.Popen([str(Path(sys.executable).with_name("kilobox")), "run", "--rm", "-p", f"{port}:9000",
                          probe_image, "serve=9000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_http(f"http://127.0.0.1:{port}/").strip() == "ok"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert b"serve=stopped" in out
