"""Parse ``strace -f -y`` output into the set of paths a container touched.

Handles per-process working directories (``chdir``/``fchdir``, inherited on
``clone``/``fork``), ``*at`` calls relative to a directory fd (decoded by
``-y`` as ``3</etc/nginx>``), ``AT_FDCWD``, unfinished/resumed lines, and
keeps apart paths that existed from those that failed with ``ENOENT`` (what a
slim image may be missing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from .rootpath import normalize

# syscall → index of the path argument(s), and whether arg 0 is a dirfd for it
_PATH_CALLS: dict[str, tuple[tuple[int, int | None], ...]] = {
    "open": ((0, None),), "creat": ((0, None),), "stat": ((0, None),), "lstat": ((0, None),),
    "access": ((0, None),), "readlink": ((0, None),), "execve": ((0, None),), "chdir": ((0, None),),
    "truncate": ((0, None),), "statfs": ((0, None),), "getxattr": ((0, None),), "lgetxattr": ((0, None),),
    "listxattr": ((0, None),), "llistxattr": ((0, None),), "opendir": ((0, None),), "uselib": ((0, None),),
    "openat": ((1, 0),), "openat2": ((1, 0),), "newfstatat": ((1, 0),), "fstatat64": ((1, 0),),
    "statx": ((1, 0),), "faccessat": ((1, 0),), "faccessat2": ((1, 0),), "readlinkat": ((1, 0),),
    "execveat": ((1, 0),), "name_to_handle_at": ((1, 0),), "utimensat": ((1, 0),),
    "stat64": ((0, None),), "lstat64": ((0, None),), "fstatat": ((1, 0),),
    "rename": ((0, None), (1, None)), "link": ((0, None), (1, None)), "symlink": ((1, None),),
    "unlink": ((0, None),), "rmdir": ((0, None),), "mkdir": ((0, None),), "chmod": ((0, None),),
    "chown": ((0, None),), "lchown": ((0, None),), "mkdirat": ((1, 0),), "unlinkat": ((1, 0),),
    "fchmodat": ((1, 0),), "fchownat": ((1, 0),), "mknod": ((0, None),), "mknodat": ((1, 0),),
}
#: calls whose success only proves the path's *parent* matters (they create it)
_CREATES = {"mkdir", "mkdirat", "creat", "rename", "link", "symlink", "mknod", "mknodat"}

_LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*)$")
_CALL = re.compile(r"^([a-z_0-9]+)\((.*)$")
_RESULT = re.compile(r"\)\s+=\s+(-?\d+|\?|0x[0-9a-f]+)(?:<[^>]*>)?(?:\s+([A-Z][A-Z0-9_]+))?")
_STR = re.compile(r'"((?:[^"\\]|\\.)*)"')
_FD_PATH = re.compile(r"^(?:-?\d+|AT_FDCWD)<(.*)>$")


@dataclass
class Trace:
    """Paths seen, by outcome."""

    found: set[str] = field(default_factory=set)       # existed (call succeeded, or failed for other reasons than ENOENT)
    missing: set[str] = field(default_factory=set)     # ENOENT / ENOTDIR
    executed: set[str] = field(default_factory=set)    # successful execve targets
    pids: set[int] = field(default_factory=set)


def _unescape(s: str) -> str:
    return bytes(s, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def _split_args(argstr: str) -> list[str]:
    """Split the top level of an strace argument list."""
    out, depth, cur, in_str, esc = [], 0, [], False, False
    for ch in argstr:
        if in_str:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
            cur.append(ch)
        elif ch in "[{(<":
            depth += 1
            cur.append(ch)
        elif ch in "]})>":
            if depth == 0 and ch == ")":
                break
            depth -= 1
            cur.append(ch)
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur).strip())
    return out


def _string(arg: str) -> str | None:
    m = _STR.match(arg.strip())
    if not m:
        return None
    return _unescape(m.group(1))


def parse(lines: Iterable[str], initial_cwd: str = "/") -> Trace:
    """Parse strace lines (``-f -y -s 4096``; ``-o`` output has ``PID `` prefixes)."""
    trace = Trace()
    cwd: dict[int, str] = {}
    pending: dict[int, str] = {}
    for raw in lines:
        raw = raw.rstrip("\n")
        m = _LINE.match(raw)
        if not m:
            continue
        pid, rest = int(m.group(1)), m.group(2)
        trace.pids.add(pid)
        if rest.startswith("+++") or rest.startswith("---"):
            continue
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest[: -len("<unfinished ...>")]
            continue
        if rest.startswith("<..."):
            prev = pending.pop(pid, None)
            if prev is None:
                continue
            rest = prev + rest.split("resumed>", 1)[-1]
        cm = _CALL.match(rest)
        if not cm:
            continue
        call, tail = cm.group(1), cm.group(2)
        rm = _RESULT.search(rest)
        if not rm:
            continue
        ret, err = rm.group(1), rm.group(2) or ""
        here = cwd.get(pid, initial_cwd)
        if call in ("clone", "clone3", "fork", "vfork") and ret.lstrip("-").isdigit() and int(ret) > 0:
            cwd[int(ret)] = here
            continue
        if call == "fchdir" and ret == "0":
            fdm = _FD_PATH.match(_split_args(tail)[0]) if tail else None
            if fdm:
                cwd[pid] = fdm.group(1)
            continue
        spec = _PATH_CALLS.get(call)
        if not spec:
            continue
        args = _split_args(tail)
        for path_idx, dirfd_idx in spec:
            if path_idx >= len(args):
                continue
            p = _string(args[path_idx])
            if p is None or p == "":
                continue
            if not p.startswith("/"):
                base = here
                if dirfd_idx is None:
                    pass
                elif dirfd_idx < len(args):
                    fdm = _FD_PATH.match(args[dirfd_idx])
                    if fdm:
                        base = fdm.group(1)
                p = base.rstrip("/") + "/" + p
            p = normalize(p)
            if call in _CREATES:
                parent = p.rsplit("/", 1)[0] or "/"
                trace.found.add(parent)
                continue
            if err in ("ENOENT", "ENOTDIR"):
                trace.missing.add(p)
            else:
                trace.found.add(p)
                if call in ("execve", "execveat") and ret == "0":
                    trace.executed.add(p)
                if call == "chdir" and ret == "0":
                    cwd[pid] = p
    trace.missing -= trace.found
    return trace
