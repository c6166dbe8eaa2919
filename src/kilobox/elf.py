"""The ELF format: one small, bounded reader that build, audit and slim all use.

:class:`ElfFile` reads headers, program headers, dynamic entries (``DT_NEEDED``, ``DT_RPATH``,
``DT_RUNPATH``, ``DT_SONAME``, ``DT_STRTAB``, ``DT_FLAGS_1``), section headers (extended numbering
resolved) and sections by name, from bytes or from any object with ``size`` and
``pread(offset, n)``. Nothing is read before it is checked against the file size; every count
is capped; strings are bounded. Whatever is wrong with the file, the only exception is
:class:`ElfError` (a :class:`~kilobox.errors.FormatError`), which callers translate into their
own family. Policy (what to refuse, what to skip) stays with the callers: the reader offers strict
and lenient variants where they differ (``exact`` entry sizes, ``strict`` string / dynamic reads).
No pyelftools: importing it costs more than reading a whole binary.
"""

from __future__ import annotations

import functools
import struct

from ._record import record_type
from .errors import FormatError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs ~3 ms of every CLI start
    from typing import Callable, Protocol, TypeVar

    _T = TypeVar("_T")

    class Readable(Protocol):
        """Random access to a file's bytes (short or empty reads past the end)."""

        size: int

        def pread(self, offset: int, n: int) -> bytes: ...


MAGIC = b"\x7fELF"
MAX_STR = 4096
MAX_SEGMENTS = 1024
MAX_SECTIONS = 4096
MAX_DYN_TAGS = 8192
CORRUPT = "the file is truncated or corrupt"

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
SHT_NOBITS = 8
SHN_XINDEX = 0xFFFF
DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 14, 15, 29
DT_FLAGS_1, DF_1_PIE = 0x6FFFFFFB, 0x08000000

#: e_machine number -> name (the names pyelftools and the ELF spec use)
MACHINES: dict[int, str] = {
    2: "EM_SPARC", 3: "EM_386", 4: "EM_68K", 8: "EM_MIPS", 18: "EM_SPARC32PLUS", 20: "EM_PPC",
    21: "EM_PPC64", 22: "EM_S390", 40: "EM_ARM", 43: "EM_SPARCV9", 50: "EM_IA_64", 62: "EM_X86_64",
    183: "EM_AARCH64", 243: "EM_RISCV", 247: "EM_BPF", 258: "EM_LOONGARCH",
}
#: e_type number -> name
TYPES: dict[int, str] = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE",
                         0xFF00: "ET_LOPROC", 0xFFFF: "ET_HIPROC"}


class ElfError(FormatError):
    """An ELF file is truncated, corrupt or hostile (message names the file)."""


