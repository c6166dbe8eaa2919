"""Root filesystems: unpacked once per image digest, looked into safely.

``Store().area("rootfs")/<algo>-<hex>/`` holds the flattened layers of one
image. It is extracted into a temp directory of the store and renamed into
place, so it is either complete or absent; containers share it read-only
(each container's mount namespace bind-mounts it read-only). The area is
mode 0700: setuid files of an image are unreachable to other host users.

Paths inside a rootfs are resolved as if it were ``/`` (:func:`resolve`):
an absolute symlink restarts at the rootfs, ``..`` stops at it — reading an
image's ``/etc/passwd`` never follows a link out to the host.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import NotFound, RunError

#: mount points every container needs; created at unpack time when the image lacks them
BASE_MOUNTPOINTS = ("/proc", "/dev", "/sys")
_MAX_LINKS = 40
_MAX_DB = 1 << 20


def resolve(root: str | os.PathLike[str], path: str, *, follow_last: bool = True) -> tuple[Path, bool]:
    """*path* inside *root* → (host path, exists), following symlinks without leaving *root*."""
    root = Path(root)
    todo = [p for p in path.split("/") if p not in ("", ".")]
    todo.reverse()
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        here = root.joinpath(*done, part)
        try:
            st = os.lstat(here)
        except (FileNotFoundError, NotADirectoryError):
            return root.joinpath(*done, part, *reversed(todo)), False
        if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
            links += 1
            if links > _MAX_LINKS:
                raise RunError(f"{path}: too many levels of symbolic links in the image")
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
            continue
        if todo and not stat.S_ISDIR(st.st_mode):
            return root.joinpath(*done, part, *reversed(todo)), False
        done.append(part)
    return root.joinpath(*done), True


def read_file(root: str | os.PathLike[str], path: str, limit: int = _MAX_DB) -> bytes | None:
    """The content of a regular file inside *root*, or None if absent (never follows out of *root*)."""
    host, ok = resolve(root, path)
    if not ok:
        return None
    try:
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(limit)


def _db(root: Path, path: str) -> list[list[str]]:
    try:
        data = read_file(root, path) or b""
    except RunError:        # a symlink loop: as good as absent
        data = b""
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def resolve_user(root: str | os.PathLike[str] | None, spec: str) -> tuple[int, int, list[int]]:
    """``UID[:GID]`` or ``NAME[:GROUP]`` → (uid, gid, additional gids), names looked up in the image."""
    user, _, group = spec.partition(":")
    root = Path(root) if root is not None else None
    passwd = _db(root, "/etc/passwd") if root is not None else []
    groups = _db(root, "/etc/group") if root is not None else []
    name = None
    if user.isdigit():
        uid = int(user)
        gid = uid if not group else -1
        for row in passwd:
            if len(row) >= 4 and row[2] == user and row[3].isdigit():
                name, gid = row[0], (int(row[3]) if not group else -1)
                break
    else:
        row = next((r for r in passwd if len(r) >= 4 and r[0] == user), None)
        if row is None or not row[2].isdigit() or not row[3].isdigit():
            raise RunError(f"user {user!r} is not in the image's /etc/passwd",
                           hint="use a numeric --user UID[:GID]")
        name, uid, gid = user, int(row[2]), int(row[3])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            row = next((r for r in groups if len(r) >= 3 and r[0] == group), None)
            if row is None or not row[2].isdigit():
                raise RunError(f"group {group!r} is not in the image's /etc/group",
                               hint="use a numeric --user UID:GID")
            gid = int(row[2])
    if uid > 0xFFFFFFFE or gid > 0xFFFFFFFE:
        raise RunError(f"user {spec!r}: id out of range")
    extra = []
    if name:
        for row in groups:
            if len(row) >= 4 and row[2].isdigit() and name in row[3].split(",") and int(row[2]) != gid:
                extra.append(int(row[2]))
    return uid, gid, sorted(set(extra))


def find_executable(root: str | os.PathLike[str], argv0: str, env: list[str], workdir: str = "/") -> str:
    """The in-image path of *argv0* (searched on the image's PATH); RunError if it is not there."""
    if "/" in argv0:
        cands = [argv0 if argv0.startswith("/") else workdir.rstrip("/") + "/" + argv0]
    else:
        path = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), "/usr/local/bin:/usr/bin:/bin")
        cands = [(d.rstrip("/") or "") + "/" + argv0 for d in path.split(":") if d.startswith("/")]
    for cand in cands:
        host, ok = resolve(root, cand)
        if not ok:
            continue
        try:
            st = os.stat(host, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise RunError(f"{argv0}: executable file not found in the image",
                   hint="check the command after the image, or --entrypoint")


def missing_dirs(root: str | os.PathLike[str], paths: list[str]) -> list[str]:
    """Which of *paths* are not directories (after in-root resolution) in *root*."""
    out = []
    for p in paths:
        host, ok = resolve(root, p)
        if not ok or not host.is_dir():
            out.append(p)
    return out


def _make_mountpoints(root: Path) -> None:
    for p in BASE_MOUNTPOINTS:
        host, ok = resolve(root, p)
        if not ok:
            with contextlib.suppress(OSError):
                os.mkdir(host, 0o755)


def rootfs_dir(store: Any, digest: str) -> Path:
    """Where the rootfs of image *digest* lives (``sha256:ab…`` → ``rootfs/sha256-ab…``)."""
    return store.root / "rootfs" / digest.replace(":", "-")


def ensure_rootfs(image: Any, store: Any = None) -> Path:
    """Unpack *image* (a :class:`kilobox.image.Image`) once; return its shared rootfs directory."""
    if store is None:
        from ..store import Store
        store = Store()
    area = store.area("rootfs")
    with contextlib.suppress(OSError):
        os.chmod(area, 0o700)
    dest = rootfs_dir(store, image.digest)
    if dest.is_dir():
        return dest
    from ..layers import flatten
    from ..store import _rmtree
    tmp = store.temp_dir("rootfs.")
    try:
        os.chmod(tmp, 0o755)
        flatten(image, tmp)
        _make_mountpoints(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():   # not a lost race: a real failure
                raise
    except BaseException:
        if tmp.exists():
            _rmtree(tmp)
        raise
    return dest


def check_rootfs(path: str | os.PathLike[str]) -> Path:
    """A user-given rootfs directory (the prepared-rootfs entry point)."""
    p = Path(path).resolve()
    if not p.is_dir():
        raise NotFound(f"rootfs {path} is not a directory")
    return p
