"""ELF checks for every binary that goes into an image.

:func:`inspect_binary` reads what matters (machine, class, endianness, static or not,
stripped or not) and :func:`check_binary` refuses what cannot run in an empty image:

- a dynamic binary (``PT_INTERP`` or ``DT_NEEDED``): the refusal names the libraries;
- a machine / class / endianness that does not match the platform: names both;
- anything that is not an ELF executable (or is truncated / hostile).

An unstripped binary is accepted with a warning saying how many bytes stripping would save.

The headers are read by :mod:`kilobox.elf` (the one ELF reader; no pyelftools on this path:
importing it costs more than a whole build). Every table is bounds-checked against the
file size before it is walked, every count is capped, and any parsing failure (an
:class:`~kilobox.elf.ElfError`) becomes a :class:`BuildError`. :func:`check_bytes` /
:func:`inspect_bytes` work on bytes already in memory, so a build reads each binary once.
"""

from __future__ import annotations

from ..elf import (DT_NEEDED, MACHINES, MAGIC, PT_DYNAMIC, PT_INTERP, SHT_NOBITS, TYPES, ElfError,
                   ElfFile)
from ..errors import BuildError
from .._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from typing import NoReturn

    from ..oci import Platform

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

# e_machine -> readable name (for messages)
_MACHINE_NAMES = {"EM_X86_64": "x86-64", "EM_AARCH64": "aarch64", "EM_ARM": "arm", "EM_RISCV": "riscv",
                  "EM_386": "i386", "EM_PPC64": "ppc64", "EM_S390": "s390", "EM_MIPS": "mips",
                  "EM_LOONGARCH": "loongarch"}
_STRIPPABLE_PREFIXES = (".debug", ".zdebug")
_STRIPPABLE = {".symtab", ".strtab", ".comment"}

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


def _inspect(data: bytes, p: str) -> ElfInfo:
    if data[:4] != MAGIC:
        _not_elf(p, data[:4])
    try:
        elf = ElfFile(data, p)
        elf.segments()
        elf.sections()
    except ElfError as e:
        raise BuildError(e.message, hint=e.hint) from None
    size = elf.size
    etype = TYPES.get(elf.header.etype, str(elf.header.etype))
    if etype not in ("ET_EXEC", "ET_DYN"):
        raise BuildError(f"{p} is an ELF {etype} file, not an executable",
                         hint="link it into an executable")
    try:
        interp, needed = _linking(elf)
    except ElfError as e:
        raise BuildError(e.message, hint=e.hint) from None

    strippable = 0
    has_symbols = False
    for sec in elf.sections():
        name = elf.section_name(sec.name)
        if name in _STRIPPABLE or name.startswith(_STRIPPABLE_PREFIXES):
            if name != ".comment":
                has_symbols = True
            if sec.type != SHT_NOBITS:
                strippable += min(sec.size, size)
    stripped = not has_symbols
    info = ElfInfo(path=p, machine=machine_name(elf.header.machine), bits=elf.bits,
                   endian="little" if elf.little else "big", type=etype,
                   static=interp is None and not needed, stripped=stripped, size=size,
                   strippable_bytes=strippable if not stripped else 0, interp=interp, needed=needed)
    if not stripped:
        base = p.rsplit("/", 1)[-1]
        info.warnings.append(f"{base} is not stripped: stripping would save {strippable} bytes "
                             f"({strippable * 100 // max(size, 1)}% of {size})")
    return info


def _linking(elf: ElfFile) -> tuple[str | None, list[str]]:
    """(PT_INTERP, DT_NEEDED names); a DT_NEEDED without a mapped DT_STRTAB is named by its number."""
    interp: str | None = None
    dyn: tuple[int, int] | None = None
    for ptype, off, _vaddr, filesz in elf.segments():
        if ptype == PT_INTERP:
            interp = elf.string(off, min(filesz, _MAX_STR), strict=True) or "(empty)"
        elif ptype == PT_DYNAMIC:
            dyn = (off, filesz)
    if dyn is None:
        return interp, []
    d = elf.dynamic(*dyn)
    offsets = d.values(DT_NEEDED)
    if not offsets:
        return interp, []
    strtab_addr = d.strtab
    strtab_off = elf.vaddr_to_offset(strtab_addr) if strtab_addr is not None else None
    names: list[str] = []
    for off in offsets[:_MAX_NEEDED]:
        if strtab_off is None:
            names.append(f"<library #{len(names) + 1}>")
            continue
        names.append(elf.string(strtab_off + off, 256, strict=True))
    return interp, names


__all__ = ["ElfInfo", "check_binary", "check_bytes", "inspect_binary", "inspect_bytes", "read_binary",
           "expected_for", "machine_name", "ARCHES", "MACHINES"]
