"""The mount-namespace helpers: libc through _ctypes, errno through ctypes on failure."""

from __future__ import annotations

import errno
import os

import pytest

from kilobox.errors import RunError
from kilobox.run import ns


def test_failed_calls_report_their_errno():
    e = ns._call("umount2", b"/nonexistent-kilobox-test-dir", 0)
    assert e == (errno.ENOENT if os.geteuid() == 0 else errno.EPERM)


def test_enter_failure_is_one_line_run_error(tmp_path):
    """In a forked child (entering changes the calling process's mount namespace)."""
    m = ns.Mounts(rootfs=str(tmp_path / "missing"), target=str(tmp_path / "also-missing"))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            ns.enter(m)
            os.write(w, b"entered")
        except RunError as e:
            os.write(w, str(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    msg = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    if os.geteuid() == 0:
        assert msg.startswith("setting up the container's mounts: mount bind on ") and msg.endswith(
            "also-missing: No such file or directory"), msg
    else:
        assert msg == "setting up the container's mounts: unshare(CLONE_NEWNS): Operation not permitted", msg


def test_spawn_reports_setup_errors(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (mount namespaces)")
    m = ns.Mounts(rootfs=str(tmp_path / "missing"), target=str(tmp_path / "also-missing"))
    with pytest.raises(RunError, match=r"setting up the container's mounts: mount bind on .*also-missing: "
                                       r"No such file or directory"):
        ns.spawn(["/bin/true"], m)


def test_spawn_runs_with_default_signals_and_no_mask(tmp_path):
    out = tmp_path / "status"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        pid = ns.spawn(["/bin/sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"], None, stdout=fd)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    fields = dict(line.split(":\t") for line in out.read_text().splitlines())
    assert int(fields["SigBlk"], 16) == 0
    assert int(fields["SigIgn"], 16) & (1 << (13 - 1)) == 0     # SIGPIPE back to default
