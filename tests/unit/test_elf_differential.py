"""The struct-based ELF reader against pyelftools (tests/helpers/elf_reference.py), on synthetic and fuzzed files.

Wherever pyelftools reads a file, kilobox.build.elf must read the same facts; wherever either
refuses, the refusal is a BuildError (never another exception).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kilobox.build.elf import check_bytes, inspect_bytes
from kilobox.errors import BuildError
from tests.fixtures.toolchain import EM, make_elf
from tests.helpers.elf_reference import reference


def facts(data: bytes) -> tuple:
    i = inspect_bytes(data, "bin")
    return (i.machine, i.bits, i.endian, i.type, i.static, i.stripped, i.strippable_bytes, i.interp, i.needed)


SEEDS = {
    "static64": make_elf(sections={".text": b"x" * 32}),
    "dynamic64": make_elf(interp="/lib/ld.so", needed=("libc.so", "libm.so"),
                          sections={".text": b"x" * 32, ".symtab": b"s" * 24, ".debug_line": b"d" * 40}),
    "static32": make_elf(machine=EM["arm"], bits=32, sections={".text": b"x" * 16, ".comment": b"c" * 8}),
    "dynamic32be": make_elf(machine=EM["mips"], bits=32, endian="big", interp="/lib/ld.so.1",
                            needed=("libc.so.6",), sections={".strtab": b"t" * 9}),
    "pie64be": make_elf(machine=EM["s390"], endian="big", etype=3, dynamic=True),
}


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_synthetic_files_agree(name):
    assert facts(SEEDS[name]) == reference(SEEDS[name])


def test_unknown_machine_and_type_named_like_pyelftools():
    for machine in [*range(300), 0x1234, 0x9026]:
        raw = make_elf(machine=machine, sections={".text": b"x"})
        assert facts(raw) == reference(raw)
    with pytest.raises(BuildError, match="ELF ET_CORE file"):
        inspect_bytes(make_elf(etype=4))
    with pytest.raises(BuildError, match="ELF 4660 file"):
        inspect_bytes(make_elf(etype=0x1234))


def test_extended_numbering_is_resolved():
    raw = bytearray(make_elf(sections={".text": b"x" * 16, ".symtab": b"s" * 8}))
    shoff, = struct.unpack_from("<Q", raw, 40)
    shnum, shstrndx = struct.unpack_from("<HH", raw, 60)
    struct.pack_into("<HH", raw, 60, 0, 0xFFFF)                 # SHN_UNDEF count, SHN_XINDEX name table
    struct.pack_into("<Q", raw, shoff + 32, shnum)              # section 0: sh_size = count
    struct.pack_into("<I", raw, shoff + 40, shstrndx)           # section 0: sh_link = name table index
    assert facts(bytes(raw)) == reference(bytes(raw))
    assert not inspect_bytes(bytes(raw)).stripped
    struct.pack_into("<I", raw, shoff + 40, shnum + 5)         # name table index out of range
    with pytest.raises(BuildError, match="section name table index"):
        inspect_bytes(bytes(raw))


def test_check_bytes_names_the_path_given():
    with pytest.raises(BuildError, match=r"^\./dir/app is built for aarch64"):
        check_bytes(make_elf(machine=EM["aarch64"]), "linux/amd64", "./dir/app")


def _outcome(data: bytes) -> tuple[str, object]:
    try:
        return "ok", facts(data)
    except BuildError as e:
        return "refused", e.message


def _ref_outcome(data: bytes) -> tuple[str, object]:
    try:
        return "ok", reference(data)
    except Exception as e:  # noqa: BLE001 - the reference refuses with anything pyelftools raises
        return "refused", type(e).__name__


_SEED_LIST = [SEEDS[k] for k in sorted(SEEDS)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_SEED_LIST))), st.data())
def test_fuzzed_files_agree_with_pyelftools(which, data):
    """Byte flips and cuts of each seed: when pyelftools reads the file, both read the same facts."""
    seed = _SEED_LIST[which]
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), max_size=10))
    cut = data.draw(st.integers(0, len(seed)))
    raw = bytearray(seed)
    for pos, val in flips:
        raw[pos] = val
    raw = bytes(raw[:cut])
    ours, theirs = _outcome(raw), _ref_outcome(raw)    # ours raises nothing but BuildError
    if theirs[0] == "ok":
        assert ours == theirs, (ours, theirs)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(SEEDS)), st.integers(0, 127), st.integers(0, (1 << 64) - 1))
def test_header_fields_set_to_anything(name, field_at, value):
    """Any header or table word set to any value: a BuildError or a reading, never a crash."""
    raw = bytearray(SEEDS[name])
    bo = ">" if raw[5] == 2 else "<"
    pos = min(field_at * 4, len(raw) - 8)
    struct.pack_into(bo + "Q", raw, pos, value)
    try:
        info = inspect_bytes(bytes(raw))
    except BuildError:
        return
    assert info.bits in (32, 64) and info.size == len(raw)
