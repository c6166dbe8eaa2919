"""ELF checks on synthetic files: static/dynamic, machine match, strip status, hostile input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kilobox.build.elf import ElfInfo, check_binary, expected_for, inspect_binary
from kilobox.errors import BuildError
from kilobox.oci import Platform
from tests.fixtures.toolchain import EM, make_elf


def test_static_binary_passes(elf_file):
    info = check_binary(elf_file(), Platform.parse("linux/amd64"))
    assert isinstance(info, ElfInfo)
    assert (info.machine, info.bits, info.endian, info.static, info.stripped) == ("EM_X86_64", 64, "little", True, True)
    assert info.warnings == [] and info.needed == [] and info.interp is None


@pytest.mark.parametrize("platform,machine,bits,endian", [
    ("linux/arm64", EM["aarch64"], 64, "little"),
    ("linux/arm/v7", EM["arm"], 32, "little"),
    ("linux/riscv64", EM["riscv"], 64, "little"),
    ("linux/386", EM["i386"], 32, "little"),
    ("linux/s390x", EM["s390"], 64, "big"),
    ("linux/ppc64le", EM["ppc64"], 64, "little"),
])
def test_each_architecture_matches_its_platform(elf_file, platform, machine, bits, endian):
    info = check_binary(elf_file(machine=machine, bits=bits, endian=endian), platform)
    assert info.static and (info.bits, info.endian) == (bits, endian)


def test_dynamic_binary_refused_with_library_names(elf_file):
    p = elf_file(interp="/lib64/ld-linux-x86-64.so.2", needed=("libssl.so.3", "libc.so.6"))
    info = inspect_binary(p)
    assert not info.static and info.needed == ["libssl.so.3", "libc.so.6"]
    with pytest.raises(BuildError) as e:
        check_binary(p, "linux/amd64")
    msg = str(e.value)
    assert "dynamically linked" in msg and "libssl.so.3" in msg and "libc.so.6" in msg
    assert "/lib64/ld-linux-x86-64.so.2" in msg and "static" in (e.value.hint or "")


def test_needed_without_interp_is_still_dynamic(elf_file):
    with pytest.raises(BuildError, match="libfoo.so"):
        check_binary(elf_file(needed=("libfoo.so",)), "linux/amd64")


def test_interp_only_is_dynamic(elf_file):
    with pytest.raises(BuildError, match="interpreter /lib/ld-musl-x86_64.so.1"):
        check_binary(elf_file(interp="/lib/ld-musl-x86_64.so.1"), "linux/amd64")


def test_static_pie_with_empty_dynamic_is_static(elf_file):
    assert check_binary(elf_file(dynamic=True, etype=3), "linux/amd64").static


@pytest.mark.parametrize("platform,kw,words", [
    ("linux/amd64", dict(machine=EM["aarch64"]), ("aarch64", "x86-64", "linux/amd64")),
    ("linux/arm64", dict(machine=EM["x86_64"]), ("x86-64", "aarch64", "linux/arm64")),
    ("linux/arm/v7", dict(machine=EM["arm"], bits=64), ("64-bit", "32-bit")),
    ("linux/s390x", dict(machine=EM["s390"], endian="little"), ("little-endian", "big-endian")),
])
def test_wrong_architecture_refused_naming_both(elf_file, platform, kw, words):
    with pytest.raises(BuildError) as e:
        check_binary(elf_file(**kw), platform)
    for w in words:
        assert w in str(e.value)


def test_unstripped_warns_with_byte_count(elf_file):
    p = elf_file(sections={".text": b"\x90" * 32, ".symtab": b"s" * 240, ".strtab": b"t" * 60,
                           ".debug_info": b"d" * 1000})
    info = check_binary(p, "linux/amd64")
    assert not info.stripped and info.strippable_bytes == 1300
    assert any("not stripped: stripping would save 1300 bytes" in w for w in info.warnings)


def test_stripped_sections_do_not_warn(elf_file):
    info = check_binary(elf_file(sections={".text": b"\x90" * 32}), "linux/amd64")
    assert info.stripped and not info.warnings


def test_unknown_platform_architecture():
    with pytest.raises(BuildError, match="no ELF check"):
        expected_for(Platform.parse("linux/sparc64"))


@pytest.mark.parametrize("raw", [b"", b"\x7fEL", b"hello world\n", b"#!/bin/sh\necho hi\n", b"\x7fELF",
                                 b"\x7fELF\x02\x01\x01" + b"\0" * 20, b"MZ" + b"\0" * 200])
def test_non_elf_or_tiny_files_refused(elf_file, raw):
    with pytest.raises(BuildError):
        check_binary(elf_file(raw=raw), "linux/amd64")


def test_missing_file_refused(tmp_path):
    with pytest.raises(BuildError, match="does not exist"):
        check_binary(tmp_path / "nope", "linux/amd64")


def test_relocatable_object_refused(elf_file):
    with pytest.raises(BuildError, match="not an executable"):
        check_binary(elf_file(etype=1), "linux/amd64")


@pytest.mark.parametrize("cut", [10, 40, 63, 64, 100, 150])
def test_truncated_elf_refused(elf_file, cut):
    raw = make_elf(interp="/lib/ld.so", needed=("libc.so",), sections={".text": b"x" * 64})
    with pytest.raises(BuildError):
        check_binary(elf_file(raw=raw[:cut]), "linux/amd64")


def _patch(raw: bytes, fmt: str, offset: int, value: int) -> bytes:
    b = bytearray(raw)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


@pytest.mark.parametrize("field,fmt,offset,value", [
    ("class", "<B", 4, 7),
    ("data", "<B", 5, 0),
    ("phnum huge", "<H", 56, 0xFFFF),
    ("phentsize", "<H", 54, 12),
    ("phoff beyond", "<Q", 32, 1 << 62),
    ("shnum huge", "<H", 60, 0xFFFF),
    ("shoff beyond", "<Q", 40, 1 << 40),
    ("shstrndx", "<H", 62, 900),
    ("shentsize", "<H", 58, 1),
])
def test_garbage_headers_refused(elf_file, field, fmt, offset, value):
    raw = make_elf(sections={".text": b"x" * 16})
    with pytest.raises(BuildError):
        check_binary(elf_file(raw=_patch(raw, fmt, offset, value)), "linux/amd64")


def test_extended_section_count_huge_refused(elf_file):
    raw = make_elf(sections={".text": b"x" * 16})
    shoff = struct.unpack_from("<Q", raw, 40)[0]
    raw = _patch(raw, "<H", 60, 0)                      # e_shnum = 0: count lives in section 0's sh_size
    raw = _patch(raw, "<Q", shoff + 32, 1 << 40)
    with pytest.raises(BuildError):
        check_binary(elf_file(raw=raw), "linux/amd64")


def test_interp_and_dynamic_pointing_outside_file(elf_file):
    raw = make_elf(interp="/lib/ld.so", needed=("libc.so",))
    # program header 1 is PT_INTERP: p_offset at 64 + 56 + 8
    bad = _patch(raw, "<Q", 64 + 56 + 8, 1 << 50)
    with pytest.raises(BuildError):
        inspect_binary(elf_file("a", raw=bad))
    # program header 2 is PT_DYNAMIC: p_filesz at 64 + 112 + 32
    bad = _patch(raw, "<Q", 64 + 112 + 32, 1 << 50)
    with pytest.raises(BuildError):
        inspect_binary(elf_file("b", raw=bad))


def test_dt_strtab_unmapped_still_names_a_library(elf_file):
    raw = make_elf(needed=("libc.so",))
    # find the DT_STRTAB entry (tag 5) and point it nowhere
    i = raw.index(struct.pack("<qQ", 5, 0)[:8])
    bad = _patch(raw, "<Q", i + 8, 0xDEAD0000)
    with pytest.raises(BuildError, match="library #1"):
        check_binary(elf_file(raw=bad), "linux/amd64")


_SEED = make_elf(interp="/lib/ld.so", needed=("libc.so",), sections={".text": b"x" * 32, ".symtab": b"s" * 24})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)), max_size=12),
       st.integers(0, len(_SEED)))
def test_fuzzed_elf_never_crashes(tmp_path_factory, flips, cut):
    raw = bytearray(_SEED)
    for pos, val in flips:
        raw[pos] = val
    p = tmp_path_factory.mktemp("fz") / "bin"
    p.write_bytes(bytes(raw[:cut]))
    try:
        info = inspect_binary(p)
    except BuildError:
        return
    assert info.bits in (32, 64) and info.endian in ("little", "big")


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes_after_magic_never_crash(tmp_path_factory, tail):
    p = tmp_path_factory.mktemp("rb") / "bin"
    p.write_bytes(b"\x7fELF" + tail)
    try:
        inspect_binary(p)
    except BuildError:
        pass


def test_endless_non_elf_input_refused_after_its_magic():
    """/dev/zero never ends: the reader stops at the magic (a huge file given by mistake is not read)."""
    with pytest.raises(BuildError, match="not an ELF executable"):
        check_binary("/dev/zero", "linux/amd64")


def test_directory_refused(tmp_path):
    with pytest.raises(BuildError, match="cannot read binary"):
        inspect_binary(tmp_path)
