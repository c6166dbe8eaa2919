"""Container lifecycle: foreground and detached runs, stop, rm, logs, ps.

Foreground: kilobox forks the runtime (``crun run``: stdio inherited), forwards
SIGINT/SIGTERM/SIGHUP/SIGQUIT to it (the runtime forwards them to the
container; a second SIGINT/SIGTERM kills the container), waits, and returns
the container's exit code.

Detached (``-d``): a monitor process (double-forked, own session) starts the
runtime with stdout/stderr appended to the container's log, reports "started"
back through a pipe, then waits for the exit code and records it (and removes
the container with ``--rm``). The monitor is what survives kilobox, as
conmon does for podman; it reaps the runtime, so no zombies are left behind.

Restart policies (``--restart``, docker's): the monitor re-launches the runtime
on the same bundle and state dir after an exit the policy accepts, after a
back-off (100 ms, doubling, at most 1 min; back to 100 ms once a run lasted
10 s). Published ports stay bound meanwhile; the forwarder re-attaches to each
new run. ``stop``/``rm -f`` first leave a stop request in the state dir (the
monitor checks it before every restart and during the back-off), then signal
whichever run is current. The log is appended to by every run.
"""

from __future__ import annotations

import os
import time
from _signal import SIG_DFL, SIG_IGN, SIGHUP, SIGINT, SIGKILL, SIGTERM
from _signal import signal as _set_handler

from ..errors import NotFound, RunError
from . import state as st
from .ns import Mounts, read_all, spawn
from .runtimes import Launch, Runtime, delete_argv, find_runtime, launch, runtime_root
from .restart import (initial_backoff, check_restart, next_backoff, parse_restart,
                      restart_text, should_restart)
from .warm import FORWARD, exit_code as _exit_code, forwarder, mounts_for, record, set_runtime_pid

__all__ = ["FORWARD", "run_foreground", "start_detached", "stop", "remove", "logs", "ps", "parse_restart",
           "check_restart", "should_restart", "next_backoff"]


def _plan(meta: dict[str, object], name: str, cdir: str, runtime: str | None) -> tuple[Launch, Mounts]:
    rt = find_runtime(runtime)
    root = runtime_root(st.state_root(), rt)
    os.makedirs(root, mode=0o700, exist_ok=True)
    ln = launch(rt, bundle=meta["dir"], cid=name, pid_file=os.path.join(cdir, "pid"), root=root,
                has_limits=bool(meta.get("has_limits")))
    return ln, mounts_for(meta, cdir, ln.cgroup_fix)


def _record(cdir: str, meta: dict[str, object], name: str, ln: Launch, *, detached: bool, remove: bool,
            engine: str = "", write: bool = True, publish: object = ()) -> dict[str, object]:
    ports: list[str] = []
    if publish:
        from .publish import describe
        ports = [describe(p) for p in publish]  # type: ignore[attr-defined]
    doc = record(cdir, meta, name, ln, detached=detached, remove=remove, engine=engine, ports=ports)
    if write:
        st.write_json(os.path.join(cdir, "state.json"), {k: v for k, v in doc.items() if k[0] != "_"})
    return doc


def _set_runtime_pid(cdir: str, doc: dict[str, object], pid: int) -> None:
    set_runtime_pid(doc, pid)


def _forwarder(publish: object) -> object:
    """Bound host ports for ``--publish`` (None without any)."""
    if not publish:
        return None
    from .publish import Forwarder
    fwd = Forwarder(list(publish))  # type: ignore[call-overload]
    fwd.bind()
    return fwd


