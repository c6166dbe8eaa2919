"""``kilobox bench start``: cold starts of one image, kilobox against other ways to start it.

Each sample is one new process tree, timed from "command issued" to "process
exited" (a batch image such as hello) or to "first HTTP 200 on --ready"
(a service, which is then stopped with SIGTERM and waited for, untimed).
Contenders alternate within each round (the order rotates every round), so
load drifts on the machine hit them all alike.

Contenders:

- ``kilobox``: ``kilobox run --rm IMAGE`` (the CLI, as a user types it)
- ``podman`` / ``docker``: ``ENGINE run --rm`` of the same image (loaded beforehand),
  with the same hardening flags as ``--engine``
- ``crun`` / ``runc``: the runtime alone on the bundle kilobox prepared (same
  config.json; the runtime gets the rootfs straight as ``root.path``; on a hybrid
  cgroup host crun gets the same cgroup2 namespace fix kilobox uses)
- ``crun-plain``: the same, minus kilobox's precompiled seccomp filter (crun then
  compiles the profile at start, as a plain ``crun run`` of such a config does)
- ``exec``: the image's entrypoint run directly on the host (the physical floor)

One untimed warm-up per contender comes first (caches, lazy loads). Next to wall
time, each sample's CPU time (user+system of the reaped process tree, from
``getrusage(RUSAGE_CHILDREN)``) is kept: it does not grow with the machine's load.
An engine's daemons (conmon, dockerd) are not reaped by the bench: their CPU is not counted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable

from ..errors import RunError, UsageError
from .options import RunOptions

CONTENDERS = ("kilobox", "podman", "docker", "crun", "runc", "crun-plain", "exec")


def percentile(xs: list[float], p: float) -> float:
    """Nearest-rank percentile of *xs* (p in 0..100)."""
    if not xs:
        return float("nan")
    import math
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def summarize(samples: dict[str, list[float]], base: str = "kilobox") -> dict[str, Any]:
    """min/median/p95/max/mean per contender (ms) and each contender's median / *base*'s median."""
    import statistics
    out: dict[str, Any] = {}
    for name, xs in samples.items():
        if not xs:
            continue
        out[name] = {"runs": len(xs), "min": min(xs), "median": statistics.median(xs),
                     "p95": percentile(xs, 95), "max": max(xs), "mean": statistics.fmean(xs)}
    if base in out:
        for name, s in out.items():
            s["ratio_to_" + base] = s["median"] / out[base]["median"] if out[base]["median"] else float("nan")
    return out


# -- contenders -------------------------------------------------------------------------
class Contender:
    """Knows how to start one sample; ``start()`` returns a Popen-like object with wait()/send_signal()."""

    def __init__(self, name: str, start: Callable[[int], Any], stop: Callable[[int, Any], None] | None = None) -> None:
        self.name = name
        self.start = start
        self.stop = stop or _sigterm


class _Spawned:
    """A pid from :func:`kilobox.run.ns.spawn`, with the bits of Popen the bench uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
        end = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > end:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.001)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _sigterm(i: int, p: Any) -> None:
    """Stop a sample: SIGTERM (forwarded to the service by kilobox/crun/runc), SIGKILL after 15 s."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _popen(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)


def _kilobox_argv() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "kilobox")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "kilobox"]


def _bare_bundle(meta: dict[str, Any], workdir: str, plain: bool = False) -> str:
    """A copy of kilobox's bundle whose root.path is the shared rootfs itself (no kilobox mounts)."""
    from .seccomp import CRUN_BPF_ANNOTATION
    with open(os.path.join(meta["dir"], "config.json")) as f:
        cfg = json.load(f)
    cfg["root"]["path"] = meta["rootfs"]
    if plain:
        (cfg.get("annotations") or {}).pop(CRUN_BPF_ANNOTATION, None)
    d = os.path.join(workdir, "bare-plain" if plain else "bare")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    return d


