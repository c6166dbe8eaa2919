"""ELF checks for every binary that goes into an image.

:func:`inspect_binary` reads what matters (machine, class, endianness, static or not,
stripped or not) and :func:`check_binary` refuses what cannot run in an empty image:

- a dynamic binary (``PT_INTERP`` or ``DT_NEEDED``): the refusal names the libraries;
- a machine / class / endianness that does not match the platform: names both;
- anything that is not an ELF executable (or is truncated / hostile).

An unstripped binary is accepted with a warning saying how many bytes stripping would save.
The headers are sanity-checked against the file size before pyelftools (imported lazily)
walks them, and every pyelftools failure becomes a :class:`BuildError`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import BuildError
from ..oci import Platform

_MAX_SECTIONS = 4096
_MAX_SEGMENTS = 1024
_MAX_DYN_TAGS = 8192
_MAX_STR = 4096

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

# e_machine -> readable name (for messages)
_MACHINE_NAMES = {"EM_X86_64": "x86-64", "EM_AARCH64": "aarch64", "EM_ARM": "arm", "EM_RISCV": "riscv",
                  "EM_386": "i386", "EM_PPC64": "ppc64", "EM_S390": "s390", "EM_MIPS": "mips",
                  "EM_LOONGARCH": "loongarch"}
_STRIPPABLE_PREFIXES = (".debug", ".zdebug")
_STRIPPABLE = {".symtab", ".strtab", ".comment"}


@dataclass
class ElfInfo:
    """What kilobox knows about one ELF binary."""

    path: str
    machine: str                 # e_machine, e.g. EM_X86_64
    bits: int                    # 32 or 64
    endian: str                  # little | big
    type: str                    # ET_EXEC | ET_DYN | ...
    static: bool
    stripped: bool
    size: int
    strippable_bytes: int = 0
    interp: str | None = None
    needed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        """E.g. ``x86-64 64-bit little-endian``."""
        return _describe(self.machine, self.bits, self.endian)


def _describe(machine: str, bits: int, endian: str) -> str:
    return f"{_MACHINE_NAMES.get(machine, machine)} {bits}-bit {endian}-endian"


def expected_for(platform: Platform) -> tuple[str, int, str]:
    """(e_machine, bits, endian) an ELF for *platform* must have."""
    exp = ARCHES.get(platform.architecture)
    if exp is None:
        raise BuildError(f"no ELF check known for platform {platform}",
                         hint=f"supported architectures: {', '.join(sorted(ARCHES))}")
    return exp


def check_binary(path: Path | str, platform: Platform | str) -> ElfInfo:
    """Inspect *path* and refuse it unless it is a static ELF executable for *platform*."""
    plat = Platform.parse(platform) if isinstance(platform, str) else platform
    machine, bits, endian = expected_for(plat)
    info = inspect_binary(path)
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


def inspect_binary(path: Path | str) -> ElfInfo:
    """Read an ELF file's identity, linking and strip status; :class:`BuildError` for non-ELF or broken files."""
    p = Path(path)
    try:
        f = open(p, "rb")
    except FileNotFoundError:
        raise BuildError(f"binary {p} does not exist") from None
    except OSError as e:
        raise BuildError(f"cannot read binary {p}: {e.strerror}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        _precheck(f, size, p)
        try:
            return _inspect(f, size, p)
        except BuildError:
            raise
        except Exception as e:  # pyelftools raises many kinds on hostile input  # noqa: BLE001
            raise BuildError(f"{p} is not a valid ELF file: {type(e).__name__}: {str(e)[:200]}",
                             hint="the file is truncated or corrupt") from None


def _precheck(f: BinaryIO, size: int, p: Path) -> None:
    """Cheap header sanity checks, so pyelftools never walks absurd tables."""
    ident = f.read(64)
    f.seek(0)
    if len(ident) < 4 or ident[:4] != b"\x7fELF":
        raise BuildError(f"{p} is not an ELF executable (bad magic {ident[:4]!r})",
                         hint="kilobox packages compiled Linux executables (static ELF)")
    if len(ident) < 52:
        raise BuildError(f"{p} is a truncated ELF file ({size} bytes)", hint="the file is truncated or corrupt")
    ei_class, ei_data = ident[4], ident[5]
    if ei_class not in (1, 2) or ei_data not in (1, 2):
        raise BuildError(f"{p} has an invalid ELF identification (class {ei_class}, data {ei_data})",
                         hint="the file is corrupt")
    bo = "<" if ei_data == 1 else ">"
    if ei_class == 2:
        if len(ident) < 64:
            raise BuildError(f"{p} is a truncated ELF file ({size} bytes)", hint="the file is truncated or corrupt")
        phoff, shoff = struct.unpack_from(bo + "QQ", ident, 32)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(bo + "HHHHH", ident, 54)
        want_ph, want_sh = 56, 64
    else:
        phoff, shoff = struct.unpack_from(bo + "II", ident, 28)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(bo + "HHHHH", ident, 42)
        want_ph, want_sh = 32, 40
    if phnum:
        if phentsize != want_ph or phnum > _MAX_SEGMENTS or phoff + phnum * phentsize > size:
            raise BuildError(f"{p} has an invalid program header table ({phnum} entries at offset {phoff})",
                             hint="the file is truncated or corrupt")
    if shoff:
        if shentsize != want_sh or shnum > _MAX_SECTIONS or shoff + max(shnum, 1) * shentsize > size:
            raise BuildError(f"{p} has an invalid section header table ({shnum} entries at offset {shoff})",
                             hint="the file is truncated or corrupt")
        if shnum and shstrndx >= shnum and shstrndx != 0xFFFF:
            raise BuildError(f"{p} has an invalid section name table index {shstrndx}",
                             hint="the file is corrupt")


def _inspect(f: BinaryIO, size: int, p: Path) -> ElfInfo:
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(f)
    hdr = elf.header
    etype = str(hdr["e_type"])
    if etype not in ("ET_EXEC", "ET_DYN"):
        raise BuildError(f"{p} is an ELF {etype} file, not an executable",
                         hint="link it into an executable")
    if elf.num_segments() > _MAX_SEGMENTS or elf.num_sections() > _MAX_SECTIONS:
        raise BuildError(f"{p} has too many segments or sections", hint="the file is corrupt")
    interp: str | None = None
    dyn_off = dyn_size = None
    for seg in elf.iter_segments():
        ptype = seg["p_type"]
        if ptype == "PT_INTERP":
            interp = _read_cstr(f, seg["p_offset"], min(seg["p_filesz"], _MAX_STR), size) or "(empty)"
        elif ptype == "PT_DYNAMIC":
            dyn_off, dyn_size = seg["p_offset"], seg["p_filesz"]
    needed = _needed(elf, f, size, dyn_off, dyn_size) if dyn_off is not None else []

    strippable = 0
    has_symbols = False
    if hdr["e_shoff"]:
        for sec in elf.iter_sections():
            name = sec.name
            if name in _STRIPPABLE or name.startswith(_STRIPPABLE_PREFIXES):
                if name != ".comment":
                    has_symbols = True
                if sec["sh_type"] != "SHT_NOBITS":
                    strippable += min(int(sec["sh_size"]), size)
    stripped = not has_symbols
    info = ElfInfo(path=str(p), machine=str(hdr["e_machine"]), bits=elf.elfclass,
                   endian="little" if elf.little_endian else "big", type=etype,
                   static=interp is None and not needed, stripped=stripped, size=size,
                   strippable_bytes=strippable if not stripped else 0, interp=interp, needed=needed)
    if not stripped:
        info.warnings.append(f"{p.name} is not stripped: stripping would save {strippable} bytes "
                             f"({strippable * 100 // max(size, 1)}% of {size})")
    return info


def _read_cstr(f: BinaryIO, offset: int, limit: int, size: int) -> str:
    if offset < 0 or offset >= size:
        raise BuildError(f"string at offset {offset} lies outside the file", hint="the file is corrupt")
    f.seek(offset)
    raw = f.read(max(0, min(limit, _MAX_STR)))
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _needed(elf, f: BinaryIO, size: int, dyn_off: int, dyn_size: int) -> list[str]:  # noqa: ANN001
    """DT_NEEDED names, read directly from the PT_DYNAMIC segment (bounded)."""
    if dyn_off + dyn_size > size:
        raise BuildError("the dynamic segment lies outside the file", hint="the file is corrupt")
    entsize = 16 if elf.elfclass == 64 else 8
    fmt = ("<" if elf.little_endian else ">") + ("qQ" if elf.elfclass == 64 else "iI")
    f.seek(dyn_off)
    data = f.read(min(dyn_size, _MAX_DYN_TAGS * entsize))
    needed_offsets: list[int] = []
    strtab_addr = None
    for i in range(len(data) // entsize):
        tag, val = struct.unpack_from(fmt, data, i * entsize)
        if tag == 0:  # DT_NULL
            break
        if tag == 1:  # DT_NEEDED
            needed_offsets.append(val)
        elif tag == 5:  # DT_STRTAB (a virtual address)
            strtab_addr = val
    if not needed_offsets:
        return []
    strtab_off = _vaddr_to_offset(elf, strtab_addr) if strtab_addr is not None else None
    names = []
    for off in needed_offsets[:256]:
        if strtab_off is None:
            names.append(f"<library #{len(names) + 1}>")
            continue
        names.append(_read_cstr(f, strtab_off + off, 256, size))
    return names


def _vaddr_to_offset(elf, vaddr: int) -> int | None:  # noqa: ANN001
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_filesz"]:
            return vaddr - seg["p_vaddr"] + seg["p_offset"]
    return None


__all__ = ["ElfInfo", "check_binary", "inspect_binary", "expected_for", "ARCHES"]
