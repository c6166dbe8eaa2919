"""hello: a freestanding binary of a few hundred bytes prints "ok" on every platform;
its image (manifest + config + layer) stays within 1 KiB."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures.toolchain import TEST_PLATFORMS, run_binary, runner
from tests.helpers.tools import kilobox, need

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("platform", TEST_PLATFORMS)
def test_prints_ok(example_binary, platform):
    runner(platform)
    binary = example_binary("hello", platform)
    p = run_binary(binary, platform)
    assert (p.returncode, p.stdout, p.stderr) == (0, b"ok\n", b"")
    assert binary.stat().st_size <= 512, f"hello for {platform} grew to {binary.stat().st_size} bytes"


def test_ignores_arguments_and_environment(example_binary):
    p = run_binary(example_binary("hello", "linux/amd64"), "linux/amd64", "x" * 1000, env={"A": "b" * 5000})
    assert (p.returncode, p.stdout) == (0, b"ok\n")


def test_only_two_system_calls(example_binary, tmp_path):
    """No libc and no startup code: execve, then exactly write + exit."""
    strace = need("strace")
    log = tmp_path / "trace"
    subprocess.run([strace, "-f", "-o", str(log), str(example_binary("hello", "linux/amd64"))],
                   check=True, capture_output=True)
    calls = [ln.split("(")[0].split()[-1] for ln in log.read_text().splitlines() if "(" in ln]
    assert calls == ["execve", "write", "exit"], calls


def test_one_segment_no_padding(example_binary):
    """The linker script leaves one PT_LOAD (headers + code) and a PT_GNU_STACK, nothing else."""
    from elftools.elf.elffile import ELFFile
    with open(example_binary("hello", "linux/amd64"), "rb") as f:
        elf = ELFFile(f)
        types = [s["p_type"] for s in elf.iter_segments()]
        names = [s.name for s in elf.iter_sections()]
    assert types == ["PT_LOAD", "PT_GNU_STACK"]
    assert names == ["", ".text", ".shstrtab"]


def test_image_within_1kib(tmp_path):
    """The issue's command line: kilobox build examples/hello --max-size 1KiB --json -o oci:..."""
    out = tmp_path / "out"
    p = kilobox("build", "examples/hello", "--platform", "linux/amd64", "--max-size", "1KiB", "--json",
                "-o", f"oci:{out}:hello", cwd=_root())
    report = json.loads(p.stdout)
    assert report["ok"] is True
    for fig in report["platforms"]:
        assert fig["total_bytes"] <= 1024, fig
    assert (out / "index.json").is_file()


def test_image_runs_after_unpack(tmp_path):
    """The image's rootfs holds /hello, which prints ok (runtime-free check)."""
    out = tmp_path / "out"
    kilobox("build", "examples/hello", "--platform", "linux/amd64", "-o", f"oci:{out}:hello", cwd=_root())
    rootfs = tmp_path / "rootfs"
    kilobox("unpack", f"oci:{out}:hello", str(rootfs), cwd=_root())
    p = subprocess.run([str(rootfs / "hello")], capture_output=True)
    assert (p.returncode, p.stdout) == (0, b"ok\n")


def _root():
    from pathlib import Path
    return Path(__file__).resolve().parents[2]
