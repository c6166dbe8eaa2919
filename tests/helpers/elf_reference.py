"""The pyelftools reading of an ELF file, as kilobox.build.elf did before it parsed headers itself.

Only for tests: the struct-based reader in :mod:`kilobox.build.elf` must agree with it on every
file pyelftools reads. ``reference(data)`` returns the fields :class:`~kilobox.build.elf.ElfInfo`
compares, or raises (any exception) where the old code gave a ``BuildError``.
"""

from __future__ import annotations

import io
import struct

_MAX_SECTIONS = 4096
_MAX_SEGMENTS = 1024
_STRIPPABLE = {".symtab", ".strtab", ".comment"}


class Refused(Exception):
    """The reference refused the file."""


def reference(data: bytes) -> tuple:
    """(machine, bits, endian, type, static, stripped, strippable_bytes, interp, needed)."""
    from elftools.elf.elffile import ELFFile

    size = len(data)
    _precheck(data, size)
    f = io.BytesIO(data)
    elf = ELFFile(f)
    hdr = elf.header
    etype = str(hdr["e_type"])
    if etype not in ("ET_EXEC", "ET_DYN"):
        raise Refused("not an executable")
    if elf.num_segments() > _MAX_SEGMENTS or elf.num_sections() > _MAX_SECTIONS:
        raise Refused("too many")
    interp = None
    dyn = None
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_INTERP":
            interp = _cstr(data, seg["p_offset"], min(seg["p_filesz"], 4096)) or "(empty)"
        elif seg["p_type"] == "PT_DYNAMIC":
            dyn = (seg["p_offset"], seg["p_filesz"])
    needed = _needed(elf, data, *dyn) if dyn else []
    strippable, has_symbols = 0, False
    if hdr["e_shoff"]:
        for sec in elf.iter_sections():
            name = sec.name
            if name in _STRIPPABLE or name.startswith((".debug", ".zdebug")):
                if name != ".comment":
                    has_symbols = True
                if sec["sh_type"] != "SHT_NOBITS":
                    strippable += min(int(sec["sh_size"]), size)
    return (str(hdr["e_machine"]), elf.elfclass, "little" if elf.little_endian else "big", etype,
            interp is None and not needed, not has_symbols, strippable if has_symbols else 0, interp, needed)


def _precheck(ident: bytes, size: int) -> None:
    if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        raise Refused("ident")
    bo = "<" if ident[5] == 1 else ">"
    if ident[4] == 2:
        if len(ident) < 64:
            raise Refused("short")
        phoff, shoff = struct.unpack_from(bo + "QQ", ident, 32)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(bo + "HHHHH", ident, 54)
        want_ph, want_sh = 56, 64
    else:
        phoff, shoff = struct.unpack_from(bo + "II", ident, 28)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(bo + "HHHHH", ident, 42)
        want_ph, want_sh = 32, 40
    if phnum and (phentsize != want_ph or phnum > _MAX_SEGMENTS or phoff + phnum * phentsize > size):
        raise Refused("phdrs")
    if shoff:
        if shentsize != want_sh or shnum > _MAX_SECTIONS or shoff + max(shnum, 1) * shentsize > size:
            raise Refused("shdrs")
        if shnum and shstrndx >= shnum and shstrndx != 0xFFFF:
            raise Refused("shstrndx")


def _cstr(data: bytes, offset: int, limit: int) -> str:
    if offset < 0 or offset >= len(data):
        raise Refused("string outside")
    return data[offset:offset + max(0, min(limit, 4096))].split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _needed(elf, data: bytes, off: int, size: int) -> list[str]:  # noqa: ANN001
    if off + size > len(data):
        raise Refused("dynamic outside")
    entsize = 16 if elf.elfclass == 64 else 8
    fmt = ("<" if elf.little_endian else ">") + ("qQ" if elf.elfclass == 64 else "iI")
    raw = data[off:off + min(size, 8192 * entsize)]
    offs, strtab = [], None
    for i in range(len(raw) // entsize):
        tag, val = struct.unpack_from(fmt, raw, i * entsize)
        if tag == 0:
            break
        if tag == 1:
            offs.append(val)
        elif tag == 5:
            strtab = val
    if not offs:
        return []
    base = None
    if strtab is not None:
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= strtab < seg["p_vaddr"] + seg["p_filesz"]:
                base = strtab - seg["p_vaddr"] + seg["p_offset"]
                break
    names: list[str] = []
    for o in offs[:256]:
        names.append(f"<library #{len(names) + 1}>" if base is None else _cstr(data, base + o, 256))
    return names
