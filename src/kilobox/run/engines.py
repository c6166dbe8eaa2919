"""``--engine podman|docker``: load the image into an engine and run it there, equally hardened.

The image goes through a docker-archive (:func:`kilobox.copying.copy`) and
``podman load`` / ``docker load`` once per digest, tagged
``kilobox/<digest[:20]>:run``. The run gets the same defaults as a native
one: the image's user (uid 0 refused unless ``--user``), ``--read-only``, all
capabilities dropped, ``no-new-privileges``, kilobox's seccomp profile, a
loopback-only network (``--network none``) unless ``--network host``, or the
engine's ``bridge`` with ``--publish`` (its port forwarding needs one; ``-p``
passes on with the host address made explicit, ``/udp`` included).

Host quirks handled: podman's default runtime (crun) on a hybrid cgroup host
→ ``--runtime runc``; a hard ``nofile`` limit below podman's default →
explicit ``--ulimit nofile=1024:1024 --ulimit nproc=1024:1024``.

Foreground runs wait for the engine (its stdio and exit code are the
container's; SIGINT/SIGTERM are forwarded to it, and its signal proxy to the container). Detached runs are recorded in kilobox's state, so ``ps``,
``logs``, ``stop`` and ``rm`` work on them by delegating to the engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any

from ..errors import NotFound, RunError, ToolMissing
from .options import RunOptions
from .runtimes import cgroup_mode, which

ENGINES = ("podman", "docker")


def engine_exe(engine: str) -> str:
    if engine not in ENGINES:
        raise RunError(f"unknown engine {engine!r}", hint="use podman or docker")
    exe = which(engine)
    if not exe:
        raise ToolMissing(engine, "podman" if engine == "podman" else "docker.io")
    return exe


def global_flags(engine: str) -> list[str]:
    """Flags placed before the subcommand (``podman --runtime runc run …``)."""
    if engine == "podman" and cgroup_mode() == "hybrid" and which("runc"):
        return ["--runtime", "runc"]
    return []


def _ulimits() -> list[str]:
    import resource
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1048576:
        return ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
    return []


def run_flags(engine: str, opts: RunOptions, user: str | None, publish: list[Any] | tuple[Any, ...] = ()
              ) -> list[str]:
    """The hardening and option flags of ``ENGINE run`` equivalent to a native kilobox run.

    *publish* (:class:`kilobox.run.publish.Port`): passed on as ``-p IP:HOSTPORT:PORT/PROTO``; the
    engine's port forwarding needs a network, so the container gets its default ``bridge``
    (``--network none`` would make the engine drop the ports).
    """
    from .seccomp import DATA
    f: list[str] = []
    if not opts.read_write:
        f.append("--read-only")
        if engine == "podman":
            f.append("--read-only-tmpfs=false")
    f += ["--cap-drop", "ALL"]
    for c in opts.cap_add:
        f += ["--cap-add", c]
    f += ["--security-opt", "no-new-privileges"]
    f += ["--security-opt", "seccomp=unconfined" if opts.seccomp == "unconfined" else f"seccomp={DATA}"]
    f += ["--network", "host" if opts.network == "host" else "bridge" if publish else "none"]
    if publish:
        from .publish import engine_flag
        for p in publish:
            f += ["-p", engine_flag(p)]
    if user is not None:
        f += ["--user", user]
    for e in opts.env:
        f += ["-e", e]
    if opts.entrypoint is not None:
        f += ["--entrypoint", opts.entrypoint]
    if opts.workdir:
        f += ["--workdir", opts.workdir]
    for t in opts.tmpfs:
        f += ["--tmpfs", t]
    if opts.memory is not None:
        f += ["--memory", str(opts.memory)]
    if opts.pids_limit is not None:
        f += ["--pids-limit", str(opts.pids_limit)]
    if opts.cpus is not None:
        f += ["--cpus", str(opts.cpus)]
    if opts.hostname:
        f += ["--hostname", opts.hostname]
    f += _ulimits()
    if engine == "podman":
        f += ["--pull", "never"]
    return f


def _capture(argv: list[str], what: str, timeout: float = 600) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunError(f"{what}: timed out after {timeout:.0f}s") from None
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
        hint = "is the docker daemon running?" if "Cannot connect" in msg else None
        raise RunError(f"{what}: {msg}", hint=hint)
    return p.stdout


def load_image(engine: str, image: str, *, platform: str | None = None, registry_options: Any = None
               ) -> tuple[str, dict[str, Any]]:
    """Make *image* available to *engine*; returns (engine's reference, image config block)."""
    from ..copying import copy
    from ..image import open_image
    from .bundle import local_image
    exe = engine_exe(engine)
    local, _ = local_image(image, platform=platform, options=registry_options)
    with open_image(local, platform) as img:
        digest, cfg = img.digest, dict(img.config.config)
    ref = f"kilobox/{digest.split(':', 1)[1][:20]}:run"
    exists = [exe, "image", "exists", ref] if engine == "podman" else [exe, "image", "inspect", ref]
    if subprocess.run(exists, capture_output=True).returncode == 0:
        return ref, cfg
    with tempfile.TemporaryDirectory(prefix="kilobox-engine-") as tmp:
        archive = os.path.join(tmp, "image.tar")
        from ..oci import Platform
        copy(local, f"docker-archive:{archive}:{ref}", platform=platform or str(Platform.host()),
             options=registry_options)
        _capture([exe, *global_flags(engine), "load", "-q", "-i", archive], f"{engine} load")
    return ref, cfg


def run_engine(engine: str, image: str, opts: RunOptions, *, name: str | None = None, detach: bool = False,
               remove: bool = False, platform: str | None = None, registry_options: Any = None,
               publish: list[Any] | tuple[Any, ...] = ()) -> tuple[str | None, int | None]:
    """Run *image* with *engine*; foreground: (name, exit code) — detached: (name, None)."""
    from . import spec
    exe = engine_exe(engine)
    ref, cfg = load_image(engine, image, platform=platform, registry_options=registry_options)
    user = spec.user_spec(cfg, opts)
    uid = user.partition(":")[0]
    if uid in ("0", "root") and opts.user is None:
        spec.check_root(0, opts, image)
    argv = [exe, *global_flags(engine), "run"]
    if remove:
        argv.append("--rm")
    argv += run_flags(engine, opts, opts.user, publish)
    if not detach:
        if name:
            argv += ["--name", name]
        argv += [ref, *(opts.args or ())]
        sys.stdout.flush()
        sys.stderr.flush()
        return name, _foreground(argv)
    from . import state as st
    from .publish import describe
    name, cdir = st.claim(name)
    try:
        argv += ["-d", "--name", f"kilobox-{name}", ref, *(opts.args or ())]
        cid = _capture(argv, f"{engine} run").strip().splitlines()[-1]
        st.write_json(os.path.join(cdir, "state.json"), {
            "name": name, "image": image, "digest": "", "argv": list(opts.args or cfg.get("Cmd") or []),
            "runtime": engine, "engine": engine, "engine_exe": exe, "engine_id": cid,
            "engine_flags": global_flags(engine), "created": st.now(), "detached": True, "rm": remove,
            "runtime_pid": None, "ports": [describe(p) for p in publish]})
    except BaseException:
        st.remove_dir(cdir)
        raise
    return name, None


def _foreground(argv: list[str]) -> int:
    """Run the engine with our stdio; forward SIGINT/SIGTERM/SIGHUP to it (its signal proxy
    passes them to the container); its exit code is the container's."""
    import signal
    p = subprocess.Popen(argv)

    def forward(signum: int, _frame: object) -> None:
        p.send_signal(signum)

    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, forward) for s in sigs}
    try:
        code = p.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return code if code >= 0 else 128 - code


