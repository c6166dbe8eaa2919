"""The local content store, shared by every command.

Lives in ``$KILOBOX_CACHE``, else ``$XDG_CACHE_HOME/kilobox``, else
``~/.cache/kilobox``::

    blobs/sha256/<hex>   content-addressed blobs (verified before they land)
    tmp/                 temp files, on the same filesystem so renames are atomic
    <area>/…             other caches (compile/, rootfs/, bundles/) via :meth:`Store.area`

Writes are atomic (temp file, fsync, rename), so two kilobox processes can
fill the store at once: the loser of a race renames identical bytes over
identical bytes. Structural changes (prune) take an exclusive ``flock``.
The store is a cache: a blob's content is made durable before it is renamed
into place (layouts may hard-link it), but the rename itself is not — after
a crash an entry may be missing, never wrong.
"""

from __future__ import annotations

import os

from ._atomic import mkstemp
from .errors import StoreError
from .oci import Descriptor, Digest, VerifyingReader

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path
    from typing import BinaryIO, Iterator

CHUNK = 1 << 20


def _default_root() -> str:
    env = os.environ.get("KILOBOX_CACHE")
    if env:
        return env
    xdg = os.environ.get("XDG_CACHE_HOME")
    return os.path.join(xdg, "kilobox") if xdg else os.path.join(os.path.expanduser("~"), ".cache", "kilobox")


def default_root() -> Path:
    from pathlib import Path
    return Path(_default_root())


