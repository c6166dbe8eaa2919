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


def test_resolve_hostile_names_never_raise(tmp_path):
    assert rootpath.resolve(tmp_path, "/a\0b")[0] is None
    assert rootpath.resolve(tmp_path, "/" + "x" * 300)[0] is None
    assert rootpath.resolve(tmp_path, "/../../../etc/passwd")[0] is None


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


# -- a synthetic ELF: exact control over PT_INTERP, DT_NEEDED, DT_RPATH and DT_RUNPATH -------------------
import struct  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def make_elf(interp: str = "", needed: tuple[str, ...] = (), rpath: str = "", runpath: str = "",
             bits: int = 64, machine: int = 62) -> bytes:
    """A minimal little-endian ELF (header, PT_LOAD over the file, PT_INTERP, PT_DYNAMIC)."""
    is64 = bits == 64
    ehsize, phentsize = (64, 56) if is64 else (52, 32)
    strtab = b"\0"
    offs = {}
    for s in (*needed, rpath, runpath, interp):
        if s and s not in offs:
            offs[s] = len(strtab)
            strtab += s.encode() + b"\0"
    dyn = [(1, offs[n]) for n in needed]
    if rpath:
        dyn.append((15, offs[rpath]))
    if runpath:
        dyn.append((29, offs[runpath]))
    phnum = 3
    str_off = ehsize + phnum * phentsize
    dyn_off = str_off + len(strtab)
    dyn_off += (-dyn_off) % 8
    dyn.insert(0, (5, str_off))            # DT_STRTAB (vaddr == offset: PT_LOAD maps the file at 0)
    dyn.append((0, 0))
    dfmt = "<qQ" if is64 else "<iI"
    dynb = b"".join(struct.pack(dfmt, t, v) for t, v in dyn)
    total = dyn_off + len(dynb)
    interp_off = str_off + offs[interp] if interp else 0
    phdrs = []
    for ptype, off, size in ((1, 0, total), (3, interp_off, len(interp) + 1 if interp else 0), (2, dyn_off, len(dynb))):
        if ptype == 3 and not interp:
            ptype = 6   # PT_PHDR: harmless filler
        if is64:
            phdrs.append(struct.pack("<IIQQQQQQ", ptype, 5, off, off, off, size, size, 8))
        else:
            phdrs.append(struct.pack("<IIIIIIII", ptype, off, off, off, size, size, 5, 4))
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1, 1]) + b"\0" * 9
    if is64:
        hdr = ident + struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, phnum, 0, 0, 0)
    else:
        hdr = ident + struct.pack("<HHIIIIIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, phnum, 0, 0, 0)
    out = hdr + b"".join(phdrs) + strtab
    out += b"\0" * (dyn_off - len(out)) + dynb
    return out


def _put(root: Path, path: str, data: bytes, mode: int = 0o755) -> None:
    p = _mk(root, path, data)
    p.chmod(mode)


def test_synthetic_elf_reads_back():
    d = make_elf("/lib64/ld.so", ("liba.so", "libb.so"), rpath="/r", runpath="$ORIGIN/../lib:/x")
    p_info = read_elf_bytes(d)
    assert p_info.interp == "/lib64/ld.so"
    assert p_info.needed == ["liba.so", "libb.so"]
    assert p_info.rpath == ["/r"] and p_info.runpath == ["$ORIGIN/../lib", "/x"]
    assert p_info.machine == "EM_X86_64" and p_info.bits == 64
    small = read_elf_bytes(make_elf(needed=("libc.so",), bits=32, machine=3))
    assert small.machine == "EM_386" and small.bits == 32 and small.needed == ["libc.so"]


def read_elf_bytes(data: bytes):
    import tempfile
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        return read_elf(Path(f.name))


def test_closure_runpath_origin_and_machine_mismatch(tmp_path):
    """$ORIGIN in RUNPATH, a 32-bit library of the same name skipped, symlinks kept, missing reported."""
    _put(tmp_path, "/lib64/ld.so", make_elf())
    _put(tmp_path, "/opt/app/bin/app", make_elf("/lib64/ld.so", ("libapp.so", "libc.so.6", "libgone.so"),
                                                runpath="$ORIGIN/../lib"))
    _put(tmp_path, "/opt/app/lib/libapp.so.1", make_elf(needed=("libc.so.6",)))
    os.symlink("libapp.so.1", tmp_path / "opt/app/lib/libapp.so")
    _put(tmp_path, "/usr/lib/i386-linux-gnu/libc.so.6", make_elf(bits=32, machine=3))
    _put(tmp_path, "/usr/lib/x86_64-linux-gnu/libc.so.6", make_elf())
    _mk(tmp_path, "/etc/ld.so.conf", b"/usr/lib/i386-linux-gnu\n/usr/lib/x86_64-linux-gnu\n")
    c = Closure(tmp_path)
    c.add_executable("/opt/app/bin/app", "entrypoint")
    assert "/opt/app/lib/libapp.so.1" in c.kept and "/opt/app/lib/libapp.so" in c.kept
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" in c.kept
    assert "/usr/lib/i386-linux-gnu/libc.so.6" not in c.kept
    assert "/lib64/ld.so" in c.kept and c.kept["/lib64/ld.so"].startswith("ELF interpreter")
    assert set(c.missing) == {"libgone.so"}


def test_closure_rpath_ignored_when_runpath_present_and_ld_library_path(tmp_path):
    _put(tmp_path, "/bin/a", make_elf(needed=("libx.so",), rpath="/rp", runpath="/run"))
    _put(tmp_path, "/rp/libx.so", make_elf())
    _put(tmp_path, "/run/libx.so", make_elf())
    _put(tmp_path, "/llp/libx.so", make_elf())
    c = Closure(tmp_path)
    c.add_executable("/bin/a", "e")
    assert "/run/libx.so" in c.kept and "/rp/libx.so" not in c.kept
    c2 = Closure(tmp_path, env=["LD_LIBRARY_PATH=/llp"])
    c2.add_executable("/bin/a", "e")
    assert "/llp/libx.so" in c2.kept            # LD_LIBRARY_PATH comes before RUNPATH
    _put(tmp_path, "/bin/b", make_elf(needed=("libx.so",), rpath="/rp"))
    c3 = Closure(tmp_path, env=["LD_LIBRARY_PATH=/llp"])
    c3.add_executable("/bin/b", "e")
    assert "/rp/libx.so" in c3.kept            # RPATH (without RUNPATH) comes first


def test_closure_which_uses_image_path(tmp_path):
    _put(tmp_path, "/opt/bin/tool", b"#!/opt/bin/tool\n")
    assert Closure(tmp_path, env=["PATH=/opt/bin"]).which("tool") == "/opt/bin/tool"
    assert Closure(tmp_path).which("tool") is None


def test_closure_script_interpreter_loop_ends(tmp_path):
    _put(tmp_path, "/a", b"#!/b\n")
    _put(tmp_path, "/b", b"#!/a\n")
    c = Closure(tmp_path)
    c.add_executable("/a", "e")
    assert {"/a", "/b"} <= set(c.kept)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_read_elf_mutations_never_raise(data):
    base = bytearray(make_elf("/lib64/ld.so", ("liba.so",), runpath="$ORIGIN"))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(4, len(base)))
    info = read_elf_bytes(bytes(base[:cut]))
    assert info is None or isinstance(info.needed, list)
