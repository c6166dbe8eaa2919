"""--publish/udp: the pure parts — the publish list, the client table, ps and engine forms, the warm path —
and the forwarder in this process, run after run (as a restarted container uses it)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from hypothesis import given, strategies as s

from kilobox.cli.run_cmd import fast_main
from kilobox.errors import UsageError
from kilobox.run.options import make_options
from kilobox.run.publish import (UDP_CLIENTS, ClientTable, Port, describe, engine_flag, parse_publish,
                                 parse_publish_list, udp_limit)
from tests.helpers.tools import free_port
from tests.helpers.udp import free_udp_port, open_fds


def test_same_number_once_per_protocol():
    ports = parse_publish_list(["5683:5683/udp", "5683:5683", "127.0.0.2:5683:1/udp"])
    assert [p.proto for p in ports] == ["udp", "tcp", "udp"]


@pytest.mark.parametrize("items", [
    ["5683:5683/udp", "5683:1/udp"],
    ["80:80", "80:81/tcp"],
    ["0.0.0.0:53:53/udp", "127.0.0.1:53:5353/udp"],
    ["127.0.0.1:53:53/udp", "0.0.0.0:53:53/udp"],
])
def test_a_host_port_twice_is_a_usage_error(items):
    with pytest.raises(UsageError) as e:
        parse_publish_list(items)
    assert "already published" in str(e.value) and "\n" not in str(e.value) and e.value.hint


def test_errors_are_one_line_with_a_hint():
    for item in ("1:2/sctp", "70000:1/udp", "a:b", "", "10.0.0.256:1:1/udp"):
        with pytest.raises(UsageError) as e:
            parse_publish(item)
        assert "\n" not in str(e.value) and e.value.hint


def test_ps_and_engine_forms():
    p = parse_publish("5683:5683/udp")
    assert describe(p) == "127.0.0.1:5683->5683/udp"
    assert engine_flag(p) == "127.0.0.1:5683:5683/udp"          # the host address never widens to 0.0.0.0
    assert describe(parse_publish("0.0.0.0:80:8080")) == "0.0.0.0:80->8080/tcp"


def test_podman_flags_pass_udp_on():
    from kilobox.run.engines import run_flags
    opts = make_options()
    plain = run_flags("podman", opts, None)
    assert plain[plain.index("--network") + 1] == "none" and "-p" not in plain
    f = run_flags("podman", opts, None, [parse_publish("127.0.0.1:5353:53/udp"), parse_publish("8080:80")])
    assert f[f.index("--network") + 1] == "bridge"          # podman drops -p under --network none
    assert [f[i + 1] for i, a in enumerate(f) if a == "-p"] == ["127.0.0.1:5353:53/udp", "127.0.0.1:8080:80/tcp"]


@pytest.mark.parametrize("argv", [
    ["run", "-p", "5683:5683/udp", "x"], ["run", "--publish", "53:53/udp", "x"], ["run", "-p5683:5683/udp", "x"],
    ["run", "--publish=5683:5683/udp", "x"], ["run", "-d", "-p", "1:1/udp", "--rm", "x"],
])
def test_the_warm_path_leaves_publish_to_argparse(argv):
    assert fast_main(argv) is None


class Clock:
    def __init__(self):
        self.closed: list[str] = []

    def table(self, limit=3, idle=60.0):
        return ClientTable(self.closed.append, limit, idle)


def test_lookup_refreshes_and_expires_idle_mappings():
    c = Clock()
    t = c.table()
    t.add(("a", 1), "A", now=0.0)
    t.add(("b", 1), "B", now=10.0)
    assert t.next_expiry(20.0) == 40.0
    assert t.get(("a", 1), now=30.0) == "A"                  # traffic keeps it alive
    assert t.next_expiry(30.0) == 40.0                       # b is now the oldest
    assert t.expire(69.9) == 0
    assert t.expire(70.0) == 1 and c.closed == ["B"]         # b: idle since 10
    assert t.get(("b", 1), now=70.0) is None
    assert t.expire(90.0) == 1 and c.closed == ["B", "A"] and len(t) == 0
    assert t.next_expiry(90.0) is None


def test_a_full_table_evicts_the_least_recently_used():
    c = Clock()
    t = c.table(limit=3)
    for i, v in enumerate("ABC"):
        t.add(v, v, now=float(i))
    t.get("A", now=5.0)
    t.add("D", "D", now=6.0)
    assert c.closed == ["B"] and len(t) == 3
    t.clear()
    assert sorted(c.closed) == ["A", "B", "C", "D"] and len(t) == 0


@given(s.lists(s.tuples(s.integers(0, 20), s.floats(0, 1000, allow_nan=False)), max_size=200),
       s.integers(1, 8))
def test_table_stays_bounded_and_closes_each_value_once(ops, limit):
    closed: list[int] = []
    t = ClientTable(closed.append, limit, idle=60.0)
    now, made = 0.0, []
    for addr, dt in ops:
        now += dt
        t.expire(now)
        if t.get(addr, now) is None:
            made.append(len(made))
            t.add(addr, made[-1], now)
        assert len(t) <= limit
    t.clear()
    assert sorted(closed) == made


def test_the_client_limit_fits_the_open_file_limit():
    assert udp_limit(1, 1 << 20) == UDP_CLIENTS
    assert udp_limit(1, 1024) == 960
    assert udp_limit(4, 1024) == 240
    assert udp_limit(100, 256) == 16                         # never below a working minimum
    assert Port("127.0.0.1", 1, 1) == Port("127.0.0.1", 1, 1, "tcp")


# -- the forwarder in this process, run after run (the "container" is this process's own namespace) --


def _udp_ask(port: int, msg: bytes, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(0.2)
        while True:
            c.sendto(msg, ("127.0.0.1", port))
            try:
                return c.recv(70000)
            except (TimeoutError, socket.timeout):
                assert time.monotonic() < deadline, f"no answer on {port}/udp"


def _tcp_ask(port: int, msg: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(msg)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := c.recv(100):
            got += chunk
    return got


def _servers():
    """A UDP echo and a TCP echo (one read, answered, closed) on 127.0.0.1, until the event is set."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    for sock in (udp, tcp):
        sock.settimeout(0.1)
    done = threading.Event()

    def serve_udp():
        while not done.is_set():
            try:
                data, peer = udp.recvfrom(70000)
            except OSError:
                continue
            udp.sendto(data, peer)

    def serve_tcp():
        while not done.is_set():
            try:
                c, _ = tcp.accept()
            except OSError:
                continue
            with c:
                c.settimeout(5)
                c.sendall(b"tcp:" + c.recv(100))
    threads = [threading.Thread(target=f, daemon=True) for f in (serve_udp, serve_tcp)]
    for t in threads:
        t.start()
    return udp, tcp, threads, done