def run_foreground(meta: dict[str, object], *, name: str | None = None, remove: bool = False,
                   runtime: str | None = None, stdin: int = 0, stdout: int = 1, stderr: int = 2,
                   publish: object = ()) -> tuple[str, int]:
    """Run the bundle in the foreground; returns (name, the container's exit code)."""
    name, cdir = st.claim(name)
    try:
        ln, mounts = _plan(meta, name, cdir, runtime)
        doc = _record(cdir, meta, name, ln, detached=False, remove=remove, write=False, publish=publish)
        fwd = _forwarder(publish)
    except BaseException:
        st.remove_dir(cdir)
        raise
    child = [0]
    handler = forwarder(doc, child)
    old = {s: _set_handler(s, handler) for s in FORWARD}
    try:
        try:
            pid = child[0] = spawn(ln.argv, mounts, stdin=stdin, stdout=stdout, stderr=stderr)
        except BaseException:
            st.remove_dir(cdir)
            raise
        _set_runtime_pid(cdir, doc, pid)
        if fwd is not None:
            fwd.start(os.path.join(cdir, "pid"), pid)  # type: ignore[attr-defined]
        _, status = os.waitpid(pid, 0)
        code = _exit_code(status)
    finally:
        for s, h in old.items():
            _set_handler(s, h)
        if fwd is not None:
            fwd.close()  # type: ignore[attr-defined]
    if remove:
        st.remove_dir(cdir)
    else:
        st.write_exit(cdir, code)
    return name, code


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def start_detached(meta: dict[str, object], *, name: str | None = None, remove: bool = False,
                   runtime: str | None = None, timeout: float = 30.0, publish: object = (),
                   restart: str | None = None) -> str:
    """Start the bundle in the background under a monitor; returns the container's name.

    *restart*: ``no`` (default), ``on-failure[:MAX]``, ``always`` or ``unless-stopped``.
    """
    policy = check_restart(restart, detach=True, remove=remove, publish=publish)
    name, cdir = st.claim(name)
    try:
        ln, mounts = _plan(meta, name, cdir, runtime)
        doc = _record(cdir, meta, name, ln, detached=True, remove=remove, publish=publish, write=False)
        if policy[0] != "no":
            doc.update(restart=restart_text(policy), restart_count=0, last_exit=None)
        _save(doc)
        fwd = _forwarder(publish)      # bound here: a busy port fails this command, not the monitor
    except BaseException:
        st.remove_dir(cdir)
        raise
    r, w = os.pipe2(os.O_CLOEXEC)
    first = os.fork()
    if first == 0:  # intermediate: new session, fork the monitor, leave
        try:
            os.close(r)
            os.setsid()
            if os.fork() == 0:
                _monitor(ln, mounts, cdir, doc, w, remove, timeout, fwd, policy)
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(125)
    os.close(w)
    if fwd is not None:                    # the monitor owns the listening sockets now
        for sock, _port in fwd.listeners:  # type: ignore[attr-defined]
            sock.close()
    os.waitpid(first, 0)
    report = read_all(r).decode(errors="replace")
    kind, _, rest = report.partition(" ")
    if kind in ("started", "exited"):
        return name
    st.remove_dir(cdir)
    raise RunError(f"container {name} did not start: {rest.strip() or 'the monitor died'}",
                   hint="see the runtime's message above, or run it in the foreground")


def _save(doc: dict[str, object]) -> None:
    st.write_json(os.path.join(doc["_dir"], "state.json"), {k: v for k, v in doc.items() if k[0] != "_"})


