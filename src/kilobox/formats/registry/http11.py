"""A small HTTP/1.1 client connection: what the registry client needs, nothing more.

Why not :mod:`http.client`: importing it costs ~20 ms (it parses headers with
the :mod:`email` package), more than a whole ``kilobox copy`` of a micro image
may take. This module needs only ``_socket`` (the C module under :mod:`socket`,
whose Python layer builds enums at import) for plain http, and :mod:`ssl` for
https.

What it speaks: one request at a time per connection; ``Content-Length`` and
``chunked`` bodies, and bodies delimited by the connection's close; keep-alive
(HTTP/1.1 default, ``Connection: close`` honoured); interim ``1xx`` replies
skipped; a timeout on every socket operation. Replies are outside data and may
be hostile: the status line and each header line are capped at
:data:`MAX_LINE` bytes, a reply has at most :data:`MAX_HEADERS` header lines
and :data:`MAX_HEADER_BYTES` bytes of them, ``Content-Length`` must be plain
digits (two different values are refused), chunk sizes must be hex of bounded
length, and a body never reads past its end. Anything else raises
:class:`ProtocolError`; a connection that ends too early raises
:class:`RemoteDisconnected` (before the status line: a stale keep-alive
connection) or :class:`IncompleteRead` (inside a body).

Bodies stream: :meth:`RawResponse.read` returns at most *n* bytes, as soon as
some have arrived (an empty result means the body is complete).
"""

from __future__ import annotations

import _socket

MAX_LINE = 65536                 # status line, one header line, one chunk-size line
MAX_HEADERS = 100
MAX_HEADER_BYTES = 256 * 1024
MAX_INTERIM = 10                 # 1xx replies skipped before the real one
MAX_TRAILERS = 100
RECV = 64 * 1024                 # socket read size while headers are parsed
SEND_JOIN = 64 * 1024            # bodies up to this size go in one send with the headers


class ProtocolError(Exception):
    """The peer's reply is not HTTP/1.x as this client accepts it."""


class RemoteDisconnected(ConnectionResetError):
    """The connection closed before a status line arrived (often: a stale keep-alive connection)."""


class IncompleteRead(ConnectionError):
    """The connection closed before the end the body announced."""


def _check_token(text: str, what: str) -> str:
    """Refuse CR, LF, NUL and other controls in what goes on the request line or into a header."""
    for c in text:
        if c < " " and c != "\t" or c == "\x7f":
            raise ValueError(f"invalid character {c!r} in HTTP {what}")
    return text


