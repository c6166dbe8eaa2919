"""Container state on disk: names, metadata, exit codes, logs.

``$KILOBOX_STATE``, else ``$XDG_STATE_HOME/kilobox``, else ``~/.local/state/kilobox``::

    containers/<name>/state.json   what was started (image, bundle, runtime, pids)
    containers/<name>/pid          the container's init pid (written by the runtime)
    containers/<name>/exit         its exit code, once it has exited
    containers/<name>/log          stdout+stderr of a detached container (every run of it)
    containers/<name>/stop         a stop was asked: a --restart policy restarts no more
    containers/<name>/upper,work   the writable layer of a --read-write container
    runtime/<runtime>/             the runtime's own --root

A name is claimed with ``mkdir`` (atomic: two runs cannot get the same name).
Liveness is read from /proc with the process start time, so a recycled pid is
never mistaken for a container; everything survives a restart of kilobox.

Paths are plain strings here (no pathlib, no json to write): this module is on the warm path.
"""

from __future__ import annotations

import os
import time

from ..errors import NotFound, RunError
from .options import check_name

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - annotations only (collections.abc imports collections)
    from collections.abc import Iterator

def state_root() -> str:
    env = os.environ.get("KILOBOX_STATE")
    if env:
        return env
    xdg = os.environ.get("XDG_STATE_HOME")
    return os.path.join(xdg, "kilobox") if xdg else os.path.join(os.path.expanduser("~"), ".local", "state", "kilobox")


def containers_dir(root: object = None) -> str:
    return os.path.join(os.fspath(root) if root is not None else state_root(), "containers")


def claim(name: str | None, root: object = None) -> tuple[str, str]:
    """Reserve *name* (or a fresh ``kb-xxxxxx``); returns (name, its directory)."""
    base = containers_dir(root)
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create the state directory {base}: {e.strerror}",
                       hint="set KILOBOX_STATE to a writable directory") from None
    if name is not None:
        check_name(name)
        d = os.path.join(base, name)
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            raise RunError(f"the name {name!r} is already in use by a container",
                           hint=f"choose another --name, or remove it: kilobox rm {name}") from None
        return name, d
    for _ in range(100):
        name = "kb-" + os.urandom(3).hex()
        d = os.path.join(base, name)
        try:
            os.mkdir(d, 0o700)
            return name, d
        except FileExistsError:
            continue
    raise RunError(f"cannot find a free container name in {base}")


_PLAIN = frozenset(" !#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~")


