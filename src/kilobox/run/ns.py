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

:func:`enter` does the same set-up in the calling process (the warm CLI path, a
process that only waits for the runtime, then exits). libc is reached through
``_ctypes`` directly (a third of the cost of importing :mod:`ctypes`); a failed
call is repeated through :mod:`ctypes` to learn its errno.
"""

from __future__ import annotations

import os

# the builtin _signal: the signal module builds enums (~0.5 ms on the warm path)
from _signal import SIGCHLD, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGXFSZ

from ..errors import RunError
from .._record import record_type

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_SLAVE = 32, 4096, 16384, 1 << 19
MNT_DETACH = 2

#: signals a runtime must start with at their default disposition
DEFAULT_SIGNALS = (SIGPIPE, SIGXFSZ, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD)
_libc = None
_fast = None


#: rootfs: the shared, unpacked image (or a user's rootfs dir) · target: the bundle's rootfs
#: mount point · overlay: "" (read-only bind) | "tmpfs" | "disk" · scratch: tmpfs: an empty dir
#: to mount it on; disk: the dir holding upper/ and work/ · mkdirs: mount points to create in
#: the overlay · cgroup_fix: "" | "cgroup2" | "legacy"
Mounts = record_type("Mounts", "rootfs target overlay scratch mkdirs cgroup_fix", ("", "", (), ""))


def read_all(fd: int) -> bytes:
    """Everything a pipe's read end gives until EOF; the fd is closed."""
    chunks = []
    try:
        while True:
            data = os.read(fd, 4096)
            if not data:
                return b"".join(chunks)
            chunks.append(data)
    finally:
        os.close(fd)


def _lib():
    """(libc, ctypes) through ctypes, with errno (slower to load; used for errors and setns)."""
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


def _bind() -> tuple:
    """(``_ctypes.call_function``, {name: address}) for the calls :func:`setup` makes."""
    global _fast
    if _fast is None:
        try:
            from _ctypes import call_function, dlopen, dlsym
            h = dlopen(None)
            _fast = (call_function, {n: dlsym(h, n) for n in ("unshare", "mount", "umount2")})
        except (ImportError, AttributeError, OSError):  # pragma: no cover - another Python
            _fast = (None, {})
    return _fast


def _call(name: str, *args: object) -> int:
    """``libc.name(*args)`` for int/bytes/None arguments: 0 on success, else the errno (-1: unknown)."""
    call, syms = _bind()
    if call is not None and name in syms and call(syms[name], args) == 0:
        return 0
    lib, ctypes = _lib()                     # failed (or no _ctypes): again, to learn the errno
    if getattr(lib, name)(*args) == 0:
        return 0
    return ctypes.get_errno() or -1


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


class SetupError(Exception):
    """A namespace or mount step failed in the child (message is the one-line error)."""


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    e = _call("mount", _b(src), _b(target), _b(fstype), flags, _b(data))
    if e:
        raise SetupError(f"mount {fstype or 'bind'} on {target}: {os.strerror(e) if e > 0 else 'failed'}")


def setup(m: Mounts) -> None:
    """In the (forked) child: private mount namespace with the container's root in place."""
    e = _call("unshare", CLONE_NEWNS)
    if e:
        raise SetupError(f"unshare(CLONE_NEWNS): {os.strerror(e) if e > 0 else 'failed'}")
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
        e = _call("umount2", b"/sys/fs/cgroup/unified", MNT_DETACH)
        if e:
            raise SetupError(f"umount /sys/fs/cgroup/unified: {os.strerror(e) if e > 0 else 'failed'}")


def enter(m: Mounts) -> None:
    """:func:`setup` in this very process (which then only starts the runtime and waits).

    Raises :class:`RunError`. Only for a process that exits after the container: every
    later mount of the host is still seen here (slave), but this process's view of
    the bundle's ``rootfs`` and of /sys/fs/cgroup is the container's.
    """
    try:
        setup(m)
    except SetupError as e:
        raise RunError(f"setting up the container's mounts: {e}",
                       hint="kilobox run needs root and a kernel with mount namespaces and overlayfs") from None


def spawn(argv: list[str], mounts: Mounts | None, *, stdin: int = 0, stdout: int = 1, stderr: int = 2,
          new_session: bool = False, env: dict[str, str] | None = None) -> int:
    """fork + (mount namespace) + exec *argv*; returns the pid, or raises RunError if exec failed."""
    import _signal
    if mounts is not None:
        _bind()  # before fork
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
            for sig in DEFAULT_SIGNALS:
                _signal.signal(sig, _signal.SIG_DFL)
            _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
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
    data = read_all(r)
    if data:
        os.waitpid(pid, 0)
        msg = data.decode(errors="replace")
        raise RunError(msg, hint="kilobox run needs root and a kernel with mount namespaces and overlayfs"
                       if msg.startswith("setting up") else None)
    return pid
