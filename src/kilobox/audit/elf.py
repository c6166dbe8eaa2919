"""A small, bounded ELF reader for the audit: what an executable is and what it pulls in.

It reads only what the audit needs, from any object with ``pread(offset, n)``:
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
from typing import Protocol

ELF_MAGIC = b"\x7fELF"
GO_BUILDINFO_MAGIC = b"\xff Go buildinf:"

_MAX_PHDRS = 512
_MAX_SHDRS = 8192
_MAX_DYN = 8192
_MAX_STR = 4096
_MAX_NEEDED = 512
_MAX_RUST_ZLIB = 8 << 20
_MAX_GO_MODINFO = 4 << 20

#: sections that hold the strings program signatures are made of
_STRING_SECTIONS = {b".rodata", b".dynstr", b".data", b".data.rel.ro", b".rdata", b".strtab"}

MACHINES = {3: "386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm", 62: "amd64",
            183: "arm64", 243: "riscv64", 258: "loong64"}


class Readable(Protocol):
    size: int

    def pread(self, offset: int, n: int) -> bytes: ...


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
    cls, data = head[4], head[5]
    if cls not in (1, 2) or data not in (1, 2):
        return None
    e = "<" if data == 1 else ">"
    etype, machine = struct.unpack_from(e + "HH", head, 16)
    has_interp = False
    try:
        phoff, phentsize, phnum = _ph_geometry(head, cls, e)
        for i in range(min(phnum, _MAX_PHDRS)):
            off = phoff + i * phentsize
            if off + 4 > len(head):
                break
            if struct.unpack_from(e + "I", head, off)[0] == 3:
                has_interp = True
    except struct.error:
        pass
    return (32 if cls == 1 else 64, MACHINES.get(machine, str(machine)), _etype(etype), has_interp)


def _etype(v: int) -> str:
    return {1: "rel", 2: "exec", 3: "dyn", 4: "core"}.get(v, "?")


def _ph_geometry(head: bytes, cls: int, e: str) -> tuple[int, int, int]:
    if cls == 2:
        phoff = struct.unpack_from(e + "Q", head, 32)[0]
        phentsize, phnum = struct.unpack_from(e + "HH", head, 54)
    else:
        phoff = struct.unpack_from(e + "I", head, 28)[0]
        phentsize, phnum = struct.unpack_from(e + "HH", head, 42)
    return phoff, phentsize, phnum


def _cstr(r: Readable, off: int, limit: int = _MAX_STR) -> str:
    if off < 0 or off >= r.size:
        return ""
    return r.pread(off, limit).split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_elf(r: Readable, go_offset: int = -1) -> ElfFacts:
    """Facts of the ELF file behind *r*; *go_offset*: where the Go build info magic was seen."""
    f = ElfFacts()
    head = r.pread(0, 64)
    info = header_info(head + b"\0" * max(0, 64 - len(head)))
    if info is None:
        f.truncated = True
        return f
    f.bits, f.machine, f.etype, _ = info
    cls, e = head[4], "<" if head[5] == 1 else ">"
    try:
        _parse_segments(r, f, head, cls, e)
        _parse_sections(r, f, head, cls, e)
    except (struct.error, ValueError, IndexError):
        f.truncated = True
    if go_offset >= 0:
        try:
            _parse_go(r, f, go_offset, e)
        except (struct.error, ValueError, IndexError):
            f.truncated = True
    return f


def _parse_segments(r: Readable, f: ElfFacts, head: bytes, cls: int, e: str) -> None:
    phoff, phentsize, phnum = _ph_geometry(head, cls, e)
    if phnum == 0 or phentsize < (56 if cls == 2 else 32) or phnum > _MAX_PHDRS:
        return
    raw = r.pread(phoff, phnum * phentsize)
    if len(raw) < phnum * phentsize:
        f.truncated = True
        return
    loads: list[tuple[int, int, int]] = []
    dyn = None
    for i in range(phnum):
        o = i * phentsize
        if cls == 2:
            ptype, _flags, off, vaddr, _pa, filesz = struct.unpack_from(e + "IIQQQQ", raw, o)
        else:
            ptype, off, vaddr, _pa, filesz = struct.unpack_from(e + "IIIII", raw, o)
        if ptype == 1:
            loads.append((vaddr, off, filesz))
        elif ptype == 3:
            f.interp = _cstr(r, off, min(filesz, _MAX_STR))
        elif ptype == 2:
            dyn = (off, filesz)
    f.loads = loads
    if dyn is None:
        return
    off, size = dyn
    entsize = 16 if cls == 2 else 8
    data = r.pread(off, min(size, _MAX_DYN * entsize))
    fmt = e + ("qQ" if cls == 2 else "iI")
    needed, runpath = [], []
    strtab = None
    for i in range(len(data) // entsize):
        tag, val = struct.unpack_from(fmt, data, i * entsize)
        if tag == 0:
            break
        if tag == 1 and len(needed) < _MAX_NEEDED:
            needed.append(val)
        elif tag in (15, 29):       # DT_RPATH, DT_RUNPATH
            runpath.append(val)
        elif tag == 5:
            strtab = val
        elif tag == 0x6FFFFFFB and val & 0x08000000:  # DT_FLAGS_1 & DF_1_PIE
            f.pie = True
    if strtab is None:
        return
    base = _vaddr_to_offset(loads, strtab)
    if base is None:
        f.truncated = True
        return
    f.needed = [n for n in (_cstr(r, base + v, 256) for v in needed) if n]
    for v in runpath:
        f.runpath.extend(p for p in _cstr(r, base + v).split(":") if p)


def _vaddr_to_offset(loads: list[tuple[int, int, int]], vaddr: int) -> int | None:
    for va, off, sz in loads:
        if va <= vaddr < va + sz:
            return vaddr - va + off
    return None


def _parse_sections(r: Readable, f: ElfFacts, head: bytes, cls: int, e: str) -> None:
    if cls == 2:
        shoff = struct.unpack_from(e + "Q", head, 40)[0]
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", head, 58)
    else:
        shoff = struct.unpack_from(e + "I", head, 32)[0]
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", head, 46)
    if not shoff or not shnum or shnum > _MAX_SHDRS or shentsize < (64 if cls == 2 else 40):
        return
    if shoff + shnum * shentsize > r.size or shstrndx >= shnum:
        f.truncated = True
        return
    raw = r.pread(shoff, shnum * shentsize)
    f.sections = True

    def sec(i: int) -> tuple[int, int, int]:
        o = i * shentsize
        if cls == 2:
            name, _t, _fl, _a, off, size = struct.unpack_from(e + "IIQQQQ", raw, o)
        else:
            name, _t, _fl, _a, off, size = struct.unpack_from(e + "IIIIII", raw, o)
        return name, off, size

    _n, stroff, strsize = sec(shstrndx)
    if stroff + strsize > r.size:
        f.truncated = True
        return
    names = r.pread(stroff, min(strsize, 1 << 20))
    for i in range(shnum):
        name_off, off, size = sec(i)
        if name_off >= len(names):
            continue
        name = names[name_off:names.find(b"\0", name_off)]
        if name in _STRING_SECTIONS and 0 < size and off + size <= r.size:
            f.string_regions.append((off, size))
        if name == b".dep-v0" and 0 < size <= _MAX_RUST_ZLIB and off + size <= r.size:
            f.rust_deps = _rust_deps(r.pread(off, size))


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


def _parse_go(r: Readable, f: ElfFacts, off: int, e: str) -> None:
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
        loads = f.loads

        def gostr(ptr_addr: int) -> bytes:
            o = _vaddr_to_offset(loads, ptr_addr)
            if o is None:
                return b""
            hdr2 = r.pread(o, 2 * ptrsize)
            if len(hdr2) < 2 * ptrsize:
                return b""
            p, ln = struct.unpack_from(fmt, hdr2, 0)[0], struct.unpack_from(fmt, hdr2, ptrsize)[0]
            so = _vaddr_to_offset(loads, p)
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
