"""The small HTTP/1.1 client (formats/registry/http11.py) against scripted raw replies.

Every reply here is written byte for byte by a one-shot TCP server on 127.0.0.1:
the parser's job is to accept what HTTP/1.1 servers send and to refuse, with a
:class:`ProtocolError` or a connection error, whatever a hostile one could.
"""

from __future__ import annotations

import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kilobox.formats.registry.http11 import (MAX_HEADERS, MAX_LINE, Connection, IncompleteRead, ProtocolError,
                                             RemoteDisconnected, split_netloc)


class Script:
    """A server on 127.0.0.1 that answers each accepted connection with the next scripted replies.

    ``replies`` is a list per connection: each item is the bytes sent after one request
    has been read (up to the blank line, plus a Content-Length body); ``None`` closes.
    """

    def __init__(self, *connections: list[bytes | None]) -> None:
        self.connections = list(connections)
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_request(self, conn: socket.socket, buf: bytes) -> tuple[bytes, bytes] | None:
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
        while len(rest) < n:
            rest += conn.recv(65536)
        self.requests.append(head + b"\r\n\r\n" + rest[:n])
        return head, rest[n:]

    def _serve(self) -> None:
        for replies in self.connections:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                for reply in replies:
                    got = self._read_request(conn, buf)
                    if got is None:
                        break
                    buf = got[1]
                    if reply is None:
                        break
                    conn.sendall(reply)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve():
    servers: list[Script] = []

    def make(*connections: list[bytes | None]) -> Connection:
        s = Script(*connections)
        servers.append(s)
        return Connection("http", f"127.0.0.1:{s.port}", timeout=5)
    yield make
    for s in servers:
        s.close()


def get(conn: Connection, method: str = "GET", path: str = "/v2/", body: bytes | None = None):
    conn.request(method, path, {"User-Agent": "t"}, body)
    return conn.getresponse()


def read_all(resp, n: int = 7) -> bytes:
    out = b""
    while True:
        c = resp.read(n)
        if not c:
            return out
        out += c


# -- what real servers send ------------------------------------------------------------------
def test_content_length_body_and_keep_alive(serve) -> None:
    conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
                  b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"])
    r = get(conn)
    assert (r.status, r.reason) == (200, "OK")
    assert r.getheader("X-A") == "1, 2" and r.get_all("x-a") == ["1", "2"] and r.getheader("nope", "d") == "d"
    assert r.length == 5 and not r.complete and read_all(r, 2) == b"hello" and r.complete
    assert not r.will_close
    r2 = get(conn)                       # same connection
    assert r2.status == 404 and r2.complete and r2.read() == b""