class Store:
    """A content-addressed blob store plus named cache areas.

    The blob methods a pull uses work on path strings inside (:mod:`pathlib`
    is imported only when a :class:`~pathlib.Path` is handed out).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root = os.fspath(root) if root is not None else _default_root()
        self._root_path: Path | None = None

    @property
    def root(self) -> Path:
        if self._root_path is None:
            from pathlib import Path
            self._root_path = Path(self._root)
        return self._root_path

    @root.setter
    def root(self, value: str | os.PathLike[str]) -> None:
        self._root = os.fspath(value)
        self._root_path = None

    @property
    def root_dir(self) -> str:
        """:attr:`root` as a string (no :mod:`pathlib` needed)."""
        return self._root

    # -- blobs ---------------------------------------------------------------
    def blob_file(self, digest: Digest | str) -> str:
        """The path of a blob, as a string."""
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        return os.path.join(self._root, "blobs", d.algorithm, d.hex)

    def blob_path(self, digest: Digest | str) -> Path:
        from pathlib import Path
        return Path(self.blob_file(digest))

    def has_blob(self, digest: Digest | str, size: int | None = None) -> bool:
        try:
            st = os.stat(self.blob_file(digest))
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def put_blob(self, desc: Descriptor, stream: BinaryIO, durable: bool = True) -> Path:
        """Stream a blob in, verifying digest and size before it becomes visible.

        *durable*: fsync the content before the rename (False for small JSON that
        every reader verifies anyway; a blob that may be linked into a layout is durable).
        """
        from pathlib import Path
        return Path(self.store_blob(desc, stream, durable))

    def store_blob(self, desc: Descriptor, stream: BinaryIO, durable: bool = True) -> str:
        """:meth:`put_blob`, returning the path as a string."""
        dest = self.blob_file(desc.digest)
        if self.has_blob(desc.digest, desc.size):
            return dest
        reader = stream if isinstance(stream, VerifyingReader) else VerifyingReader(stream, desc.digest, desc.size)
        fd, tmp = self._mkstemp()
        try:
            with os.fdopen(fd, "wb") as f:
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                f.flush()
                if durable:
                    os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            try:
                os.replace(tmp, dest)
            except FileNotFoundError:           # the first blob of this algorithm
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(tmp, dest)
        finally:
            try:
                os.unlink(tmp)                  # only there when something failed
            except FileNotFoundError:
                pass
        return dest

    def put_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        desc = Descriptor.for_bytes(media_type, data)
        import io
        self.put_blob(desc, io.BytesIO(data))
        return desc

    def read_blob(self, digest: Digest | str) -> bytes:
        try:
            with open(self.blob_file(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            from .errors import NotFound
            raise NotFound(f"blob {digest} is not in the store {self.root}") from None

    # -- temp files and areas -----------------------------------------------
    def temp_file(self) -> _TempFile:
        """``with store.temp_file() as (f, path):`` a temp file inside the store; removed unless renamed away."""
        return _TempFile(self)

    def _mkstemp(self) -> tuple[int, str]:
        """A new temp file in ``tmp/`` (fd open for writing, path)."""
        tmpdir = os.path.join(self._root, "tmp")
        try:
            if not os.path.isdir(tmpdir):
                os.makedirs(tmpdir, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the store at {self._root}: {e.strerror}",
                             hint="set KILOBOX_CACHE to a writable directory") from None
        return mkstemp(tmpdir, prefix="blob.")

    def temp_dir(self, prefix: str = "dir.") -> Path:
        """A new temp directory inside the store (caller renames or removes it)."""
        import tempfile
        from pathlib import Path
        tmpdir = self.root / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=tmpdir, prefix=prefix))

    def area(self, name: str) -> Path:
        """A named cache directory (``compile``, ``rootfs``, ``bundles``…), created on demand."""
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def lock(self, name: str = "store", shared: bool = False) -> _Lock:
        """``with store.lock():`` an advisory flock on ``locks/<name>`` (exclusive unless *shared*)."""
        return _Lock(os.path.join(self._root, "locks"), name, shared)

    # -- maintenance ----------------------------------------------------------
    def usage(self) -> dict[str, int]:
        """Bytes used per top-level area."""
        out: dict[str, int] = {}
        if not self.root.exists():
            return out
        for child in self.root.iterdir():
            if child.name == "locks":
                continue
            total = 0
            for dirpath, _dirs, files in os.walk(child):
                for fn in files:
                    try:
                        total += os.lstat(os.path.join(dirpath, fn)).st_size
                    except OSError:
                        pass
            out[child.name] = total
        return out

    def prune(self, older_than: float = 0.0, areas: tuple[str, ...] = ("blobs", "tmp")) -> tuple[int, int]:
        """Remove entries of *areas* not modified for *older_than* seconds.

        Returns (entries removed, bytes freed). Holds the store lock so a
        concurrent prune cannot race; concurrent readers re-fetch what they miss.
        """
        import time
        cutoff = time.time() - older_than
        removed = freed = 0
        with self.lock():
            for area in areas:
                base = self.root / area
                if not base.is_dir():
                    continue
                for entry in _entries(base, area):
                    try:
                        st = entry.lstat()
                    except FileNotFoundError:
                        continue
                    if max(st.st_mtime, st.st_atime) > cutoff:
                        continue
                    size = _tree_size(entry)
                    if entry.is_dir() and not entry.is_symlink():
                        _rmtree(entry)
                    else:
                        entry.unlink(missing_ok=True)
                    removed += 1
                    freed += size
        return removed, freed


class _TempFile:
    """The context manager behind :meth:`Store.temp_file` (yields (file, Path))."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> tuple[BinaryIO, Path]:
        from pathlib import Path
        fd, self.name = self.store._mkstemp()
        self.file = os.fdopen(fd, "wb")
        return self.file, Path(self.name)  # type: ignore[return-value]

    def __exit__(self, *exc: object) -> None:
        try:
            self.file.close()
        finally:
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass


class _Lock:
    """The context manager behind :meth:`Store.lock`."""

    def __init__(self, directory: str, name: str, shared: bool) -> None:
        self.directory, self.name, self.shared = directory, name, shared

    def __enter__(self) -> None:
        import fcntl
        os.makedirs(self.directory, exist_ok=True)
        self.fd = os.open(os.path.join(self.directory, self.name), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _entries(base: Path, area: str) -> Iterator[Path]:
    if area == "blobs":
        for algo in base.iterdir():
            if algo.is_dir():
                yield from algo.iterdir()
    else:
        yield from base.iterdir()


def _tree_size(p: Path) -> int:
    if p.is_file() or p.is_symlink():
        return p.lstat().st_size
    total = 0
    for dirpath, _d, files in os.walk(p):
        for fn in files:
            try:
                total += os.lstat(os.path.join(dirpath, fn)).st_size
            except OSError:
                pass
    return total


def _rmtree(p: Path) -> None:
    def onerror(func, path, exc):  # read-only dirs inside unpacked rootfs
        try:
            os.chmod(os.path.dirname(path), 0o755)
            os.chmod(path, 0o755)
            func(path)
        except OSError:
            pass
    import shutil
    shutil.rmtree(p, onerror=onerror)
