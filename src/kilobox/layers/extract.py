"""Safe extraction of layers into a directory, and flattening of whole images.

The target directory acts as a chroot: every parent component of an entry is
walked with ``openat(O_NOFOLLOW)`` from the target's own file descriptor, a
symlink met on the way is resolved *inside* the target (absolute targets
restart at the target, ``..`` stops at it), and the final component is never
followed: files are written to a temporary name in their directory and renamed
over it, so a symlink or hardlink already at that name is replaced, not written
through. Hardlinks may only point at an existing non-directory inside the target.

Policy (documented in docs/layers.md):

- character/block devices raise LayerError unless ``allow_devices=True``
  (fifos are harmless and always created);
- setuid/setgid bits and ownership are kept only with ``same_owner``
  (default: when running as root);
- OCI whiteouts: ``.wh.NAME`` removes NAME from lower layers, ``.wh..wh..opq``
  empties its directory of lower-layer content; a whiteout never removes an
  entry of its own layer, whatever the order inside the layer;
- the metadata of the root entry (``./``) is ignored: the target directory
  keeps its own mode and owner;
- directory modes and mtimes are applied at the end of each layer (writing
  children would change them), so a read-only directory can still be filled.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import stat
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import LayerError
from ._paths import OPAQUE, WHITEOUT_PREFIX, split
from .compress import CHUNK
from .reader import Member, iter_layer

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINKS = 40
_HINT = "the layer is corrupt or hostile; do not use it"
_tmp_counter = itertools.count()


def _lstat(name: str, dirfd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


class _Root:
    """The extraction target: resolves parents inside it and remembers what this layer made."""

    def __init__(self, dest: Path, where: str) -> None:
        self.fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.where = where
        self._cache: dict[tuple[str, ...], tuple[int, tuple[str, ...]]] = {}
        self.created: set[tuple[str, ...]] = set()     # real paths of this layer's entries
        self.touched: set[tuple[str, ...]] = set()     # their ancestors
        self.dirs: list[tuple[tuple[str, ...], int, int]] = []   # (real path, mode, mtime) to apply last

    def close(self) -> None:
        self.invalidate()
        os.close(self.fd)

    def invalidate(self) -> None:
        for fd, _ in self._cache.values():
            os.close(fd)
        self._cache.clear()

    def err(self, entry: str, msg: str) -> LayerError:
        return LayerError(f"{self.where}: entry {entry!r}: {msg}", hint=_HINT)

    def _open_real(self, real: tuple[str, ...], entry: str) -> int:
        """Open a directory by its real path (no symlinks expected)."""
        fd = os.dup(self.fd)
        for comp in real:
            try:
                nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                os.close(fd)
                raise self.err(entry, f"cannot open {'/'.join(real)}: {e.strerror}") from None
            os.close(fd)
            fd = nfd
        return fd

    def parent(self, parts: tuple[str, ...], entry: str, *, create: bool) -> tuple[int, tuple[str, ...]] | None:
        """(fd, real path) of the directory that holds ``parts[-1]``; None if missing and not *create*.

        The caller owns (closes) the returned fd.
        """
        key = parts[:-1]
        hit = self._cache.get(key)
        if hit is not None:
            return os.dup(hit[0]), hit[1]
        todo = list(key)
        real: list[str] = []
        cur = os.dup(self.fd)
        links = 0
        try:
            while todo:
                comp = todo.pop(0)
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if real:
                        real.pop()
                        os.close(cur)
                        cur = self._open_real(tuple(real), entry)
                    continue
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        return None
                    os.mkdir(comp, 0o755, dir_fd=cur)
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                    os.fchmod(nfd, 0o755)  # whatever the umask
                    self.created.add((*real, comp))
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = _lstat(comp, cur)
                    if st is None or not stat.S_ISLNK(st.st_mode):
                        raise self.err(entry, f"parent {'/'.join((*real, comp))!r} is not a directory") from None
                    links += 1
                    if links > _MAX_LINKS:
                        raise self.err(entry, "too many levels of symbolic links") from None
                    target = os.readlink(comp, dir_fd=cur)
                    if target.startswith("/"):
                        real = []
                        os.close(cur)
                        cur = os.dup(self.fd)
                    todo[0:0] = target.split("/")
                    continue
                os.close(cur)
                cur = nfd
                real.append(comp)
        except BaseException:
            os.close(cur)
            raise
        if len(self._cache) >= 128:
            self.invalidate()
        self._cache[key] = (cur, tuple(real))
        return os.dup(cur), tuple(real)

    def mark(self, real: tuple[str, ...]) -> None:
        self.created.add(real)
        for i in range(len(real)):
            self.touched.add(real[:i])

    def remove(self, dirfd: int, name: str) -> None:
        """Remove *name* (any type, recursively) from *dirfd* without following symlinks."""
        st = _lstat(name, dirfd)
        if st is None:
            return
        self.invalidate()
        if stat.S_ISDIR(st.st_mode):
            _rmtree(name, dirfd)
        else:
            os.unlink(name, dir_fd=dirfd)


def _rmtree(name: str, dirfd: int) -> None:
    shutil.rmtree(name, dir_fd=dirfd)  # fd-based, does not follow symlinks


def _opaque(root: _Root, dirfd: int, real: tuple[str, ...]) -> None:
    """Empty a directory of everything this layer did not create."""
    for name in os.listdir(dirfd):
        child = (*real, name)
        if child in root.created or child in root.touched:
            st = _lstat(name, dirfd)
            if st is not None and stat.S_ISDIR(st.st_mode):
                fd = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
                try:
                    _opaque(root, fd, child)
                finally:
                    os.close(fd)
            continue
        root.remove(dirfd, name)


class _Extractor:
    def __init__(self, root: _Root, allow_devices: bool, whiteouts: bool, same_owner: bool) -> None:
        self.root = root
        self.allow_devices = allow_devices
        self.whiteouts = whiteouts
        self.same_owner = same_owner

    def entry(self, m: Member) -> None:
        root = self.root
        parts = split(m.name)
        if not parts:
            if m.kind != "dir":
                raise root.err(m.name, f"the root of the image cannot be a {m.kind}")
            return
        if self.whiteouts and parts[-1].startswith(WHITEOUT_PREFIX):
            self.whiteout(m, parts)
            return
        if m.kind in ("char", "block") and not self.allow_devices:
            raise LayerError(f"{root.where}: entry {m.name!r}: device nodes are not allowed",
                             hint="pass allow_devices=True (as root) to create them, or drop them from the layer")
        pfd, preal = root.parent(parts, m.name, create=True)  # type: ignore[misc]
        try:
            real = (*preal, parts[-1])
            getattr(self, "make_" + m.kind)(m, pfd, parts[-1], real)
            root.mark(real)
        finally:
            os.close(pfd)

    # -- whiteouts ---------------------------------------------------------------------
    def whiteout(self, m: Member, parts: tuple[str, ...]) -> None:
        root = self.root
        base = parts[-1]
        target = base[len(WHITEOUT_PREFIX):]
        if base != OPAQUE and (target.startswith(WHITEOUT_PREFIX) or not target):
            return  # AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): nothing to apply
        if target in (".", ".."):
            raise root.err(m.name, "whiteout of an invalid name")
        hit = root.parent(parts, m.name, create=False)
        if hit is None:
            return  # nothing below to hide
        pfd, preal = hit
        try:
            if base == OPAQUE:
                if preal:
                    root.mark(preal)
                _opaque(root, pfd, preal)
                return
            real = (*preal, target)
            if real in root.created or real in root.touched:
                # this layer made it: a whiteout only hides what lower layers had
                st = _lstat(target, pfd)
                if st is not None and stat.S_ISDIR(st.st_mode):
                    fd = os.open(target, _DIR_FLAGS, dir_fd=pfd)
                    try:
                        _opaque(root, fd, real)
                    finally:
                        os.close(fd)
                return
            root.remove(pfd, target)
        finally:
            os.close(pfd)

    # -- creating entries ------------------------------------------------------------------
    def _replace_prep(self, pfd: int, name: str, keep_dir: bool = False) -> os.stat_result | None:
        st = _lstat(name, pfd)
        if st is not None and stat.S_ISDIR(st.st_mode) and not keep_dir:
            self.root.remove(pfd, name)
            return None
        if st is not None and stat.S_ISLNK(st.st_mode):
            self.root.invalidate()
        return st

    def _tmpname(self, name: str) -> str:
        return f".kbx-{os.getpid()}-{next(_tmp_counter)}.tmp"

    def _owner_mode(self, m: Member) -> int:
        mode = m.mode & 0o7777
        return mode if self.same_owner else mode & ~0o6000

    def _meta_fd(self, fd: int, m: Member, mode: int) -> None:
        """Owner, then mode (chown clears setuid bits), then xattrs (chown clears file capabilities)."""
        if self.same_owner:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, mode)
        for key, value in m.xattrs.items():
            with contextlib.suppress(OSError):  # unprivileged or unsupported fs: skip, as umoci does
                os.setxattr(fd, key, value)

    def make_file(self, m: Member, pfd: int, name: str, real: tuple[str, ...]) -> None:
        tmp = self._tmpname(name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
        try:
            try:
                left = m.size
                while left:
                    chunk = m.read(min(CHUNK, left))
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                    left -= len(chunk)
                self._meta_fd(fd, m, self._owner_mode(m))
                os.utime(fd, (m.mtime, m.mtime))
            finally:
                os.close(fd)
            self._replace_prep(pfd, name)
            os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=pfd)
            raise

    def make_dir(self, m: Member, pfd: int, name: str, real: tuple[str, ...]) -> None:
        st = self._replace_prep(pfd, name, keep_dir=True)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            self.root.remove(pfd, name)
            st = None
        if st is None:
            os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        try:
            self._meta_fd(fd, m, 0o700 | self._owner_mode(m))  # writable while we fill it
        finally:
            os.close(fd)
        self.root.dirs.append((real, self._owner_mode(m), m.mtime))

    def _place(self, pfd: int, name: str, make_tmp: Any, m: Member) -> None:
        tmp = self._tmpname(name)
        make_tmp(tmp)
        try:
            if m.kind != "hardlink":  # a hardlink shares its target's inode and metadata
                if self.same_owner:
                    os.chown(tmp, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
                if m.kind != "symlink":
                    os.chmod(tmp, self._owner_mode(m), dir_fd=pfd)  # a node we just made, not a symlink
                os.utime(tmp, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
            self._replace_prep(pfd, name)
            os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=pfd)
            raise

    def make_symlink(self, m: Member, pfd: int, name: str, real: tuple[str, ...]) -> None:
        self._place(pfd, name, lambda tmp: os.symlink(m.linkname, tmp, dir_fd=pfd), m)

    def make_hardlink(self, m: Member, pfd: int, name: str, real: tuple[str, ...]) -> None:
        root = self.root
        tparts = split(m.linkname)
        hit = root.parent(tparts, m.name, create=False) if tparts else None
        if hit is None:
            raise root.err(m.name, f"hardlink target {m.linkname!r} does not exist in the image")
        tfd, _ = hit
        try:
            st = _lstat(tparts[-1], tfd)
            if st is None:
                raise root.err(m.name, f"hardlink target {m.linkname!r} does not exist in the image")
            if stat.S_ISDIR(st.st_mode):
                raise root.err(m.name, f"hardlink target {m.linkname!r} is a directory")
            self._place(pfd, name, lambda tmp: os.link(tparts[-1], tmp, src_dir_fd=tfd, dst_dir_fd=pfd,
                                                        follow_symlinks=False), m)
        finally:
            os.close(tfd)

    def _node(self, m: Member, pfd: int, name: str, kind_bits: int) -> None:
        dev = os.makedev(m.devmajor, m.devminor) if kind_bits != stat.S_IFIFO else 0
        self._place(pfd, name, lambda tmp: os.mknod(tmp, kind_bits | 0o600, dev, dir_fd=pfd), m)

    def make_char(self, m: Member, pfd: int, name: str, real: tuple[str, ...]) -> None:
        self._node(m, pfd, name, stat.S_IFCHR)

    def make_block(self, m: Member, pfd: int, name: str, real: tuple[str, ...]) -> None:
        self._node(m, pfd, name, stat.S_IFBLK)

    def make_fifo(self, m: Member, pfd: int, name: str, real: tuple[str, ...]) -> None:
        self._node(m, pfd, name, stat.S_IFIFO)

    def finish_dirs(self) -> None:
        """Apply directory modes and mtimes, deepest first."""
        root = self.root
        root.invalidate()
        for real, mode, mtime in sorted(root.dirs, key=lambda d: len(d[0]), reverse=True):
            try:
                fd = root._open_real(real, "/".join(real))
            except LayerError:
                continue  # replaced later in the layer
            try:
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
        root.dirs.clear()


def extract_layer(tar_stream: BinaryIO, dest: Path, *, allow_devices: bool = False, whiteouts: bool = True,
                  same_owner: bool | None = None, name: str = "layer") -> None:
    """Extract one layer's tar (plain, or gzip/zstd detected by magic) into *dest*, safely.

    *dest* is created if missing. Raises :class:`LayerError` (with the layer
    *name* and entry) for hostile or corrupt input; whatever was extracted
    before the error stays, but no file is ever left half-written.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if same_owner is None:
        same_owner = os.geteuid() == 0
    root = _Root(dest, name)
    ex = _Extractor(root, allow_devices, whiteouts, same_owner)
    try:
        for m in iter_layer(tar_stream, name=name):
            try:
                ex.entry(m)
            except OSError as e:
                raise LayerError(f"{name}: entry {m.name!r}: {e.strerror or e}",
                                 hint="check free space and permissions of the target") from None
        ex.finish_dirs()
    finally:
        root.close()


def flatten(image: Any, dest: Path, **kw: Any) -> None:
    """Extract every layer of *image* (a :class:`kilobox.image.Image`) in order into *dest*.

    Whiteouts are applied; keyword arguments go to :func:`extract_layer`.
    """
    kw.setdefault("whiteouts", True)
    for i, desc in enumerate(image.layers):
        with image.open_layer_tar(desc) as tar:
            extract_layer(tar, dest, name=f"layer {i} ({desc.digest})", **kw)
