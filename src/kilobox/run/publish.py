"""``--publish``: a userland TCP forwarder from a host port into the container's network namespace.

The container keeps its private network namespace (only loopback). kilobox
binds the host address before the container starts (a busy port is an error
up front) and, once the container runs, forwards each accepted connection to
``127.0.0.1:PORT`` *inside* the container: the thread serving the connection
joins the container's network namespace with ``setns`` (a per-thread change)
before it creates its socket — what docker's userland proxy and podman's
rootlessport do, without iptables or a veth pair. TCP only.

The forwarder lives in the process that waits for the container: kilobox
itself in the foreground, the monitor of a detached container.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections import namedtuple

from ..errors import RunError, UsageError

CLONE_NEWNET = 0x40000000
_PUB_RE = r"(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})(?:/(tcp))?\Z"
_CHUNK = 65536

#: host address and port, container port
Port = namedtuple("Port", "host_ip host_port container_port")


def parse_publish(item: str) -> Port:
    """``[IP:]HOSTPORT:CONTAINERPORT[/tcp]``; the host address defaults to 127.0.0.1 (not 0.0.0.0)."""
    m = re.match(_PUB_RE, item or "")
    if not m:
        raise UsageError(f"--publish {item!r}: expected [IP:]HOSTPORT:CONTAINERPORT[/tcp]",
                         hint="e.g. -p 8080:8080 or -p 0.0.0.0:80:8080 (TCP only)")
    ip = m.group(1) or "127.0.0.1"
    try:
        socket.inet_aton(ip)
    except OSError:
        raise UsageError(f"--publish {item!r}: bad IPv4 address {ip!r}") from None
    hp, cp = int(m.group(2)), int(m.group(3))
    if not (1 <= hp <= 65535 and 1 <= cp <= 65535):
        raise UsageError(f"--publish {item!r}: ports must be 1..65535")
    return Port(ip, hp, cp)


class Forwarder:
    """Listening sockets on the host and the threads that forward into the container."""

    def __init__(self, ports: list[Port]) -> None:
        self.ports = ports
        self.listeners: list[tuple[socket.socket, Port]] = []
        self._stop = threading.Event()
        self._netns: int | None = None
        self._ready = threading.Event()

    def bind(self) -> None:
        """Bind every host port now (before the container starts)."""
        for p in self.ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((p.host_ip, p.host_port))
                s.listen(128)
            except OSError as e:
                s.close()
                self.close()
                raise RunError(f"--publish {p.host_ip}:{p.host_port}: {e.strerror}",
                               hint="the host port is taken: choose another one") from None
            s.settimeout(0.2)
            self.listeners.append((s, p))

    def start(self, pid_file: str, runtime_pid: int) -> None:
        """Serve in background threads once the container's init (its pid file) exists."""
        threading.Thread(target=self._attach, args=(pid_file, runtime_pid), daemon=True).start()
        for s, p in self.listeners:
            threading.Thread(target=self._accept, args=(s, p), daemon=True).start()

    def _attach(self, pid_file: str, runtime_pid: int) -> None:
        from . import state as st
        while not self._stop.is_set():
            pid = st.read_int(pid_file)
            if pid and st.start_time(pid) is not None:
                try:
                    self._netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    return
                self._ready.set()
                return
            if st.start_time(runtime_pid) is None:
                return
            self._stop.wait(0.005)

    def _accept(self, s: socket.socket, p: Port) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = s.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, p), daemon=True).start()

    def _serve(self, conn: socket.socket, p: Port) -> None:
        inner = None
        try:
            if not self._ready.wait(10) or self._netns is None:
                return
            from .ns import _lib
            lib, ctypes = _lib()
            if lib.setns(self._netns, CLONE_NEWNET) != 0:   # this thread only
                return
            inner = socket.create_connection(("127.0.0.1", p.container_port), timeout=10)
            inner.settimeout(None)
            conn.settimeout(None)
            _pump(conn, inner, self._stop)
        except OSError:
            pass
        finally:
            for x in (conn, inner):
                if x is not None:
                    try:
                        x.close()
                    except OSError:
                        pass

    def close(self) -> None:
        self._stop.set()
        for s, _ in self.listeners:
            try:
                s.close()
            except OSError:
                pass
        self.listeners = []
        if self._netns is not None:
            os.close(self._netns)
            self._netns = None


def _pump(a: socket.socket, b: socket.socket, stop: threading.Event) -> None:
    """Copy both ways until both sides have closed (half-closes are passed on)."""
    import selectors
    sel = selectors.DefaultSelector()
    peer = {a: b, b: a}
    for s in (a, b):
        sel.register(s, selectors.EVENT_READ)
    open_ = 2
    try:
        while open_ and not stop.is_set():
            for key, _ in sel.select(timeout=0.5):
                src = key.fileobj
                data = src.recv(_CHUNK)  # type: ignore[union-attr]
                dst = peer[src]  # type: ignore[index]
                if data:
                    dst.sendall(data)
                    continue
                sel.unregister(src)
                open_ -= 1
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    finally:
        sel.close()
