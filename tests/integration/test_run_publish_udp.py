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
import time
from pathlib import Path

import pytest

from tests.helpers.tools import free_port, kilobox

pytestmark = pytest.mark.integration

UDPECHO_C = r"""
/* udpecho: the echo server of kilobox's --publish/udp tests. On 0.0.0.0:PORT (argv[1], default
 * 7777), UDP — each datagram answered to its sender:
 *   "whoami"          -> "from=IP:PORT" (the sender as this server sees it)
 *   "net"             -> "net=IF,IF..." (the interfaces in /proc/net/dev)
 *   "connect=IP:PORT" -> "connect=ok|ECONNREFUSED|ENETUNREACH|E<n>" (a TCP connect from inside)
 *   anything else     -> the datagram itself (up to 65535 bytes)
 * and TCP: one read per connection, answered "tcp:" + what was read, then closed.
 * SIGTERM/SIGINT: prints "stopped" and exits 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_stop(int sig) { (void)sig; stop = 1; }
static char buf[65536];

static int ifaces(char *out, size_t cap) {
    FILE *f = fopen("/proc/net/dev", "r");
    char line[512];
    int n = snprintf(out, cap, "net="), first = 1;
    if (!f) return snprintf(out, cap, "net=E%d", errno);
    while (fgets(line, sizeof line, f) && (size_t)n < cap) {
        char *colon = strchr(line, ':'), *p = line;
        if (!colon) continue;                       /* the two header lines */
        *colon = 0;
        while (*p == ' ') p++;
        n += snprintf(out + n, cap - n, first ? "%s" : ",%s", p);
        first = 0;
    }
    fclose(f);
    return (size_t)n < cap ? n : (int)cap - 1;
}

static int tcp_connect(const char *arg, char *out, size_t cap) {
    char host[64];
    const char *colon = strrchr(arg, ':');
    struct sockaddr_in sa;
    if (!colon || (size_t)(colon - arg) >= sizeof host) return snprintf(out, cap, "connect=EINVAL");
    memcpy(host, arg, colon - arg);
    host[colon - arg] = 0;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return snprintf(out, cap, "connect=EINVAL");
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int r = connect(s, (struct sockaddr *)&sa, sizeof sa), e = errno;
    close(s);
    if (r == 0) return snprintf(out, cap, "connect=ok");
    if (e == ECONNREFUSED) return snprintf(out, cap, "connect=ECONNREFUSED");
    if (e == ENETUNREACH) return snprintf(out, cap, "connect=ENETUNREACH");
    return snprintf(out, cap, "connect=E%d", e);
}

static void datagram(int s) {
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    char reply[512], ip[INET_ADDRSTRLEN];
    ssize_t n = recvfrom(s, buf, sizeof buf - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
    int r = -1;
    if (n < 0) return;
    buf[n] = 0;
    if (n == 6 && !memcmp(buf, "whoami", 6)) {
        inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
        r = snprintf(reply, sizeof reply, "from=%s:%d", ip, ntohs(from.sin_port));
    } else if (n == 3 && !memcmp(buf, "net", 3)) {
        r = ifaces(reply, sizeof reply);
    } else if (n > 8 && !memcmp(buf, "connect=", 8)) {
        r = tcp_connect(buf + 8, reply, sizeof reply);
    }
    if (r >= 0)
        sendto(s, reply, r, 0, (struct sockaddr *)&from, flen);
    else
        sendto(s, buf, n, 0, (struct sockaddr *)&from, flen);
}

static void stream(int t) {
    int c = accept(t, 0, 0);
    if (c < 0) return;
    ssize_t n = read(c, buf, 1024);
    if (n > 0) {
        write(c, "tcp:", 4);
        write(c, buf, n);
    }
    close(c);
}

int main(int argc, char **argv) {
    struct sigaction sa;
    struct sockaddr_in a;
    int port = argc > 1 ? atoi(argv[1]) : 7777, one = 1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;                        /* no SA_RESTART: poll returns EINTR */
    sigaction(SIGTERM, &sa, 0);
    sigaction(SIGINT, &sa, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (u < 0 || t < 0 || bind(u, (struct sockaddr *)&a, sizeof a) || bind(t, (struct sockaddr *)&a, sizeof a)
        || listen(t, 16)) {
        printf("error=%d\n", errno);
        return 1;
    }
    printf("listening=%d\n", port);
    fflush(stdout);
    struct pollfd fds[2] = {{u, POLLIN, 0}, {t, POLLIN, 0}};
    while (!stop) {
        if (poll(fds, 2, -1) < 0) continue;
        if (fds[0].revents) datagram(u);
        if (fds[1].revents) stream(t);
    }
    printf("stopped\n");
    return 0;
}
"""