def _monitor(ln: Launch, mounts: Mounts, cdir: str, doc: dict[str, object], w: int, remove: bool,
             timeout: float, fwd: object = None, policy: tuple[str, int] = ("no", 0)) -> None:
    """The detached container's keeper (never returns)."""
    code = 125
    try:
        for s in FORWARD:
            _set_handler(s, SIG_IGN if s in (SIGHUP, SIGINT) else SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(os.path.join(cdir, "log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            pid = spawn(ln.argv, mounts, stdin=null, stdout=log, stderr=log)
        except RunError as e:
            os.write(w, f"failed {e}".encode())
            os._exit(0)
        started = time.monotonic()
        if policy[0] != "no":   # ps tells "restarting" from "dead" by the monitor's liveness
            doc.update(monitor_pid=os.getpid(), monitor_started=st.start_time(os.getpid()))
        _set_runtime_pid(cdir, doc, pid)
        pidfile = os.path.join(cdir, "pid")
        if fwd is not None:
            fwd.start(pidfile, pid)  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout
        status = None
        while True:
            wpid, s = os.waitpid(pid, os.WNOHANG)
            if wpid:
                status = s
                break
            if st.read_int(pidfile):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.002)
        if status is not None and not os.path.exists(pidfile):
            code = _exit_code(status)
            tail = _tail(os.path.join(cdir, "log"))
            os.write(w, f"failed {tail or f'the runtime exited with {code}'}".encode())
            st.write_exit(cdir, code)
            os._exit(0)
        os.write(w, b"started" if status is None else b"exited")
        os.close(w)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(null, 2)
        if status is None:
            _, status = os.waitpid(pid, 0)
        code = _exit_code(status)
        if policy[0] != "no":
            code = _keep_restarting(ln, mounts, doc, policy, code, started, null, log, fwd)
        if fwd is not None:
            fwd.close()  # type: ignore[attr-defined]  # host ports free before the exit is recorded
        if remove:
            st.remove_dir(cdir)
        else:
            st.write_exit(cdir, code)
    finally:
        os._exit(0)


def _keep_restarting(ln: Launch, mounts: Mounts, doc: dict[str, object], policy: tuple[str, int], code: int,
                     started: float, null: int, log: int, fwd: object = None) -> int:
    """Restart the container while *policy* says so and no stop was asked; returns the last exit code.

    *fwd* (``--publish``): paused after each exit, its host ports still bound, and started again
    on the new run."""
    cdir = doc["_dir"]
    pidfile = os.path.join(cdir, "pid")
    delay, start = 0.0, initial_backoff()
    while not st.stop_requested(cdir) and should_restart(policy, code, int(doc.get("restart_count") or 0)):
        if fwd is not None:
            fwd.pause()  # type: ignore[attr-defined]  # that run's namespace is gone
        delay = next_backoff(delay, time.monotonic() - started, start)
        doc["last_exit"] = code
        _save(doc)
        if _sleep_unless_stopped(cdir, delay):
            break
        _runtime_delete(doc, doc["name"])      # normally gone already: `run` deletes on exit
        try:
            os.unlink(pidfile)
        except FileNotFoundError:
            pass
        doc["restart_count"] = int(doc.get("restart_count") or 0) + 1
        started = time.monotonic()
        try:
            pid = spawn(ln.argv, mounts, stdin=null, stdout=log, stderr=log)
        except RunError as e:
            os.write(log, f"kilobox: restart failed: {e}\n".encode())
            code = 125
            continue
        _set_runtime_pid(cdir, doc, pid)
        if fwd is not None:
            fwd.start(pidfile, pid)  # type: ignore[attr-defined]
        _, status = os.waitpid(pid, 0)
        code = _exit_code(status)
    return code


def _sleep_unless_stopped(cdir: str, seconds: float) -> bool:
    """Wait *seconds*; True as soon as a stop is asked (or the container was removed)."""
    end = time.monotonic() + seconds
    while True:
        if st.stop_requested(cdir) or not os.path.isdir(cdir):
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, 0.02))


