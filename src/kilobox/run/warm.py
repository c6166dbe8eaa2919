"""A foreground run from the ``kilobox`` command itself: the warm path, with os-level imports only.

:func:`kilobox.run.lifecycle.run_foreground` forks a child that builds the
container's mount namespace and execs the runtime — right for a library call
in a long-lived process. The ``kilobox run`` process does nothing after the
container but exit, so :func:`run_here` builds the private mount namespace in
the process itself (:func:`kilobox.run.ns.enter`: no fork, libc through
``_ctypes``), starts the runtime with :func:`os.posix_spawn` (vfork + exec: the
interpreter's memory is not copied; exec errors come back as OSError), then
behaves exactly as ``run_foreground``: state dir entry (``ps``, ``stop``),
SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 forwarded to the runtime, a
second SIGINT/SIGTERM kills the container, the exit code passed through.

The helpers here (:data:`FORWARD`, :func:`exit_code`, :func:`mounts_for`,
:func:`record`, :func:`forwarder`) are shared with :mod:`.lifecycle`.
"""

from __future__ import annotations

import os
import time

from _signal import SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2
from _signal import signal as _set_handler

from ..errors import RunError
from . import state as st
from .ns import DEFAULT_SIGNALS, Mounts, enter
from .runtimes import find_runtime, launch, runtime_root

#: signals a foreground kilobox passes on to its container
FORWARD = (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2)


def exit_code(status: int) -> int:
    """A wait status as a shell reports it (128+N when killed by signal N)."""
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def mounts_for(meta: dict[str, object], cdir: str, fix: str) -> Mounts:
    """The mounts container *cdir* of bundle *meta* needs (the --read-write upper goes in *cdir*)."""
    overlay = meta.get("overlay", "")
    scratch = ""
    if overlay == "tmpfs":
        scratch = os.path.join(meta["dir"], "scratch")
    elif overlay == "disk":
        scratch = cdir
        for d in ("upper", "work"):
            os.makedirs(os.path.join(cdir, d), exist_ok=True)
    return Mounts(rootfs=meta["rootfs"], target=os.path.join(meta["dir"], "rootfs"), overlay=overlay,
                  scratch=scratch, mkdirs=tuple(meta.get("mkdirs") or ()), cgroup_fix=fix)


def record(cdir: str, meta: dict[str, object], name: str, ln: object, *, detached: bool, remove: bool,
           engine: str = "", ports: list[str] | tuple[str, ...] = ()) -> dict[str, object]:
    """The container's state document (``_dir``: its directory, not written); *ports*: the published
    ones as ``ps`` shows them (``127.0.0.1:5683->5683/udp``)."""
    return {"name": name, "image": meta.get("image", ""), "digest": meta.get("digest", ""),
            "bundle": meta.get("dir", ""), "argv": meta.get("argv", []),
            "runtime": ln.runtime.name if ln else engine,              # type: ignore[attr-defined]
            "runtime_path": ln.runtime.path if ln else "",            # type: ignore[attr-defined]
            "runtime_root": ln.argv[2] if ln else "",                 # type: ignore[attr-defined]
            "created": time.time(), "detached": detached, "rm": remove, "engine": engine,
            "runtime_pid": None, "runtime_started": None, "ports": list(ports), "_dir": cdir}


def set_runtime_pid(doc: dict[str, object], pid: int) -> None:
    """Record the runtime's pid (and start time: a recycled pid is never taken for it)."""
    doc["runtime_pid"] = pid
    doc["runtime_started"] = st.start_time(pid)
    st.write_json(os.path.join(doc["_dir"], "state.json"), {k: v for k, v in doc.items() if k[0] != "_"})


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def forwarder(doc: dict[str, object], child: list[int]):  # noqa: ANN201 - a signal handler
    """A handler passing signals on to the runtime ``child[0]``; a second SIGINT/SIGTERM
    SIGKILLs the container's init (one that installs no handler ignores them, as in Docker)."""
    hits = [0]

    def forward(signum: int, _frame: object) -> None:
        if not child[0]:
            return
        if signum in (SIGINT, SIGTERM):
            hits[0] += 1
            if hits[0] > 1:
                init = st.init_pid(doc)
                if init:
                    _kill(init, SIGKILL)
                return
        _kill(child[0], signum)
    return forward


def run_here(meta: dict[str, object], *, name: str | None = None, remove: bool = False,
             runtime: str | None = None) -> tuple[str, int]:
    """Run bundle *meta* in the foreground of this process; returns (name, exit code).

    Leaves this process in the container's mount namespace: call it only from a
    process that exits afterwards (the ``kilobox run`` command).
    """
    name, cdir = st.claim(name)
    try:
        rt = find_runtime(runtime)
        root = runtime_root(st.state_root(), rt)
        os.makedirs(root, mode=0o700, exist_ok=True)
        ln = launch(rt, bundle=meta["dir"], cid=name, pid_file=os.path.join(cdir, "pid"), root=root,
                    has_limits=bool(meta.get("has_limits")))
        enter(mounts_for(meta, cdir, ln.cgroup_fix))
        doc = record(cdir, meta, name, ln, detached=False, remove=remove)
    except BaseException:
        st.remove_dir(cdir)
        raise
    child = [0]
    handler = forwarder(doc, child)
    old = [(s, _set_handler(s, handler)) for s in FORWARD]
    try:
        try:
            child[0] = os.posix_spawn(ln.argv[0], ln.argv, os.environ, setsigmask=(), setsigdef=DEFAULT_SIGNALS)
        except OSError as e:
            st.remove_dir(cdir)
            raise RunError(f"cannot start {ln.argv[0]}: {e.strerror or e}") from None
        set_runtime_pid(doc, child[0])
        _, status = os.waitpid(child[0], 0)
        code = exit_code(status)
    finally:
        for s, h in old:
            _set_handler(s, h)
    if remove:
        st.discard(cdir)
    else:
        st.write_exit(cdir, code)
    return name, code
