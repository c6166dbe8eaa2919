"""A scriptable, misbehaving HTTP server for the registry client's hostile-input tests.

The real registry (``docker-registry``) is used wherever it can produce the
situation; this server covers what a well-behaved registry never sends:
garbage error bodies, lying ``Content-Length``, connection resets, 10 MB
manifests, 503 storms, ``Link`` loops, odd challenges.

``srv.route("GET", "/v2/r/manifests/t", Reply(200, body=b"…"), Reply(503))`` —
replies are used in order, the last one repeats. Unrouted paths answer 404,
except ``/v2/`` (200). ``srv.requests`` records (method, path, headers).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: "reset": close the socket without answering; "truncate": send headers and half the body;
    #: "chunked": no Content-Length (chunked transfer encoding); "garbage": raw body bytes, not HTTP
    action: str = ""
    content_length: int | None = None      # a lie, when set


class HostileRegistry:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def route(self, method: str, path: str, *replies: Reply) -> None:
        self.routes[(method, path)] = list(replies)

    def _next(self, method: str, path: str) -> Reply | None:
        with self._lock:
            lst = self.routes.get((method, path))
            if lst is None:
                lst = self.routes.get((method, path.split("?", 1)[0]))
            if not lst:
                return None
            return lst.pop(0) if len(lst) > 1 else lst[0]

    def count(self, method: str, prefix: str = "") -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p.startswith(prefix))

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "HostileRegistry":
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                with srv._lock:
                    srv.requests.append((self.command, self.path, dict(self.headers)))
                r = srv._next(self.command, self.path)
                if r is None:
                    r = Reply(200, b"{}") if self.path == "/v2/" else Reply(404, b'{"errors":[{"code":"NOT_FOUND"}]}')
                if r.action == "garbage":           # not HTTP at all
                    self.wfile.write(r.body or b"SSH-2.0-OpenSSH_9.2\r\n")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if r.action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    self.close_connection = True
                    return
                self.send_response(r.status)
                for k, v in r.headers.items():
                    self.send_header(k, v)
                body = b"" if self.command == "HEAD" and r.action != "truncate" else r.body
                if r.action == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(r.body), 65536):
                        part = r.body[i:i + 65536]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                length = r.content_length if r.content_length is not None else len(r.body)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if r.action == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    self.wfile.write(body)
                if r.content_length is not None and r.content_length != len(r.body):
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - clients hang up on purpose
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def hostile_registry() -> Iterator[HostileRegistry]:
    srv = HostileRegistry().start()
    try:
        yield srv
    finally:
        srv.stop()