def make_contenders(image: str, vs: list[str], opts: RunOptions, workdir: str, *, ready: bool) -> list[Contender]:
    from . import bundle as bdl
    from .ns import Mounts, spawn
    from .runtimes import cgroup_mode, find_runtime
    out: list[Contender] = []
    net = ["--network", "host"] if opts.network == "host" else []
    env_flags = [x for e in opts.env for x in ("-e", e)]
    kb = _kilobox_argv() + ["run", "--rm", *net, *env_flags, image]
    out.append(Contender("kilobox", lambda i: _popen(kb)))
    meta = bdl.lookup(image, None, opts) or bdl.prepare(image, opts)
    if meta.get("overlay"):
        raise RunError(f"{image}: the bundle needs an overlay root (missing mount points): no bare-runtime baseline")
    for name in vs:
        if name == "kilobox":
            continue
        if name not in CONTENDERS:
            raise UsageError(f"--vs: unknown contender {name!r}", hint=f"choose from {', '.join(CONTENDERS[1:])}")
        if name in ("podman", "docker"):
            from .engines import engine_exe, global_flags, load_image, run_flags
            exe = engine_exe(name)
            ref, _cfg = load_image(name, image)
            eng = [exe, *global_flags(name)]
            tag = f"kilobox-bench-{os.getpid()}"
            argv = eng + ["run", "--rm", *run_flags(name, opts, opts.user)]

            def start_engine(i: int, argv: list[str] = argv, ref: str = ref, tag: str = tag) -> Any:
                return _popen(argv + ["--name", f"{tag}-{i + 1}", ref])

            def stop_engine(i: int, p: Any, eng: list[str] = eng, tag: str = tag) -> None:
                if p.poll() is None:    # the engine's own stop: its signal proxy may not be up yet
                    subprocess.run(eng + ["stop", "-t", "10", f"{tag}-{i + 1}"], capture_output=True, timeout=60)
                _sigterm(i, p)
                subprocess.run(eng + ["rm", "-f", f"{tag}-{i + 1}"], capture_output=True, timeout=60)
            out.append(Contender(name, start_engine, stop_engine))
        elif name in ("crun", "runc", "crun-plain"):
            rt = find_runtime(name.split("-")[0])
            bare = _bare_bundle(meta, workdir, plain=name == "crun-plain")
            root = os.path.join(workdir, f"root-{name}")
            os.makedirs(root, exist_ok=True)
            fix = rt.name == "crun" and cgroup_mode() == "hybrid"
            glob = [rt.path, "--root", root] + (["--cgroup-manager=disabled"] if fix else [])
            mounts = Mounts(rootfs="", target="", cgroup_fix="cgroup2") if fix else None
            null = os.open(os.devnull, os.O_RDWR)

            def start(i: int, glob: list[str] = glob, mounts: Any = mounts, bare: str = bare, name: str = name) -> Any:
                argv = glob + ["run", "--bundle", bare, f"bench-{name}-{os.getpid()}-{i}"]
                return _Spawned(spawn(argv, mounts, stdin=null, stdout=null, stderr=null))
            out.append(Contender(name, start))
        elif name == "exec":
            from .rootfs import find_executable
            with open(os.path.join(meta["dir"], "config.json")) as f:
                proc = json.load(f)["process"]
            path = find_executable(meta["rootfs"], proc["args"][0], proc["env"], proc["cwd"])
            host = os.path.join(meta["rootfs"], path.lstrip("/"))
            argv = [host, *proc["args"][1:]]
            env = dict(e.split("=", 1) for e in proc["env"] if "=" in e)
            # a service reading files by absolute path (httpd: /www) needs its root: chdir there
            cwd = meta["rootfs"]

            def start_exec(i: int, argv: list[str] = argv, env: dict[str, str] = env, cwd: str = cwd) -> Any:
                return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env=env, cwd=cwd)
            out.append(Contender("exec", start_exec))
    return out


# -- timing ---------------------------------------------------------------------------------
def _http_ok(host: str, port: int, path: str) -> bool:
    import socket
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            head = s.recv(64)
        return head.startswith(b"HTTP/1.") and head[9:12] == b"200"
    except OSError:
        return False


def _cpu_ms() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1000


def _time_one(c: Contender, i: int, ready: tuple[str, int, str] | None, timeout: float,
              cpu: list[float] | None = None) -> float:
    """One sample's wall time (ms); appends the CPU time of the reaped process tree to *cpu*."""
    if ready is not None and _http_ok(*ready):
        raise RunError(f"bench: something already answers on {ready[0]}:{ready[1]}{ready[2]}",
                       hint="stop it first: the service under test must own the port")
    c0 = _cpu_ms()
    try:
        return _time_sample(c, i, ready, timeout)
    finally:
        if cpu is not None:
            cpu.append(_cpu_ms() - c0)


