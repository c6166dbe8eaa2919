"""The audit's ELF analysis: what an executable is and what it pulls in.

The format is read by :mod:`kilobox.elf`; this module takes what the audit needs, from any object
with ``size`` and ``pread(offset, n)``:
class, machine, type, ``PT_INTERP``, ``DT_NEEDED`` / ``DT_RUNPATH``, section names,
Go build info (``\\xff Go buildinf:``) and Rust ``cargo auditable`` data (``.dep-v0``).
Every offset and count read from the file is checked against the file size and against
fixed caps; anything inconsistent makes :func:`parse_elf` return what it could read so far
(a hostile binary never raises, it just yields fewer facts).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Callable

from ..elf import (DT_NEEDED, DT_RPATH, DT_RUNPATH, MAGIC, PT_DYNAMIC, PT_INTERP, PT_LOAD, ElfError, ElfFile,
                   Header)

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from ..elf import Readable

ELF_MAGIC = MAGIC
GO_BUILDINFO_MAGIC = b"\xff Go buildinf:"

_MAX_PHDRS = 512
_MAX_SHDRS = 8192
_MAX_DYN = 8192
_MAX_STR = 4096
_MAX_NEEDED = 512
_MAX_RUST_ZLIB = 8 << 20
_MAX_GO_MODINFO = 4 << 20

#: sections that hold the strings program signatures are made of
_STRING_SECTIONS = {".rodata", ".dynstr", ".data", ".data.rel.ro", ".rdata", ".strtab"}

MACHINES = {3: "386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm", 62: "amd64",
            183: "arm64", 243: "riscv64", 258: "loong64"}


@dataclass
class BytesReader:
    """``pread`` over bytes (tests, small files)."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def pread(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0:
            return b""
        return self.data[offset:offset + n]


@dataclass
class ElfFacts:
    """What the audit knows about one ELF file."""

    bits: int = 0
    machine: str = ""
    etype: str = ""                 # exec | dyn | rel | core | ?
    interp: str = ""
    needed: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)
    pie: bool = False
    sections: bool = False          # section headers present
    go_version: str = ""
    go_modinfo: str = ""
    rust_deps: list[dict] = field(default_factory=list)
    string_regions: list[tuple[int, int]] = field(default_factory=list, repr=False)  # (offset, size) of string sections
    truncated: bool = False         # something did not add up
    loads: list[tuple[int, int, int]] = field(default_factory=list, repr=False)  # PT_LOAD (vaddr, offset, size)

    @property
    def dynamic(self) -> bool:
        return bool(self.interp or self.needed)

    @property
    def executable(self) -> bool:
        """An executable program (not a shared library or object)."""
        return self.etype == "exec" or (self.etype == "dyn" and (bool(self.interp) or self.pie))


def header_info(head: bytes) -> tuple[int, str, str, bool] | None:
    """(bits, machine, etype, has_interp_in_head) from the first bytes, or None when not ELF."""
    if len(head) < 52 or not head.startswith(ELF_MAGIC):
        return None
    try:
        h = Header(head.ljust(64, b"\0"), 64, "<head>")
    except ElfError:
        return None
    has_interp = False
    for i in range(min(h.phnum, _MAX_PHDRS)):
        off = h.phoff + i * h.phentsize
        if off + 4 > len(head):
            break
        if struct.unpack_from(h.bo + "I", head, off)[0] == PT_INTERP:
            has_interp = True
    return (h.bits, MACHINES.get(h.machine, str(h.machine)), _etype(h.etype), has_interp)


def _etype(v: int) -> str:
    return {1: "rel", 2: "exec", 3: "dyn", 4: "core"}.get(v, "?")


def parse_elf(r: Readable, go_offset: int = -1) -> ElfFacts:
    """Facts of the ELF file behind *r*; *go_offset*: where the Go build info magic was seen."""
    f = ElfFacts()
    head = r.pread(0, 64)
    info = header_info(head + b"\0" * max(0, 64 - len(head)))
    if info is None:
        f.truncated = True
        return f
    f.bits, f.machine, f.etype, _ = info
    elf: ElfFile | None = None
    try:
        elf = ElfFile(r, "<elf>")
        _parse_segments(elf, f)
        _parse_sections(elf, f)
    except (ElfError, struct.error, ValueError, IndexError):
        f.truncated = True
    if go_offset >= 0:
        try:
            _parse_go(r, f, go_offset, elf.vaddr_to_offset if elf is not None else lambda _v: None)
        except (struct.error, ValueError, IndexError):
            f.truncated = True
    return f


def _parse_segments(elf: ElfFile, f: ElfFacts) -> None:
    h = elf.header
    if h.phnum == 0 or h.phentsize < (56 if elf.bits == 64 else 32) or h.phnum > _MAX_PHDRS:
        return
    try:
        segments = elf.segments(exact=False, max_count=_MAX_PHDRS)
    except ElfError:
        f.truncated = True
        return
    f.loads = [(s.vaddr, s.offset, s.filesz) for s in segments if s.type == PT_LOAD]
    dyn = None
    for s in segments:
        if s.type == PT_INTERP:
            f.interp = elf.string(s.offset, min(s.filesz, _MAX_STR))
        elif s.type == PT_DYNAMIC:
            dyn = (s.offset, s.filesz)
    if dyn is None:
        return
    d = elf.dynamic(*dyn, strict=False, max_tags=_MAX_DYN)
    f.pie = d.pie
    strtab = d.strtab
    if strtab is None:
        return
    base = elf.vaddr_to_offset(strtab)
    if base is None:
        f.truncated = True
        return
    f.needed = [n for n in (elf.string(base + v, 256) for v in d.values(DT_NEEDED)[:_MAX_NEEDED]) if n]
    for v in d.values(DT_RPATH, DT_RUNPATH):
        f.runpath.extend(p for p in elf.string(base + v).split(":") if p)