def test_chunked_body_with_extensions_and_trailers(serve) -> None:
    conn = serve([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\n"])
    r = get(conn)
    assert r.length is None and read_all(r, 3) == b"hello, world!!!" and r.complete and not r.will_close


def test_close_delimited_body(serve) -> None:
    conn = serve([b"HTTP/1.0 200 OK\r\n\r\nuntil the end"])
    r = get(conn)
    assert r.will_close and r.read() == b"until the end" and r.complete


def test_head_and_204_have_no_body(serve) -> None:
    conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"])
    r = get(conn, "HEAD")
    assert r.complete and r.getheader("content-length") == "1234" and r.read(10) == b""
    assert get(conn, "DELETE").complete


def test_interim_replies_are_skipped(serve) -> None:
    conn = serve([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"])
    r = get(conn, "PUT", body=b"x")
    assert r.status == 201 and r.read() == b"ok"


def test_folded_header_and_connection_close(serve) -> None:
    conn = serve([b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"x\",\r\n service=\"y\"\r\n"
                  b"Connection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n"])
    r = get(conn)
    assert r.getheader("www-authenticate") == 'Bearer realm="x", service="y"' and r.will_close


def test_request_bytes(serve) -> None:
    s = Script([b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    try:
        conn = Connection("http", f"127.0.0.1:{s.port}", timeout=5)
        get(conn, "PUT", "/v2/a?digest=sha256%3Aab", body=b"data")
        get(conn, "POST", "/v2/a/blobs/uploads/")
    finally:
        s.close()
    put, post = s.requests
    assert put.startswith(b"PUT /v2/a?digest=sha256%3Aab HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{s.port}\r\n".encode() in put and b"Content-Length: 4\r\n" in put
    assert b"Accept-Encoding: identity\r\n" in put and put.endswith(b"\r\n\r\ndata")
    assert b"Content-Length: 0\r\n" in post        # an empty POST says so


# -- hostile replies -----------------------------------------------------------------------------
@pytest.mark.parametrize("reply", [
    b"SSH-2.0-OpenSSH_9.2\r\n", b"\x00" * 10 + b"\r\n", b"HTTP/2 200\r\n\r\n", b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 099 Low\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * (MAX_HEADERS + 1) + b"\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_LINE + 10) + b"\r\n\r\n",
    b"HTTP/1.1 200 " + b"r" * (MAX_LINE + 10) + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-" + b"a" * 60000 + b": b\r\n" + b"X-Y: " + b"b" * 60000 + b"\r\n"
    + b"X-Z: " + b"c" * 60000 + b"\r\n" + b"X-W: " + b"d" * 60000 + b"\r\n" + b"X-V: " + b"e" * 60000 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", b"HTTP/1.1 200 OK\r\n : empty name\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello", b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 30 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xd9\xa3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n" * 12,
])
def test_malformed_heads_are_refused(serve, reply: bytes) -> None:
    conn = serve([reply])
    with pytest.raises(ProtocolError):
        get(conn)


@pytest.mark.parametrize("body", [
    b"zz\r\nabc\r\n0\r\n\r\n",                       # not hex
    b"-5\r\nhello\r\n0\r\n\r\n",
    b"1" * 20 + b"\r\n",                             # absurd size
    b"5\r\nhelloXX0\r\n\r\n",                        # no CRLF after the chunk
    b"\r\n",                                         # empty size line
    b"0\r\n" + b"T: x\r\n" * 200 + b"\r\n",          # endless trailers
    b"5\r\n" + b"h" * (MAX_LINE + 10),               # a size line that never ends (chunk end)
])
def test_broken_chunked_bodies(serve, body: bytes) -> None:
    conn = serve([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body])
    r = get(conn)
    with pytest.raises((ProtocolError, IncompleteRead)):
        read_all(r, 1 << 20)


def test_connection_closed_early(serve) -> None:
    conn = serve([None])                                             # closes without a reply
    with pytest.raises(RemoteDisconnected):
        get(conn)
    conn = serve([b"HTTP/1.1 200 OK\r\nContent-Le"])                 # inside the headers
    with pytest.raises(IncompleteRead):
        get(conn)
    conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"])
    r = get(conn)
    assert r.read(100) == b"half"
    with pytest.raises(IncompleteRead):
        r.read(100)
    conn = serve([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"])
    r = get(conn)
    with pytest.raises(IncompleteRead):
        read_all(r)


def test_body_never_reads_past_its_end(serve) -> None:
    conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nde"])
    r = get(conn)
    assert r.read(100) == b"abc" and r.read(100) == b""
    assert get(conn).read() == b"de"          # the pipelined rest is the next reply


def test_unread_body_blocks_the_next_request(serve) -> None:
    conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"])
    get(conn)
    with pytest.raises(ProtocolError, match="previous response"):
        conn.request("GET", "/", {})


@pytest.mark.parametrize("target,headers", [("/a b", {}), ("/a\r\nX: y", {}), ("http://x/", {}), ("", {}),
                                             ("/", {"X": "a\r\nInjected: 1"}), ("/", {"X\n": "a"}),
                                             ("/", {"": "a"}), ("/", {"X": "\x00"})])
def test_request_injection_is_refused(target: str, headers: dict[str, str]) -> None:
    conn = Connection("http", "127.0.0.1:9", timeout=1)        # never connects: refused before sending
    with pytest.raises(ValueError):
        conn.request("GET", target, headers)
    assert conn.closed


def test_split_netloc() -> None:
    assert split_netloc("h", 80) == ("h", 80)
    assert split_netloc("h:5000", 80) == ("h", 5000)
    assert split_netloc("[::1]:5000", 443) == ("::1", 5000)
    assert split_netloc("[::1]", 443) == ("::1", 443)
    assert split_netloc("user:pw@h:1", 80) == ("h", 1)
    for bad in ("", ":80", "h:0", "h:65536", "h:x", "[::1", "[::1]x", "h:-1"):
        with pytest.raises(ValueError):
            split_netloc(bad, 80)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000))
def test_any_reply_is_parsed_or_refused(serve, reply: bytes) -> None:
    """Random bytes after a plausible status line: a response or a clean error, never a crash."""
    conn = serve([b"HTTP/1.1 200 OK\r\n" + reply])
    try:
        r = get(conn)
        n = 0
        while True:
            c = r.read(512)
            if not c:
                break
            n += len(c)
            assert n <= len(reply)
    except (ProtocolError, ConnectionError, ValueError):
        pass


# -- https ---------------------------------------------------------------------------------------
def _self_signed(tmp_path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 (cert path, key path), made with the cryptography package."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kilobox test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_https_round_trip_and_verification(tmp_path) -> None:
    import ssl
    pytest.importorskip("cryptography")
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    port = sock.getsockname()[1]

    def serve() -> None:
        for _ in range(3):
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    buf = b""
                    while b"\r\n\r\n" not in buf:
                        buf += tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
            except (ssl.SSLError, OSError):
                pass                                  # the client refused our certificate
    threading.Thread(target=serve, daemon=True).start()
    try:
        untrusting = Connection("https", f"127.0.0.1:{port}", timeout=5, ssl_context=ssl.create_default_context())
        with pytest.raises(ssl.SSLCertVerificationError):
            untrusting.request("GET", "/v2/", {})
        trusting = Connection("https", f"127.0.0.1:{port}", timeout=5, ssl_context=ssl.create_default_context(cafile=cert))
        trusting.request("GET", "/v2/", {})
        r = trusting.getresponse()
        assert (r.status, r.read()) == (200, b"secret")
        trusting.close()
        from kilobox.errors import RegistryError
        from kilobox.formats import Options
        from kilobox.formats.registry.client import RegistryClient
        client = RegistryClient("127.0.0.1", "127.0.0.1", Options())     # an https URL (as a redirect gives)
        with pytest.raises(RegistryError, match="cannot connect") as ei:
            client.request("GET", f"https://127.0.0.1:{port}/v2/", auth=False)
        assert "--insecure" in (ei.value.hint or "")
    finally:
        sock.close()
