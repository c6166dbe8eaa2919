"""A hostile image cannot touch the host: links out, a setuid binary, a passwd link to the host."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.fixtures.runtime import NONROOT, parse_probe
from tests.helpers.tools import kilobox

pytestmark = pytest.mark.integration


def _digest(p: str) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


@pytest.fixture
def evil_image(make_image, probe_bin):
    from kilobox.layers import Entry
    data = probe_bin.read_bytes()
    entries = [
        Entry("probe", data=data, mode=0o755),
        Entry("suid-probe", data=data, mode=0o4755, uid=0, gid=0),     # setuid root
        Entry("etc", kind="dir"),
        Entry("etc/passwd", kind="symlink", linkname="/etc/passwd"),  # a loop inside, the host's outside
        Entry("etc/group", kind="symlink", linkname="../../../../../etc/group"),
        Entry("shadow", kind="symlink", linkname="/etc/shadow"),
        Entry("hostetc", kind="symlink", linkname="/etc"),
        Entry("up", kind="symlink", linkname="../../../../../../../"),
        Entry("tmp", kind="symlink", linkname="/etc"),               # --tmpfs /tmp must not land on host /etc
    ]
    return make_image(entries, {"Entrypoint": ["/probe"], "User": NONROOT}, tag="evil", name="evil")


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_links_out_resolve_inside(run_state, evil_image, runtime):
    shadow = _digest("/etc/shadow")
    r = kilobox("run", "--rm", "--runtime", runtime, evil_image, "read=/shadow", "read=/hostetc/hostname",
                "read=/up/etc/hostname", "write=/hostetc/pwned", "write=/up/pwned", check=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "read=ENOENT" and lines[1] == "read=ENOENT" and lines[2] == "read=ENOENT"
    assert all(not ln.endswith("=ok") for ln in lines[3:])
    assert not os.path.exists("/etc/pwned") and not os.path.exists("/pwned")
    assert _digest("/etc/shadow") == shadow


def test_read_write_writes_stay_in_the_container(run_state, evil_image):
    r = kilobox("run", "--rm", "--read-write", "--user", "0", evil_image, "write=/hostetc/pwned",
                "write=/up/pwned", "write=/shadow")
    assert "write=ok" in r.stdout
    assert not os.path.exists("/etc/pwned") and not os.path.exists("/pwned")


def test_setuid_binary_gains_nothing(run_state, evil_image):
    r = kilobox("run", "--rm", "--entrypoint", "/suid-probe", evil_image, "report", "setuid")
    got = parse_probe(r.stdout)
    assert got["euid"] == "65532" and got["capeff"] == "0000000000000000" and got["setuid"] == "EPERM"
    from kilobox.store import Store
    area = Store().area("rootfs")
    assert os.stat(area).st_mode & 0o077 == 0          # other host users cannot reach setuid files


def test_user_names_are_not_looked_up_on_the_host(run_state, evil_image):
    r = kilobox("run", "--rm", "--user", "nobody", evil_image, "report", check=False)
    assert r.returncode == 125
    assert r.stderr.count("\n") == 1 and "not in the image's /etc/passwd" in r.stderr


def test_tmpfs_on_a_symlink_stays_inside(run_state, evil_image):
    before = sorted(os.listdir("/etc"))
    r = kilobox("run", "--rm", "--tmpfs", "/tmp", evil_image, "write=/tmp/x", check=False)
    assert sorted(os.listdir("/etc")) == before
    assert not os.path.exists("/etc/x")
    assert r.returncode in (0, 125, 1), r.stderr
