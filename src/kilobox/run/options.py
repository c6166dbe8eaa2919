"""Run options: what the user asked for, as one immutable, hashable value.

Kept free of heavy imports: the warm ``kilobox run`` path hashes these to find
a cached bundle before anything else is loaded.
"""

from __future__ import annotations

from .._record import record_type
from ..errors import UsageError

#: bump when the generated runtime config changes shape (invalidates cached bundles)
SPEC_REVISION = "4"

NETWORKS = ("none", "host")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _ALNUM | frozenset("_.-")
_ENV_FIRST = _ALNUM - frozenset("0123456789") | {"_"}
_SIZE_RE = r"(?i)\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*\Z"
_TMPFS_OPT_RE = r"[A-Za-z0-9_=.+-]+\Z"


def _match(pattern: str, text: str):  # noqa: ANN202 - re.Match | None
    import re  # not at the top: names and env keys (the warm path) are checked without re
    return re.match(pattern, text)


def _is_name(text: str | None) -> bool:
    """``[A-Za-z0-9][A-Za-z0-9_.-]{0,62}``: a container or host name."""
    return bool(text) and len(text) <= 63 and text[0] in _ALNUM and _NAME_CHARS.issuperset(text)  # type: ignore[index]


def _is_env_key(text: str) -> bool:
    """``[A-Za-z_][A-Za-z0-9_.-]*``."""
    return bool(text) and text[0] in _ENV_FIRST and _NAME_CHARS.issuperset(text)


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


_FIELDS = ("user", "read_write", "cap_add", "env", "entrypoint", "args", "workdir", "network", "tmpfs",
           "memory", "pids_limit", "cpus", "hostname", "seccomp")
_DEFAULTS = (None, False, (), (), None, None, None, "none", (), None, None, None, None, "default")


class RunOptions(record_type("RunOptions", _FIELDS, _DEFAULTS)):
    """Everything that shapes the runtime config (part of the bundle cache key).

    user: ``--user`` (None: the image's) · read_write · cap_add: CAP_* names, sorted ·
    env: ``KEY=VALUE`` overrides in order · entrypoint (``""`` clears it) · args: after the
    image (None: the image's Cmd) · workdir · network: ``none`` (loopback only) | ``host`` ·
    tmpfs: ``PATH[:opts]`` · memory: bytes · pids_limit · cpus · hostname ·
    seccomp: ``default`` | ``unconfined``. (A plain named tuple: no ``typing`` on the warm path.)
    """

    __slots__ = ()

    @property
    def has_limits(self) -> bool:
        return self.memory is not None or self.pids_limit is not None or self.cpus is not None

    def key(self) -> str:
        """A stable text form (hashed into the bundle cache key)."""
        return SPEC_REVISION + "|" + repr(tuple(self))


def check_name(name: str) -> str:
    """A container name: letters, digits, ``_ . -``; at most 63 characters."""
    if not _is_name(name):
        raise UsageError(f"invalid container name {name!r}",
                         hint="use letters, digits, '_', '.' or '-' (at most 63), starting with a letter or digit")
    return name


def parse_size(text: str, what: str = "--memory") -> int:
    """``64m``, ``1g``, ``512k``, ``1048576`` → bytes."""
    m = _match(_SIZE_RE, text or "")
    if not m:
        raise UsageError(f"{what}: cannot parse size {text!r}", hint="use e.g. 64m, 512k, 1g")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n < 1 << 20 and what == "--memory":
        raise UsageError(f"{what}: {text!r} is below the 1 MiB minimum")
    return n


def parse_cpus(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"--cpus: not a number: {text!r}", hint="e.g. --cpus 0.5") from None
    if not 0.01 <= v <= 1024:
        raise UsageError(f"--cpus: {text!r} out of range (0.01 .. 1024)")
    return v


def parse_env(items: list[str], environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """``-e KEY=VALUE`` or ``-e KEY`` (value taken from *environ*, skipped if unset)."""
    out: list[str] = []
    for item in items:
        key, sep, _value = item.partition("=")
        if not _is_env_key(key):
            raise UsageError(f"-e: invalid variable name in {item!r}")
        if "\0" in item:
            raise UsageError(f"-e: NUL byte in {key!r}")
        if sep:
            out.append(item)
        elif environ is not None and key in environ:
            out.append(f"{key}={environ[key]}")
    return tuple(out)


def parse_tmpfs(item: str) -> str:
    path, sep, opts = item.partition(":")
    if not path.startswith("/") or path == "/" or "\0" in path or "/../" in path + "/":
        raise UsageError(f"--tmpfs: {item!r} must be an absolute path other than /",
                         hint="e.g. --tmpfs /tmp or --tmpfs /tmp:size=16m")
    if sep:
        for o in opts.split(","):
            if not _match(_TMPFS_OPT_RE, o):
                raise UsageError(f"--tmpfs: bad option {o!r} in {item!r}")
    return item


def normalise_cap(name: str) -> str:
    cap = name.strip().upper()
    if not cap.startswith("CAP_"):
        cap = "CAP_" + cap
    if cap not in ALL_CAPS:
        raise UsageError(f"--cap-add: unknown capability {name!r}", hint="e.g. --cap-add NET_BIND_SERVICE")
    return cap


ALL_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)


def make_options(*, user: str | None = None, read_write: bool = False, cap_add: list[str] | tuple[str, ...] = (),
                 env: list[str] | tuple[str, ...] = (), entrypoint: str | None = None,
                 args: list[str] | tuple[str, ...] | None = None, workdir: str | None = None,
                 network: str = "none", tmpfs: list[str] | tuple[str, ...] = (), memory: str | int | None = None,
                 pids_limit: int | None = None, cpus: str | float | None = None, hostname: str | None = None,
                 seccomp: str = "default", environ: dict[str, str] | None = None) -> RunOptions:
    """Validate loose user input into :class:`RunOptions`."""
    if network == "loopback":
        network = "none"
    if network not in NETWORKS:
        raise UsageError(f"--network: unknown mode {network!r}", hint="use none (loopback only, the default) or host")
    if workdir is not None and not workdir.startswith("/"):
        raise UsageError(f"--workdir: {workdir!r} is not an absolute path")
    if pids_limit is not None and pids_limit < 1:
        raise UsageError(f"--pids-limit: {pids_limit} must be at least 1")
    if hostname is not None and not _is_name(hostname):
        raise UsageError(f"--hostname: invalid host name {hostname!r}")
    if seccomp not in ("default", "unconfined"):
        raise UsageError(f"--seccomp: {seccomp!r} is not 'default' or 'unconfined'")
    if user is not None and (not user or "\0" in user or user.count(":") > 1):
        raise UsageError(f"--user: invalid value {user!r}", hint="use UID[:GID] or NAME[:GROUP]")
    mem = parse_size(memory) if isinstance(memory, str) else memory
    cpu = parse_cpus(cpus) if isinstance(cpus, str) else cpus
    return RunOptions(
        user=user, read_write=read_write,
        cap_add=tuple(sorted({normalise_cap(c) for c in cap_add})),
        env=parse_env(list(env), environ), entrypoint=entrypoint,
        args=None if args is None else tuple(args), workdir=workdir, network=network,
        tmpfs=tuple(parse_tmpfs(t) for t in tmpfs), memory=mem, pids_limit=pids_limit, cpus=cpu,
        hostname=hostname, seccomp=seccomp,
    )