def split_netloc(netloc: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (user info dropped) -> (host, port)."""
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"invalid host {netloc[:100]!r}")
        host, rest = hostport[1:end], hostport[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"invalid host {netloc[:100]!r}")
        port_s = rest[1:]
    else:
        host, _, port_s = hostport.partition(":")
    if not host:
        raise ValueError(f"invalid host {netloc[:100]!r}")
    if not port_s:
        return host, default_port
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ValueError(f"invalid port in {netloc[:100]!r}")
    return host, int(port_s)


def _connect(host: str, port: int, timeout: float) -> "_socket.socket":
    """A TCP connection to the first address of *host* that answers (as socket.create_connection)."""
    # an ASCII host goes as bytes: a str would load the idna codec first
    h: str | bytes = host.encode("ascii") if host.isascii() else host
    err: OSError | None = None
    for family, kind, proto, _name, addr in _socket.getaddrinfo(h, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(addr)
        except OSError as e:
            sock.close()
            err = e
            continue
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return sock
    raise err if err is not None else OSError(f"no address for {host}")


class Connection:
    """One client connection to ``scheme://netloc``; opened on the first request."""

    def __init__(self, scheme: str, netloc: str, timeout: float, ssl_context: object = None) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme!r}")
        self.scheme = scheme
        self.netloc = netloc
        self.host, self.port = split_netloc(netloc, 443 if scheme == "https" else 80)
        self.timeout = timeout
        self._ssl_context = ssl_context
        self.sock: object = None
        self._buf = bytearray()         # received, not yet consumed
        self._response: RawResponse | None = None

    # -- connection ---------------------------------------------------------------
    def connect(self) -> None:
        if self.scheme == "https":
            import socket
            import ssl
            ctx = self._ssl_context or ssl.create_default_context()
            raw = socket.create_connection((self.host, self.port), self.timeout)
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sock = ctx.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]
            except BaseException:
                raw.close()
                raise
        else:
            self.sock = _connect(self.host, self.port, self.timeout)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        self._buf.clear()
        self._response = None
        if sock is not None:
            try:
                sock.close()  # type: ignore[attr-defined]
            except OSError:
                pass

    @property
    def closed(self) -> bool:
        return self.sock is None

    # -- request ------------------------------------------------------------------
    def request(self, method: str, target: str, headers: dict[str, str],
                body: bytes | bytearray | memoryview | None = None) -> None:
        """Send one request. ``Host``, ``Content-Length`` (for a body, or an empty POST/PUT/PATCH)
        and ``Accept-Encoding: identity`` are added unless given."""
        if self._response is not None and not self._response.complete:
            raise ProtocolError("the previous response was not read to its end")
        _check_token(method, "method")
        if not target.startswith("/") or " " in target:
            raise ValueError(f"invalid request target {target[:100]!r}")
        _check_token(target, "request target")
        given = {k.lower() for k in headers}
        lines = [f"{method} {target} HTTP/1.1"]
        if "host" not in given:
            default = 443 if self.scheme == "https" else 80
            host = f"[{self.host}]" if ":" in self.host else self.host
            lines.append(f"Host: {host}" if self.port == default else f"Host: {host}:{self.port}")
        if "accept-encoding" not in given:
            lines.append("Accept-Encoding: identity")
        if "content-length" not in given and (body is not None or method in ("POST", "PUT", "PATCH")):
            lines.append(f"Content-Length: {len(body) if body is not None else 0}")
        for k, v in headers.items():
            if not k or ":" in k or " " in k:
                raise ValueError(f"invalid HTTP header name {k[:40]!r}")
            lines.append(f"{_check_token(k, 'header name')}: {_check_token(str(v), 'header value')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.sock is None:
            self.connect()
        sock = self.sock
        if body is not None and len(body) and len(body) <= SEND_JOIN:
            sock.sendall(head + bytes(body))  # type: ignore[attr-defined]
        else:
            sock.sendall(head)  # type: ignore[attr-defined]
            if body is not None and len(body):
                sock.sendall(body)  # type: ignore[attr-defined]
        self._method = method

    def getresponse(self) -> "RawResponse":
        """Read the status line and headers of the reply to the last request."""
        for _ in range(MAX_INTERIM + 1):
            resp = RawResponse(self, self._method)
            if resp.status >= 200 or resp.status == 101:
                self._response = resp
                return resp
        raise ProtocolError(f"more than {MAX_INTERIM} interim (1xx) replies")

    # -- buffered reading (used by RawResponse) -----------------------------------------
    def _fill(self, n: int = RECV) -> int:
        """Receive up to *n* more bytes into the buffer; 0 at end of stream."""
        if self.sock is None:
            return 0
        data = self.sock.recv(n)  # type: ignore[attr-defined]
        self._buf += data
        return len(data)

    def _readline(self, what: str) -> bytes:
        """One line including its LF; raises when it is longer than MAX_LINE; b'' at end of stream."""
        start = 0
        while True:
            i = self._buf.find(b"\n", start)
            if i >= 0:
                if i + 1 > MAX_LINE:
                    raise ProtocolError(f"{what} longer than {MAX_LINE} bytes")
                line = bytes(self._buf[:i + 1])
                del self._buf[:i + 1]
                return line
            if len(self._buf) > MAX_LINE:
                raise ProtocolError(f"{what} longer than {MAX_LINE} bytes")
            start = len(self._buf)
            if not self._fill():
                line = bytes(self._buf)
                self._buf.clear()
                return line

    def _read(self, n: int) -> bytes:
        """At most *n* (> 0) bytes, as soon as any are there; b'' at end of stream."""
        if self._buf:
            if len(self._buf) <= n:
                data = bytes(self._buf)
                self._buf.clear()
            else:
                data = bytes(self._buf[:n])
                del self._buf[:n]
            return data
        if self.sock is None:
            return b""
        return self.sock.recv(n)  # type: ignore[attr-defined, no-any-return]


def _status_line(line: bytes) -> tuple[int, int, str]:
    """(minor version, status, reason) of ``HTTP/1.x SSS reason``."""
    text = line.rstrip(b"\r\n")
    parts = text.split(None, 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or len(parts[1]) != 3 or \
            not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP status line: {text[:60]!r}")
    status = int(parts[1])
    if status < 100:
        raise ProtocolError(f"invalid status {status}")
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    return (1 if parts[0] == b"HTTP/1.1" else 0), status, "".join(c for c in reason if c.isprintable())[:200]


class RawResponse:
    """Status, headers and a streaming body of one reply."""

    def __init__(self, conn: Connection, method: str) -> None:
        self._conn = conn
        line = conn._readline("status line")
        if not line:
            raise RemoteDisconnected("the server closed the connection without a reply")
        minor, self.status, self.reason = _status_line(line)
        if not line.endswith(b"\n"):
            raise IncompleteRead("the connection closed inside the status line")
        self.headers: list[tuple[str, str]] = []
        total = 0
        while True:
            line = conn._readline("header line")
            if not line.endswith(b"\n"):
                raise IncompleteRead("the connection closed inside the reply's headers")
            total += len(line)
            if total > MAX_HEADER_BYTES:
                raise ProtocolError(f"more than {MAX_HEADER_BYTES} bytes of headers")
            if line in (b"\r\n", b"\n"):
                break
            if len(self.headers) >= MAX_HEADERS:
                raise ProtocolError(f"more than {MAX_HEADERS} headers")
            text = line.rstrip(b"\r\n").decode("latin-1")
            if text[:1] in (" ", "\t"):              # obsolete line folding
                if not self.headers:
                    raise ProtocolError("a continued header line without a header")
                k, v = self.headers[-1]
                self.headers[-1] = (k, f"{v} {text.strip()}")
                continue
            name, sep, value = text.partition(":")
            if not sep or not name or name != name.strip():
                raise ProtocolError(f"malformed header line {text[:60]!r}")
            self.headers.append((name.lower(), value.strip(" \t")))
        self._chunked = False
        self._chunk_left = 0                 # bytes left in the current chunk (chunked bodies)
        self._done = False
        #: bytes of the body still to come when the reply announced its length, else None
        self.length: int | None = None
        conn_tokens = {t.strip().lower() for t in self.getheader("connection").split(",")}
        self.will_close = "close" in conn_tokens or (minor == 0 and "keep-alive" not in conn_tokens)
        if method == "HEAD" or self.status < 200 or self.status in (204, 304):
            self.length = 0
        else:
            te = self.getheader("transfer-encoding").lower()
            if te:
                if [t.strip() for t in te.split(",")][-1] != "chunked":
                    raise ProtocolError(f"unsupported Transfer-Encoding {te[:60]!r}")
                self._chunked = True
            else:
                values = {v.strip() for v in self.get_all("content-length")}
                if len(values) > 1:
                    raise ProtocolError("conflicting Content-Length headers")
                if values:
                    cl = values.pop()
                    if not cl.isdigit() or not cl.isascii() or len(cl) > 19:
                        raise ProtocolError(f"invalid Content-Length {cl[:40]!r}")
                    self.length = int(cl)
                else:
                    self.will_close = True     # the body ends when the connection does
        if self.length == 0:
            self._done = True

    # -- headers ----------------------------------------------------------------------
    def getheader(self, name: str, default: str = "") -> str:
        """The value of header *name* (several are joined with ', '), else *default*."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self.headers if k == key]

    # -- body ----------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """True once the body has been read to its end."""
        return self._done

    def read(self, n: int = -1) -> bytes:
        """Up to *n* bytes of the body (all of it for n < 0); b'' once it is complete."""
        if n is None or n < 0:
            parts = []
            while True:
                c = self.read(1 << 20)
                if not c:
                    return b"".join(parts)
                parts.append(c)
        if self._done or n == 0:
            return b""
        if self._chunked:
            return self._read_chunked(n)
        if self.length is None:                 # until the connection closes
            data = self._conn._read(n)
            if not data:
                self._done = True
            return data
        data = self._conn._read(min(n, self.length))
        if not data:
            raise IncompleteRead(f"the connection closed {self.length} bytes before the end of the body")
        self.length -= len(data)
        if self.length == 0:
            self._done = True
        return data

    def _read_chunked(self, n: int) -> bytes:
        conn = self._conn
        if self._chunk_left == 0:
            line = conn._readline("chunk size line")
            if not line.endswith(b"\n"):
                raise IncompleteRead("the connection closed inside a chunked body")
            size_s = line.split(b";", 1)[0].strip()
            if not size_s or len(size_s) > 16 or size_s.strip(b"0123456789abcdefABCDEF"):
                raise ProtocolError(f"invalid chunk size {size_s[:40]!r}")
            size = int(size_s, 16)
            if size == 0:
                for _ in range(MAX_TRAILERS + 1):
                    t = conn._readline("trailer line")
                    if not t.endswith(b"\n"):
                        raise IncompleteRead("the connection closed inside the trailers")
                    if t in (b"\r\n", b"\n"):
                        self._done = True
                        return b""
                raise ProtocolError(f"more than {MAX_TRAILERS} trailer lines")
            self._chunk_left = size
        data = conn._read(min(n, self._chunk_left))
        if not data:
            raise IncompleteRead("the connection closed inside a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            end = conn._readline("chunk end")
            if end not in (b"\r\n", b"\n"):
                if not end.endswith(b"\n") and b"\r\n".startswith(end):
                    raise IncompleteRead("the connection closed after a chunk")
                raise ProtocolError("a chunk does not end with CRLF")
        return data


__all__ = ["Connection", "RawResponse", "ProtocolError", "RemoteDisconnected", "IncompleteRead",
           "split_netloc", "MAX_LINE", "MAX_HEADERS"]
