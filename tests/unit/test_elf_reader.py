"""kilobox.elf, the one ELF reader: tables, dynamic entries, sections by name, and hostile input.

Whatever the bytes, the reader answers or raises :class:`ElfError`, nothing else.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kilobox.elf import (DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME, MAX_STR, PT_DYNAMIC, PT_INTERP, PT_LOAD,
                         BytesSource, ElfError, ElfFile, FileSource)
from kilobox.errors import FormatError
from tests.fixtures.toolchain import make_elf
from tests.unit.test_elf import _SEED, _patch
from tests.unit.test_elf_differential import SEEDS
from tests.unit.test_slim_static import make_elf as make_dyn_elf


def read_all(elf: ElfFile) -> None:
    """Walk everything the reader offers (what a consumer might do)."""
    segs = elf.segments(exact=False)
    for s in segs:
        if s.type == PT_INTERP:
            elf.string(s.offset, s.filesz)
        elif s.type == PT_DYNAMIC:
            d = elf.dynamic(s.offset, s.filesz, strict=False)
            base = elf.vaddr_to_offset(d.strtab) if d.strtab is not None else None
            if base is not None:
                for v in d.values(DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME):
                    elf.string(base + v)
            assert isinstance(d.pie, bool)
    for sec in elf.sections(exact=False):
        elf.section_name(sec.name)
    sec = elf.find_section(".text")
    if sec is not None:
        elf.section_data(sec, 1 << 16)


def test_reads_headers_segments_dynamic_and_sections():
    elf = ElfFile(make_elf(interp="/lib/ld.so", needed=("libc.so", "libm.so"),
                           sections={".text": b"x" * 32, ".dep-v0": b"zz"}), "app")
    assert (elf.bits, elf.little, elf.header.machine, elf.header.etype) == (64, True, 62, 2)
    segs = elf.segments()
    assert [s.type for s in segs] == [PT_LOAD, PT_INTERP, PT_DYNAMIC]
    interp = segs[1]
    assert elf.string(interp.offset, interp.filesz) == "/lib/ld.so"
    d = elf.dynamic(segs[2].offset, segs[2].filesz)
    base = elf.vaddr_to_offset(d.strtab)
    assert [elf.string(base + v) for v in d.values(DT_NEEDED)] == ["libc.so", "libm.so"]
    assert [elf.section_name(s.name) for s in elf.sections()] == ["", ".text", ".dep-v0", ".shstrtab"]
    dep = elf.find_section(".dep-v0")
    assert dep is not None and elf.section_data(dep, 16) == b"zz"
    assert elf.find_section(".nope") is None
    with pytest.raises(ElfError, match="too large"):
        elf.section_data(dep, 1)


def test_rpath_runpath_and_soname():
    raw = make_dyn_elf(needed=("liba.so",), rpath="libself.so.1", runpath="$ORIGIN/../lib:/x")
    raw = raw.replace(struct.pack("<qQ", DT_RPATH, 0)[:8], struct.pack("<q", DT_SONAME))   # DT_RPATH -> DT_SONAME
    src = BytesSource(raw)
    elf = ElfFile(src)
    dyn = next(s for s in elf.segments() if s.type == PT_DYNAMIC)
    d = elf.dynamic(dyn.offset, dyn.filesz)
    base = elf.vaddr_to_offset(d.strtab)
    assert elf.string(base + d.last(DT_SONAME)) == "libself.so.1"
    assert elf.string(base + d.values(DT_RUNPATH)[0]) == "$ORIGIN/../lib:/x"
    assert d.values(DT_RPATH) == [] and not d.pie


def test_file_source_reads_like_bytes(tmp_path):
    raw = SEEDS["dynamic32be"]
    p = tmp_path / "bin"
    p.write_bytes(raw)
    with open(p, "rb") as f:
        a = ElfFile(FileSource(f, len(raw)))
        b = ElfFile(raw)
        assert a.segments() == b.segments() and a.sections() == b.sections()
        assert FileSource(f, len(raw)).pread(len(raw) + 5, 10) == b""


def test_error_is_a_format_error_naming_the_file():
    with pytest.raises(ElfError) as e:
        ElfFile(b"\x7fELF\x02\x01", "dir/app")
    assert isinstance(e.value, FormatError) and "dir/app" in str(e.value) and e.value.hint


@pytest.mark.parametrize("raw", [b"", b"\x7fEL", b"MZ" + b"\0" * 100, b"\x7fELF", b"\x7fELF\x02\x01" + b"\0" * 40,
                                 b"\x7fELF\x09\x01" + b"\0" * 80, b"\x7fELF\x01\x03" + b"\0" * 80])
def test_bad_magic_ident_or_truncated_header(raw):
    with pytest.raises(ElfError):
        ElfFile(raw)


@pytest.mark.parametrize("cut", [64, 100, 120, 150, 200, 260])
def test_truncated_files_raise_or_read(cut):
    raw = make_elf(interp="/lib/ld.so", needed=("libc.so",), sections={".text": b"x" * 64})[:cut]
    elf = ElfFile(raw)
    with pytest.raises(ElfError):
        elf.segments()
        elf.sections()


@pytest.mark.parametrize("field,fmt,offset,value", [
    ("phnum huge", "<H", 56, 0xFFFF),
    ("phoff past EOF", "<Q", 32, 1 << 62),
    ("phentsize small", "<H", 54, 12),
    ("shnum huge", "<H", 60, 0xFFFF),
    ("shoff past EOF", "<Q", 40, 1 << 40),
    ("shstrndx past table", "<H", 62, 900),
    ("shentsize small", "<H", 58, 1),
])
def test_huge_counts_and_offsets_past_eof(field, fmt, offset, value):
    raw = _patch(make_elf(sections={".text": b"x" * 16}), fmt, offset, value)
    elf = ElfFile(raw)
    with pytest.raises(ElfError):
        elf.segments(exact=False)
        elf.sections(exact=False)


def test_extended_count_huge_and_caps():
    raw = make_elf(sections={".text": b"x" * 16})
    shoff = struct.unpack_from("<Q", raw, 40)[0]
    raw = _patch(_patch(raw, "<H", 60, 0), "<Q", shoff + 32, 1 << 40)
    with pytest.raises(ElfError, match="too many"):
        ElfFile(raw).sections()
    with pytest.raises(ElfError, match="program header table"):
        ElfFile(make_elf(interp="/x", needed=("a",))).segments(max_count=2)


def test_dynamic_past_eof_strict_or_bounded():
    raw = make_elf(needed=("libc.so",))
    elf = ElfFile(raw)
    dyn = next(s for s in elf.segments() if s.type == PT_DYNAMIC)
    with pytest.raises(ElfError, match="outside the file"):
        elf.dynamic(dyn.offset, 1 << 50)
    assert len(elf.dynamic(dyn.offset, 1 << 50, strict=False).entries) == 2      # stops at DT_NULL
    assert elf.dynamic(len(raw) + 100, 1 << 20, strict=False).entries == []
    assert len(elf.dynamic(dyn.offset, 1 << 20, strict=False, max_tags=1).entries) == 1


def test_dynamic_without_null_is_capped():
    body = struct.pack("<qQ", DT_NEEDED, 1) * 10_000
    raw = make_elf(code=body)
    elf = ElfFile(raw)
    off = raw.index(body)
    assert len(elf.dynamic(off, len(body), max_tags=100).entries) == 100
    assert len(elf.dynamic(off, len(body)).entries) == 8192


def test_strings_outside_unterminated_and_overlong():
    raw = make_elf(code=b"A" * (3 * MAX_STR)) + b"tail"
    elf = ElfFile(raw)
    assert elf.string(len(raw)) == "" and elf.string(-5) == ""
    with pytest.raises(ElfError, match="outside the file"):
        elf.string(len(raw) + 1, strict=True)
    start = raw.index(b"A" * 10)
    assert len(elf.string(start)) == MAX_STR                 # overlong: cut at the cap
    assert len(elf.string(start, limit=1 << 30)) == MAX_STR
    assert elf.string(start, limit=-1) == ""
    assert elf.string(len(raw) - 2) == "il"                   # unterminated at EOF


def test_section_names_circular_and_unterminated():
    raw = bytearray(make_elf(sections={".text": b"x" * 16, ".data": b"y" * 8}))
    shoff = struct.unpack_from("<Q", raw, 40)[0]
    shnum, shstrndx = struct.unpack_from("<HH", raw, 60)
    # the name table points at the section header table itself: names are whatever bytes are there
    struct.pack_into("<Q", raw, shoff + shstrndx * 64 + 24, shoff)
    elf = ElfFile(bytes(raw))
    for s in elf.sections():
        assert len(elf.section_name(s.name)) <= MAX_STR
    # a name offset far past the end
    struct.pack_into("<I", raw, shoff + 64, 0xFFFFFFFF)
    elf = ElfFile(bytes(raw))
    assert elf.section_name(elf.sections()[1].name) == ""
    # a name table with no NUL anywhere: empty names, not a scan of the whole file
    big = bytearray(make_elf(sections={".text": b"x" * 16}, code=b"N" * (2 * MAX_STR)))
    shoff = struct.unpack_from("<Q", big, 40)[0]
    shstrndx = struct.unpack_from("<H", big, 62)[0]
    struct.pack_into("<Q", big, shoff + shstrndx * 64 + 24, big.index(b"N" * 10))
    elf = ElfFile(bytes(big))
    assert {elf.section_name(s.name) for s in elf.sections()} == {""}


def test_vaddr_outside_every_load():
    elf = ElfFile(make_elf(needed=("libc.so",)))
    elf.segments()
    assert elf.vaddr_to_offset(0) is None and elf.vaddr_to_offset(1 << 63) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([_SEED, *SEEDS.values()]),
       st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=12), st.integers(0, 1 << 16))
def test_fuzzed_files_only_raise_elf_error(seed, flips, cut):
    raw = bytearray(seed)
    for pos, val in flips:
        raw[pos % len(raw)] = val
    raw = bytes(raw[:cut])
    try:
        read_all(ElfFile(raw))
    except ElfError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(SEEDS)), st.integers(0, 127), st.integers(0, (1 << 64) - 1))
def test_header_words_set_to_anything(name, field_at, value):
    raw = bytearray(SEEDS[name])
    bo = ">" if raw[5] == 2 else "<"
    struct.pack_into(bo + "Q", raw, min(field_at * 4, len(raw) - 8), value)
    try:
        read_all(ElfFile(bytes(raw)))
    except ElfError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=400))
def test_random_bytes_after_magic(tail):
    try:
        read_all(ElfFile(b"\x7fELF" + tail))
    except ElfError:
        pass
