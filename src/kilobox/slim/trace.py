"""Dynamic analysis: run a bundle under the real runtime and strace it from outside.

The container is made exactly as ``kilobox run`` makes it (same bundle, same
mount namespace set-up, same runtime and cgroup workaround), but in two steps:
``RUNTIME create`` leaves the container's init blocked on its exec fifo,
``strace -f -p INIT`` attaches (to every thread), ``RUNTIME start`` lets it
exec the entrypoint. Nothing is added to the image; every process the
entrypoint spawns is followed. The probe then exercises the service, the
container is stopped (SIGTERM, then SIGKILL) and deleted, and the log is parsed
by :mod:`.stracelog`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunError, ToolMissing
from . import stracelog
from .probe import Probe, ProbeResult

STRACE_CALLS = "trace=%file,%process,fchdir"
ATTACH_TIMEOUT = 10.0
STOP_GRACE = 3.0
_pidns_flag: list[str] | None = None


@dataclass
class TracedRun:
    """What one traced run saw."""

    trace: stracelog.Trace
    probe: ProbeResult
    output: str            # the tail of the container's stdout/stderr
    runtime: str
    seconds: float


def strace_path() -> str:
    """The strace binary, or :class:`ToolMissing` naming the Debian package."""
    path = shutil.which("strace")
    if not path:
        raise ToolMissing("strace", "strace")
    return path


def _pidns_args(strace: str) -> list[str]:
    """``--decode-pids=pidns`` (strace ≥ 6.0) maps container pids to host pids in clone results."""
    global _pidns_flag
    if _pidns_flag is None:
        try:
            ok = subprocess.run([strace, "--decode-pids=pidns", "-V"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        _pidns_flag = ["--decode-pids=pidns"] if ok else []
    return _pidns_flag


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _traced(pid: int) -> bool:
    """True when every thread of *pid* has a tracer."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for t in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{t}/status").read_text()
        except OSError:
            continue
        line = next((ln for ln in text.splitlines() if ln.startswith("TracerPid:")), "TracerPid:\t0")
        if line.split()[1] == "0":
            return False
    return True


