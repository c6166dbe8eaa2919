"""OCI runtime config generation (pure): image config + run options → ``config.json``.

Hardened defaults, as podman's: the image's user (uid 0 only when asked for
with ``--user``), read-only root, no capabilities, ``noNewPrivileges``, the
default seccomp allow-list, masked and read-only /proc paths, new pid, ipc,
uts, mount and cgroup namespaces, and a network namespace holding only
loopback unless ``--network host``.
"""

from __future__ import annotations

from typing import Any

from ..errors import RunError, UsageError
from .options import RunOptions

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MASKED_PATHS = [
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/proc/interrupts", "/sys/firmware",
    "/sys/fs/selinux", "/sys/dev/block", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = [
    "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
]


def base_mounts(network_host: bool) -> list[dict[str, Any]]:
    """/proc, /dev, /dev/pts, /dev/shm, /dev/mqueue and a read-only /sys."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]


def _flag(opt: str) -> str:
    return opt[2:] if opt.startswith("no") else opt


def tmpfs_mount(item: str) -> dict[str, Any]:
    path, _, extra = item.partition(":")
    opts = ["nosuid", "nodev", "noexec"]
    for o in (extra.split(",") if extra else []):
        if o in ("exec", "noexec", "suid", "nosuid", "dev", "nodev"):
            opts = [x for x in opts if _flag(x) != _flag(o)]
        opts.append(o)
    if not any(o.startswith("mode=") for o in opts):
        opts.append("mode=1777")
    return {"destination": path.rstrip("/"), "type": "tmpfs", "source": "tmpfs", "options": opts}


def merge_env(image_env: list[str], overrides: tuple[str, ...]) -> list[str]:
    """The image's Env with ``KEY=VALUE`` overrides applied (order kept, later wins); PATH defaulted."""
    out: dict[str, str] = {}
    for item in list(image_env) + list(overrides):
        key, sep, _ = item.partition("=")
        if sep and key:
            out[key] = item
    if "PATH" not in out:
        out = {"PATH": DEFAULT_PATH, **out}
    return list(out.values())


def command(image_cfg: dict[str, Any], opts: RunOptions) -> list[str]:
    """argv: entrypoint + cmd, with ``--entrypoint`` and trailing args applied as docker does."""
    if opts.entrypoint is not None:
        entry = [opts.entrypoint] if opts.entrypoint else []
        cmd = list(opts.args or ())
    else:
        entry = list(image_cfg.get("Entrypoint") or [])
        cmd = list(opts.args) if opts.args is not None else list(image_cfg.get("Cmd") or [])
    argv = entry + cmd
    if not argv:
        raise UsageError("no command to run: the image has no Entrypoint or Cmd",
                         hint="give one after the image, or --entrypoint")
    return argv


def user_spec(image_cfg: dict[str, Any], opts: RunOptions) -> str:
    """The user to run as: ``--user``, else the image's ``User``, else root."""
    return opts.user if opts.user is not None else (image_cfg.get("User") or "0")


def check_root(uid: int, opts: RunOptions, image: str) -> None:
    """Refuse uid 0 unless it was asked for explicitly."""
    if uid == 0 and opts.user is None:
        raise RunError(f"{image} would run as root (uid 0): refused by default",
                       hint="set USER in the image, or pass --user 0 to run as root anyway")


def capabilities(caps: tuple[str, ...]) -> dict[str, list[str]]:
    c = list(caps)
    return {"bounding": c, "effective": c, "permitted": c, "inheritable": c, "ambient": c}


def resources(opts: RunOptions) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if opts.memory is not None:
        res["memory"] = {"limit": opts.memory}
    if opts.pids_limit is not None:
        res["pids"] = {"limit": opts.pids_limit}
    if opts.cpus is not None:
        period = 100_000
        res["cpu"] = {"quota": max(1000, int(round(opts.cpus * period))), "period": period}
    return res


def runtime_config(*, argv: list[str], env: list[str], cwd: str, uid: int, gid: int, gids: list[int],
                   opts: RunOptions, seccomp: dict[str, Any] | None, root_path: str = "rootfs",
                   annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The whole ``config.json`` document."""
    host_net = opts.network == "host"
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    if not host_net:
        namespaces.append({"type": "network"})
    mounts = base_mounts(host_net) + [tmpfs_mount(t) for t in opts.tmpfs]
    process: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": uid, "gid": gid, **({"additionalGids": gids} if gids else {})},
        "args": argv,
        "env": env,
        "cwd": cwd,
        "capabilities": capabilities(opts.cap_add),
        "noNewPrivileges": True,
    }
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
        "resources": resources(opts),
    }
    if seccomp is not None:
        linux["seccomp"] = seccomp
    doc: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": root_path, "readonly": not opts.read_write},
        "hostname": opts.hostname or "kilobox",
        "mounts": mounts,
        "linux": linux,
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return doc
