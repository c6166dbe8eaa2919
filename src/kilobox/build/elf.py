"""ELF checks for every binary that goes into an image.

:func:`inspect_binary` reads what matters (machine, class, endianness, static or not,
stripped or not) and :func:`check_binary` refuses what cannot run in an empty image:

- a dynamic binary (``PT_INTERP`` or ``DT_NEEDED``): the refusal names the libraries;
- a machine / class / endianness that does not match the platform: names both;
- anything that is not an ELF executable (or is truncated / hostile).

An unstripped binary is accepted with a warning saying how many bytes stripping would save.

The headers are read with :mod:`struct` from the file's bytes (no pyelftools on this path:
importing it costs more than a whole build). Every table is bounds-checked against the
file size before it is walked, every count is capped, and any parsing failure becomes a
:class:`BuildError`. :func:`check_bytes` / :func:`inspect_bytes` work on bytes already in
memory, so a build reads each binary once.
"""

from __future__ import annotations

import struct

from ..errors import BuildError
from ._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from typing import NoReturn

    from ..oci import Platform

_MAX_SECTIONS = 4096
_MAX_SEGMENTS = 1024
_MAX_DYN_TAGS = 8192
_MAX_STR = 4096
_MAX_NEEDED = 256

#: OCI architecture -> (e_machine, ELF class bits, endianness)
ARCHES: dict[str, tuple[str, int, str]] = {
    "amd64": ("EM_X86_64", 64, "little"),
    "arm64": ("EM_AARCH64", 64, "little"),
    "arm": ("EM_ARM", 32, "little"),
    "riscv64": ("EM_RISCV", 64, "little"),
    "386": ("EM_386", 32, "little"),
    "ppc64le": ("EM_PPC64", 64, "little"),
    "ppc64": ("EM_PPC64", 64, "big"),
    "s390x": ("EM_S390", 64, "big"),
    "mips64le": ("EM_MIPS", 64, "little"),
    "mipsle": ("EM_MIPS", 32, "little"),
    "loong64": ("EM_LOONGARCH", 64, "little"),
}

#: e_machine number -> name (the names pyelftools and the ELF spec use)
MACHINES: dict[int, str] = {
    2: "EM_SPARC", 3: "EM_386", 4: "EM_68K", 8: "EM_MIPS", 18: "EM_SPARC32PLUS", 20: "EM_PPC",
    21: "EM_PPC64", 22: "EM_S390", 40: "EM_ARM", 43: "EM_SPARCV9", 50: "EM_IA_64", 62: "EM_X86_64",
    183: "EM_AARCH64", 243: "EM_RISCV", 247: "EM_BPF", 258: "EM_LOONGARCH",
}
_TYPES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE", 0xFF00: "ET_LOPROC",
          0xFFFF: "ET_HIPROC"}

# e_machine -> readable name (for messages)
_MACHINE_NAMES = {"EM_X86_64": "x86-64", "EM_AARCH64": "aarch64", "EM_ARM": "arm", "EM_RISCV": "riscv",
                  "EM_386": "i386", "EM_PPC64": "ppc64", "EM_S390": "s390", "EM_MIPS": "mips",
                  "EM_LOONGARCH": "loongarch"}
_STRIPPABLE_PREFIXES = (".debug", ".zdebug")
_STRIPPABLE = {".symtab", ".strtab", ".comment"}

_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_SHT_NOBITS = 8
_DT_NULL, _DT_NEEDED, _DT_STRTAB = 0, 1, 5
_CORRUPT = "the file is truncated or corrupt"


class ElfInfo(Record):
    """What kilobox knows about one ELF binary."""

    __slots__ = ("path", "machine", "bits", "endian", "type", "static", "stripped", "size",
                 "strippable_bytes", "interp", "needed", "warnings")

    def __init__(self, path: str, machine: str, bits: int, endian: str, type: str, static: bool,  # noqa: A002
                 stripped: bool, size: int, strippable_bytes: int = 0, interp: str | None = None,
                 needed: list[str] | None = None, warnings: list[str] | None = None) -> None:
        self.path = path
        self.machine = machine        # e_machine, e.g. EM_X86_64
        self.bits = bits              # 32 or 64
        self.endian = endian          # little | big
        self.type = type              # ET_EXEC | ET_DYN | ...
        self.static = static
        self.stripped = stripped
        self.size = size
        self.strippable_bytes = strippable_bytes
        self.interp = interp
        self.needed: list[str] = needed if needed is not None else []
        self.warnings: list[str] = warnings if warnings is not None else []

    @property
    def description(self) -> str:
        """E.g. ``x86-64 64-bit little-endian``."""
        return _describe(self.machine, self.bits, self.endian)