def to_json(v: object) -> str:
    """:func:`json.dumps` for state documents (str, int, float, bool, None, list, dict) —
    without importing :mod:`json` (~1 ms) unless a string needs escaping."""
    if isinstance(v, str):
        if _PLAIN.issuperset(v):
            return f'"{v}"'
        import json
        return json.dumps(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"not JSON: {v!r}")
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(to_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{to_json(str(k))}: {to_json(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"not JSON serializable: {type(v).__name__}")


def write_json(path: object, doc: dict[str, object]) -> None:
    """Replace *path* atomically (no fsync: state must survive kilobox, not power loss)."""
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(to_json(doc) + "\n")
    os.replace(tmp, path)


def write_exit(cdir: object, code: int) -> None:
    cdir = os.fspath(cdir)
    tmp = os.path.join(cdir, f".exit.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(f"{code}\n")
        os.replace(tmp, os.path.join(cdir, "exit"))
    except FileNotFoundError:
        pass


def request_stop(cdir: object) -> None:
    """Record that the container is being stopped (its monitor restarts it no more)."""
    try:
        os.close(os.open(os.path.join(os.fspath(cdir), "stop"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except FileNotFoundError:
        pass


def stop_requested(cdir: object) -> bool:
    return os.path.exists(os.path.join(os.fspath(cdir), "stop"))


def container_dir(name: str, root: object = None) -> str:
    d = os.path.join(containers_dir(root), name)
    if not name or "/" in name or name.startswith(".") or not os.path.isfile(os.path.join(d, "state.json")):
        raise NotFound(f"no such container: {name}", hint="list containers with: kilobox ps")
    return d


def load(name: str, root: object = None) -> dict[str, object]:
    d = container_dir(name, root)
    path = os.path.join(d, "state.json")
    import json
    try:
        with open(path) as f:
            doc = json.load(f)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as e:
        raise RunError(f"container {name}: unreadable state {path}: {e}",
                       hint=f"remove it: kilobox rm -f {name}") from None
    doc["_dir"] = d
    return doc


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return data[data.rindex(b")") + 2:].split()


def start_time(pid: int) -> int | None:
    """The kernel's start time of *pid* (clock ticks since boot), or None if it is gone or a zombie."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def alive(pid: int | None, started: int | None) -> bool:
    if not pid:
        return False
    st = start_time(pid)
    return st is not None and (started is None or st == started)


def read_int(path: object) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip() or "x")
    except (OSError, ValueError):
        return None


def init_pid(doc: dict[str, object]) -> int | None:
    """The container's init pid, if it is still the process its runtime started."""
    pid = read_int(os.path.join(doc["_dir"], "pid"))
    if pid is None or start_time(pid) is None:
        return None
    rt_pid = doc.get("runtime_pid")
    if rt_pid and alive(rt_pid, doc.get("runtime_started")):
        fields = _stat_fields(pid)
        if fields is None or int(fields[1]) != rt_pid:
            return None
    return pid


def status(doc: dict[str, object]) -> tuple[str, int | None]:
    """(``running`` | ``restarting`` | ``exited`` | ``created`` | ``dead``, exit code).

    ``restarting``: between two runs of a container with a restart policy (the code is the last run's).
    """
    code = read_int(os.path.join(doc["_dir"], "exit"))
    if code is not None:
        return "exited", code
    if alive(doc.get("runtime_pid"), doc.get("runtime_started")) or init_pid(doc):
        return "running", None
    if doc.get("restart") and alive(doc.get("monitor_pid"), doc.get("monitor_started")):
        return "restarting", doc.get("last_exit")
    if not doc.get("runtime_pid"):
        return "created", None
    return "dead", None


def iter_containers(root: object = None) -> Iterator[dict[str, object]]:
    base = containers_dir(root)
    if not os.path.isdir(base):
        return
    for entry in sorted(os.listdir(base)):
        if entry.startswith(".") or not os.path.isfile(os.path.join(base, entry, "state.json")):
            continue
        try:
            yield load(entry, root)
        except (RunError, NotFound):
            continue


def _rmtree(d: str) -> None:
    try:                      # the usual case, a few plain files: no shutil import on the warm path
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    raise IsADirectoryError(e.path)
                os.unlink(e.path)
        os.rmdir(d)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    import shutil

    def onerror(func, path, _exc):  # read-only directories in a --read-write upper layer
        try:
            os.chmod(os.path.dirname(path), 0o700)
            func(path)
        except OSError:
            pass
    shutil.rmtree(d, onerror=onerror)


def discard(d: str) -> None:
    """Remove the directory of a container that left only its state and pid files (the common
    foreground ``--rm`` case: no rename, no listing), else :func:`remove_dir`."""
    try:
        os.unlink(os.path.join(d, "state.json"))   # first: from here on it is no container
        for f in ("pid",):
            try:
                os.unlink(os.path.join(d, f))
            except FileNotFoundError:
                pass
        os.rmdir(d)
    except OSError:
        remove_dir(d)


def remove_dir(d: object) -> None:
    """Remove a container directory (renamed first: a half-removed one never looks like a container)."""
    d = os.fspath(d)
    if not os.path.lexists(d):
        return
    tomb = os.path.join(os.path.dirname(d), f".rm-{os.path.basename(d)}-{os.urandom(3).hex()}")
    try:
        os.rename(d, tomb)
        d = tomb
    except OSError:
        pass
    _rmtree(d)


def now() -> float:
    return time.time()