def _tail(path: Path, n: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


def _mounts(meta: dict[str, Any], work: Path, fix: str):
    from ..run.ns import Mounts
    overlay = meta.get("overlay", "")
    scratch = ""
    if overlay == "tmpfs":
        scratch = os.path.join(meta["dir"], "scratch")
    elif overlay == "disk":
        scratch = str(work)
        for d in ("upper", "work"):
            (work / d).mkdir(exist_ok=True)
    return Mounts(rootfs=meta["rootfs"], target=os.path.join(meta["dir"], "rootfs"), overlay=overlay,
                  scratch=scratch, mkdirs=tuple(meta.get("mkdirs") or ()), cgroup_fix=fix)


def _run_quiet(argv: list[str], mounts: Any, out: int) -> int:
    from ..run.ns import spawn
    null = os.open(os.devnull, os.O_RDWR)
    try:
        pid = spawn(argv, mounts, stdin=null, stdout=out, stderr=out)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(null)
    return os.waitstatus_to_exitcode(status)


def traced_run(meta: dict[str, Any], probe: Probe, *, runtime: str | None = None, cwd: str = "/",
               keep: Path | None = None, exit_timeout: float = 30.0) -> TracedRun:
    """Run bundle *meta* (from :mod:`kilobox.run.bundle`) under strace while *probe* exercises it.

    Without a probe (no URL, no command) the container runs to its end (at most *exit_timeout*
    seconds) and succeeds on exit status 0. *keep*: a directory to copy the strace log into.
    """
    from ..run import state as st
    from ..run.ns import Mounts
    from ..run.runtimes import find_runtime, launch, runtime_root
    strace = strace_path()
    if os.geteuid() != 0:
        raise RunError("slim traces the container with the real runtime and needs root",
                       hint="run kilobox slim as root")
    rt = find_runtime(runtime)
    state_root = Path(st.state_root())
    root = Path(runtime_root(state_root, rt))  # type: ignore[arg-type]
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    cid = "kb-slim-" + os.urandom(4).hex()
    work = state_root / "slim" / cid
    work.mkdir(parents=True, mode=0o700)
    ln = launch(rt, bundle=meta["dir"], cid=cid, pid_file=str(work / "pid"), root=str(root),
                has_limits=bool(meta.get("has_limits")))
    if "run" not in ln.argv[1:]:
        raise RunError(f"unexpected {rt.name} command line: {' '.join(ln.argv)}")
    cut = len(ln.argv) - 1 - ln.argv[::-1].index("run")     # global options | run | --bundle … ID
    glob = ln.argv[:cut]
    side = Mounts("", "", cgroup_fix=ln.cgroup_fix) if ln.cgroup_fix else None
    log_path, trace_path = work / "output", work / "strace.log"
    try:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        tracer: subprocess.Popen | None = None
        init = 0
        created = False
        start = time.monotonic()
        try:
            create = glob + ["create"] + ln.argv[cut + 1:]
            rc = _run_quiet(create, _mounts(meta, work, ln.cgroup_fix), log)
            created = True
            if rc != 0:
                raise RunError(f"{rt.name} create failed (exit {rc}): {_tail(log_path, 400) or 'no message'}")
            init = st.read_int(work / "pid") or 0
            if not init:
                raise RunError(f"{rt.name} create wrote no pid file")
            tracer = subprocess.Popen([strace, "-f", "-y", "-s", "4096", "-q", *_pidns_args(strace), "-e", STRACE_CALLS,
                                       "-o", str(trace_path), "-p", str(init)],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + ATTACH_TIMEOUT
            while not _traced(init):
                if tracer.poll() is not None or time.monotonic() > deadline:
                    err = (tracer.stderr.read() if tracer.stderr else b"").decode(errors="replace").strip()
                    raise RunError(f"strace could not attach to the container (pid {init}): {err or 'timed out'}",
                                   hint="check kernel.yama.ptrace_scope (must be < 3) and that ptrace is allowed")
                time.sleep(0.005)
            rc = _run_quiet(glob + ["start", cid], side, log)
            if rc != 0:
                raise RunError(f"{rt.name} start failed (exit {rc}): {_tail(log_path, 400) or 'no message'}")
            if probe.url or probe.cmd:
                result = probe.run(alive=lambda: _alive(init))
            else:
                t0 = time.monotonic()
                while _alive(init) and time.monotonic() - t0 < exit_timeout:
                    time.sleep(0.02)
                result = ProbeResult(not _alive(init), "exited" if not _alive(init) else
                                     f"still running after {exit_timeout:.0f}s", time.monotonic() - t0)
        finally:
            _stop(init)
            if tracer is not None:
                try:
                    tracer.wait(timeout=STOP_GRACE * 2)
                except subprocess.TimeoutExpired:
                    tracer.kill()
                    tracer.wait()
                if tracer.stderr:
                    tracer.stderr.close()
            if created:
                _run_quiet(glob + ["delete", "--force", cid], side, log)
            os.close(log)
        seconds = time.monotonic() - start
        with open(trace_path, errors="surrogateescape") as f:
            trace = stracelog.parse(f, initial_cwd=cwd, after_exec=True)
        output = _tail(log_path)
        if not (probe.url or probe.cmd):
            code = trace.exit_code
            result = ProbeResult(result.ok and code == "0", f"exit status {code}" if code else result.detail,
                                 result.seconds)
        return TracedRun(trace, result, output, rt.name, seconds)
    finally:
        if keep is not None and trace_path.exists():
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy2(trace_path, keep / "strace.log")
        shutil.rmtree(work, ignore_errors=True)


def catches(pid: int, sig: int) -> bool:
    """True when *pid* has a handler for *sig* (a pid-namespace init ignores signals it does not catch)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        mask = next(int(ln.split()[1], 16) for ln in text.splitlines() if ln.startswith("SigCgt:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return True
    return bool(mask >> (sig - 1) & 1)


def _stop(init: int) -> None:
    """SIGTERM the container's init if it handles it; SIGKILL after a grace period (its pid namespace
    dies with it)."""
    if not init or not _alive(init):
        return
    if catches(init, signal.SIGTERM):
        with contextlib.suppress(ProcessLookupError):
            os.kill(init, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while _alive(init) and time.monotonic() < deadline:
            time.sleep(0.01)
    if _alive(init):
        with contextlib.suppress(ProcessLookupError):
            os.kill(init, signal.SIGKILL)
        deadline = time.monotonic() + STOP_GRACE
        while _alive(init) and time.monotonic() < deadline:
            time.sleep(0.01)


__all__ = ["TracedRun", "traced_run", "strace_path"]
