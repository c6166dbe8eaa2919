"""--publish HOSTPORT:PORT/udp: a UDP relay from a host port into the container's own network namespace.

The container runs ``udpecho`` (C below, built with ``kilobox build``: zig cc, static musl), a UDP
echo server that also answers TCP on the same port number and reports, on request, how it sees
its peer and its network from inside.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers.tools import kilobox
from tests.helpers.udp import ask, can_bind, client, free_udp_port, open_fds

pytestmark = pytest.mark.integration

@pytest.fixture
def host_tcp_port():
    """A TCP server on the host's 127.0.0.1 (accepts and closes): the container must not reach it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                srv.accept()[0].close()
            except OSError:
                continue
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


def ps_ports(name: str) -> list[str]:
    rows = json.loads(kilobox("ps", "--json").stdout)
    return next(r["ports"] for r in rows if r["name"] == name)


def test_udp_echo_per_client(run_state, runtime_name, udpecho_image, host_tcp_port):
    port = free_udp_port()
    kilobox("run", "-d", "--name", "udp", "--runtime", runtime_name, "-p", f"127.0.0.1:{port}:7777/udp",
            udpecho_image)
    a, b = client(), client()
    try:
        me_a = ask(a, port, b"whoami")
        me_b = ask(b, port, b"whoami")
        assert me_a.startswith(b"from=127.0.0.1:") and me_b.startswith(b"from=127.0.0.1:")
        assert me_a != me_b                                   # one container-side socket per client
        assert ask(a, port, b"whoami") == me_a                # and the same one while it is in use
        assert ask(a, port, b"from a") == b"from a"
        assert ask(b, port, b"from b") == b"from b"
        big = os.urandom(60 * 1024)
        assert ask(a, port, big) == big                       # one datagram, boundaries kept, intact
        assert ask(b, port, b"") == b""                       # an empty datagram is a datagram too
        # still the container's own network: loopback only, the host's 127.0.0.1 out of reach
        assert ask(a, port, b"net") == b"net=lo"
        assert ask(a, port, f"connect=127.0.0.1:{host_tcp_port}".encode()) == b"connect=ECONNREFUSED"
        assert ps_ports("udp") == [f"127.0.0.1:{port}->7777/udp"]
    finally:
        a.close()
        b.close()
    kilobox("stop", "udp")
    kilobox("rm", "udp")
    assert can_bind(port)                                     # the relay went with the container


def test_tcp_and_udp_on_the_same_port_number(run_state, udpecho_image):
    port = free_udp_port(tcp_too=True)
    kilobox("run", "-d", "--name", "both", "-p", f"{port}:7777/udp", "-p", f"{port}:7777/tcp", udpecho_image)
    c = client()
    try:
        assert ask(c, port, b"over udp") == b"over udp"
    finally:
        c.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as t:
        t.sendall(b"over tcp")
        got = b""
        while chunk := t.recv(100):
            got += chunk
    assert got == b"tcp:over tcp"
    assert sorted(ps_ports("both")) == [f"127.0.0.1:{port}->7777/tcp", f"127.0.0.1:{port}->7777/udp"]
    kilobox("rm", "-f", "both")
    assert can_bind(port) and can_bind(port, socket.SOCK_STREAM)


def test_a_busy_udp_port_fails_before_the_container_starts(run_state, udpecho_image):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        r = kilobox("run", "-d", "--name", "busy", "-p", f"{port}:7777/udp", udpecho_image, check=False)
    assert r.returncode == 125
    assert r.stderr.count("\n") == 1 and "Address already in use" in r.stderr and "/udp" in r.stderr
    assert "busy" not in kilobox("ps", "-q").stdout
    assert not (run_state / "containers" / "busy").exists()


