"""In-root path resolution and user/executable lookups over hostile root filesystems."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as s

from kilobox.errors import RunError
from kilobox.run.rootfs import find_executable, missing_dirs, read_file, resolve, resolve_user


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "bin").mkdir()
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/app\n# c\n\nbad:x:zz:1\n")
    (r / "etc" / "group").write_text("root:x:0:\napp:x:1001:\nextra:x:2000:app,other\nweird:x:q:app\n")
    (r / "bin" / "app").write_bytes(b"\x7fELF")
    os.chmod(r / "bin" / "app", 0o755)
    (r / "bin" / "noexec").write_bytes(b"x")
    return r


def test_absolute_symlinks_stay_inside(root):
    os.symlink("/etc/passwd", root / "link")
    os.symlink("/", root / "up")
    os.symlink("../../../../../../etc", root / "dotdot")
    assert resolve(root, "/link") == (root / "etc" / "passwd", True)
    assert resolve(root, "/up/up/up/etc/group") == (root / "etc" / "group", True)
    assert resolve(root, "/dotdot/group") == (root / "etc" / "group", True)
    assert resolve(root, "/../../etc/passwd") == (root / "etc" / "passwd", True)


def test_links_to_host_files_do_not_leak(root, tmp_path):
    os.unlink(root / "etc" / "passwd")
    os.symlink("/etc/shadow", root / "etc" / "passwd")
    assert read_file(root, "/etc/passwd") is None
    with pytest.raises(RunError):
        resolve_user(root, "nobody")
    os.unlink(root / "etc" / "passwd")
    os.symlink("/etc/passwd", root / "etc" / "passwd")   # a loop inside the root
    with pytest.raises(RunError, match="not in the image"):
        resolve_user(root, "nobody")
    assert resolve_user(root, "65532") == (65532, 65532, [])
    with pytest.raises(RunError, match="symbolic links"):
        resolve(root, "/etc/passwd")


def test_read_file_refuses_non_regular(root):
    os.mkfifo(root / "fifo")
    assert read_file(root, "/fifo") is None
    assert read_file(root, "/etc") is None
    assert read_file(root, "/missing/x") is None


def test_users(root):
    assert resolve_user(root, "app") == (1000, 1001, [2000])
    assert resolve_user(root, "1000") == (1000, 1001, [2000])
    assert resolve_user(root, "65532") == (65532, 65532, [])
    assert resolve_user(root, "65532:7") == (65532, 7, [])
    assert resolve_user(root, "app:extra") == (1000, 2000, [])
    assert resolve_user(root, "0") == (0, 0, [])
    for bad in ("nobody", "app:nogroup", "bad", "99999999999"):
        with pytest.raises(RunError):
            resolve_user(root, bad)


def test_executables(root):
    env = ["PATH=/usr/bin:/bin"]
    assert find_executable(root, "app", env) == "/bin/app"
    assert find_executable(root, "/bin/app", env) == "/bin/app"
    assert find_executable(root, "bin/app", env, "/") == "/bin/app"
    for bad in ("noexec", "missing", "/bin", "/bin/noexec", ""):
        with pytest.raises(RunError, match="not found"):
            find_executable(root, bad, env)


def test_missing_dirs(root):
    os.symlink("/etc", root / "tmp")
    assert missing_dirs(root, ["/etc", "/proc", "/tmp", "/bin/app"]) == ["/proc", "/bin/app"]


@settings(max_examples=200, deadline=None)
@given(s.lists(s.sampled_from(["a", "b", "..", ".", "/", "/etc", "l1", "l2", "loop"]), max_size=8))
def test_resolution_never_escapes(tmp_path_factory, parts):
    root = tmp_path_factory.mktemp("r")
    (root / "a" / "b").mkdir(parents=True)
    os.symlink("/", root / "a" / "l1")
    os.symlink("../../..", root / "a" / "b" / "l2")
    os.symlink("loop", root / "loop")
    try:
        host, _ = resolve(root, "/".join(parts))
    except RunError:
        return
    assert os.path.commonpath([str(root), str(host)]) == str(root)
