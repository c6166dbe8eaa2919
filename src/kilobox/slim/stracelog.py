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
# the result at the END of a line: "= 3</etc/x>", "= -1 ENOENT (No such file…)", "= 6 /* 5307 in strace's PID NS */"
_RESULT = re.compile(r"\)\s+=\s+(-?\d+|\?|0x[0-9a-fA-F]+)(?:<.*?>)?(?:\s+/\*\s*(\d+) in strace's PID NS\s*\*/)?"
                     r"(?:\s+([A-Z][A-Z0-9_]+)(?:\s+\([^()]*\))?)?(?:\s+\([^()]*\))?\s*$")
_STR = re.compile(r'"((?:[^"\\]|\\.)*)"')
_FD_PATH = re.compile(r"^(?:-?\d+|AT_FDCWD)<(.*)>$")
_CWD = re.compile(r"^AT_FDCWD<(.*)>$")
_EXIT = re.compile(r"^\+\+\+ (?:exited with (\d+)|killed by (SIG[A-Z0-9]+))")
MAX_LINE = 64 * 1024
_FORKS = ("clone(", "clone3(", "fork(", "vfork(")


@dataclass
class Trace:
    """Paths seen, by outcome."""

    found: set[str] = field(default_factory=set)       # existed (succeeded, or failed other than ENOENT)
    missing: set[str] = field(default_factory=set)     # ENOENT / ENOTDIR
    executed: set[str] = field(default_factory=set)    # successful execve targets
    pids: set[int] = field(default_factory=set)
    exits: dict[int, str] = field(default_factory=dict)  # pid → "0", "1", "SIGKILL"…
    first_pid: int | None = None                         # the process strace attached to first
    lines: int = 0                                       # lines that were understood

    @property
    def exit_code(self) -> str | None:
        """How the first process ended ("0", "1", "SIGTERM"…), if it did."""
        return self.exits.get(self.first_pid) if self.first_pid is not None else None


def _unescape(s: str) -> str:
    """strace's C-style escapes (``\\303\\251``, ``\\n``, ``\\"``) back to a str (undecodable bytes kept
    as surrogates, so the path maps to the same bytes on disk)."""
    try:
        raw = s.encode("utf-8", "surrogateescape").decode("unicode_escape").encode("latin-1")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return s
    return raw.decode("utf-8", "surrogateescape")


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


def parse(lines: Iterable[str], initial_cwd: str = "/", *, after_exec: bool = False) -> Trace:
    """Parse strace lines (``-f -y -s 4096``; ``-o`` output has ``PID `` prefixes).

    With *after_exec*, everything before the first successful ``execve`` (except failed execs) is
    ignored: that is the runtime's own init (runc/crun) waiting to exec the container's entrypoint,
    which may show host paths. Child pids are matched to their parents through ``--decode-pids=pidns`` comments
    (``= 6 /* 5307 in strace's PID NS */``), so a container's pid namespace does not break the
    working-directory bookkeeping; ``AT_FDCWD</dir>`` (``-y``) refreshes a process's cwd too.
    """
    trace = Trace()
    cwd: dict[int, str] = {}
    pending: dict[int, str] = {}
    started = not after_exec
    for raw in lines:
        raw = raw.rstrip("\n")
        if len(raw) > MAX_LINE:
            continue
        m = _LINE.match(raw)
        if not m:
            continue
        pid, rest = int(m.group(1)), m.group(2)
        if trace.first_pid is None:
            trace.first_pid = pid
        if pid not in trace.pids:
            trace.pids.add(pid)
            # a child may speak before its parent's fork returns: inherit from the forks in flight
            forking = {cwd.get(p, initial_cwd) for p, call in pending.items() if call.startswith(_FORKS)}
            if pid not in cwd and len(forking) == 1:
                cwd[pid] = forking.pop()
        if rest.startswith("+++"):
            em = _EXIT.match(rest)
            if em:
                trace.exits[pid] = em.group(1) or em.group(2)
            continue
        if rest.startswith("---"):
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
        rm = _RESULT.search(rest)
        if not rm:
            continue
        call, tail = cm.group(1), cm.group(2)
        ret, host_pid, err = rm.group(1), rm.group(2), rm.group(3) or ""
        if not started:
            if call not in ("execve", "execveat"):
                continue
            started = ret == "0"    # a failed exec of the entrypoint is kept: it names what is missing
        trace.lines += 1
        spec = _PATH_CALLS.get(call)
        args = _split_args(tail) if (spec or call == "fchdir") else []
        if spec and spec[0][1] == 0 and args:
            cm2 = _CWD.match(args[0])
            if cm2:
                cwd[pid] = normalize(_unescape(cm2.group(1)))
        here = cwd.get(pid, initial_cwd)
        if call in ("clone", "clone3", "fork", "vfork"):
            child = host_pid or ret
            if child.isdigit() and int(child) > 0:
                cwd.setdefault(int(child), here)     # never undo a chdir the child already made
            continue
        if call == "getcwd" and ret.isdigit() and int(ret) > 0:
            got = _string(_split_args(tail)[0]) if tail else None
            if got and got.startswith("/"):
                cwd[pid] = normalize(got)
            continue
        if call == "fchdir" and ret == "0":
            fdm = _FD_PATH.match(args[0]) if args else None
            if fdm:
                cwd[pid] = normalize(_unescape(fdm.group(1)))
            continue
        if not spec:
            continue
        for path_idx, dirfd_idx in spec:
            if path_idx >= len(args):
                continue
            p = _string(args[path_idx])
            if p is None or p == "" or "\0" in p:
                continue
            if not p.startswith("/"):
                base = here
                if dirfd_idx is not None and dirfd_idx < len(args):
                    fdm = _FD_PATH.match(args[dirfd_idx])
                    if fdm:
                        base = _unescape(fdm.group(1))
                    elif not args[dirfd_idx].startswith("AT_FDCWD"):
                        continue            # a dirfd strace could not decode: the path is unknowable
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
