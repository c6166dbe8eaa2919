"""Start a runtime inside a private mount namespace (fork, set up mounts, exec).

The child of :func:`spawn` unshares its mount namespace (propagation: slave,
so nothing leaks back to the host), mounts the container's root at the
bundle's ``rootfs`` mount point — the shared image rootfs bind-mounted
read-only, or an overlay on it (tmpfs upper for missing mount points, an
on-disk upper for ``--read-write``) — applies the cgroup fix-up for crun on
hybrid hosts, and execs the runtime. Every mount dies with the namespace:
nothing to unmount, nothing to leak, whatever happens to kilobox.

Errors before exec come back to the parent through a close-on-exec pipe and
are raised there as one-line :class:`RunError`.
"""

from __future__ import annotations

import os
import signal
from collections import namedtuple

from ..errors import RunError

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_SLAVE = 32, 4096, 16384, 1 << 19
MNT_DETACH = 2
_libc = None


#: rootfs: the shared, unpacked image (or a user's rootfs dir) · target: the bundle's rootfs
#: mount point · overlay: "" (read-only bind) | "tmpfs" | "disk" · scratch: tmpfs: an empty dir
#: to mount it on; disk: the dir holding upper/ and work/ · mkdirs: mount points to create in
#: the overlay · cgroup_fix: "" | "cgroup2" | "legacy"
Mounts = namedtuple("Mounts", "rootfs target overlay scratch mkdirs cgroup_fix",
                    defaults=("", "", (), ""))


def _lib():
    global _libc
    if _libc is None:
        import ctypes
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.unshare.argtypes = [ctypes.c_int]
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        _libc = (lib, ctypes)
    return _libc


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


class SetupError(Exception):
    """A namespace or mount step failed in the child (message is the one-line error)."""


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    lib, ctypes = _lib()
    if lib.mount(_b(src), _b(target), _b(fstype), flags, _b(data)) != 0:
        e = ctypes.get_errno()
        raise SetupError(f"mount {fstype or 'bind'} on {target}: {os.strerror(e)}")


def setup(m: Mounts) -> None:
    """In the (forked) child: private mount namespace with the container's root in place."""
    lib, ctypes = _lib()
    if lib.unshare(CLONE_NEWNS) != 0:
        e = ctypes.get_errno()
        raise SetupError(f"unshare(CLONE_NEWNS): {os.strerror(e)}")
    _mount(None, "/", None, MS_REC | MS_SLAVE)
    if m.overlay:
        if m.overlay == "tmpfs":
            _mount("tmpfs", m.scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
            for d in ("upper", "work"):
                os.mkdir(os.path.join(m.scratch, d), 0o755)
        upper, work = os.path.join(m.scratch, "upper"), os.path.join(m.scratch, "work")
        _mount("overlay", m.target, "overlay", 0, f"lowerdir={m.rootfs},upperdir={upper},workdir={work}")
        if m.mkdirs:
            from .rootfs import resolve
            for d in m.mkdirs:
                host, ok = resolve(m.target, d)
                if not ok:
                    os.makedirs(host, 0o755, exist_ok=True)
    elif m.rootfs:
        _mount(m.rootfs, m.target, None, MS_BIND | MS_REC)
        _mount(None, m.target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if m.cgroup_fix == "cgroup2":
        # a bind of the host's own cgroup2 mount: same filesystem type as a fresh cgroup2
        # mount, without creating a superblock (a new mount can stall ~10 ms while the
        # previous container's one is torn down)
        try:
            _mount("/sys/fs/cgroup/unified", "/sys/fs/cgroup", None, MS_BIND)
        except SetupError:
            _mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    elif m.cgroup_fix == "legacy":
        if lib.umount2(b"/sys/fs/cgroup/unified", MNT_DETACH) != 0:
            e = ctypes.get_errno()
            raise SetupError(f"umount /sys/fs/cgroup/unified: {os.strerror(e)}")


def spawn(argv: list[str], mounts: Mounts | None, *, stdin: int = 0, stdout: int = 1, stderr: int = 2,
          new_session: bool = False, env: dict[str, str] | None = None) -> int:
    """fork + (mount namespace) + exec *argv*; returns the pid, or raises RunError if exec failed."""
    if mounts is not None:
        _lib()  # load ctypes before fork
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child: no return from here
        try:
            os.close(r)
            if new_session:
                os.setsid()
            for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
                if fd != target:
                    os.dup2(fd, target, inheritable=True)
                else:
                    os.set_inheritable(target, True)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                        signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            if mounts is not None:
                setup(mounts)
            if env is None:
                os.execv(argv[0], argv)
            os.execve(argv[0], argv, env)
        except BaseException as e:  # noqa: BLE001 - report anything to the parent
            if isinstance(e, SetupError):
                msg = f"setting up the container's mounts: {e}"
            elif isinstance(e, OSError):
                msg = f"cannot start {argv[0]}: {e.strerror or e}"
            else:
                msg = f"cannot start {argv[0]}: {type(e).__name__}: {e}"
            try:
                os.write(w, msg.encode(errors="replace")[:4000])
            finally:
                os._exit(125)
    os.close(w)
    try:
        chunks = []
        while True:
            data = os.read(r, 4096)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(r)
    if chunks:
        os.waitpid(pid, 0)
        msg = b"".join(chunks).decode(errors="replace")
        raise RunError(msg, hint="kilobox run needs root and a kernel with mount namespaces and overlayfs"
                       if msg.startswith("setting up") else None)
    return pid
