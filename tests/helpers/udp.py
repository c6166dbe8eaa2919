"""UDP helpers for the run tests: free UDP ports, a client socket, ask-until-answered, and the
source of ``udpecho`` (a static UDP echo server that also answers TCP on the same port number and
reports, on request, how it sees its peer and its network from inside)."""

from __future__ import annotations

import os
import socket
import time

from tests.helpers.tools import free_port

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


def open_fds() -> set[str]:
    """This process's open descriptors (without the one listing them)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").endswith("/fd"):
                out.add(fd)
        except OSError:
            continue
    return out