def _describe(machine: str, bits: int, endian: str) -> str:
    return f"{_MACHINE_NAMES.get(machine, machine)} {bits}-bit {endian}-endian"


def machine_name(number: int) -> str:
    """``EM_X86_64`` for 62; rare machines are looked up in pyelftools' table (if installed), else the number."""
    name = MACHINES.get(number)
    if name is not None:
        return name
    try:
        from elftools.elf.enums import ENUM_E_MACHINE
    except ImportError:  # pragma: no cover - pyelftools is a dependency, but only needed here
        return str(number)
    names = [k for k, v in ENUM_E_MACHINE.items() if v == number and k != "_default_"]
    return names[-1] if names else str(number)   # the last, as pyelftools' own decoding picks


def expected_for(platform: "Platform") -> tuple[str, int, str]:
    """(e_machine, bits, endian) an ELF for *platform* must have."""
    exp = ARCHES.get(platform.architecture)
    if exp is None:
        raise BuildError(f"no ELF check known for platform {platform}",
                         hint=f"supported architectures: {', '.join(sorted(ARCHES))}")
    return exp


def check_binary(path: "os.PathLike[str] | str", platform: "Platform | str") -> ElfInfo:
    """Inspect *path* and refuse it unless it is a static ELF executable for *platform*."""
    return check_bytes(read_binary(path), platform, path)


def check_bytes(data: bytes, platform: "Platform | str", path: "os.PathLike[str] | str") -> ElfInfo:
    """:func:`check_binary` for a file already read into *data* (*path* names it in messages)."""
    from ..oci import Platform
    plat = Platform.parse(platform) if isinstance(platform, str) else platform
    machine, bits, endian = expected_for(plat)
    info = inspect_bytes(data, path)
    if (info.machine, info.bits, info.endian) != (machine, bits, endian):
        raise BuildError(f"{path} is built for {info.description}, but platform {plat} needs "
                         f"{_describe(machine, bits, endian)}",
                         hint=f"build it for {plat} (or pick the platform it was built for)")
    if not info.static:
        libs = ", ".join(info.needed) if info.needed else "no libraries listed"
        interp = f"; interpreter {info.interp}" if info.interp else ""
        raise BuildError(f"{path} is dynamically linked (needs {libs}{interp}); an empty image has no libraries",
                         hint="link it statically: -static (C), CGO_ENABLED=0 (Go), "
                              "-C target-feature=+crt-static (Rust)")
    return info


def read_binary(path: "os.PathLike[str] | str") -> bytes:
    """The bytes of *path*; :class:`BuildError` when it is missing, unreadable or not ELF (read no further)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
            if magic != b"\x7fELF":
                _not_elf(_name(path), magic)
            f.seek(0)
            return f.read()
    except FileNotFoundError:
        raise BuildError(f"binary {_name(path)} does not exist") from None
    except OSError as e:
        raise BuildError(f"cannot read binary {_name(path)}: {e.strerror}") from None


def inspect_binary(path: "os.PathLike[str] | str") -> ElfInfo:
    """Read an ELF file's identity, linking and strip status; :class:`BuildError` for non-ELF or broken files."""
    return inspect_bytes(read_binary(path), path)


def inspect_bytes(data: bytes, path: "os.PathLike[str] | str" = "<binary>") -> ElfInfo:
    """:func:`inspect_binary` for bytes in memory (*path* names the file in messages)."""
    p = _name(path)
    try:
        return _inspect(data, p)
    except BuildError:
        raise
    except Exception as e:  # noqa: BLE001 - a safety net: hostile input must never escape as a crash
        raise BuildError(f"{p} is not a valid ELF file: {type(e).__name__}: {str(e)[:200]}",
                         hint=_CORRUPT) from None


def _name(path: "os.PathLike[str] | str") -> str:
    """How messages name the file (as before: the path, normalised like :class:`pathlib.Path`)."""
    import os
    s = os.fspath(path)
    if isinstance(s, bytes):
        s = os.fsdecode(s)
    if s.startswith("<"):
        return s
    from pathlib import PurePath
    return str(PurePath(s))


