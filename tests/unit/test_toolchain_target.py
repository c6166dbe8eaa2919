"""Pure parts of the toolchain: platform -> target, compiler command lines, cache keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from kilobox.build.toolchain import SUPPORTED, Target, Toolchain
from kilobox.errors import BuildError, UsageError
from kilobox.oci import Platform


@pytest.mark.parametrize("platform,triple,cpu,machine", [
    ("linux/amd64", "x86_64-linux-musl", "", "EM_X86_64"),
    ("linux/arm64", "aarch64-linux-musl", "", "EM_AARCH64"),
    ("linux/arm64/v8", "aarch64-linux-musl", "", "EM_AARCH64"),
    ("linux/arm/v7", "thumb-linux-musleabihf", "baseline", "EM_ARM"),
    ("linux/arm", "thumb-linux-musleabihf", "baseline", "EM_ARM"),
    ("linux/arm/v6", "arm-linux-musleabihf", "arm1176jzf_s", "EM_ARM"),
    ("linux/riscv64", "riscv64-linux-musl", "", "EM_RISCV"),
    ("linux/386", "x86-linux-musl", "", "EM_386"),
    ("linux/ppc64le", "powerpc64le-linux-musl", "", "EM_PPC64"),
    ("linux/s390x", "s390x-linux-musl", "", "EM_S390"),
])
def test_from_platform(platform, triple, cpu, machine):
    t = Target.from_platform(Platform.parse(platform))
    assert (t.triple, t.cpu, t.elf_machine) == (triple, cpu, machine)
    assert Target.from_platform(platform) == t  # a string works too


def test_every_supported_platform_maps():
    for p in SUPPORTED:
        Target.from_platform(p)


@pytest.mark.parametrize("platform", ["linux/sparc64", "windows/amd64", "darwin/arm64", "linux/arm/v9"])
def test_unknown_platform_is_a_build_error(platform):
    with pytest.raises(BuildError) as e:
        Target.from_platform(platform)
    assert platform.split("/")[1] in str(e.value) and "linux/amd64" in (e.value.hint or "")


def test_c_command_is_static_stripped_small(tmp_path):
    tc = Toolchain(cache_dir=tmp_path, zig_cache=tmp_path, python="py")
    cmd = tc.command("c", ["a.c", "b.c"], Target.from_platform("linux/arm/v7"), "out",
                     cflags=["-DX=1"], ldflags=["-Wl,-N"])
    assert cmd[:5] == ["py", "-m", "ziglang", "cc", "-target"] and cmd[5] == "thumb-linux-musleabihf"
    for flag in ("-mcpu=baseline", "-Os", "-static", "-s", "-Wl,--gc-sections", "-Wl,--build-id=none",
                 "-fno-unwind-tables", "-fno-asynchronous-unwind-tables"):
        assert flag in cmd
    assert cmd.index("-DX=1") < cmd.index("-o") < cmd.index("a.c") < cmd.index("-Wl,-N")
    assert "-nostdlib" not in cmd
    fs = tc.command("c", ["a.c"], Target.from_platform("linux/amd64"), "out", freestanding=True)
    assert "-nostdlib" in fs and "-ffreestanding" in fs


def test_zig_command(tmp_path):
    tc = Toolchain(cache_dir=tmp_path, zig_cache=tmp_path, python="py")
    cmd = tc.command("zig", ["main.zig"], Target.from_platform("linux/riscv64"), "/o/main")
    assert cmd[3] == "build-exe" and "riscv64-linux-musl" in cmd
    assert {"-OReleaseSmall", "-fstrip", "--gc-sections", "--build-id=none"} <= set(cmd)
    assert "-femit-bin=/o/main" in cmd and cmd[-1] == "main.zig"


def test_unknown_language(tmp_path):
    with pytest.raises(UsageError):
        Toolchain(cache_dir=tmp_path, zig_cache=tmp_path).command("rust", ["a.rs"], Target.from_platform("linux/amd64"), "o")


def test_cache_key_covers_inputs(tmp_path: Path):
    (tmp_path / "a.c").write_text("int main(){return 0;}")
    (tmp_path / "a.h").write_text("#define X 1")
    tc = Toolchain(cache_dir=tmp_path / "c", zig_cache=tmp_path / "z")
    amd, arm = Target.from_platform("linux/amd64"), Target.from_platform("linux/arm64")
    srcs = [tmp_path / "a.c"]

    def key(target=amd, cflags=(), ldflags=(), fs=False):
        return tc.cache_key("c", tmp_path, srcs, target, cflags=list(cflags), ldflags=list(ldflags), freestanding=fs)

    k = key()
    assert k == key() and len(k) == 64
    assert len({k, key(arm), key(cflags=["-O2"]), key(ldflags=["-lm"]), key(fs=True)}) == 5
    (tmp_path / "a.h").write_text("#define X 2")  # a header next to the source
    assert key() != k



def test_slow_compiler_explains_itself(tmp_path):
    """The first compile for a target builds libc for a long while: progress hears why."""
    from kilobox.build.toolchain import _run
    msgs: list[str] = []
    rc, out = _run(["sh", "-c", "sleep 3; echo done; exit 3"], tmp_path, {"PATH": "/usr/bin:/bin"},
                   msgs.append, "compiling libc for aarch64 (first time only, ~40 s)...")
    assert (rc, out.strip()) == (3, "done")
    assert msgs == ["compiling libc for aarch64 (first time only, ~40 s)..."]


def test_missing_compiler_is_a_build_error(tmp_path):
    from kilobox.build.toolchain import _run
    with pytest.raises(BuildError, match="cannot run the Zig compiler"):
        _run([str(tmp_path / "no-such-python"), "-m", "ziglang"], tmp_path, {}, None, None)
