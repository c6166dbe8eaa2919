"""Atomic file writes: temp file in the same directory, fsync, rename.

Nothing is ever left half-written: on any error the temp file is removed.
:func:`mkstemp` is :func:`tempfile.mkstemp` without importing :mod:`tempfile`
(which pulls in ``random``, ``shutil`` and the compression modules: a few ms
of every CLI run).
"""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import BinaryIO, Iterator

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def mkstemp(dir: str | os.PathLike[str], prefix: str = "tmp", suffix: str = "",  # noqa: A002 - as tempfile
            mode: int = 0o600) -> tuple[int, str]:
    """Create a new file ``dir/prefix<random>suffix`` exclusively; return (fd open for writing, path)."""
    d = os.fspath(dir)
    for _ in range(100):
        path = os.path.join(d, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, mode)
        except FileExistsError:
            continue
        return fd, path
    raise FileExistsError(f"no free temporary name in {d}")  # pragma: no cover


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: int = 0o644, durable: bool = True,
                sync_dir: bool | None = None) -> Iterator[BinaryIO]:
    """Open a temp file beside *path*; on clean exit fsync and rename it over *path*.

    With *durable* False the fsyncs are left out (content that may be lost in a
    crash, but never seen half-written). *sync_dir* (default: *durable*) False
    skips the directory's fsync, for a caller that fsyncs the directory later anyway.
    """
    path = os.fspath(path)
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    fd, tmp = mkstemp(parent, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f  # type: ignore[misc]
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable if sync_dir is None else sync_dir:
        fsync_dir(parent)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o644, durable: bool = True,
                 sync_dir: bool | None = None) -> None:
    """Write *data* to *path* atomically."""
    with atomic_open(path, mode, durable, sync_dir) as f:
        f.write(data)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename inside it is durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
