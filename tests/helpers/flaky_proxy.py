"""A flaky HTTP proxy in front of a real registry: it cuts blob downloads mid-body.

``FlakyProxy(upstream="127.0.0.1:5000", cut_after=256 << 10, cuts=2).start()`` listens on
127.0.0.1 (a free port, a thread per connection) and forwards each request to the
registry on a new upstream connection. The first *cuts* blob responses longer than
*cut_after* bytes (``GET /v2/…/blobs/sha256:…`` answering 200 or 206; ``cuts=None``:
all of them) are cut after *cut_after* bytes of their body: the proxy closes the connection (``reset``:
with a TCP RST) — what a flaky link does to a long download.

Misbehaviours, to test the client's resume:

- ``ignore_range``: the ``Range`` header is dropped, the registry answers 200 with the whole blob;
- ``bad_range``: the ``Content-Range`` of a 206 is rewritten (``bytes N+1-END/TOTAL``);
- ``redirect``: blob GETs answer ``307`` to ``/storage/<digest>?sig=<n>`` on this proxy (as
  registries redirect to S3); with ``expire`` a storage URL serves one request only, then 403.

``proxy.log`` lists ``(method, path, range header, status)`` of every request.
"""

from __future__ import annotations

import http.client
import itertools
import re
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field

_BLOB = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
_STORAGE = re.compile(r"^/storage/(?P<repo>[^?]+)/(?P<digest>sha256:[0-9a-f]{64})\?sig=(?P<sig>\d+)$")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


@dataclass
class FlakyProxy:
    upstream: str
    cut_after: int | None = None
    cuts: int | None = 0
    reset: bool = False
    ignore_range: bool = False
    bad_range: bool = False
    redirect: bool = False
    expire: bool = False
    log: list[tuple[str, str, str, int]] = field(default_factory=list)
    blob_responses: int = 0        # blob responses long enough to be cut
    _server: socketserver.ThreadingTCPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sigs: itertools.count = field(default_factory=lambda: itertools.count(1))
    _used: set[str] = field(default_factory=set)

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    def ranges(self) -> list[str]:
        """The ``Range`` headers of the blob requests, in order ('' for none)."""
        return [r for m, p, r, _ in self.log if m == "GET" and ("/blobs/" in p or p.startswith("/storage/"))]

    def start(self) -> "FlakyProxy":
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    while proxy._serve_one(self.rfile, self.connection):
                        pass
                except (OSError, ValueError, http.client.HTTPException):
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - clients hang up
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FlakyProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one exchange ------------------------------------------------------------------------
    def _serve_one(self, rfile, conn: socket.socket) -> bool:  # noqa: ANN001 - a socket file
        """Forward one request; False when the client connection is finished (or was cut)."""
        if rfile.peek(1)[:1] == b"\x16":        # a TLS ClientHello (skopeo tries https first): refuse now
            return False
        line = rfile.readline(65537)
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while True:
            h = rfile.readline(65537)
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        lower = {k.lower(): v for k, v in headers}
        body = rfile.read(int(lower["content-length"])) if lower.get("content-length") else b""
        rng = lower.get("range", "")
        path = target
        if self.redirect and method == "GET" and (m := _BLOB.match(target)):
            loc = f"/storage/{m['repo']}/{m['digest']}?sig={next(self._sigs)}"
            self._note(method, target, rng, 307)
            conn.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {loc}\r\nContent-Length: 0\r\n\r\n".encode())
            return True
        if m := _STORAGE.match(target):
            with self._lock:
                expired = self.expire and m["sig"] in self._used
                self._used.add(m["sig"])
            if expired:
                self._note(method, target, rng, 403)
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\nexpired")
                return True
            path = f"/v2/{m['repo']}/blobs/{m['digest']}"
        up = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            up.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                if k.lower() in _HOP or (k.lower() == "range" and self.ignore_range):
                    continue
                up.putheader(k, v)
            if body:
                up.putheader("Content-Length", str(len(body)))
            up.endheaders(body or None)
            resp = up.getresponse()
            return self._relay(method, target, rng, path, resp, conn)
        finally:
            up.close()

    def _relay(self, method: str, target: str, rng: str, path: str, resp: http.client.HTTPResponse,
               conn: socket.socket) -> bool:
        status = resp.status
        self._note(method, target, rng, status)
        out = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
        cl = resp.getheader("Content-Length")
        data = None
        if method == "HEAD":
            length = int(cl or 0)
        elif cl is None:
            data = resp.read()
            length = len(data)
        else:
            length = int(cl)
        cut = None
        if method == "GET" and status in (200, 206) and _BLOB.match(path):
            if self.cut_after is not None and length > self.cut_after:
                with self._lock:
                    n = self.blob_responses
                    self.blob_responses += 1
                if self.cuts is None or n < self.cuts:
                    cut = self.cut_after
            if self.bad_range and status == 206:
                out = [(k, _shift(v) if k.lower() == "content-range" else v) for k, v in out]
        head = [f"HTTP/1.1 {status} {resp.reason}", *(f"{k}: {v}" for k, v in out), f"Content-Length: {length}"]
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if method == "HEAD":
            return True
        sent = 0
        while sent < length:
            chunk = data[sent:sent + (1 << 16)] if data is not None else resp.read(min(1 << 16, length - sent))
            if not chunk:
                return False
            if cut is not None and sent + len(chunk) >= cut:
                conn.sendall(chunk[:cut - sent])
                self._cut(conn)
                return False
            conn.sendall(chunk)
            sent += len(chunk)
        return True

    def _cut(self, conn: socket.socket) -> None:
        if self.reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            conn.shutdown(socket.SHUT_RDWR)

    def _note(self, method: str, target: str, rng: str, status: int) -> None:
        with self._lock:
            self.log.append((method, target, rng, status))


def _shift(value: str) -> str:
    """``bytes N-END/TOTAL`` -> ``bytes N+1-END/TOTAL`` (a lie about where the body starts)."""
    m = re.match(r"bytes (\d+)-(\d+)/(\d+)$", value.strip())
    if not m:
        return value
    first, last, total = (int(x) for x in m.groups())
    return f"bytes {min(first + 1, last)}-{last}/{total}"
