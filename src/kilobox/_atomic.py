"""Atomic file writes: temp file in the same directory, fsync, rename.

Nothing is ever left half-written: on any error the temp file is removed.
:func:`mkstemp` is :func:`tempfile.mkstemp` without importing :mod:`tempfile`
(which pulls in ``random``, ``shutil`` and the compression modules: a few ms
of every CLI run).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import BinaryIO

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


class atomic_open:  # noqa: N801 - used like open()
    """``with atomic_open(path) as f:`` — a temp file beside *path*; on clean exit it is
    fsynced and renamed over *path*; on an error it is removed.

    With *durable* False the fsyncs are left out (content that may be lost in a
    crash, but never seen half-written). *sync_dir* (default: *durable*) False
    skips the directory's fsync, for a caller that fsyncs the directory later anyway.
    (A class, not :func:`contextlib.contextmanager`: contextlib is not imported on the hot path.)
    """

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o644, durable: bool = True,
                 sync_dir: bool | None = None) -> None:
        self.path = os.fspath(path)
        self.mode = mode
        self.durable = durable
        self.sync_dir = durable if sync_dir is None else sync_dir

    def __enter__(self) -> BinaryIO:
        parent = os.path.dirname(self.path) or "."
        os.makedirs(parent, exist_ok=True)
        fd, self.tmp = mkstemp(parent, prefix=f".{os.path.basename(self.path)}.", suffix=".tmp")
        try:
            self.file = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            _unlink(self.tmp)
            raise
        return self.file  # type: ignore[return-value]

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.file.flush()
                if self.durable:
                    os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                os.chmod(self.tmp, self.mode)
                os.replace(self.tmp, self.path)
        except BaseException:
            _unlink(self.tmp)
            raise
        if exc_type is not None:
            _unlink(self.tmp)
            return
        if self.sync_dir:
            fsync_dir(os.path.dirname(self.path) or ".")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o644, durable: bool = True,
                 sync_dir: bool | None = None) -> None:
    """Write *data* to *path* atomically."""
    with atomic_open(path, mode, durable, sync_dir) as f:
        f.write(data)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename inside it is durable (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
