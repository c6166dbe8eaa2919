"""Container state on disk: names, metadata, exit codes, logs.

``$KILOBOX_STATE``, else ``$XDG_STATE_HOME/kilobox``, else ``~/.local/state/kilobox``::

    containers/<name>/state.json   what was started (image, bundle, runtime, pids)
    containers/<name>/pid          the container's init pid (written by the runtime)
    containers/<name>/exit         its exit code, once it has exited
    containers/<name>/log          stdout+stderr of a detached container
    containers/<name>/upper,work   the writable layer of a --read-write container
    runtime/<runtime>/             the runtime's own --root

A name is claimed with ``mkdir`` (atomic: two runs cannot get the same name).
Liveness is read from /proc with the process start time, so a recycled pid is
never mistaken for a container; everything survives a restart of kilobox.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import NotFound, RunError
from .options import check_name


def state_root() -> Path:
    env = os.environ.get("KILOBOX_STATE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME")
    return Path(xdg) / "kilobox" if xdg else Path.home() / ".local" / "state" / "kilobox"


def containers_dir(root: Path | None = None) -> Path:
    return (root or state_root()) / "containers"


def claim(name: str | None, root: Path | None = None) -> tuple[str, Path]:
    """Reserve *name* (or a fresh ``kb-xxxxxx``); returns (name, its directory)."""
    base = containers_dir(root)
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise RunError(f"cannot create the state directory {base}: {e.strerror}",
                       hint="set KILOBOX_STATE to a writable directory") from None
    if name is not None:
        check_name(name)
        d = base / name
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            raise RunError(f"the name {name!r} is already in use by a container",
                           hint=f"choose another --name, or remove it: kilobox rm {name}") from None
        return name, d
    for _ in range(100):
        name = "kb-" + os.urandom(3).hex()
        d = base / name
        try:
            d.mkdir(mode=0o700)
            return name, d
        except FileExistsError:
            continue
    raise RunError(f"cannot find a free container name in {base}")


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Replace *path* atomically (no fsync: state must survive kilobox, not power loss)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


def write_exit(cdir: Path, code: int) -> None:
    tmp = cdir / f".exit.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.write_text(f"{code}\n")
        os.replace(tmp, cdir / "exit")


def container_dir(name: str, root: Path | None = None) -> Path:
    d = containers_dir(root) / name
    if not name or "/" in name or name.startswith(".") or not (d / "state.json").is_file():
        raise NotFound(f"no such container: {name}", hint="list containers with: kilobox ps")
    return d


def load(name: str, root: Path | None = None) -> dict[str, Any]:
    d = container_dir(name, root)
    try:
        doc = json.loads((d / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"container {name}: unreadable state {d / 'state.json'}: {e}",
                       hint=f"remove it: kilobox rm -f {name}") from None
    doc["_dir"] = str(d)
    return doc


def start_time(pid: int) -> int | None:
    """The kernel's start time of *pid* (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def alive(pid: int | None, started: int | None) -> bool:
    if not pid:
        return False
    st = start_time(pid)
    return st is not None and (started is None or st == started)


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or "x")
    except (OSError, ValueError):
        return None


def init_pid(doc: dict[str, Any]) -> int | None:
    """The container's init pid if it is still the process the runtime started."""
    pid = read_int(Path(doc["_dir"]) / "pid")
    if pid is None or start_time(pid) is None:
        return None
    rt_pid = doc.get("runtime_pid")
    if rt_pid and alive(rt_pid, doc.get("runtime_started")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            ppid = int(data[data.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError):
            return None
        if ppid != rt_pid:
            return None
    return pid


def status(doc: dict[str, Any]) -> tuple[str, int | None]:
    """(``running`` | ``exited`` | ``created`` | ``dead``, exit code)."""
    d = Path(doc["_dir"])
    code = read_int(d / "exit")
    if code is not None:
        return "exited", code
    if alive(doc.get("runtime_pid"), doc.get("runtime_started")) or init_pid(doc):
        return "running", None
    if not doc.get("runtime_pid"):
        return "created", None
    return "dead", None


def iter_containers(root: Path | None = None) -> Iterator[dict[str, Any]]:
    base = containers_dir(root)
    if not base.is_dir():
        return
    for d in sorted(base.iterdir()):
        if d.name.startswith(".") or not (d / "state.json").is_file():
            continue
        try:
            yield load(d.name, root)
        except (RunError, NotFound):
            continue


def remove_dir(d: Path) -> None:
    from ..store import _rmtree
    if d.exists():
        # rename first so a half-removed directory never looks like a container
        tomb = d.with_name(f".rm-{d.name}-{os.urandom(3).hex()}")
        with contextlib.suppress(OSError):
            os.rename(d, tomb)
            d = tomb
        _rmtree(d)


def now() -> float:
    return time.time()
