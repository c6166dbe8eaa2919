"""httpd: static files + /healthz, keep-alive, concurrency, hostile requests, graceful SIGTERM --
natively on amd64 and under qemu-user for arm64, arm/v7 and riscv64; then the image."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.toolchain import TEST_PLATFORMS, popen_binary, runner
from tests.helpers.tools import free_port, kilobox

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INDEX = (HERE / "www" / "index.html").read_bytes()


@contextlib.contextmanager
def server(binary: Path, platform: str = "linux/amd64", www: Path = HERE / "www", port: int | None = None):
    """Run httpd on a free 127.0.0.1 port; yields (process, port); always stops it."""
    port = port or free_port()
    proc = popen_binary(binary, platform, env={"PORT": str(port), "WWW_ROOT": str(www)})
    try:
        wait_port(port, proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"httpd exited {proc.returncode}: {proc.stderr.read().decode()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise AssertionError(f"httpd did not listen on {port}")


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send *data* then half-close, read until the server closes (or the timeout passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # a keep-alive server then closes once it has answered
        chunks = []
        with contextlib.suppress(socket.timeout):
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def get(port: int, path: str, method: str = "GET", headers: dict | None = None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


@pytest.fixture(scope="module")
def httpd(example_binary):
    return example_binary("httpd", "linux/amd64")


# -- every platform ---------------------------------------------------------------------
@pytest.mark.parametrize("platform", TEST_PLATFORMS)
def test_serves_files_and_health(example_binary, platform):
    runner(platform)
    with server(example_binary("httpd", platform), platform) as (_, port):
        assert get(port, "/healthz")[::2] == (200, b"ok\n")
        status, headers, body = get(port, "/")
        assert (status, body) == (200, INDEX)
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["content-length"] == str(len(INDEX))
        status, headers, body = get(port, "/index.html", "HEAD")
        assert (status, body, headers["content-length"]) == (200, b"", str(len(INDEX)))
        assert get(port, "/missing.txt")[0] == 404
        # keep-alive: three requests on one connection
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        socks = set()
        for path in ("/", "/healthz", "/index.html"):
            c.request("GET", path)
            r = c.getresponse()
            assert r.status == 200 and r.read()
            socks.add(id(c.sock))
        assert len(socks) == 1 and c.sock is not None
        c.close()


@pytest.mark.parametrize("platform", TEST_PLATFORMS)
def test_sigterm_exits_zero(example_binary, platform):
    runner(platform)
    with server(example_binary("httpd", platform), platform) as (proc, port):
        assert get(port, "/healthz")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert b"stopped" in proc.stderr.read()


# -- behaviour (amd64) --------------------------------------------------------------------
def test_content_types_and_directories(httpd, tmp_path):
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    files = {"style.css": "text/css", "app.js": "text/javascript", "data.json": "application/json",
             "logo.PNG": "image/png", "notes.txt": "text/plain; charset=utf-8", "blob": "application/octet-stream",
             "x.tar.gz": "application/octet-stream", "dir.html/file": "application/octet-stream"}
    for name in files:
        (www / name).parent.mkdir(parents=True, exist_ok=True)
        (www / name).write_bytes(name.encode())
    (www / "sub" / "index.html").write_text("sub index")
    (www / "empty.txt").write_bytes(b"")
    os.mkfifo(www / "fifo")
    with server(httpd, www=www) as (_, port):
        for name, ctype in files.items():
            status, headers, body = get(port, "/" + name)
            assert (status, headers["content-type"], body) == (200, ctype, name.encode())
        assert get(port, "/sub/")[::2] == (200, b"sub index")
        assert get(port, "/sub")[::2] == (200, b"sub index")
        assert get(port, "/style.css?v=3#top")[::2] == (200, b"style.css")
        assert get(port, "/no%74es.txt")[::2] == (200, b"notes.txt")
        status, headers, body = get(port, "/empty.txt")
        assert (status, headers["content-length"], body) == (200, "0", b"")
        assert get(port, "/fifo")[0] == 404        # not a regular file: never blocks the server
        assert get(port, "/")[0] == 404            # no index.html at the root
        assert get(port, "/healthz")[0] == 200


def test_large_file_is_complete(httpd, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    big = os.urandom(3 * 1024 * 1024 + 17)
    (www / "big.bin").write_bytes(big)
    with server(httpd, www=www) as (_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.3)                          # let the socket buffer fill: EPOLLOUT path
            data = b""
            while len(data) < len(big) + 200:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data and len(data.split(b"\r\n\r\n", 1)[1]) >= len(big):
                    break
        head, body = data.split(b"\r\n\r\n", 1)
        assert f"Content-Length: {len(big)}".encode() in head and body == big


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET /../etc/passwd HTTP/1.1\r\n\r\n", b"400"),
    (b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n", b"400"),
    (b"GET /a/../../etc/passwd HTTP/1.1\r\n\r\n", b"400"),
    (b"GET /.. HTTP/1.1\r\n\r\n", b"400"),
    (b"GET //etc/passwd HTTP/1.1\r\n\r\n", b"404"),
    (b"GET ///etc/passwd HTTP/1.1\r\n\r\n", b"404"),
    (b"GET /%00 HTTP/1.1\r\n\r\n", b"400"),
    (b"GET /%zz HTTP/1.1\r\n\r\n", b"400"),
    (b"GET /% HTTP/1.1\r\n\r\n", b"400"),
    (b"GET index.html HTTP/1.1\r\n\r\n", b"400"),
    (b"GET / HTTP/2.0\r\n\r\n", b"400"),
    (b"GET /\r\n\r\n", b"400"),
    (b"\r\n\r\n", b"400"),
    (b"garbage\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"405"),
    (b"DELETE /index.html HTTP/1.1\r\n\r\n", b"405"),
    (b"get / HTTP/1.1\r\n\r\n", b"405"),
    (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\nX: " + b"y" * 5000 + b"\r\n\r\n", b"431"),
])
def test_bad_requests(httpd, request_bytes, status):
    with server(httpd) as (_, port):
        reply = raw(port, request_bytes)
        assert reply.startswith(b"HTTP/1.1 " + status), reply[:200]
        assert b"root:" not in reply
        if status != b"404":
            assert b"Connection: close" in reply
        if status == b"405":
            assert b"Allow: GET, HEAD" in reply
        assert get(port, "/healthz")[0] == 200     # the server survived


def test_pipelining_and_connection_close(httpd):
    with server(httpd) as (_, port):
        reply = raw(port, b"GET /healthz HTTP/1.1\r\n\r\nHEAD / HTTP/1.1\r\n\r\n"
                          b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert reply.count(b"HTTP/1.1 200 OK") == 3 and reply.endswith(b"ok\n")
        # HTTP/1.0 closes unless asked to keep alive
        assert raw(port, b"GET /healthz HTTP/1.0\r\n\r\n").endswith(b"ok\n")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert s.recv(4096).endswith(b"ok\n")
            s.sendall(b"GET /healthz HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n")
            assert s.recv(4096).endswith(b"ok\n")


def test_request_split_across_packets(httpd):
    with server(httpd) as (_, port), socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for part in (b"GE", b"T /heal", b"thz HTTP/1.1\r", b"\nHost: x\r\n", b"\r", b"\n"):
            s.sendall(part)
            time.sleep(0.02)
        assert s.recv(4096).endswith(b"ok\n")


def test_many_concurrent_connections(httpd):
    n = 600
    with server(httpd) as (_, port):
        socks = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(n)]
        try:
            for s in socks:
                s.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            for s in socks:
                data = b""
                while not data.endswith(b"ok\n"):
                    chunk = s.recv(4096)
                    assert chunk, "connection closed early"
                    data += chunk
            for s in socks:                        # and again on the same keep-alive connections
                s.sendall(b"HEAD / HTTP/1.1\r\n\r\n")
            assert all(s.recv(4096).startswith(b"HTTP/1.1 200") for s in socks)
        finally:
            for s in socks:
                s.close()


def test_graceful_shutdown_finishes_requests_in_flight(httpd):
    with server(httpd) as (proc, port):
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert idle.recv(4096).endswith(b"ok\n")
        busy = socket.create_connection(("127.0.0.1", port), timeout=10)
        busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")     # a request half-way in
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert idle.recv(4096) == b""                      # the idle keep-alive is closed
        deadline = time.monotonic() + 10                   # new connections are refused
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                time.sleep(0.05)
            except ConnectionRefusedError:
                break
        else:
            pytest.fail("httpd still accepts connections after SIGTERM")
        assert proc.poll() is None                         # still finishing the busy one
        busy.sendall(b"\r\n")
        reply = b""
        while chunk := busy.recv(65536):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in reply and reply.endswith(INDEX)
        assert proc.wait(timeout=10) == 0
        idle.close()
        busy.close()


def test_bad_port_and_missing_root(httpd, tmp_path):
    p = subprocess.run([httpd], env={"PORT": "99999"}, capture_output=True, timeout=10)
    assert p.returncode == 2 and b"PORT" in p.stderr
    p = subprocess.run([httpd], env={"PORT": "80x"}, capture_output=True, timeout=10)
    assert p.returncode == 2
    with server(httpd, www=tmp_path / "nope") as (proc, port):
        assert get(port, "/")[0] == 404 and get(port, "/healthz")[0] == 200


# -- the image ------------------------------------------------------------------------------
def test_image_within_budget_and_serves(tmp_path):
    """kilobox build examples/httpd -o oci:out:httpd: amd64 ≤ 8 KiB with the index; the
    unpacked amd64 rootfs serves /www."""
    out = tmp_path / "out"
    report = json.loads(kilobox("build", "examples/httpd", "--json", "-o", f"oci:{out}:httpd", cwd=ROOT).stdout)
    assert report["ok"] is True and report["index"] is not None
    amd64 = next(p for p in report["platforms"] if p["platform"] == "linux/amd64")
    assert amd64["total_with_index_bytes"] <= 8 * 1024, amd64
    assert {p["platform"] for p in report["platforms"]} == set(TEST_PLATFORMS)
    rootfs = tmp_path / "rootfs"
    kilobox("unpack", f"oci:{out}:httpd", str(rootfs), "--platform", "linux/amd64", cwd=ROOT)
    assert (rootfs / "www" / "index.html").read_bytes() == INDEX
    with server(rootfs / "httpd", www=rootfs / "www") as (_, port):
        assert get(port, "/")[::2] == (200, INDEX)