def _not_elf(p: str, magic: bytes) -> "NoReturn":
    raise BuildError(f"{p} is not an ELF executable (bad magic {magic!r})",
                     hint="kilobox packages compiled Linux executables (static ELF)")


class _Elf:
    """The parsed headers of one ELF file (bounds already checked)."""

    __slots__ = ("data", "size", "bits", "little", "bo", "etype", "machine", "phoff", "phnum", "shoff",
                 "shnum", "shstrndx", "segments", "sections")

    def __init__(self, data: bytes, p: str) -> None:
        self.data = data
        self.size = size = len(data)
        if size < 4 or data[:4] != b"\x7fELF":
            _not_elf(p, data[:4])
        if size < 52:
            raise BuildError(f"{p} is a truncated ELF file ({size} bytes)", hint=_CORRUPT)
        ei_class, ei_data = data[4], data[5]
        if ei_class not in (1, 2) or ei_data not in (1, 2):
            raise BuildError(f"{p} has an invalid ELF identification (class {ei_class}, data {ei_data})",
                             hint="the file is corrupt")
        self.bits = 64 if ei_class == 2 else 32
        self.little = ei_data == 1
        self.bo = bo = "<" if self.little else ">"
        self.etype, self.machine = struct.unpack_from(bo + "HH", data, 16)
        if self.bits == 64:
            if size < 64:
                raise BuildError(f"{p} is a truncated ELF file ({size} bytes)", hint=_CORRUPT)
            phoff, shoff = struct.unpack_from(bo + "QQ", data, 32)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(bo + "HHHHH", data, 54)
            want_ph, want_sh = 56, 64
        else:
            phoff, shoff = struct.unpack_from(bo + "II", data, 28)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(bo + "HHHHH", data, 42)
            want_ph, want_sh = 32, 40
        if phnum:
            if phentsize != want_ph or phnum > _MAX_SEGMENTS or phoff + phnum * phentsize > size:
                raise BuildError(f"{p} has an invalid program header table ({phnum} entries at offset {phoff})",
                                 hint=_CORRUPT)
        if shoff:
            if shentsize != want_sh or shnum > _MAX_SECTIONS or shoff + max(shnum, 1) * shentsize > size:
                raise BuildError(f"{p} has an invalid section header table ({shnum} entries at offset {shoff})",
                                 hint=_CORRUPT)
            if shnum and shstrndx >= shnum and shstrndx != 0xFFFF:
                raise BuildError(f"{p} has an invalid section name table index {shstrndx}",
                                 hint="the file is corrupt")
        else:
            shnum = 0
        self.phoff, self.phnum, self.shoff, self.shnum, self.shstrndx = phoff, phnum, shoff, shnum, shstrndx
        # (p_type, p_offset, p_vaddr, p_filesz) of every program header
        if self.bits == 64:
            seg = struct.Struct(bo + "I4xQQ8xQ16x")  # type [flags] offset vaddr [paddr] filesz [memsz align]
        else:
            seg = struct.Struct(bo + "III4xI12x")   # type offset vaddr [paddr] filesz [memsz flags align]
        self.segments = [seg.unpack_from(data, phoff + i * want_ph) for i in range(phnum)]
        self.sections = self._sections(p, want_sh) if shoff else []

    def _sections(self, p: str, entsize: int) -> list[tuple[int, int, int, int]]:
        """(sh_name, sh_type, sh_offset, sh_size) of every section header, extended numbering resolved."""
        data, bo, shoff = self.data, self.bo, self.shoff
        if self.bits == 64:
            sh = struct.Struct(bo + "II16xQQII16x")   # name type [flags addr] offset size link info [align entsize]
        else:
            sh = struct.Struct(bo + "II8xIIII8x")
        first = sh.unpack_from(data, shoff)
        count = self.shnum
        if count == 0:  # extended numbering: the count lives in section 0's sh_size
            count = first[3]
            if count > _MAX_SECTIONS or shoff + count * entsize > self.size:
                raise BuildError(f"{p} has too many segments or sections", hint="the file is corrupt")
        strndx = self.shstrndx
        if strndx == 0xFFFF:  # SHN_XINDEX: the index lives in section 0's sh_link
            strndx = first[4]
        if count and strndx >= count:
            raise BuildError(f"{p} has an invalid section name table index {strndx}", hint="the file is corrupt")
        self.shnum, self.shstrndx = count, strndx
        return [sh.unpack_from(data, shoff + i * entsize)[:4] for i in range(count)]

    def section_name(self, name_offset: int) -> str:
        """A section's name from the section name table (unreadable names are empty)."""
        if not self.sections:
            return ""
        start = self.sections[self.shstrndx][2] + name_offset
        if start >= self.size:
            return ""
        end = self.data.find(b"\0", start, start + _MAX_STR)
        if end < 0:
            return ""
        return self.data[start:end].decode("utf-8", errors="replace")

    def cstr(self, offset: int, limit: int) -> str:
        """A NUL-terminated string at *offset*, at most *limit* bytes; :class:`BuildError` outside the file."""
        if offset < 0 or offset >= self.size:
            raise BuildError(f"string at offset {offset} lies outside the file", hint="the file is corrupt")
        raw = self.data[offset:offset + max(0, min(limit, _MAX_STR))]
        return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")

    def vaddr_to_offset(self, vaddr: int) -> int | None:
        for ptype, off, va, filesz in self.segments:
            if ptype == _PT_LOAD and va <= vaddr < va + filesz:
                return vaddr - va + off
        return None


