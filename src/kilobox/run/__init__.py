"""Run micro-containers: hardened OCI bundles on crun/runc/youki, or delegated to podman/docker.

::

    from kilobox.run import run, make_options, ps, stop, remove, logs
    r = run("oci:out:hello")                                  # foreground: r.exit_code
    r = run("oci:out:httpd", detach=True, name="web",
            options=make_options(network="host", env=["PORT=8080"]))
    stop("web"); remove("web")
    run(rootfs="/tmp/rootfs", config={"Entrypoint": ["/hello"], "User": "65532"})

Modules: :mod:`.options` (run options), :mod:`.spec` (config.json), :mod:`.seccomp`,
:mod:`.rootfs` (unpack once, in-root lookups), :mod:`.bundle` (bundle cache),
:mod:`.runtimes` (crun/runc/youki, cgroup quirks), :mod:`.ns` (mount namespace + exec),
:mod:`.state` (names, state dir), :mod:`.lifecycle`, :mod:`.engines` (podman/docker),
:mod:`.bench` (cold-start benchmark). Only what a warm run needs is imported eagerly.
"""

from __future__ import annotations

import os

from ..errors import RunError, UsageError
from .._record import record_type
from .options import RunOptions, make_options


#: name: the container's name (None for a foreground --rm run) · exit_code: foreground: the
#: container's exit code; detached: None
RunResult = record_type("RunResult", "name exit_code")


def run(image: str | None = None, *, rootfs: str | os.PathLike[str] | None = None,
        config: dict[str, object] | None = None, options: RunOptions | None = None, name: str | None = None,
        detach: bool = False, remove: bool = False, runtime: str | None = None, engine: str | None = None,
        platform: str | None = None, registry_options: object = None, publish: list[str] | tuple[str, ...] = (),
        restart: str | None = None, stdin: int = 0, stdout: int = 1, stderr: int = 2) -> RunResult:
    """Run *image* (any location kilobox reads), or a prepared *rootfs* with an image *config* block.

    *config* holds the image config's ``config`` fields (Entrypoint, Cmd, Env, User, WorkingDir).
    Foreground runs return the exit code; detached runs return once the container started.
    *publish*: ``[IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]`` forwards (host address 127.0.0.1 unless given).
    *restart* (detached only): ``no``, ``on-failure[:MAX]``, ``always`` or ``unless-stopped``.
    """
    opts = options or RunOptions()
    if (image is None) == (rootfs is None):
        raise UsageError("run: give an image or a rootfs (not both)")
    if restart is not None:
        from .restart import check_restart
        check_restart(restart, detach=detach, remove=remove, publish=publish, engine=engine)
    ports = []
    if publish:
        if opts.network == "host":
            raise UsageError("--publish has no effect with --network host", hint="drop one of them")
        from .publish import parse_publish_list
        ports = parse_publish_list(publish)
    if engine:
        if rootfs is not None:
            raise UsageError("--engine needs an image, not a rootfs directory")
        from .engines import run_engine
        return RunResult(*run_engine(engine, image, opts, name=name, detach=detach, remove=remove,
                                     platform=platform, registry_options=registry_options, publish=ports))
    if os.geteuid() != 0:
        raise RunError("kilobox run needs root (rootless containers are not supported)",
                       hint="run as root, or use --engine podman")
    from . import bundle
    if rootfs is not None:
        from .rootfs import check_rootfs
        meta = bundle.make_bundle(check_rootfs(rootfs), dict(config or {}), opts, image=str(rootfs))
    else:
        assert image is not None
        meta = bundle.lookup(image, platform, opts) or bundle.prepare(
            image, opts, platform=platform, options=registry_options)
    from . import lifecycle
    if detach:
        return RunResult(lifecycle.start_detached(meta, name=name, remove=remove, runtime=runtime,
                                                  publish=ports, restart=restart), None)
    cname, code = lifecycle.run_foreground(meta, name=name, remove=remove, runtime=runtime,
                                           stdin=stdin, stdout=stdout, stderr=stderr, publish=ports)
    return RunResult(None if remove else cname, code)


def __getattr__(attr: str) -> object:
    lazy = {"ps": "lifecycle", "stop": "lifecycle", "remove": "lifecycle", "logs": "lifecycle",
            "oci_profile": "seccomp", "runtime_config": "spec", "find_runtime": "runtimes",
            "cgroup_mode": "runtimes", "ensure_rootfs": "rootfs", "prepare": "bundle", "bench_start": "bench"}
    mod = lazy.get(attr)
    if mod is None:
        raise AttributeError(f"module 'kilobox.run' has no attribute {attr!r}")
    import importlib
    return getattr(importlib.import_module(f"{__name__}.{mod}"), attr)


__all__ = ["run", "RunResult", "RunOptions", "make_options", "ps", "stop", "remove", "logs", "oci_profile",
           "runtime_config", "find_runtime", "cgroup_mode", "ensure_rootfs", "prepare", "bench_start"]


class _CallableModule(type(os)):
    """``kilobox.run`` is both this package and :func:`run` (the API table maps it to the function,
    but once the package is imported the attribute is the module): calling the module runs."""

    def __call__(self, *args: object, **kwargs: object) -> RunResult:
        return run(*args, **kwargs)  # type: ignore[arg-type]


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _CallableModule
