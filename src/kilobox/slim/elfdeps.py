"""Static analysis: the ELF dependency closure of executables inside a rootfs.

Follows PT_INTERP, DT_NEEDED with DT_RPATH / DT_RUNPATH (``$ORIGIN``, ``$LIB``,
``$PLATFORM``), ``LD_LIBRARY_PATH`` from the image's ENV, ``/etc/ld.so.conf``
(with ``include`` globs) and the default directories, and ``#!`` interpreter
lines of scripts. Every symlink met on the way is kept too.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..elf import (DT_NEEDED, DT_RPATH, DT_RUNPATH, MACHINES, MAGIC, MAX_STR, PT_DYNAMIC, PT_INTERP, ElfError,
                   ElfFile, FileSource)
from . import rootpath

_DEFAULT_DIRS = ["/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib"]
_MULTIARCH = {
    ("EM_X86_64", 64): ["x86_64-linux-gnu"], ("EM_AARCH64", 64): ["aarch64-linux-gnu"],
    ("EM_ARM", 32): ["arm-linux-gnueabihf", "arm-linux-gnueabi"], ("EM_386", 32): ["i386-linux-gnu"],
    ("EM_RISCV", 64): ["riscv64-linux-gnu"], ("EM_PPC64", 64): ["powerpc64le-linux-gnu"],
    ("EM_S390", 64): ["s390x-linux-gnu"],
}


@dataclass
class ElfDeps:
    """What one ELF file needs."""

    machine: str = ""
    bits: int = 0
    interp: str = ""
    needed: list[str] = field(default_factory=list)
    rpath: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)


_MAX_PHDRS = 512
_MAX_DYN = 8192


def read_elf(path: Path) -> ElfDeps | None:
    """The dependency info of *path*, or None when it is not a (readable) ELF file.

    A small bounded read through :mod:`kilobox.elf` (program headers and the dynamic segment only):
    every offset and count is checked against the file; a malformed file yields an empty (or partial)
    :class:`ElfDeps`, never an error.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head != MAGIC:
                return None
            try:
                return _parse(FileSource(f, os.fstat(f.fileno()).st_size))
            except (ElfError, OSError):
                return ElfDeps()
    except OSError:
        return None


def _parse(src: FileSource) -> ElfDeps:
    elf = ElfFile(src, "<elf>")              # ElfError (-> empty ElfDeps) for a bad or short header
    info = ElfDeps(machine=MACHINES.get(elf.header.machine, str(elf.header.machine)), bits=elf.bits)
    try:
        segments = elf.segments(exact=False, max_count=_MAX_PHDRS)
    except ElfError:
        return info
    dyn = None
    for ptype, off, _vaddr, filesz in segments:
        if ptype == PT_INTERP:
            info.interp = elf.string(off, min(filesz, MAX_STR), errors="surrogateescape")
        elif ptype == PT_DYNAMIC:
            dyn = (off, filesz)
    if dyn is None:
        return info
    d = elf.dynamic(*dyn, strict=False, max_tags=_MAX_DYN)
    strtab = d.strtab
    if strtab is None:
        return info
    base = elf.vaddr_to_offset(strtab)
    if base is None:
        return info

    def s(v: int) -> str:
        return elf.string(base + v, errors="surrogateescape")

    info.needed = [n for n in (s(v) for v in d.values(DT_NEEDED)[:512]) if n and "\0" not in n]
    for v in d.values(DT_RPATH)[:64]:
        info.rpath.extend(p for p in s(v).split(":") if p)
    for v in d.values(DT_RUNPATH)[:64]:
        info.runpath.extend(p for p in s(v).split(":") if p)
    return info


def ld_so_conf_dirs(root: Path, conf: str = "/etc/ld.so.conf", _seen: set[str] | None = None) -> list[str]:
    """Library directories listed by ld.so.conf (following ``include`` globs) inside *root*."""
    seen = _seen if _seen is not None else set()
    if conf in seen:
        return []
    seen.add(conf)
    resolved, _ = rootpath.resolve(root, conf)
    if resolved is None:
        return []
    try:
        text = rootpath.host_path(root, resolved).read_text(errors="replace")
    except OSError:
        return []
    out: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            for pattern in line.split()[1:]:
                if not pattern.startswith("/"):
                    pattern = rootpath.dirname(conf) + "/" + pattern
                base = str(root)
                for hit in sorted(glob.glob(str(rootpath.host_path(root, pattern)))):
                    out.extend(ld_so_conf_dirs(root, "/" + os.path.relpath(hit, base), seen))
        else:
            out.extend(d for d in line.replace(",", " ").split() if d.startswith("/"))
    return out