def _inspect(data: bytes, p: str) -> ElfInfo:
    elf = _Elf(data, p)
    size = elf.size
    etype = _TYPES.get(elf.etype, str(elf.etype))
    if etype not in ("ET_EXEC", "ET_DYN"):
        raise BuildError(f"{p} is an ELF {etype} file, not an executable",
                         hint="link it into an executable")
    interp: str | None = None
    dyn: tuple[int, int] | None = None
    for ptype, off, _vaddr, filesz in elf.segments:
        if ptype == _PT_INTERP:
            interp = elf.cstr(off, min(filesz, _MAX_STR)) or "(empty)"
        elif ptype == _PT_DYNAMIC:
            dyn = (off, filesz)
    needed = _needed(elf, *dyn) if dyn is not None else []

    strippable = 0
    has_symbols = False
    for name_off, sh_type, _off, sh_size in elf.sections:
        name = elf.section_name(name_off)
        if name in _STRIPPABLE or name.startswith(_STRIPPABLE_PREFIXES):
            if name != ".comment":
                has_symbols = True
            if sh_type != _SHT_NOBITS:
                strippable += min(sh_size, size)
    stripped = not has_symbols
    info = ElfInfo(path=p, machine=machine_name(elf.machine), bits=elf.bits,
                   endian="little" if elf.little else "big", type=etype,
                   static=interp is None and not needed, stripped=stripped, size=size,
                   strippable_bytes=strippable if not stripped else 0, interp=interp, needed=needed)
    if not stripped:
        base = p.rsplit("/", 1)[-1]
        info.warnings.append(f"{base} is not stripped: stripping would save {strippable} bytes "
                             f"({strippable * 100 // max(size, 1)}% of {size})")
    return info


def _needed(elf: _Elf, dyn_off: int, dyn_size: int) -> list[str]:
    """DT_NEEDED names, read directly from the PT_DYNAMIC segment (bounded)."""
    if dyn_off + dyn_size > elf.size:
        raise BuildError("the dynamic segment lies outside the file", hint="the file is corrupt")
    entsize = 16 if elf.bits == 64 else 8
    ent = struct.Struct(elf.bo + ("qQ" if elf.bits == 64 else "iI"))
    count = min(dyn_size, _MAX_DYN_TAGS * entsize) // entsize
    needed_offsets: list[int] = []
    strtab_addr = None
    for i in range(count):
        tag, val = ent.unpack_from(elf.data, dyn_off + i * entsize)
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            needed_offsets.append(val)
        elif tag == _DT_STRTAB:  # a virtual address
            strtab_addr = val
    if not needed_offsets:
        return []
    strtab_off = elf.vaddr_to_offset(strtab_addr) if strtab_addr is not None else None
    names = []
    for off in needed_offsets[:_MAX_NEEDED]:
        if strtab_off is None:
            names.append(f"<library #{len(names) + 1}>")
            continue
        names.append(elf.cstr(strtab_off + off, 256))
    return names


__all__ = ["ElfInfo", "check_binary", "check_bytes", "inspect_binary", "inspect_bytes", "read_binary",
           "expected_for", "machine_name", "ARCHES", "MACHINES"]
