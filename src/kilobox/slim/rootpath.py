"""Path resolution inside a root filesystem directory, as if chrooted.

Absolute symlinks (``/usr/bin/awk -> /etc/alternatives/awk``) resolve inside
the root; ``..`` never climbs above it. Every symlink met on the way is
recorded, because a slim image must keep the whole chain.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

MAX_LINKS = 40


def normalize(path: str) -> str:
    """``/a/./b/../c`` → ``/a/c`` (lexically; no climbing above /)."""
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/" + "/".join(parts)


def host_path(root: Path, path: str) -> Path:
    """The host path of image path *path* (already resolved) under *root*."""
    return root / normalize(path).lstrip("/")


def resolve(root: Path, path: str) -> tuple[str | None, list[str]]:
    """Resolve image path *path* under *root*.

    Returns ``(final_path or None if it does not exist, symlinks met)``; all
    paths are image paths (absolute, inside the root).
    """
    links: list[str] = []
    todo = [p for p in normalize(path).split("/") if p]
    done: list[str] = []
    budget = MAX_LINKS
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        if part == ".":
            continue
        cur = "/" + "/".join(done + [part])
        hp = host_path(root, cur)
        try:
            st = os.lstat(hp)
        except (OSError, ValueError):       # missing, not a dir, name too long, NUL byte
            return None, links
        if stat.S_ISLNK(st.st_mode):
            budget -= 1
            if budget < 0:
                return None, links
            links.append(cur)
            try:
                target = os.readlink(hp)
            except OSError:
                return None, links
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        if todo and not stat.S_ISDIR(st.st_mode):
            return None, links
        done.append(part)
    return "/" + "/".join(done), links


def exists(root: Path, path: str) -> bool:
    return resolve(root, path)[0] is not None


def dirname(path: str) -> str:
    return posixpath.dirname(normalize(path)) or "/"