UDPECHO_TOML = """\
name = "udpecho"
tag = "t"
lang = "c"
sources = ["udpecho.c"]
cflags = ["-Wall", "-Wextra"]
entrypoint = ["/udpecho"]
platforms = ["linux/amd64"]
"""


@pytest.fixture(scope="session")
def udpecho_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``oci:DIR:udpecho``: the server above, built once per session with ``kilobox build``."""
    if os.uname().machine != "x86_64":
        pytest.skip("the test image is built for linux/amd64")
    d = tmp_path_factory.mktemp("udpecho")
    (d / "udpecho.c").write_text(UDPECHO_C)
    (d / "kilobox.toml").write_text(UDPECHO_TOML)
    loc = f"oci:{d / 'out'}:udpecho"
    kilobox("build", str(d), "-o", loc)
    return loc


def free_udp_port(tcp_too: bool = False) -> int:
    """A port free on 127.0.0.1 for UDP (and for TCP: free_port() checks that one)."""
    for _ in range(50):
        port = free_port()
        kinds = [socket.SOCK_DGRAM] + ([socket.SOCK_STREAM] if tcp_too else [])
        try:
            for kind in kinds:
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise AssertionError("no free UDP port on 127.0.0.1")


def client() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def ask(s: socket.socket, port: int, msg: bytes, timeout: float = 15.0) -> bytes:
    """Send *msg* to 127.0.0.1:*port* until an answer comes (UDP: a datagram sent before the server
    is up is lost), and return the answer."""
    deadline = time.monotonic() + timeout
    while True:
        s.sendto(msg, ("127.0.0.1", port))
        s.settimeout(0.25)
        try:
            data, src = s.recvfrom(70000)
        except (TimeoutError, socket.timeout):
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer to {msg[:20]!r} on 127.0.0.1:{port}/udp") from None
            continue
        assert src == ("127.0.0.1", port)
        return data


def can_bind(port: int, kind: int = socket.SOCK_DGRAM, timeout: float = 10.0) -> bool:
    """True once 127.0.0.1:*port* can be bound (the relay's socket is gone); TCP: bound and listening
    as a server would (SO_REUSEADDR: the relayed connection may linger in TIME_WAIT)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                if kind == socket.SOCK_STREAM:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                if kind == socket.SOCK_STREAM:
                    s.listen(1)
                return True
            except OSError:
                if time.monotonic() > deadline:
                    return False
        time.sleep(0.05)


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


def _fds() -> set[str]:
    """This process's open descriptors (without the one listing them)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").endswith("/fd"):
                out.add(fd)
        except OSError:
            continue
    return out


def test_forwarder_shuts_down_cleanly(tmp_path):
    """start → relay → close(): the relay thread is joined and every descriptor it opened is closed."""
    if os.geteuid() != 0:
        pytest.skip("setns needs root")
    from kilobox.run.publish import Forwarder, parse_publish_list
    srv, t, done = _echo_server()
    pid_file = tmp_path / "pid"
    pid_file.write_text(str(os.getpid()))
    port = free_udp_port()
    before = _fds() - {str(srv.fileno())}          # the echo server's socket is closed below too
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
    assert _fds() == before
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