def _tail(path: str, n: int = 400) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()[-n:]
    except OSError:
        return ""
    lines = [ln for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# -- commands on existing containers -------------------------------------------------
def stop(name: str, timeout: float = 10.0) -> int | None:
    """SIGTERM the container, SIGKILL after *timeout* seconds; returns its exit code (if known)."""
    doc = st.load(name)
    if doc.get("engine"):
        from .engines import engine_stop
        return engine_stop(doc, timeout)
    if doc.get("restart"):
        return _stop_restarting(doc, timeout)
    state, code = st.status(doc)
    if state != "running":
        return code
    init = st.init_pid(doc)
    if init:
        _kill(init, SIGTERM)
    if not _wait_exit(doc, timeout):
        init = st.init_pid(doc)
        if init:
            _kill(init, SIGKILL)
        elif doc.get("runtime_pid") and st.alive(doc["runtime_pid"], doc.get("runtime_started")):
            _kill(doc["runtime_pid"], SIGKILL)
        _wait_exit(doc, 10.0)
    return st.status(doc)[1] if os.path.exists(doc["_dir"]) else None


def _stop_restarting(doc: dict[str, object], timeout: float) -> int | None:
    """Stop a container that has a restart policy, for good: the request first (no restart after
    it), then SIGTERM — SIGKILL after *timeout* — to whichever run is current, until the monitor
    records the exit."""
    cdir, name = doc["_dir"], doc["name"]
    st.request_stop(cdir)
    exit_file = os.path.join(cdir, "exit")
    kill_at = time.monotonic() + timeout
    give_up = kill_at + 10.0
    sent: set[tuple[int, int]] = set()
    while os.path.exists(cdir) and not os.path.exists(exit_file) and time.monotonic() < give_up:
        try:
            doc = st.load(name)                 # a restart changes the runtime's pid
        except (NotFound, RunError):             # removed meanwhile
            break
        state, _ = st.status(doc)
        if state not in ("running", "restarting"):
            break                               # no monitor left to record an exit
        sig = SIGTERM if time.monotonic() < kill_at else SIGKILL
        init = st.init_pid(doc)
        if init and (init, sig) not in sent:
            _kill(init, sig)
            sent.add((init, sig))
        elif not init and sig == SIGKILL and st.alive(doc.get("runtime_pid"), doc.get("runtime_started")):
            _kill(doc["runtime_pid"], SIGKILL)
        time.sleep(0.02)
    return st.status(doc)[1] if os.path.exists(cdir) else None


def _wait_exit(doc: dict[str, object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    cdir = doc["_dir"]
    exit_file = os.path.join(cdir, "exit")
    while True:
        if not os.path.exists(cdir):
            return True
        state, _ = st.status(doc)
        if state != "running":
            # the monitor writes the exit code right after the runtime exits: give it a moment
            if doc.get("detached") and not os.path.exists(exit_file):
                end = time.monotonic() + 1.0
                while time.monotonic() < end and os.path.exists(cdir) and not os.path.exists(exit_file):
                    time.sleep(0.01)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def remove(name: str, force: bool = False) -> None:
    """Forget a stopped container (``force``: stop it first, with SIGKILL)."""
    doc = st.load(name)
    state, _ = st.status(doc)
    if doc.get("engine"):
        from .engines import engine_rm
        engine_rm(doc, force)
    elif state in ("running", "restarting"):
        if not force:
            raise RunError(f"container {name} is {state}", hint=f"stop it first (kilobox stop {name}) or use rm -f")
        stop(name, timeout=0)
    if not doc.get("engine") and doc.get("runtime_path") and os.path.exists(doc["runtime_path"]):
        _runtime_delete(doc, name)
    st.remove_dir(doc["_dir"])


def _runtime_delete(doc: dict[str, object], name: str) -> None:
    """Drop leftovers in the runtime's own state (normally gone: ``run`` deletes on exit)."""
    root = doc.get("runtime_root") or ""
    if not root or not os.path.isdir(os.path.join(root, name)):
        return
    rt = Runtime(doc["runtime"], doc["runtime_path"])
    from .runtimes import cgroup_mode
    mounts = None
    argv = delete_argv(rt, root, name)
    if rt.name == "crun" and cgroup_mode() == "hybrid":
        mounts = Mounts(rootfs="", target="", cgroup_fix="cgroup2")
        argv = argv[:1] + ["--cgroup-manager=disabled"] + argv[1:]
    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid = spawn(argv, mounts, stdin=null, stdout=null, stderr=null)
        os.waitpid(pid, 0)
    except RunError:
        pass
    finally:
        os.close(null)


def logs(name: str, follow: bool = False, out: object = None) -> None:
    """Copy the container's log to *out* (binary stream); with *follow*, until it exits."""
    import sys
    doc = st.load(name)
    if doc.get("engine"):
        from .engines import engine_logs
        engine_logs(doc, follow)
        return
    out = out or sys.stdout.buffer
    path = os.path.join(doc["_dir"], "log")
    if not doc.get("detached"):
        raise RunError(f"container {name} ran in the foreground: its output went to the terminal",
                       hint="use -d to keep logs")
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        while True:
            data = f.read(65536)
            if data:
                out.write(data)
                out.flush()
                continue
            if not follow:
                return
            if st.status(doc)[0] not in ("running", "restarting") or not os.path.exists(doc["_dir"]):
                rest = f.read()
                if rest:
                    out.write(rest)
                    out.flush()
                return
            time.sleep(0.05)


def ps() -> list[dict[str, object]]:
    """Every known container: name, image, command, status, exit code, created."""
    rows = []
    for doc in st.iter_containers():
        if doc.get("engine"):
            from .engines import engine_status
            state, code = engine_status(doc)
            if state == "removed" and doc.get("rm"):
                st.remove_dir(doc["_dir"])     # the engine's --rm did its job
                continue
        else:
            state, code = st.status(doc)
        rows.append({"name": doc["name"], "image": doc.get("image", ""), "command": doc.get("argv", []),
                     "status": state, "exit_code": code, "created": doc.get("created"),
                     "runtime": doc.get("engine") or doc.get("runtime", ""), "detached": doc.get("detached"),
                     "ports": list(doc.get("ports") or ()), "restart": doc.get("restart") or "no",
                     "restart_count": int(doc.get("restart_count") or 0)})
    return rows