@pytest.mark.parametrize("item", ["1:2/sctp", "70000:1/udp", "a:b", ""])
def test_bad_publish_is_a_usage_error(run_state, udpecho_image, item):
    r = kilobox("run", "-d", "--name", "bad", "-p", item, udpecho_image, check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--publish" in r.stderr and "hint" in r.stderr
    assert "bad" not in kilobox("ps", "-q").stdout


def test_foreground_udp(run_state, udpecho_image):
    port = free_udp_port()
    p = subprocess.Popen([str(Path(sys.executable).with_name("kilobox")), "run", "--rm", "-p", f"{port}:7777/udp",
                          udpecho_image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    c = client()
    try:
        assert ask(c, port, b"hello") == b"hello"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        c.close()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert b"stopped" in out
    assert can_bind(port, timeout=0)                          # kilobox has exited: nothing can hold it


# -- the forwarder in this process (the "container" is this process's own namespace) -----------------
def _echo_server() -> tuple[socket.socket, threading.Thread, threading.Event]:
    """A UDP echo on 127.0.0.1 ("whoami" answers the peer's port), until the event is set."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(0.1)
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                data, peer = srv.recvfrom(70000)
            except OSError:
                continue
            srv.sendto(f"from={peer[1]}".encode() if data == b"whoami" else data, peer)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t, done



def test_forwarder_shuts_down_cleanly(tmp_path):
    """start → relay → close(): the relay thread is joined and every descriptor it opened is closed."""
    if os.geteuid() != 0:
        pytest.skip("setns needs root")
    from kilobox.run.publish import Forwarder, parse_publish_list
    srv, t, done = _echo_server()
    pid_file = tmp_path / "pid"
    pid_file.write_text(str(os.getpid()))
    port = free_udp_port()
    before = open_fds() - {str(srv.fileno())}          # the echo server's socket is closed below too
    fwd = Forwarder(parse_publish_list([f"{port}:{srv.getsockname()[1]}/udp"]))
    fwd.bind()
    fwd.start(str(pid_file), os.getpid())
    clients = [client() for _ in range(3)]
    try:
        seen = {ask(c, port, b"whoami") for c in clients}
        assert len(seen) == 3                                  # three clients, three mappings
        assert all(ask(c, port, b"x" * 1000) == b"x" * 1000 for c in clients)
    finally:
        for c in clients:
            c.close()
        fwd.close()
        done.set()
        t.join()
        srv.close()
    assert not [th for th in threading.enumerate() if th.name.startswith("kilobox-udp-")]
    assert open_fds() == before
    assert can_bind(port, timeout=0)


def test_relay_evicts_the_least_recently_used_client():
    """A full table drops its oldest mapping: that client gets a fresh container-side socket."""
    from kilobox.run.publish import UdpRelay
    srv, t, done = _echo_server()
    host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host.bind(("127.0.0.1", 0))
    host.setblocking(False)
    port = host.getsockname()[1]
    wake_r, wake_w = os.pipe()
    relay = UdpRelay(host, srv.getsockname()[1], wake_r, limit=3)
    rt = threading.Thread(target=relay.run)
    rt.start()
    c = [client() for _ in range(4)]
    try:
        first = [ask(x, port, b"whoami") for x in c[:3]]
        assert len(set(first)) == 3
        ask(c[3], port, b"whoami")                             # a fourth client: c[0] is evicted
        assert ask(c[2], port, b"whoami") == first[2]          # still mapped
        assert ask(c[0], port, b"whoami") != first[0]          # evicted, mapped anew (c[1] goes)
    finally:
        os.write(wake_w, b"x")
        rt.join()
        for x in (*c, host, srv):
            x.close()
        os.close(wake_r)
        os.close(wake_w)
        done.set()
        t.join()
    assert len(relay.clients) == 0


# -- podman: -p …/udp passed on ---------------------------------------------------------------------


def test_podman_gets_the_udp_port(podman_env, udpecho_image):
    port = free_udp_port()
    kilobox("run", "-d", "--name", "pu", "--engine", "podman", "-p", f"{port}:7777/udp", udpecho_image)
    inspect = subprocess.run(["podman", "inspect", "-f", "{{json .HostConfig.PortBindings}}", "kilobox-pu"],
                             capture_output=True, text=True, check=True).stdout
    assert json.loads(inspect) == {"7777/udp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    c = client()
    try:
        assert ask(c, port, b"via podman") == b"via podman"
    finally:
        c.close()
    assert ps_ports("pu") == [f"127.0.0.1:{port}->7777/udp"]
    kilobox("rm", "-f", "pu")
    assert can_bind(port)