def _parse_sections(elf: ElfFile, f: ElfFacts) -> None:
    h = elf.header
    shoff, shentsize, shnum, shstrndx = h.shoff, h.shentsize, h.shnum, h.shstrndx
    if not shoff or not shnum or shnum > _MAX_SHDRS or shentsize < (64 if elf.bits == 64 else 40):
        return
    if shoff + shnum * shentsize > elf.size or shstrndx >= shnum:
        f.truncated = True
        return
    sections = elf.sections(exact=False, max_count=_MAX_SHDRS)
    f.sections = True
    strtab = sections[shstrndx]
    if strtab.offset + strtab.size > elf.size:
        f.truncated = True
        return
    names_size = min(strtab.size, 1 << 20)
    for sec in sections:
        if sec.name >= names_size:
            continue
        name = elf.section_name(sec.name)
        if name in _STRING_SECTIONS and 0 < sec.size and sec.offset + sec.size <= elf.size:
            f.string_regions.append((sec.offset, sec.size))
        if name == ".dep-v0" and 0 < sec.size <= _MAX_RUST_ZLIB and sec.offset + sec.size <= elf.size:
            f.rust_deps = _rust_deps(elf.section_data(sec, _MAX_RUST_ZLIB))


def _rust_deps(blob: bytes) -> list[dict]:
    """The ``packages`` of a cargo-auditable ``.dep-v0`` section (zlib JSON), bounded."""
    try:
        d = zlib.decompressobj()
        raw = d.decompress(blob, 16 << 20)
        if d.unconsumed_tail:
            return []
        doc = json.loads(raw)
    except (zlib.error, ValueError, RecursionError):       # RecursionError: JSON nested too deep
        return []
    pkgs = doc.get("packages") if isinstance(doc, dict) else None
    out = []
    for p in pkgs if isinstance(pkgs, list) else []:
        if isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("version"), str):
            out.append({"name": p["name"][:200], "version": p["version"][:100],
                        "source": str(p.get("source", ""))[:100], "root": bool(p.get("root", False)),
                        "kind": str(p.get("kind", "runtime"))[:20]})
    return out[:10000]


def _uvarint(b: bytes, i: int) -> tuple[int, int]:
    x = shift = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ValueError("bad varint")
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        if c < 0x80:
            return x, i
        shift += 7


def _parse_go(r: Readable, f: ElfFacts, off: int, v2o: "Callable[[int], int | None]") -> None:
    hdr = r.pread(off, 32)
    if len(hdr) < 32 or not hdr.startswith(GO_BUILDINFO_MAGIC):
        return
    ptrsize, flags = hdr[14], hdr[15]
    if flags & 2:  # Go >= 1.18: inline varint-prefixed strings
        data = r.pread(off + 32, _MAX_GO_MODINFO)
        n, i = _uvarint(data, 0)
        f.go_version = data[i:i + n].decode("utf-8", "replace")[:64]
        i += n
        n, i = _uvarint(data, i)
        mod = data[i:i + n]
    else:           # older: two pointers to Go string headers
        if ptrsize not in (4, 8):
            return
        be = ">" if flags & 1 else "<"
        fmt = be + ("Q" if ptrsize == 8 else "I")

        def gostr(ptr_addr: int) -> bytes:
            o = v2o(ptr_addr)
            if o is None:
                return b""
            hdr2 = r.pread(o, 2 * ptrsize)
            if len(hdr2) < 2 * ptrsize:
                return b""
            p, ln = struct.unpack_from(fmt, hdr2, 0)[0], struct.unpack_from(fmt, hdr2, ptrsize)[0]
            so = v2o(p)
            return b"" if so is None or ln > _MAX_GO_MODINFO else r.pread(so, ln)

        f.go_version = gostr(struct.unpack_from(fmt, hdr, 16)[0]).decode("utf-8", "replace")[:64]
        mod = gostr(struct.unpack_from(fmt, hdr, 16 + ptrsize)[0])
    # modinfo is framed by 16-byte sentinels
    if len(mod) >= 33 and mod[-17:-16] == b"\n":
        mod = mod[16:-16]
    f.go_modinfo = mod.decode("utf-8", "replace")


def go_modules(modinfo: str) -> tuple[dict | None, list[dict]]:
    """(main module, dependencies) from Go ``debug/buildinfo`` text."""
    main = None
    deps: list[dict] = []
    for line in modinfo.splitlines()[:20000]:
        parts = line.split("\t")
        if parts[0] == "mod" and len(parts) >= 3:
            main = {"path": parts[1], "version": parts[2], "sum": parts[3] if len(parts) > 3 else ""}
        elif parts[0] == "dep" and len(parts) >= 3:
            deps.append({"path": parts[1], "version": parts[2], "sum": parts[3] if len(parts) > 3 else ""})
        elif parts[0] == "=>" and deps and len(parts) >= 3:
            deps[-1] = {"path": parts[1], "version": parts[2], "sum": parts[3] if len(parts) > 3 else ""}
    return main, deps


__all__ = ["ElfFacts", "parse_elf", "header_info", "BytesReader", "go_modules", "ELF_MAGIC",
           "GO_BUILDINFO_MAGIC", "MACHINES"]