def test_forwarder_runs_again_after_a_pause(tmp_path):
    """start → pause → start → close: the host ports stay bound in between, each run relays, and
    nothing is left behind (threads, descriptors, the ports)."""
    if os.geteuid() != 0:
        pytest.skip("setns needs root")
    from kilobox.run.publish import Forwarder
    udp, tcp, threads, done = _servers()
    pid_file = tmp_path / "pid"
    pid_file.write_text(str(os.getpid()))
    uport, tport = free_udp_port(), free_port()
    before_threads = set(threading.enumerate())
    before = open_fds() - {str(udp.fileno()), str(tcp.fileno())}   # the servers' sockets are closed below too
    fwd = Forwarder(parse_publish_list([f"{uport}:{udp.getsockname()[1]}/udp",
                                        f"{tport}:{tcp.getsockname()[1]}/tcp"]))
    fwd.bind()
    try:
        for round_ in range(3):
            fwd.start(str(pid_file), os.getpid())
            assert _udp_ask(uport, b"run %d" % round_) == b"run %d" % round_
            assert _tcp_ask(tport, b"run %d" % round_) == b"tcp:run %d" % round_
            fwd.pause()
            assert not [t for t in threading.enumerate() if t.name.startswith(("kilobox-udp-", "kilobox-tcp-"))]
            for kind, port in ((socket.SOCK_DGRAM, uport), (socket.SOCK_STREAM, tport)):
                with socket.socket(socket.AF_INET, kind) as sock, pytest.raises(OSError):
                    sock.bind(("127.0.0.1", port))            # still bound by the paused forwarder
        fwd.start(str(pid_file), os.getpid())
        assert _udp_ask(uport, b"last") == b"last"
    finally:
        fwd.close()
        done.set()
        for t in threads:
            t.join()
        udp.close()
        tcp.close()
    deadline = time.monotonic() + 10       # the relayed connections' threads end by themselves
    while set(threading.enumerate()) - before_threads:
        assert time.monotonic() < deadline, set(threading.enumerate()) - before_threads
        time.sleep(0.02)
    assert open_fds() == before
    for kind, port in ((socket.SOCK_DGRAM, uport), (socket.SOCK_STREAM, tport)):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))


def test_pause_and_close_without_a_start():
    from kilobox.run.publish import Forwarder
    fwd = Forwarder([])
    fwd.pause()
    fwd.close()
    fwd.pause()