class BytesSource:
    """:class:`Readable` over bytes in memory."""

    __slots__ = ("data", "size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def pread(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0:
            return b""
        return self.data[offset:offset + n]


class FileSource:
    """:class:`Readable` over an open binary file of *size* bytes."""

    __slots__ = ("f", "size")

    def __init__(self, f, size: int) -> None:  # noqa: ANN001 - any binary file object
        self.f = f
        self.size = size

    def pread(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        self.f.seek(offset)
        return self.f.read(min(n, self.size - offset))


#: a program header: type, offset, vaddr, filesz
Segment = record_type("Segment", "type offset vaddr filesz")
#: a section header (name = offset in the section name table)
Section = record_type("Section", "name type offset size link")


def _guarded(fn: "Callable[..., _T]") -> "Callable[..., _T]":
    """Turn any slip of the reader (struct.error, ...) into :class:`ElfError`."""
    @functools.wraps(fn)
    def wrapper(self: "ElfFile", *args, **kw) -> "_T":  # noqa: ANN002, ANN003
        try:
            return fn(self, *args, **kw)
        except ElfError:
            raise
        except Exception as e:  # noqa: BLE001 - hostile input must never escape as a crash
            raise ElfError(f"{self.name} is not a valid ELF file: {type(e).__name__}: {str(e)[:200]}",
                           hint=CORRUPT) from None
    return wrapper


class Header:
    """The ELF file header (``e_ident`` checked, nothing else trusted yet)."""

    __slots__ = ("bits", "little", "bo", "etype", "machine", "phoff", "phentsize", "phnum", "shoff",
                 "shentsize", "shnum", "shstrndx")

    def __init__(self, head: bytes, size: int, name: str) -> None:
        if size < 4 or head[:4] != MAGIC:
            raise ElfError(f"{name} is not an ELF file (bad magic {head[:4]!r})", hint="the file is not ELF")
        if size < 52 or len(head) < 52:
            raise ElfError(f"{name} is a truncated ELF file ({size} bytes)", hint=CORRUPT)
        ei_class, ei_data = head[4], head[5]
        if ei_class not in (1, 2) or ei_data not in (1, 2):
            raise ElfError(f"{name} has an invalid ELF identification (class {ei_class}, data {ei_data})",
                           hint="the file is corrupt")
        self.bits = 64 if ei_class == 2 else 32
        self.little = ei_data == 1
        self.bo = bo = "<" if self.little else ">"
        self.etype, self.machine = struct.unpack_from(bo + "HH", head, 16)
        if self.bits == 64:
            if size < 64 or len(head) < 64:
                raise ElfError(f"{name} is a truncated ELF file ({size} bytes)", hint=CORRUPT)
            self.phoff, self.shoff = struct.unpack_from(bo + "QQ", head, 32)
            fields = struct.unpack_from(bo + "HHHHH", head, 54)
        else:
            self.phoff, self.shoff = struct.unpack_from(bo + "II", head, 28)
            fields = struct.unpack_from(bo + "HHHHH", head, 42)
        self.phentsize, self.phnum, self.shentsize, self.shnum, self.shstrndx = fields


class ElfFile:
    """One ELF file: the header at once, tables on demand, every read bounded."""

    __slots__ = ("src", "size", "name", "header", "bits", "little", "bo", "_segments", "_sections",
                 "shnum", "shstrndx")

    def __init__(self, src: "bytes | Readable", name: str = "<elf>") -> None:
        self.src: Readable = BytesSource(src) if isinstance(src, (bytes, bytearray)) else src
        self.size = self.src.size
        self.name = name
        self.header = h = Header(self.src.pread(0, 64), self.size, name)
        self.bits, self.little, self.bo = h.bits, h.little, h.bo
        self.shnum, self.shstrndx = h.shnum, h.shstrndx
        self._segments: list[Segment] | None = None
        self._sections: list[Section] | None = None

    # -- program headers -------------------------------------------------------------------
    @_guarded
    def segments(self, *, exact: bool = True, max_count: int = MAX_SEGMENTS) -> list[Segment]:
        """Every program header; :class:`ElfError` when the table is malformed, too long or past EOF.

        *exact*: the entry size must be the standard one (else: at least that).
        """
        if self._segments is not None:
            return self._segments
        h = self.header
        want = 56 if self.bits == 64 else 32
        phoff, entsize, phnum = h.phoff, h.phentsize, h.phnum
        if phnum and ((entsize != want if exact else entsize < want) or phnum > max_count
                      or phoff + phnum * entsize > self.size):
            raise ElfError(f"{self.name} has an invalid program header table ({phnum} entries at offset {phoff})",
                           hint=CORRUPT)
        raw = self.src.pread(phoff, phnum * entsize) if phnum else b""
        if len(raw) < phnum * entsize:
            raise ElfError(f"{self.name} has a truncated program header table", hint=CORRUPT)
        if self.bits == 64:   # type [flags] offset vaddr [paddr] filesz [memsz align]
            seg = struct.Struct(self.bo + "I4xQQ8xQ16x")
        else:                 # type offset vaddr [paddr] filesz [memsz flags align]
            seg = struct.Struct(self.bo + "III4xI12x")
        self._segments = [Segment(*seg.unpack_from(raw, i * entsize)) for i in range(phnum)]
        return self._segments

    def vaddr_to_offset(self, vaddr: int) -> int | None:
        """The file offset of virtual address *vaddr* (first ``PT_LOAD`` holding it), or None."""
        for ptype, off, va, filesz in self._segments or ():
            if ptype == PT_LOAD and va <= vaddr < va + filesz:
                return vaddr - va + off
        return None

    @_guarded
    def dynamic(self, offset: int, size: int, *, strict: bool = True,
                max_tags: int = MAX_DYN_TAGS) -> "Dynamic":
        """The dynamic entries at *offset* (up to ``DT_NULL``, at most *max_tags*).

        *strict*: :class:`ElfError` when the segment runs past the file (else: read what is there).
        """
        if strict and offset + size > self.size:
            raise ElfError("the dynamic segment lies outside the file", hint="the file is corrupt")
        entsize = 16 if self.bits == 64 else 8
        ent = struct.Struct(self.bo + ("qQ" if self.bits == 64 else "iI"))
        raw = self.src.pread(offset, min(size, max_tags * entsize))
        entries: list[tuple[int, int]] = []
        for i in range(len(raw) // entsize):
            tag, val = ent.unpack_from(raw, i * entsize)
            if tag == DT_NULL:
                break
            entries.append((tag, val))
        return Dynamic(entries)

    # -- strings ---------------------------------------------------------------------------
    def string(self, offset: int, limit: int = MAX_STR, *, errors: str = "replace", strict: bool = False) -> str:
        """The NUL-terminated string at *offset*, at most *limit* (and :data:`MAX_STR`) bytes.

        Outside the file: ``""``, or :class:`ElfError` when *strict*.
        """
        if offset < 0 or offset >= self.size:
            if strict:
                raise ElfError(f"string at offset {offset} lies outside the file", hint="the file is corrupt")
            return ""
        raw = self.src.pread(offset, max(0, min(limit, MAX_STR)))
        return raw.split(b"\0", 1)[0].decode("utf-8", errors)

    # -- section headers -------------------------------------------------------------------
    @_guarded
    def sections(self, *, exact: bool = True, max_count: int = MAX_SECTIONS) -> list[Section]:
        """Every section header, extended numbering (``e_shnum`` 0, ``SHN_XINDEX``) resolved."""
        if self._sections is not None:
            return self._sections
        h, p = self.header, self.name
        if not h.shoff:
            self.shnum, self._sections = 0, []
            return self._sections
        want = 64 if self.bits == 64 else 40
        shoff, entsize, shnum, shstrndx = h.shoff, h.shentsize, h.shnum, h.shstrndx
        if ((entsize != want if exact else entsize < want) or shnum > max_count
                or shoff + max(shnum, 1) * entsize > self.size):
            raise ElfError(f"{p} has an invalid section header table ({shnum} entries at offset {shoff})",
                           hint=CORRUPT)
        if shnum and shstrndx >= shnum and shstrndx != SHN_XINDEX:
            raise ElfError(f"{p} has an invalid section name table index {shstrndx}", hint="the file is corrupt")
        if self.bits == 64:   # name type [flags addr] offset size link [info align entsize]
            sh = struct.Struct(self.bo + "II16xQQI20x")
        else:
            sh = struct.Struct(self.bo + "II8xIII12x")
        first = Section(*sh.unpack_from(self.src.pread(shoff, entsize), 0))
        count = shnum
        if count == 0:  # extended numbering: the count lives in section 0's sh_size
            count = first.size
            if count > max_count or shoff + count * entsize > self.size:
                raise ElfError(f"{p} has too many segments or sections", hint="the file is corrupt")
        strndx = first.link if shstrndx == SHN_XINDEX else shstrndx
        if count and strndx >= count:
            raise ElfError(f"{p} has an invalid section name table index {strndx}", hint="the file is corrupt")
        raw = self.src.pread(shoff, count * entsize)
        if len(raw) < count * entsize:
            raise ElfError(f"{p} has a truncated section header table", hint=CORRUPT)
        self.shnum, self.shstrndx = count, strndx
        self._sections = [Section(*sh.unpack_from(raw, i * entsize)) for i in range(count)]
        return self._sections

    def section_name(self, name_offset: int) -> str:
        """A section's name from the section name table (unreadable names are empty)."""
        secs = self._sections
        if not secs:
            return ""
        start = secs[self.shstrndx].offset + name_offset
        if start >= self.size:
            return ""
        raw = self.src.pread(start, MAX_STR)
        end = raw.find(b"\0")
        if end < 0:
            return ""
        return raw[:end].decode("utf-8", errors="replace")

    def find_section(self, name: str) -> Section | None:
        """The first section called *name* (after :meth:`sections`), or None."""
        for sec in self._sections or ():
            if self.section_name(sec.name) == name:
                return sec
        return None

    def section_data(self, sec: Section, limit: int) -> bytes:
        """The bytes of *sec*; :class:`ElfError` when it lies past the file or exceeds *limit* bytes."""
        if sec.type == SHT_NOBITS:
            return b""
        if sec.size > limit or sec.offset + sec.size > self.size:
            raise ElfError(f"{self.name}: section of {sec.size} bytes at offset {sec.offset} "
                           f"is too large or lies outside the file", hint=CORRUPT)
        return self.src.pread(sec.offset, sec.size)


class Dynamic:
    """The entries of a dynamic segment, in file order (string values are ``DT_STRTAB`` offsets)."""

    __slots__ = ("entries",)

    def __init__(self, entries: list[tuple[int, int]]) -> None:
        self.entries = entries

    def values(self, *tags: int) -> list[int]:
        """Values of every entry whose tag is one of *tags*, in file order."""
        return [v for t, v in self.entries if t in tags]

    def last(self, tag: int) -> int | None:
        """The value of the last entry with *tag* (what a loader keeps), or None."""
        out = None
        for t, v in self.entries:
            if t == tag:
                out = v
        return out

    @property
    def strtab(self) -> int | None:
        """``DT_STRTAB``: a virtual address (see :meth:`ElfFile.vaddr_to_offset`)."""
        return self.last(DT_STRTAB)

    @property
    def pie(self) -> bool:
        """``DT_FLAGS_1`` has ``DF_1_PIE``."""
        return any(v & DF_1_PIE for v in self.values(DT_FLAGS_1))


__all__ = ["ElfFile", "ElfError", "Header", "Segment", "Section", "Dynamic", "BytesSource",
           "FileSource", "MACHINES", "TYPES", "MAGIC", "PT_LOAD", "PT_DYNAMIC", "PT_INTERP", "SHT_NOBITS",
           "DT_NEEDED", "DT_STRTAB", "DT_SONAME", "DT_RPATH", "DT_RUNPATH", "DT_FLAGS_1", "DF_1_PIE"]