def _eng(doc: dict[str, Any]) -> list[str]:
    return [doc.get("engine_exe") or engine_exe(doc["engine"]), *(doc.get("engine_flags") or [])]


def engine_status(doc: dict[str, Any]) -> tuple[str, int | None]:
    p = subprocess.run([*_eng(doc), "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", doc["engine_id"]],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return "removed", None
    status, _, code = p.stdout.strip().partition(" ")
    if status in ("exited", "stopped"):
        return "exited", int(code) if code.lstrip("-").isdigit() else None
    return ("running" if status == "running" else status), None


def engine_stop(doc: dict[str, Any], timeout: float) -> int | None:
    _capture([*_eng(doc), "stop", "-t", str(int(timeout)), doc["engine_id"]], f"{doc['engine']} stop")
    return engine_status(doc)[1]


def engine_rm(doc: dict[str, Any], force: bool) -> None:
    state, _ = engine_status(doc)
    if state == "removed":
        return
    if state == "running" and not force:
        raise RunError(f"container {doc['name']} is running", hint="stop it first or use rm -f")
    _capture([*_eng(doc), "rm", *(["-f"] if force else []), doc["engine_id"]], f"{doc['engine']} rm")


def engine_logs(doc: dict[str, Any], follow: bool) -> None:
    argv = [*_eng(doc), "logs", *(["-f"] if follow else []), doc["engine_id"]]
    if subprocess.run(argv).returncode != 0:
        raise NotFound(f"{doc['engine']} has no logs for {doc['name']}")
