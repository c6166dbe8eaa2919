"""Safe extraction of layers into a directory, and flattening of whole images.

The target directory acts as a chroot: every parent component of an entry is
walked with ``openat(O_NOFOLLOW)`` from the target's own file descriptor, a
symlink met on the way is resolved *inside* the target (absolute targets
restart at the target, ``..`` stops at it), and the final component is never
followed: files are written to a temporary name in their directory and renamed
over it, so a symlink or hardlink already at that name is replaced, not written
through. Hardlinks may only point at an existing non-directory inside the target.

Policy (documented in docs/layers.md):

- character/block devices are never created unless ``allow_devices=True``:
  :func:`extract_layer` raises LayerError for them, or leaves them out with
  ``skip_devices=True`` (the default of :func:`flatten`: debootstrap trees
  carry /dev nodes and runtimes mount their own /dev); fifos are always created;
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
import stat
from pathlib import Path

from ..errors import LayerError
from ._paths import OPAQUE, WHITEOUT_PREFIX, split
from .compress import CHUNK
from .reader import Member, iter_layer

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs ~3 ms of a CLI start
    from typing import Any, BinaryIO

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
        start = 0
        for j in range(len(key) - 1, 0, -1):  # the longest resolved prefix (new subtrees, deep paths)
            if key[:j] in self._cache:
                start = j
                break
        if start:
            sfd, sreal = self._cache[key[:start]]
            cur, real = os.dup(sfd), list(sreal)
        else:
            cur, real = os.dup(self.fd), []
        todo = list(key[start:])
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
        for i in range(len(real) - 1, -1, -1):  # deepest first; stop at a known ancestor
            anc = real[:i]
            if anc in self.touched:
                break
            self.touched.add(anc)

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
    """Remove directory *name* in *dirfd*, never following symlinks, in constant depth and fds.

    Subdirectories are first moved up beside *name* under temporary names, so any depth is
    removed iteratively (Python 3.11's fd-based shutil.rmtree recurses).
    """
    work = [name]
    while work:
        n = work.pop()
        fd = os.open(n, _DIR_FLAGS, dir_fd=dirfd)
        try:
            for child in os.listdir(fd):
                st = _lstat(child, fd)
                if st is not None and stat.S_ISDIR(st.st_mode):
                    tmp = f".kbx-rm-{os.getpid()}-{next(_tmp_counter)}"
                    os.rename(child, tmp, src_dir_fd=fd, dst_dir_fd=dirfd)
                    work.append(tmp)
                else:
                    os.unlink(child, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(n, dir_fd=dirfd)


def _opaque(root: _Root, dirfd: int, real: tuple[str, ...]) -> None:
    """Empty a directory of everything this layer did not create (iteratively)."""
    stack: list[tuple[tuple[str, ...], int | None]] = [(real, os.dup(dirfd))]
    open_fds = 1
    while stack:
        r, fd = stack.pop()
        if fd is None:
            try:
                fd = root._open_real(r, "/".join(r))
            except LayerError:
                continue
        else:
            open_fds -= 1
        try:
            for name in os.listdir(fd):
                child = (*r, name)
                if child in root.created or child in root.touched:
                    st = _lstat(name, fd)
                    if st is not None and stat.S_ISDIR(st.st_mode):
                        if open_fds < 64:
                            stack.append((child, os.open(name, _DIR_FLAGS, dir_fd=fd)))
                            open_fds += 1
                        else:
                            stack.append((child, None))
                    continue
                root.remove(fd, name)
        finally:
            os.close(fd)


class _Extractor:
    def __init__(self, root: _Root, allow_devices: bool, whiteouts: bool, same_owner: bool,
                 skip_devices: bool = False) -> None:
        self.root = root
        self.allow_devices = allow_devices
        self.skip_devices = skip_devices
        self.skipped: list[str] = []
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
            if self.skip_devices:
                self.skipped.append(m.name)
                return
            raise LayerError(f"{root.where}: entry {m.name!r}: device nodes are not allowed",
                             hint="pass allow_devices=True (as root) to create them, or skip_devices=True to leave them out")
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
        """Apply directory modes and mtimes, children before parents.

        Reverse tree order with a stack of open fds along the current path (at most
        256 open; shallower ones are reopened when needed), so deep trees cost O(n).
        """
        root = self.root
        root.invalidate()
        comps: list[str] = []
        fds: list[int | None] = []

        def fd_at(level: int) -> int:
            """The fd of ``comps[:level]``; closed levels are reopened from the deepest open one."""
            if level == 0:
                return root.fd
            if fds[level - 1] is None:
                k = level - 1
                while k > 0 and fds[k - 1] is None:
                    k -= 1
                cur = root.fd if k == 0 else fds[k - 1]
                for i in range(k, level):
                    cur = fds[i] = os.open(comps[i], _DIR_FLAGS, dir_fd=cur)
                    if i >= 256 and fds[i - 256] is not None:
                        os.close(fds[i - 256])  # type: ignore[arg-type]
                        fds[i - 256] = None
            return fds[level - 1]  # type: ignore[return-value]

        try:
            for real, mode, mtime in sorted(root.dirs, key=lambda d: d[0], reverse=True):
                c = 0
                while c < len(comps) and c < len(real) and comps[c] == real[c]:
                    c += 1
                while len(comps) > c:
                    comps.pop()
                    fd = fds.pop()
                    if fd is not None:
                        os.close(fd)
                try:
                    for i in range(c, len(real)):
                        nfd = os.open(real[i], _DIR_FLAGS, dir_fd=fd_at(i))
                        comps.append(real[i])
                        fds.append(nfd)
                        if len(fds) > 256 and fds[-257] is not None:
                            os.close(fds[-257])  # type: ignore[arg-type]
                            fds[-257] = None
                    if not real:
                        continue
                    fd = fd_at(len(real))
                except OSError:
                    continue  # replaced or removed later in the layer
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
        finally:
            for fd in fds:
                if fd is not None:
                    os.close(fd)
        root.dirs.clear()


def extract_layer(tar_stream: BinaryIO, dest: Path, *, allow_devices: bool = False, whiteouts: bool = True,
                  same_owner: bool | None = None, name: str = "layer", skip_devices: bool = False) -> list[str]:
    """Extract one layer's tar (plain, or gzip/zstd detected by magic) into *dest*, safely.

    *dest* is created if missing. Raises :class:`LayerError` (with the layer
    *name* and entry) for hostile or corrupt input; whatever was extracted
    before the error stays, but no file is ever left half-written. Returns the
    names of the device nodes left out (``skip_devices=True``), usually ``[]``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if same_owner is None:
        same_owner = os.geteuid() == 0
    root = _Root(dest, name)
    ex = _Extractor(root, allow_devices, whiteouts, same_owner, skip_devices)
    try:
        for m in iter_layer(tar_stream, name=name):
            try:
                ex.entry(m)
            except OSError as e:
                raise LayerError(f"{name}: entry {m.name!r}: {e.strerror or e}",
                                 hint="check free space and permissions of the target") from None
            except (OverflowError, ValueError) as e:  # out-of-range values from a hostile header
                raise LayerError(f"{name}: entry {m.name!r}: {e}", hint=_HINT) from None
            except RecursionError:
                raise LayerError(f"{name}: entry {m.name!r}: directory tree too deep to remove", hint=_HINT) from None
        ex.finish_dirs()
    finally:
        root.close()
    return ex.skipped


def flatten(image: Any, dest: Path, **kw: Any) -> list[str]:
    """Extract every layer of *image* (a :class:`kilobox.image.Image`) in order into *dest*.

    Whiteouts are applied; keyword arguments go to :func:`extract_layer`.
    Device nodes are left out by default (``skip_devices=True``: a runtime
    mounts its own /dev) unless ``allow_devices=True``; pass
    ``skip_devices=False`` to make them an error. Returns the nodes left out.
    """
    kw.setdefault("whiteouts", True)
    kw.setdefault("skip_devices", True)
    skipped: list[str] = []
    for i, desc in enumerate(image.layers):
        with image.open_layer_tar(desc) as tar:
            skipped += extract_layer(tar, dest, name=f"layer {i} ({desc.digest})", **kw)
    return skipped