def _expand(entry: str, origin: str, bits: int) -> str:
    lib = "lib64" if bits == 64 else "lib"
    for token, value in (("$ORIGIN", origin), ("${ORIGIN}", origin), ("$LIB", lib), ("${LIB}", lib),
                         ("$PLATFORM", ""), ("${PLATFORM}", "")):
        entry = entry.replace(token, value)
    return entry


class Closure:
    """Accumulates the files a set of executables needs, with the reason for each."""

    def __init__(self, root: Path, env: list[str] | None = None) -> None:
        self.root = root
        self.kept: dict[str, str] = {}       # image path → reason
        self.missing: dict[str, str] = {}    # what could not be found → who needed it
        self._conf = ld_so_conf_dirs(root)
        self._elf: dict[str, ElfDeps | None] = {}
        self._ld_library_path: list[str] = []
        self._path = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for item in env or []:
            k, _, v = item.partition("=")
            if k == "LD_LIBRARY_PATH":
                self._ld_library_path = [p for p in v.split(":") if p]
            elif k == "PATH":
                self._path = [p for p in v.split(":") if p]

    def keep(self, path: str, reason: str) -> str | None:
        """Keep *path* (and its symlink chain and parents' links); return the resolved path."""
        resolved, links = rootpath.resolve(self.root, path)
        for link in links:
            self.kept.setdefault(link, f"symlink on the way to {path}")
        if resolved is not None:
            self.kept.setdefault(resolved, reason)
        return resolved

    def which(self, name: str) -> str | None:
        """An executable name resolved through the image's PATH."""
        if "/" in name:
            return name
        for d in self._path:
            cand = f"{d.rstrip('/')}/{name}"
            if rootpath.exists(self.root, cand):
                return cand
        return None

    def add_executable(self, path: str, reason: str) -> None:
        """Keep *path* and, transitively, its interpreter and libraries."""
        todo = [(path, reason)]
        visited: set[str] = set()
        while todo:
            p, why = todo.pop()
            resolved = self.keep(p, why)
            if resolved is None:
                self.missing.setdefault(p, why)
                continue
            if resolved in visited:
                continue
            visited.add(resolved)
            host = rootpath.host_path(self.root, resolved)
            if not host.is_file():
                continue
            info = self._read(resolved)
            if info is None:
                interp = _shebang(host)
                if interp:
                    todo.append((interp, f"script interpreter of {resolved}"))
                continue
            if info.interp:
                todo.append((info.interp, f"ELF interpreter of {resolved}"))
            origin = rootpath.dirname(resolved)
            for lib in info.needed:
                found = self._find_library(lib, info, origin)
                if found is None:
                    self.missing.setdefault(lib, f"DT_NEEDED of {resolved}")
                else:
                    todo.append((found, f"ELF dependency of {resolved} (DT_NEEDED {lib})"))

    def _read(self, resolved: str) -> ElfDeps | None:
        if resolved not in self._elf:
            self._elf[resolved] = read_elf(rootpath.host_path(self.root, resolved))
        return self._elf[resolved]

    def _find_library(self, name: str, info: ElfDeps, origin: str) -> str | None:
        if "/" in name:
            return name if rootpath.exists(self.root, name) else None
        dirs: list[str] = []
        if not info.runpath:
            dirs += [_expand(d, origin, info.bits) for d in info.rpath]
        dirs += self._ld_library_path
        dirs += [_expand(d, origin, info.bits) for d in info.runpath]
        dirs += self._conf
        for triplet in _MULTIARCH.get((info.machine, info.bits), []):
            dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
        dirs += _DEFAULT_DIRS
        for d in dirs:
            cand = f"{d.rstrip('/')}/{name}"
            resolved, _ = rootpath.resolve(self.root, cand)
            if resolved is None:
                continue
            lib = self._read(resolved)
            if lib is not None and (not lib.machine or (lib.machine == info.machine and lib.bits == info.bits)):
                return cand
        return None


def _shebang(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].strip().decode(errors="replace")
    return line.split()[0] if line else None


def matches(path: str, patterns: list[str]) -> bool:
    """Glob match where ``**`` spans directories (``/usr/share/zoneinfo/**``)."""
    for pat in patterns:
        if fnmatch.fnmatchcase(path, pat) or (pat.endswith("/**") and (path == pat[:-3] or path.startswith(pat[:-2]))):
            return True
    return False
