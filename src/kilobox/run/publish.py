"""``--publish``: userland TCP and UDP forwarders from host ports into the container's network namespace.

The container keeps its private network namespace (only loopback). kilobox
binds the host addresses before the container starts (a busy port is an error
up front) and, once the container runs, relays into ``127.0.0.1:PORT``
*inside* the container: the relaying thread joins the container's network
namespace with ``setns`` (a per-thread change) before it creates its sockets —
what docker's userland proxy and podman's rootlessport do, without iptables or
a veth pair.

- TCP: a thread per accepted connection, copying both ways.
- UDP: one thread per published port, polling the host socket and one
  container-side socket per client address (``connect``-ed to
  ``127.0.0.1:PORT``, so the server sees each client as its own peer and its
  replies go back to that client only). A mapping idle for :data:`UDP_IDLE`
  seconds is dropped (conntrack's UDP timeout); at most :data:`UDP_CLIENTS`
  per port, the least recently used evicted first. Datagrams keep their
  boundaries (up to 65,535 bytes); one that cannot be queued is dropped, as
  the network would.

The forwarder lives in the process that waits for the container: kilobox
itself in the foreground, the monitor of a detached container. With a restart
policy the host ports stay bound across restarts: the relay threads of one run
end with it (:meth:`Forwarder.pause`) and the next run gets new ones, in its
new network namespace (:meth:`Forwarder.start`).
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
from collections import OrderedDict, namedtuple
from typing import Callable, Generic, Iterable, TypeVar

from ..errors import RunError, UsageError

CLONE_NEWNET = 0x40000000
_PUB_RE = r"(?:([0-9]{1,3}(?:\.[0-9]{1,3}){3}):)?([0-9]{1,5}):([0-9]{1,5})(?:/([A-Za-z]{1,8}))?\Z"
_CHUNK = 65536
PROTOCOLS = ("tcp", "udp")
#: seconds a UDP client mapping lives without traffic either way (conntrack's nf_conntrack_udp_timeout)
UDP_IDLE = 60.0
#: client mappings per published UDP port (fewer when the open-file limit is low)
UDP_CLIENTS = 1024
#: the largest datagram relayed (IPv4 carries at most 65,507 bytes of UDP payload)
UDP_MAX = 65535
_BATCH = 64          # datagrams read from one socket before polling again (fairness)
_POLLIN = select.POLLIN | select.POLLERR

#: host address and port, container port, protocol ("tcp" or "udp")
Port = namedtuple("Port", "host_ip host_port container_port proto", defaults=("tcp",))
_HINT = "e.g. -p 8080:80, -p 0.0.0.0:80:8080/tcp or -p 127.0.0.1:5353:53/udp"


def parse_publish(item: str) -> Port:
    """``[IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]``; the host address defaults to 127.0.0.1 (not 0.0.0.0)."""
    m = re.match(_PUB_RE, item or "")
    if not m:
        raise UsageError(f"--publish {item!r}: expected [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]", hint=_HINT)
    proto = (m.group(4) or "tcp").lower()
    if proto not in PROTOCOLS:
        raise UsageError(f"--publish {item!r}: unsupported protocol {m.group(4)!r}",
                         hint="use /tcp (the default) or /udp")
    ip = m.group(1) or "127.0.0.1"
    try:
        socket.inet_pton(socket.AF_INET, ip)       # strict: no octal, no short forms
    except OSError:
        raise UsageError(f"--publish {item!r}: bad IPv4 address {ip!r}", hint=_HINT) from None
    hp, cp = int(m.group(2)), int(m.group(3))
    if not (1 <= hp <= 65535 and 1 <= cp <= 65535):
        raise UsageError(f"--publish {item!r}: ports must be 1..65535", hint=_HINT)
    return Port(ip, hp, cp, proto)


def parse_publish_list(items: Iterable[str]) -> list[Port]:
    """Every ``--publish``; a host port may be published once per protocol (and address)."""
    ports: list[Port] = []
    for item in items:
        p = parse_publish(item)
        for q in ports:
            overlap = q.host_ip == p.host_ip or "0.0.0.0" in (q.host_ip, p.host_ip)
            if (q.proto, q.host_port) == (p.proto, p.host_port) and overlap:
                raise UsageError(f"--publish {item!r}: host port {p.host_port}/{p.proto} is already published "
                                 f"({engine_flag(q)})",
                                 hint="publish a host port once per protocol (TCP and UDP may share a number)")
        ports.append(p)
    return ports


def describe(p: Port) -> str:
    """As ``docker ps`` shows it: ``127.0.0.1:5683->5683/udp``."""
    return f"{p.host_ip}:{p.host_port}->{p.container_port}/{p.proto}"


def engine_flag(p: Port) -> str:
    """The ``-p`` value for podman/docker, host address explicit: ``127.0.0.1:5683:5683/udp``."""
    return f"{p.host_ip}:{p.host_port}:{p.container_port}/{p.proto}"


# -- UDP client mappings (pure: no sockets) ------------------------------------------------
V = TypeVar("V")


class ClientTable(Generic[V]):
    """Client address → value, least recently used first; bounded, with an idle timeout.

    *close* is called for every value that leaves the table (expired, evicted, cleared).
    """

    def __init__(self, close: Callable[[V], object], limit: int = UDP_CLIENTS, idle: float = UDP_IDLE) -> None:
        self.limit, self.idle, self._close = max(1, limit), idle, close
        self._items: OrderedDict[object, list] = OrderedDict()   # addr -> [value, last use]

    def __len__(self) -> int:
        return len(self._items)

    def get(self, addr: object, now: float) -> V | None:
        """The value for *addr*, marked used at *now* (None if unknown)."""
        it = self._items.get(addr)
        if it is None:
            return None
        it[1] = now
        self._items.move_to_end(addr)
        return it[0]

    def add(self, addr: object, value: V, now: float) -> None:
        """Insert *addr*; when full, the least recently used mapping goes first."""
        while len(self._items) >= self.limit:
            self.evict_oldest()
        self._items[addr] = [value, now]

    def evict_oldest(self) -> bool:
        if not self._items:
            return False
        _addr, (value, _t) = self._items.popitem(last=False)
        self._close(value)
        return True

    def expire(self, now: float) -> int:
        """Drop the mappings idle for :attr:`idle` seconds or more; returns how many."""
        n = 0
        while self._items:
            addr, (value, last) = next(iter(self._items.items()))
            if now - last < self.idle:
                break
            del self._items[addr]
            self._close(value)
            n += 1
        return n

    def next_expiry(self, now: float) -> float | None:
        """Seconds until the oldest mapping expires (None when empty)."""
        if not self._items:
            return None
        return max(0.0, next(iter(self._items.values()))[1] + self.idle - now)

    def clear(self) -> None:
        while self.evict_oldest():
            pass


def udp_limit(n_ports: int, soft_nofile: int | None = None) -> int:
    """Client mappings per UDP port so that all of them fit the process's open-file limit."""
    if soft_nofile is None:
        import resource
        soft_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft_nofile == resource.RLIM_INFINITY:
            soft_nofile = 1 << 20
    return max(16, min(UDP_CLIENTS, (soft_nofile - 64) // max(1, n_ports)))


# -- the forwarder ----------------------------------------------------------------------------
class _Run:
    """One run of the container as the relay threads see it: handed to every thread a
    :meth:`Forwarder.start` starts, so that a later start never changes what an older thread reads."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.ready = threading.Event()           # the netns is open (or the run is stopping)
        self.attached = threading.Event()        # _attach finished (netns or not), or stopping
        self.netns: int | None = None
        self.lock = threading.Lock()             # netns: used under it (setns), closed under it
        self.wake: tuple[int, int] | None = None  # a pipe: pause() wakes the UDP relays
        self.relays: list[threading.Thread] = []
        self.threads: list[threading.Thread] = []  # _attach and the TCP accept loops

    def end(self) -> None:
        """Stop this run's threads (UDP relays and accept loops joined) and close its descriptors."""
        self.stop.set()
        self.attached.set()
        self.ready.set()                         # connections waiting for the container: give up now
        if self.wake is not None:
            try:
                os.write(self.wake[1], b"x")
            except OSError:
                pass
        for t in (*self.relays, *self.threads):
            t.join(5)
        self.relays, self.threads = [], []
        if self.wake is not None:
            for fd in self.wake:
                os.close(fd)
            self.wake = None
        with self.lock:
            if self.netns is not None:
                os.close(self.netns)
                self.netns = None


class Forwarder:
    """Host sockets (listening TCP, bound UDP) and the threads that relay into the container.

    The host sockets live from :meth:`bind` to :meth:`close`; the threads live from :meth:`start`
    to :meth:`pause` (or close), once per run of the container — a restarted container is a new
    network namespace, joined by a new :meth:`start` while the host ports stay bound.
    """

    def __init__(self, ports: list[Port]) -> None:
        self.ports = ports
        self.listeners: list[tuple[socket.socket, Port]] = []
        self._run: _Run | None = None

    def bind(self) -> None:
        """Bind every host port now (before the container starts)."""
        for p in self.ports:
            udp = p.proto == "udp"
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
            try:
                if not udp:   # (UDP: no SO_REUSEADDR, it would let two binds share the port)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((p.host_ip, p.host_port))
                if not udp:
                    s.listen(128)
            except OSError as e:
                s.close()
                self.close()
                raise RunError(f"--publish {p.host_ip}:{p.host_port}/{p.proto}: {e.strerror}",
                               hint="the host port is taken: choose another one") from None
            if udp:
                s.setblocking(False)
            else:
                s.settimeout(0.2)
            self.listeners.append((s, p))

    def start(self, pid_file: str, runtime_pid: int) -> None:
        """Serve in background threads once the container's init (its pid file) exists.

        A run still going (no :meth:`pause` since the last start) is ended first."""
        self.pause()
        run = self._run = _Run()
        t = threading.Thread(target=self._attach, args=(run, pid_file, runtime_pid), daemon=True)
        t.start()
        run.threads.append(t)
        udp = [(s, p) for s, p in self.listeners if p.proto == "udp"]
        if udp:
            run.wake = os.pipe2(os.O_CLOEXEC)
            limit = udp_limit(len(udp))
            for s, p in udp:
                t = threading.Thread(target=self._relay, args=(run, s, p, limit), daemon=True,
                                     name=f"kilobox-udp-{p.host_port}")
                t.start()
                run.relays.append(t)
        for s, p in self.listeners:
            if p.proto == "tcp":
                t = threading.Thread(target=self._accept, args=(run, s, p), daemon=True,
                                     name=f"kilobox-tcp-{p.host_port}")
                t.start()
                run.threads.append(t)

    def pause(self) -> None:
        """End the current run: its threads stop (joined) and its descriptors close; the host ports
        stay bound (a TCP client connecting meanwhile waits in the backlog for the next start).
        Relayed TCP connections end too: their container is gone."""
        run, self._run = self._run, None
        if run is not None:
            run.end()

    @staticmethod
    def _attach(run: _Run, pid_file: str, runtime_pid: int) -> None:
        from . import state as st
        try:
            while not run.stop.is_set():
                pid = st.read_int(pid_file)
                if pid and st.start_time(pid) is not None:
                    try:
                        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                    except OSError:
                        return
                    with run.lock:
                        if run.stop.is_set():
                            os.close(fd)
                            return
                        run.netns = fd
                    run.ready.set()
                    return
                if st.start_time(runtime_pid) is None:
                    return
                run.stop.wait(0.005)
        finally:
            run.attached.set()

    def _accept(self, run: _Run, s: socket.socket, p: Port) -> None:
        while not run.stop.is_set():
            try:
                conn, _ = s.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(run, conn, p), daemon=True).start()

    @staticmethod
    def _serve(run: _Run, conn: socket.socket, p: Port) -> None:
        inner = None
        try:
            if not run.ready.wait(10):
                return
            from .ns import _lib
            lib, ctypes = _lib()
            with run.lock:                       # the run may be ending: its netns closed
                if run.stop.is_set() or run.netns is None or lib.setns(run.netns, CLONE_NEWNET) != 0:
                    return                       # (setns: this thread only)
            inner = socket.create_connection(("127.0.0.1", p.container_port), timeout=10)
            inner.settimeout(None)
            conn.settimeout(None)
            _pump(conn, inner, run.stop)
        except OSError:
            pass
        finally:
            for x in (conn, inner):
                if x is not None:
                    try:
                        x.close()
                    except OSError:
                        pass

    @staticmethod
    def _relay(run: _Run, host: socket.socket, p: Port, limit: int) -> None:
        """One published UDP port: wait for the container, join its netns, relay until the run ends."""
        run.attached.wait()
        from .ns import _lib
        lib, _ctypes = _lib()
        with run.lock:
            if run.stop.is_set() or run.netns is None or run.wake is None:
                return
            if lib.setns(run.netns, CLONE_NEWNET) != 0:       # this thread only
                return
        UdpRelay(host, p.container_port, run.wake[0], limit).run()

    def close(self) -> None:
        """Stop relaying and close every socket and descriptor (the run's threads are joined)."""
        self.pause()
        for s, _ in self.listeners:
            try:
                s.close()
            except OSError:
                pass
        self.listeners = []


class UdpRelay:
    """The loop of one published UDP port. Call :meth:`run` in a thread that is in the container's
    network namespace: the per-client sockets are created there."""

    def __init__(self, host: socket.socket, container_port: int, wake_fd: int, limit: int = UDP_CLIENTS,
                 idle: float = UDP_IDLE) -> None:
        self.host, self.port, self.wake_fd = host, container_port, wake_fd
        self._poll = select.poll()
        self._by_fd: dict[int, tuple[socket.socket, object]] = {}
        self.clients: ClientTable[socket.socket] = ClientTable(self._drop, limit, idle)
        self._buf = bytearray(UDP_MAX + 1)

    def _drop(self, s: socket.socket) -> None:
        fd = s.fileno()
        self._by_fd.pop(fd, None)
        try:
            self._poll.unregister(fd)
        except (KeyError, ValueError):
            pass
        s.close()

    def run(self) -> None:
        """Relay until the wake pipe becomes readable; every client socket is closed on the way out."""
        import math
        import time
        self._poll.register(self.wake_fd, select.POLLIN)
        self._poll.register(self.host, _POLLIN)
        hfd = self.host.fileno()
        try:
            while True:
                wait = self.clients.next_expiry(time.monotonic())
                events = self._poll.poll(None if wait is None else math.ceil(wait * 1000))
                now = time.monotonic()
                for fd, _ev in events:
                    if fd == self.wake_fd:
                        return
                    if fd == hfd:
                        self._from_clients(now)
                    elif fd in self._by_fd:
                        self._to_client(*self._by_fd[fd], now)
                self.clients.expire(now)
        finally:
            self.clients.clear()

    def _from_clients(self, now: float) -> None:
        """Datagrams on the host socket: each into its client's container-side socket."""
        view = memoryview(self._buf)
        for _ in range(_BATCH):
            try:
                n, addr = self.host.recvfrom_into(self._buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue                     # an error queued on the socket: cleared by reading it
            inner = self.clients.get(addr, now) or self._open(addr, now)
            if inner is None:
                continue
            try:
                inner.send(view[:n])
            except OSError:
                pass                         # ECONNREFUSED (nothing listens yet), buffer full: dropped

    def _open(self, addr: object, now: float) -> socket.socket | None:
        for _ in range(2):
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            except OSError:                  # EMFILE/ENFILE: make room once
                if not self.clients.evict_oldest():
                    return None
                continue
            try:
                s.setblocking(False)
                s.connect(("127.0.0.1", self.port))
            except OSError:
                s.close()
                return None
            self.clients.add(addr, s, now)
            self._by_fd[s.fileno()] = (s, addr)
            self._poll.register(s, _POLLIN)
            return s
        return None

    def _to_client(self, inner: socket.socket, addr: object, now: float) -> None:
        """Replies from the container: back out through the host socket to the client they belong to."""
        self.clients.get(addr, now)          # traffic either way keeps a mapping alive
        view = memoryview(self._buf)
        for _ in range(_BATCH):
            try:
                n = inner.recv_into(self._buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue                     # ECONNREFUSED from an earlier datagram: read and cleared
            try:
                self.host.sendto(view[:n], addr)
            except OSError:
                pass


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
