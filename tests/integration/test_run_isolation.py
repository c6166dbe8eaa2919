"""Isolation, asserted from inside the container with the static probe (tests/probe/probe.c)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from tests.fixtures.runtime import our_mounts, parse_probe
from tests.helpers.tools import free_port, kilobox

pytestmark = pytest.mark.integration


@pytest.fixture
def host_port():
    """A TCP server on the host's 127.0.0.1 (accepts and closes)."""
    port = free_port()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                c.close()
            except OSError:
                continue
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield port
    stop.set()
    t.join()
    srv.close()


def _probe(image, *args, runtime="crun", extra=()):
    r = kilobox("run", "--rm", "--runtime", runtime, *extra, image, *args, check=False)
    assert r.returncode == 0, r.stderr
    return parse_probe(r.stdout)


def test_default_isolation(run_state, runtime_name, probe_image, host_port):
    got = _probe(probe_image, "report", f"hostpid={os.getpid()}", "write=/x", "write=/probe",
                 f"connect=127.0.0.1:{host_port}", "read=/proc/kcore", "write=/proc/sys/kernel/hostname",
                 "setuid", "iouring", runtime=runtime_name)
    assert got["uid"] == "65532" and got["gid"] == "65532" and got["euid"] == "65532"
    assert got["capeff"] == "0000000000000000"
    assert got["capprm"] == "0000000000000000"
    assert got["capbnd"] == "0000000000000000"
    assert got["nonewprivs"] == "1"
    assert got["seccomp"] == "2"
    assert got["pid"] == "1"
    assert got["hostpid"] == "hidden"
    assert got["write"] in ("EROFS", "EACCES")
    assert got["connect"] == "ECONNREFUSED"       # the namespace's own loopback: nothing listens
    assert got["read"] != "ok:"                  # /proc/kcore is masked
    assert got["setuid"] == "EPERM"
    assert got["hostname"] == "kilobox"
    assert got["iouring"] == "ENOSYS"             # not on the allow-list: blocked by seccomp


def test_crun_uses_the_precompiled_filter(run_state, probe_image):
    import json
    from kilobox.store import Store
    from kilobox.run.seccomp import CRUN_BPF_ANNOTATION
    got = _probe(probe_image, "report", "iouring", runtime="crun")
    assert got["seccomp"] == "2" and got["iouring"] == "ENOSYS"
    annotated = [json.loads(c.read_text())["annotations"].get(CRUN_BPF_ANNOTATION)
                 for c in Store().area("bundles").glob("*/config.json")]
    assert any(annotated)


def test_network_host_reaches_the_host(run_state, probe_image, host_port):
    got = _probe(probe_image, f"connect=127.0.0.1:{host_port}", extra=("--network", "host"))
    assert got["connect"] == "ok"


def test_root_only_when_asked_and_still_without_capabilities(run_state, runtime_name, probe_image):
    got = _probe(probe_image, "report", "write=/x", runtime=runtime_name, extra=("--user", "0"))
    assert got["uid"] == "0"
    assert got["capeff"] == "0000000000000000"
    assert got["write"] in ("EROFS", "EACCES")


def test_cap_add(run_state, probe_image):
    got = _probe(probe_image, "report", extra=("--cap-add", "NET_BIND_SERVICE"))
    assert int(got["capeff"], 16) == 1 << 10
    assert int(got["capbnd"], 16) == 1 << 10


def test_read_write_and_tmpfs_keep_the_shared_rootfs_pristine(run_state, runtime_name, probe_image):
    from kilobox.store import Store
    area = Store().area("rootfs")
    before = {p: sorted(os.listdir(area / p)) for p in os.listdir(area)}
    got = _probe(probe_image, "write=/newfile", runtime=runtime_name, extra=("--read-write", "--user", "0"))
    assert got["write"] == "ok"
    got = _probe(probe_image, "write=/tmp/x", "write=/y", runtime=runtime_name, extra=("--tmpfs", "/tmp"))
    assert got["write"] in ("EROFS", "EACCES")        # the last write (/y) fails
    r = kilobox("run", "--rm", "--tmpfs", "/tmp", probe_image, "write=/tmp/x")
    assert parse_probe(r.stdout)["write"] == "ok"
    after = {p: sorted(os.listdir(area / p)) for p in os.listdir(area)}
    assert {k: v for k, v in after.items() if k in before} == before
    assert oct(os.stat(area).st_mode & 0o777) == "0o700"


def test_seccomp_unconfined_is_explicit(run_state, probe_image):
    got = _probe(probe_image, "report", "iouring", extra=("--seccomp", "unconfined"))
    assert got["seccomp"] == "0" and got["iouring"] != "ENOSYS"


def test_no_mounts_leak(run_state, probe_image):
    kilobox("run", "--rm", "--read-write", "--tmpfs", "/tmp", probe_image, "exit=0")
    kilobox("run", "--rm", probe_image, "exit=0")
    kilobox("run", "-d", "--name", "m", probe_image, "sleep=200")
    assert our_mounts(run_state) == []          # the container's mounts live in its own namespace
    kilobox("stop", "m")
    assert our_mounts(run_state) == []
