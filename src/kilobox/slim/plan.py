"""The set of paths a slim image keeps, each with why.

Every path is resolved inside the fat rootfs (:mod:`.rootpath`): the symlinks met
on the way are kept too, executables and shared libraries bring their ELF
closure (:class:`.elfdeps.Closure`), directories are kept as directories only
(never their contents, unless those are kept on their own account).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from . import rootpath
from .elfdeps import Closure, matches
from .rules import RUNTIME_DIRS, under
from .stracelog import Trace

#: category → how the report says it
CATEGORIES = {
    "runtime": "seen at run time",
    "elf": "ELF dependency",
    "config": "named by the image config",
    "rule": "rule",
    "include": "--include",
    "auto-fix": "--auto-fix (missing in the slim run)",
    "symlink": "symlink on the way",
}
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Keep:
    category: str
    reason: str


class Plan:
    """Accumulates kept paths (first reason wins) over one fat rootfs."""

    def __init__(self, root: Path, env: list[str] | None = None, skip: Iterable[str] = ()) -> None:
        self.root = root
        self.kept: dict[str, Keep] = {}
        self.closure = Closure(root, env)
        self.skip = tuple(RUNTIME_DIRS) + tuple(skip)   # contents never kept (mounted at run time)

    def add(self, path: str, category: str, reason: str, *, elf: bool = False) -> str | None:
        """Keep *path* (and its symlink chain); with *elf*, its ELF closure. Returns the resolved path."""
        path = rootpath.normalize(path)
        if path != "/" and under(path, self.skip) and path not in self.skip:
            return None
        resolved, links = rootpath.resolve(self.root, path)
        if resolved is None and links and under(self._target(links[-1]), self.skip):
            for link in links:           # /etc/mtab -> /proc/self/mounts: the runtime provides the rest
                self.kept.setdefault(link, Keep(category, reason) if link == path else
                                     Keep("symlink", f"symlink on the way to {path}"))
            return links[-1]
        if resolved is None or resolved == "/":
            return None
        if under(resolved, self.skip) and resolved not in self.skip:
            return None
        for link in links:
            keep = Keep(category, reason) if link == path else Keep("symlink", f"symlink on the way to {path}")
            self.kept.setdefault(link, keep)
        self.kept.setdefault(resolved, Keep(category, reason))
        if elf and rootpath.host_path(self.root, resolved).is_file():
            self._closure(resolved, reason)
        return resolved

    def _target(self, link: str) -> str:
        try:
            target = os.readlink(rootpath.host_path(self.root, link))
        except OSError:
            return ""
        return rootpath.normalize(target if target.startswith("/") else rootpath.dirname(link) + "/" + target)

    def _closure(self, path: str, reason: str) -> None:
        self.closure.add_executable(path, reason)
        for p, why in self.closure.kept.items():
            if p not in self.kept:
                self.kept[p] = Keep("symlink" if why.startswith("symlink on the way") else "elf", why)

    def add_trace(self, trace: Trace, skip: Iterable[str] = ()) -> None:
        """Everything a trace saw that exists in the fat rootfs; the closure of what was executed."""
        skip = tuple(skip)
        for p in sorted(trace.executed):
            self.add(p, "runtime", "executed at run time", elf=True)
        for p in sorted(trace.found):
            if skip and under(p, skip):
                continue
            self.add(p, "runtime", "seen at run time", elf=".so" in p.rsplit("/", 1)[-1])

    def add_include(self, patterns: list[str]) -> int:
        """Every path of the fat rootfs matching a glob (``**`` spans directories); returns how many."""
        n = 0
        for pattern in patterns:
            for path in iter_glob(self.root, pattern):
                host = rootpath.host_path(self.root, rootpath.resolve(self.root, path)[0] or path)
                is_elf = host.is_file() and _is_elf(host)
                if self.add(path, "include", f"--include {pattern}", elf=is_elf):
                    n += 1
        return n

    def exclude(self, patterns: list[str]) -> list[str]:
        """Drop kept paths matching a glob; returns them."""
        if not patterns:
            return []
        gone = [p for p in self.kept if matches(p, patterns)]
        for p in gone:
            del self.kept[p]
        return sorted(gone)

    def has_dynamic_elf(self) -> bool:
        return any(k.reason.startswith("ELF interpreter") for k in self.kept.values())


def _is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def glob_base(pattern: str) -> str:
    """The directory part of *pattern* before its first wildcard (``/usr/share/zoneinfo/**`` → that dir)."""
    parts = []
    for part in rootpath.normalize(pattern).split("/")[1:]:
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return "/" + "/".join(parts)


def iter_glob(root: Path, pattern: str) -> Iterator[str]:
    """Image paths under *root* matching *pattern*, as the user spelled them (through symlinked dirs)."""
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    base = glob_base(pattern)
    resolved, _ = rootpath.resolve(root, base)
    if resolved is None:
        return
    host = rootpath.host_path(root, resolved)
    if base == pattern.rstrip("/") or not host.is_dir() or host.is_symlink():
        if matches(base, [pattern]) or base == rootpath.normalize(pattern):
            yield base
        return
    if matches(base, [pattern]):
        yield base
    for dirpath, dirnames, filenames in os.walk(host):       # never follows symlinks below base
        rel = os.path.relpath(dirpath, host)
        prefix = base.rstrip("/") + ("" if rel == "." else "/" + rel)
        for name in sorted(dirnames + filenames):
            p = f"{prefix}/{name}"
            if matches(p, [pattern]):
                yield p
        dirnames.sort()


def tree_size(root: Path) -> tuple[int, int]:
    """(non-directory entries, bytes of regular files) of a rootfs directory."""
    files = size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            files += 1
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
    return files, size


__all__ = ["Plan", "Keep", "CATEGORIES", "iter_glob", "glob_base", "tree_size"]
