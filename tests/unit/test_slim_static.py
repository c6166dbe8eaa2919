"""Slim static analysis: chroot-style path resolution, ELF closure, strace log parsing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kilobox.slim import rootpath
from kilobox.slim.elfdeps import Closure, ld_so_conf_dirs, matches, read_elf
from kilobox.slim.stracelog import parse


def _mk(root: Path, path: str, data: bytes = b"x") -> Path:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_resolve_absolute_symlink_stays_inside_root(tmp_path):
    _mk(tmp_path, "/etc/alternatives/awk.real")
    (tmp_path / "usr/bin").mkdir(parents=True)
    os.symlink("/etc/alternatives/awk.real", tmp_path / "usr/bin/awk")
    os.symlink("/../../../../etc/shadow", tmp_path / "usr/bin/evil")
    resolved, links = rootpath.resolve(tmp_path, "/usr/bin/awk")
    assert resolved == "/etc/alternatives/awk.real"
    assert links == ["/usr/bin/awk"]
    # climbing out is impossible: /../../etc/shadow is /etc/shadow inside the root, which does not exist
    assert rootpath.resolve(tmp_path, "/usr/bin/evil")[0] is None


def test_resolve_symlink_loop_ends(tmp_path):
    tmp_path.joinpath("a").symlink_to("b")
    tmp_path.joinpath("b").symlink_to("a")
    assert rootpath.resolve(tmp_path, "/a")[0] is None


def test_resolve_through_directory_symlink(tmp_path):
    _mk(tmp_path, "/usr/lib/x86_64-linux-gnu/libc.so.6")
    os.symlink("usr/lib", tmp_path / "lib")
    resolved, links = rootpath.resolve(tmp_path, "/lib/x86_64-linux-gnu/libc.so.6")
    assert resolved == "/usr/lib/x86_64-linux-gnu/libc.so.6" and links == ["/lib"]


def test_ld_so_conf_includes(tmp_path):
    _mk(tmp_path, "/etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n/opt/lib # comment\n")
    _mk(tmp_path, "/etc/ld.so.conf.d/a.conf", b"/usr/local/lib/a\n")
    _mk(tmp_path, "/etc/ld.so.conf.d/self.conf", b"include /etc/ld.so.conf\n")  # a cycle
    assert ld_so_conf_dirs(tmp_path) == ["/usr/local/lib/a", "/opt/lib"]


def test_closure_of_a_real_dynamic_binary(tmp_path):
    """Copy /bin/ls and its libraries the way a distro lays them out; the closure finds them all."""
    ls = shutil.which("ls")
    assert ls
    root = tmp_path / "root"
    host = Closure(Path("/"))
    host.add_executable(os.path.realpath(ls), "entrypoint")
    for p in host.kept:
        src = Path(p)
        dst = root / p.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_file():
            shutil.copy2(src, dst)
    c = Closure(root)
    c.add_executable(os.path.realpath(ls), "entrypoint")
    assert not c.missing
    assert any("libc.so" in p for p in c.kept)
    assert any("ld-linux" in p for p in c.kept)


def test_closure_reports_missing_library_and_script_interpreter(tmp_path):
    elf = read_elf(Path(shutil.which("ls")))
    assert elf and elf.needed
    shutil.copy2(os.path.realpath(shutil.which("ls")), tmp_path / "ls")
    _mk(tmp_path, "/app.sh", b"#!/bin/sh\necho hi\n")
    c = Closure(tmp_path)
    c.add_executable("/ls", "entrypoint")
    c.add_executable("/app.sh", "cmd")
    assert "/bin/sh" in c.missing
    assert any(lib.startswith("libc.so") for lib in c.missing)


@pytest.mark.parametrize("data", [b"", b"\x7fELF", b"\x7fELF" + b"\xff" * 60, b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x02\0\x3e\0" + b"\xff" * 100])
def test_read_elf_on_hostile_input_never_crashes(tmp_path, data):
    p = tmp_path / "f"
    p.write_bytes(data)
    info = read_elf(p)
    assert info is None or info.needed == []


def test_globs():
    assert matches("/usr/share/zoneinfo/Europe/Paris", ["/usr/share/zoneinfo/**"])
    assert matches("/usr/share/zoneinfo", ["/usr/share/zoneinfo/**"])
    assert not matches("/usr/share/doc/x", ["/usr/share/zoneinfo/**"])


STRACE = r'''100 execve("/usr/sbin/nginx", ["nginx"], 0x7ffd /* 3 vars */) = 0
100 openat(AT_FDCWD</>, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3</etc/ld.so.cache>
100 openat(AT_FDCWD</>, "/etc/missing.conf", O_RDONLY) = -1 ENOENT (No such file or directory)
100 chdir("/var/www") = 0
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD <unfinished ...>
101 stat("index.html", {st_mode=S_IFREG|0644, st_size=5, ...}) = 0
100 <... clone resumed>) = 101
101 newfstatat(3</etc/nginx>, "conf.d/a.conf", {st_mode=S_IFREG|0644, ...}, 0) = 0
101 openat(AT_FDCWD</var/www>, "rel\"q", O_RDONLY) = 4</var/www/rel"q>
101 execve("/bin/sh", ["sh"], 0x0 /* 0 vars */) = -1 EACCES (Permission denied)
101 mkdir("/tmp/new", 0755) = 0
101 +++ exited with 0 +++
garbage line
102 openat(
'''


def test_strace_parse():
    t = parse(STRACE.splitlines())
    assert "/usr/sbin/nginx" in t.executed
    assert "/etc/ld.so.cache" in t.found
    assert "/etc/missing.conf" in t.missing
    assert "/etc/nginx/conf.d/a.conf" in t.found
    assert '/var/www/rel"q' in t.found
    assert "/bin/sh" in t.found and "/bin/sh" not in t.executed
    assert "/tmp" in t.found and "/tmp/new" not in t.found
