"""kilobox's struct-based ELF reader agrees with pyelftools on real binaries of this machine.

Dynamic executables and libraries from /usr/bin and /usr/lib, the qemu-user-static binaries
(large, static, foreign machines' loaders inside) and whatever the Zig toolchain compiled.
"""

from __future__ import annotations

import glob
import os

import pytest

from kilobox.build.elf import inspect_bytes
from kilobox.errors import BuildError
from tests.helpers.elf_reference import reference

pytestmark = pytest.mark.integration

PATTERNS = ["/usr/bin/*", "/usr/lib/x86_64-linux-gnu/*.so*", "/usr/libexec/qemu-binfmt/*", "/usr/bin/qemu-*-static"]


def _host_elves(limit: int = 400) -> list[str]:
    out: list[str] = []
    for f in sorted({f for pat in PATTERNS for f in glob.glob(pat)}):
        if os.path.isfile(f) and not os.path.islink(f):
            with open(f, "rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    out.append(f)
    return out[:limit]


def test_host_binaries_read_as_pyelftools_reads_them():
    files = _host_elves()
    if not files:
        pytest.skip("no ELF files on this machine")
    checked = 0
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        try:
            want = reference(data)
        except Exception:  # noqa: BLE001 - pyelftools cannot read it: ours must at most refuse cleanly
            try:
                inspect_bytes(data, f)
            except BuildError:
                pass
            continue
        i = inspect_bytes(data, f)
        got = (i.machine, i.bits, i.endian, i.type, i.static, i.stripped, i.strippable_bytes, i.interp, i.needed)
        assert got == want, f
        checked += 1
    assert checked > 0
