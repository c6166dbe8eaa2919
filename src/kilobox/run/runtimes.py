"""OCI runtimes (crun, runc, youki): detection, command lines, and the host's cgroup quirks.

Every container's runtime is started inside a private mount namespace that
kilobox prepares (:mod:`kilobox.run.ns`). On a *hybrid* cgroup host (v1
controllers under /sys/fs/cgroup, cgroup2 at /sys/fs/cgroup/unified) crun
1.8 refuses to run; in that namespace kilobox either

- mounts cgroup2 on /sys/fs/cgroup and runs ``crun --cgroup-manager=disabled``
  when no limits are asked (fastest: no cgroup is created at all), or
- detaches /sys/fs/cgroup/unified so crun sees a plain v1 host and applies
  ``--memory``/``--pids-limit``/``--cpus`` through the v1 controllers.

runc and youki handle v1, hybrid and v2 hosts themselves.
"""

from __future__ import annotations

import os

from ..errors import RunError, ToolMissing
from .._record import record_type

PREFERENCE = ("crun", "runc", "youki")
PACKAGES = {"crun": "crun", "runc": "runc", "youki": "youki"}
CGROUP = "/sys/fs/cgroup"


#: name: crun | runc | youki (the family decides the command line); path: the executable
Runtime = record_type("Runtime", "name path")
#: how to start one container: argv of the runtime; cgroup_fix: "" | "cgroup2" (cgroup2 at
#: /sys/fs/cgroup) | "legacy" (hide the unified hierarchy); runtime: the :data:`Runtime`
Launch = record_type("Launch", "argv cgroup_fix runtime")


def cgroup_mode(base: "str | os.PathLike[str]" = CGROUP) -> str:
    """``v2`` (unified), ``hybrid`` (v1 + cgroup2 at unified/) or ``v1``."""
    base = os.fspath(base)
    if os.path.exists(os.path.join(base, "cgroup.controllers")):
        return "v2"
    if os.path.exists(os.path.join(base, "unified", "cgroup.controllers")):
        return "hybrid"
    return "v1"


def which(name: str) -> str | None:
    """Like :func:`shutil.which` (without importing shutil on the hot path)."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _family(path: str) -> str:
    base = os.path.basename(path)
    for name in PREFERENCE:
        if base.startswith(name):
            return name
    return base


def find_runtime(name: str | None = None) -> Runtime:
    """The runtime to use: *name* (a name or a path), else the first of crun, runc, youki on PATH."""
    if name:
        path = name if "/" in name else which(name)
        if not path or not os.access(path, os.X_OK):
            raise ToolMissing(name, PACKAGES.get(_family(name), name))
        fam = _family(path)
        if fam not in PREFERENCE:
            raise RunError(f"--runtime {name}: unknown runtime family", hint="use crun, runc or youki")
        return Runtime(fam, path)
    for cand in PREFERENCE:
        path = which(cand)
        if path:
            return Runtime(cand, path)
    raise ToolMissing("an OCI runtime (crun, runc or youki)", "crun")


def runtime_root(state_root: str, rt: Runtime) -> str:
    """The runtime's own state directory (``--root``), private to kilobox."""
    return os.path.join(state_root, "runtime", rt.name)


def launch(rt: Runtime, *, bundle: str, cid: str, pid_file: str, root: str,
           has_limits: bool, mode: str | None = None) -> Launch:
    """The command line that runs container *cid* from *bundle* in the foreground of its process."""
    mode = mode or cgroup_mode()
    glob = [rt.path, "--root", root]
    fix = ""
    if rt.name == "crun" and mode == "hybrid":
        if has_limits:
            fix = "legacy"
        else:
            fix = "cgroup2"
            glob.append("--cgroup-manager=disabled")
    if rt.name == "youki" and mode == "hybrid" and has_limits:
        raise RunError("youki cannot apply limits on a hybrid cgroup host",
                       hint="use --runtime runc or crun for --memory/--pids-limit/--cpus here")
    argv = glob + ["run", "--bundle", bundle, "--pid-file", pid_file, cid]
    return Launch(argv, fix, rt)


def delete_argv(rt: Runtime, root: str, cid: str) -> list[str]:
    """Command line that forgets a (stopped) container's runtime state."""
    return [rt.path, "--root", root, "delete", "--force", cid]
