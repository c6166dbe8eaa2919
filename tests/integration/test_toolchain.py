"""The real Zig toolchain: compile C and Zig for every platform, run the result, cache, errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kilobox.build.elf import check_binary, inspect_binary
from kilobox.build.toolchain import Target, Toolchain, compile_sources
from kilobox.errors import BuildError
from tests.fixtures.toolchain import run_binary
from tests.helpers.tools import need

pytestmark = pytest.mark.integration

C_HELLO = '#include <stdio.h>\nint main(int c, char **v) { printf("hi from %s\\n", c > 1 ? v[1] : "c"); return 3; }\n'
ZIG_HELLO = """const std = @import("std");
pub fn main() u8 {
    _ = std.os.linux.write(1, "hi from zig\\n", 12);
    return 4;
}
"""


@pytest.fixture
def private_store(tmp_path, monkeypatch):
    """A private compile cache (the Zig cache stays shared: its libc builds are slow)."""
    monkeypatch.setenv("KILOBOX_CACHE", str(tmp_path / "store"))
    return tmp_path / "store"


def test_c_for_every_platform_runs(tmp_path, test_platform):
    (tmp_path / "hi.c").write_text(C_HELLO)
    target = Target.from_platform(test_platform)
    binary = compile_sources("c", [tmp_path / "hi.c"], target)
    info = check_binary(binary, target.platform)
    assert info.static and info.stripped and not info.warnings
    p = run_binary(binary, test_platform, "qemu")
    assert (p.returncode, p.stdout) == (3, b"hi from qemu\n")


def test_zig_for_every_platform_runs(tmp_path, test_platform):
    (tmp_path / "hi.zig").write_text(ZIG_HELLO)
    target = Target.from_platform(test_platform)
    binary = compile_sources("zig", [tmp_path / "hi.zig"], target)
    info = check_binary(binary, test_platform)
    assert info.static and info.stripped
    p = run_binary(binary, test_platform)
    assert (p.returncode, p.stdout) == (4, b"hi from zig\n")


@pytest.mark.parametrize("platform,qemu", [("linux/386", "qemu-i386-static"), ("linux/ppc64le", "qemu-ppc64le-static"),
                                           ("linux/s390x", "qemu-s390x-static"), ("linux/arm/v6", "qemu-arm-static")])
def test_zig_for_the_extra_platforms(tmp_path, platform, qemu):
    """Beyond the four example platforms: 386, ppc64le, s390x (big-endian) and arm/v6 compile and run."""
    (tmp_path / "hi.zig").write_text(ZIG_HELLO)
    binary = compile_sources("zig", [tmp_path / "hi.zig"], Target.from_platform(platform))
    info = check_binary(binary, platform)
    assert info.static and info.endian == ("big" if platform == "linux/s390x" else "little")
    p = subprocess.run([need(qemu), str(binary)], capture_output=True, timeout=60)
    assert (p.returncode, p.stdout) == (4, b"hi from zig\n")


def test_cache_hit_and_out_dir(tmp_path, private_store):
    (tmp_path / "hi.c").write_text(C_HELLO)
    msgs: list[str] = []
    target = Target.from_platform("linux/amd64")
    first = compile_sources("c", [tmp_path / "hi.c"], target, progress=msgs.append)
    assert str(first).startswith(str(private_store / "compile"))
    assert any("compiling hi" in m for m in msgs)
    mtime = first.stat().st_mtime_ns
    msgs.clear()
    again = compile_sources("c", [tmp_path / "hi.c"], target, progress=msgs.append)
    assert again == first and again.stat().st_mtime_ns == mtime and any("cached" in m for m in msgs)
    copied = compile_sources("c", [tmp_path / "hi.c"], target, out_dir=tmp_path / "out")
    assert copied == tmp_path / "out" / "hi" and copied.read_bytes() == first.read_bytes()
    assert os.access(copied, os.X_OK)
    # a different flag is a different entry
    other = compile_sources("c", [tmp_path / "hi.c"], target, cflags=["-DUNUSED=1"])
    assert other != first


def test_same_output_from_another_directory(tmp_path, private_store):
    """The binary does not depend on where the project lives (reproducible images)."""
    for d in ("a", "b/deeper"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "hi.c").write_text(C_HELLO + '\nconst char *where(void) { return __FILE__; }\n')
    t = Target.from_platform("linux/arm64")
    one = Toolchain(cache_dir=tmp_path / "c1").compile("c", [tmp_path / "a/hi.c"], t)
    two = Toolchain(cache_dir=tmp_path / "c2").compile("c", [tmp_path / "b/deeper/hi.c"], t)
    assert one.read_bytes() == two.read_bytes()


def test_compile_error_shows_compiler_message(tmp_path, private_store):
    (tmp_path / "good.c").write_text("int helper(void) { return 1; }\n")
    (tmp_path / "broken.c").write_text("int main(void) {\n  return undefined_thing;\n}\n")
    with pytest.raises(BuildError) as e:
        compile_sources("c", [tmp_path / "good.c", tmp_path / "broken.c"], Target.from_platform("linux/amd64"))
    msg = str(e.value)
    assert "broken.c" in msg.splitlines()[0] and "undefined_thing" in msg and "error" in msg
    assert not list((private_store / "compile").rglob("broken"))  # nothing cached


def test_zig_compile_error(tmp_path, private_store):
    (tmp_path / "bad.zig").write_text("pub fn main() void {\n    const x: u8 = 300;\n}\n")
    with pytest.raises(BuildError) as e:
        compile_sources("zig", [tmp_path / "bad.zig"], Target.from_platform("linux/amd64"))
    assert "bad.zig" in str(e.value) and "300" in str(e.value)


def test_missing_source(tmp_path):
    with pytest.raises(BuildError, match="does not exist"):
        compile_sources("c", [tmp_path / "nope.c"], Target.from_platform("linux/amd64"))
    with pytest.raises(BuildError, match="no sources"):
        compile_sources("c", [], Target.from_platform("linux/amd64"))


def test_freestanding_c(tmp_path):
    (tmp_path / "fs.c").write_text(
        "void _start(void) {\n"
        "  __asm__ volatile(\"mov $60, %%eax\\n xor %%edi, %%edi\\n add $7, %%edi\\n syscall\" ::: \"memory\");\n"
        "  for (;;) {}\n}\n")
    binary = compile_sources("c", [tmp_path / "fs.c"], Target.from_platform("linux/amd64"), freestanding=True)
    assert binary.stat().st_size < 2000
    assert subprocess.run([binary]).returncode == 7


# -- ELF checks against real compilers' output ---------------------------------------
def test_gcc_dynamic_binary_refused_with_libraries(tmp_path):
    gcc = need("gcc")
    (tmp_path / "dyn.c").write_text("#include <math.h>\n#include <stdio.h>\n"
                                    "int main(int c, char **v) { printf(\"%f\\n\", sqrt((double)c)); return 0; }\n")
    subprocess.run([gcc, "-o", tmp_path / "dyn", tmp_path / "dyn.c", "-Wl,--no-as-needed", "-lm"], check=True)
    with pytest.raises(BuildError) as e:
        check_binary(tmp_path / "dyn", "linux/amd64")
    assert "dynamically linked" in str(e.value) and "libc.so.6" in str(e.value)
    assert "libm.so.6" in str(e.value)


def test_unstripped_static_warns_with_bytes(tmp_path):
    """zig cc -g without -s: static but full of symbols and DWARF; the warning says how much."""
    import sys
    (tmp_path / "s.c").write_text("int main(void) { return 0; }\n")
    out = tmp_path / "s"
    env = dict(os.environ, ZIG_GLOBAL_CACHE_DIR=os.environ["KILOBOX_ZIG_CACHE"],
               ZIG_LOCAL_CACHE_DIR=os.environ["KILOBOX_ZIG_CACHE"])
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-linux-musl", "-Os", "-static", "-g",
                    "-o", str(out), str(tmp_path / "s.c")], check=True, env=env, cwd=tmp_path)
    info = check_binary(out, "linux/amd64")
    assert info.static and not info.stripped and info.strippable_bytes > 0
    assert f"stripping would save {info.strippable_bytes} bytes" in info.warnings[0]
    strip = shutil.which("strip")
    if strip:
        before = out.stat().st_size
        subprocess.run([strip, out], check=True)
        saved = before - out.stat().st_size
        assert inspect_binary(out).stripped
        # the estimate counts section contents; the real saving also drops headers and padding
        assert info.strippable_bytes <= saved <= info.strippable_bytes + 4096


def test_wrong_arch_from_the_real_compiler(tmp_path):
    (tmp_path / "hi.c").write_text(C_HELLO)
    arm = compile_sources("c", [tmp_path / "hi.c"], Target.from_platform("linux/arm/v7"))
    with pytest.raises(BuildError) as e:
        check_binary(arm, "linux/amd64")
    assert "arm 32-bit" in str(e.value) and "x86-64 64-bit" in str(e.value)
    with pytest.raises(BuildError):
        check_binary(arm, "linux/arm64")
    check_binary(arm, "linux/arm/v7")


def test_system_binary_is_refused_as_dynamic():
    ls = Path("/bin/ls")
    if not ls.exists():
        pytest.skip("no /bin/ls")
    with pytest.raises(BuildError, match=r"libc\.so"):
        check_binary(ls, "linux/amd64")


def test_base_dir_makes_flags_relative_to_the_project(tmp_path, private_store):
    """Sources in src/, a header in include/: -Iinclude works from the project directory, and an
    edit to the header (outside the sources' directory) recompiles."""
    (tmp_path / "src").mkdir()
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "msg.h").write_text('#define MSG "one"\n')
    (tmp_path / "src" / "app.c").write_text('#include <stdio.h>\n#include "msg.h"\nint main(void) { puts(MSG); return 0; }\n')
    t = Target.from_platform("linux/amd64")
    first = compile_sources("c", [tmp_path / "src/app.c"], t, cflags=["-Iinclude"], base_dir=tmp_path)
    assert subprocess.run([first], capture_output=True).stdout == b"one\n"
    (tmp_path / "include" / "msg.h").write_text('#define MSG "two"\n')
    second = compile_sources("c", [tmp_path / "src/app.c"], t, cflags=["-Iinclude"], base_dir=tmp_path)
    assert second != first and subprocess.run([second], capture_output=True).stdout == b"two\n"
    with pytest.raises(BuildError, match="inside the project directory"):
        compile_sources("c", [tmp_path / "src/app.c"], t, base_dir=tmp_path / "include")