def _wait_exit(p: Any, timeout: float) -> int:
    """Wait for *p* to exit, woken by the exit itself (a pidfd): ``Popen.wait(timeout=…)`` polls
    with a growing sleep (0.5, 1, 2 … 50 ms) and would add up to half of a sample's time."""
    try:
        fd = os.pidfd_open(p.pid)
    except (AttributeError, OSError):     # Linux < 5.3, or already reaped
        return p.wait(timeout=timeout)
    try:
        import select
        if not select.select([fd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(str(p.pid), timeout)
    finally:
        os.close(fd)
    return p.wait()


def _time_sample(c: Contender, i: int, ready: tuple[str, int, str] | None, timeout: float) -> float:
    t0 = time.perf_counter()
    p = c.start(i)
    try:
        if ready is None:
            code = _wait_exit(p, timeout)
            dt = time.perf_counter() - t0
            if code != 0:
                raise RunError(f"bench: {c.name} exited with {code}")
            return dt * 1000
        host, port, path = ready
        deadline = t0 + timeout
        while not _http_ok(host, port, path):
            if p.poll() is not None:
                raise RunError(f"bench: {c.name} exited with {p.returncode} before {path} answered")
            if time.perf_counter() > deadline:
                raise RunError(f"bench: {c.name}: no HTTP 200 on {host}:{port}{path} within {timeout:.0f}s")
            time.sleep(0.0005)
        return (time.perf_counter() - t0) * 1000
    finally:
        c.stop(i, p)
        if ready is not None:
            _wait_port_free(ready[0], ready[1])


def _wait_port_free(host: str, port: int, timeout: float = 5.0) -> None:
    import socket
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                pass
        except OSError:
            return
        time.sleep(0.01)


def bench_start(image: str, *, vs: list[str] | tuple[str, ...] = ("podman", "crun", "exec"), runs: int = 20,
                ready: str | None = None, options: RunOptions | None = None, timeout: float = 30.0,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time *runs* cold starts of *image* per contender, alternating; returns samples and statistics."""
    import platform
    import tempfile
    from urllib.parse import urlsplit
    from .options import make_options
    if runs < 1:
        raise UsageError("--runs must be at least 1")
    opts = options or RunOptions()
    target = None
    if ready:
        u = urlsplit(ready)
        if u.scheme != "http" or not u.hostname or not u.port:
            raise UsageError(f"--ready {ready!r}: expected http://HOST:PORT/PATH")
        target = (u.hostname, u.port, u.path or "/")
        if opts.network != "host":
            opts = make_options(**{**opts._asdict(), "network": "host"})
    with tempfile.TemporaryDirectory(prefix="kilobox-bench-") as work:
        contenders = make_contenders(image, list(vs), opts, work, ready=bool(ready))
        samples: dict[str, list[float]] = {c.name: [] for c in contenders}
        cpu: dict[str, list[float]] = {c.name: [] for c in contenders}
        for c in contenders:                       # warm-up, untimed
            _time_one(c, -1, target, timeout)
        for r in range(runs):
            order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
            for c in order:
                samples[c.name].append(_time_one(c, r, target, timeout, cpu[c.name]))
            if progress:
                progress(f"round {r + 1}/{runs}")
    return {"image": image, "mode": "ready" if ready else "exit", "ready": ready, "runs": runs,
            "contenders": [c.name for c in contenders],
            "machine": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
                        "cgroup": _cgroup()},
            "samples_ms": samples, "stats": summarize(samples), "cpu_ms": cpu,
            "cpu_median_ms": {k: _median(v) for k, v in cpu.items()}}


def _median(xs: list[float]) -> float:
    import statistics
    return statistics.median(xs) if xs else float("nan")


def _cgroup() -> str:
    from .runtimes import cgroup_mode
    return cgroup_mode()


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of the statistics."""
    rows = [("contender", "runs", "min ms", "median ms", "p95 ms", "max ms", "× kilobox", "CPU ms")]
    cpu = result.get("cpu_median_ms") or {}
    for name, s in result["stats"].items():
        rows.append((name, str(s["runs"]), f"{s['min']:.1f}", f"{s['median']:.1f}", f"{s['p95']:.1f}",
                     f"{s['max']:.1f}", f"{s.get('ratio_to_kilobox', float('nan')):.2f}",
                     f"{cpu.get(name, float('nan')):.1f}"))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r)) for r in rows)


def plot(result: dict[str, Any], path: str) -> None:
    """Draw the sample distributions (one strip + box per contender) to *path* (SVG/PNG)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RunError("--plot needs matplotlib", hint="pip install 'kilobox[plot]'") from None
    names = list(result["samples_ms"])
    data = [result["samples_ms"][n] for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(names) + 1.6))
    ax.boxplot(data, vert=False, showfliers=False)
    ax.set_yticks(range(1, len(names) + 1))
    ax.set_yticklabels(names)
    for i, xs in enumerate(data, start=1):
        ax.scatter(xs, [i] * len(xs), s=8, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("ms, command issued → " + ("first HTTP 200" if result["mode"] == "ready" else "exit") + " (log)")
    ax.set_title(f"cold start: {result['image']} ({result['runs']} runs each)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
