"""HTTP for the registry client: keep-alive pool, retries with backoff, spec errors.

Only the standard library: :mod:`.http11` (a small HTTP/1.1 client over
``_socket``, :mod:`ssl` for https, set up by :mod:`.tls`) — this module is imported when a registry is
actually used, never at CLI start-up, and it does not import :mod:`http.client`
(which costs more than a micro image's whole copy).

Every request goes through :meth:`RegistryClient.request`, which

- adds the ``Authorization`` header the :class:`~.auth.Authenticator` chooses
  (probing ``/v2/`` once, fetching a Bearer token per scope set),
- retries once after a 401 with the scope the challenge names,
- retries 408/429/500/502/503/504 and connection resets with exponential
  backoff and jitter (at most :data:`MAX_TRIES` tries, honouring ``Retry-After``),
- turns refusals into :class:`~kilobox.errors.RegistryError` (``status`` and the
  spec's ``errors[].code`` list), :class:`~kilobox.errors.AuthError` (401/403)
  or :class:`~kilobox.errors.NotFound` (404), each naming method and path.
"""

from __future__ import annotations

import _thread
import json
import time

from ...errors import AuthError, NotFound, RegistryError
from ...oci import is_local_host
from . import tls as _tls, urls
from .http11 import Connection, IncompleteRead, ProtocolError, RawResponse, RemoteDisconnected

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Iterable

    from ...oci import Reference
    from .. import Options
    from .auth import Authenticator

MAX_TRIES = 5
BACKOFF_BASE = 0.25          # seconds; doubles per try, with full jitter
BACKOFF_CAP = 8.0
RETRY_AFTER_CAP = 60.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
ERROR_BODY_LIMIT = 64 * 1024
MAX_REDIRECTS = 5
TIMEOUT = 60.0              # per socket operation; a timeout is retried once
USER_AGENT = "kilobox"

_RETRY_EXC = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, RemoteDisconnected,
              IncompleteRead, TimeoutError)

def read_error_body(resp: "Response", limit: int = ERROR_BODY_LIMIT) -> bytes:
    """At most *limit* bytes of an error reply's body (nothing for HEAD); the response is closed,
    and with it whatever the server sends beyond."""
    parts: list[bytes] = []
    n = 0
    try:
        while resp.method != "HEAD" and n < limit:
            c = resp.read(limit - n)
            if not c:
                break
            parts.append(c)
            n += len(c)
    except RegistryError:
        pass
    resp.close()
    return b"".join(parts)


class Endpoint:
    """Scheme and network location of an HTTP server (``http``, ``127.0.0.1:5000``)."""

    __slots__ = ("scheme", "netloc")

    def __init__(self, scheme: str, netloc: str) -> None:
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "netloc", netloc)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.scheme, self.netloc) == (other.scheme, other.netloc)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.scheme, self.netloc))

    def __repr__(self) -> str:
        return f"Endpoint(scheme={self.scheme!r}, netloc={self.netloc!r})"

    @classmethod
    def of_url(cls, url: str) -> "Endpoint":
        scheme, netloc, _, _ = urls.split(url)
        if scheme not in ("http", "https") or not netloc:
            raise RegistryError(f"unsupported URL {url[:200]!r} (only http and https)")
        return cls(scheme, netloc)

    def connect(self, timeout: float, tls: Callable[[], object] | None = None) -> Connection:
        """A new (not yet opened) connection; it connects on its first request.
        *tls* gives the SSL context of an https connection (default: the system's roots)."""
        ctx = None
        if self.scheme == "https":
            ctx = tls() if tls is not None else _tls.context(_tls.TLSSettings())
        return Connection(self.scheme, self.netloc, timeout, ctx)


class Pool:
    """Idle keep-alive connections per endpoint (thread-safe, small)."""

    def __init__(self, per_endpoint: int = 4) -> None:
        self._idle: dict[Endpoint, list[Connection]] = {}
        self._lock = _thread.allocate_lock()
        self._max = per_endpoint

    def get(self, ep: Endpoint, timeout: float,
            tls: Callable[[], object] | None = None) -> tuple[Connection, bool]:
        """A connection and whether it was reused (a reused one may have gone stale)."""
        with self._lock:
            idle = self._idle.get(ep)
            if idle:
                return idle.pop(), True
        return ep.connect(timeout, tls), False

    def put(self, ep: Endpoint, conn: Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(ep, [])
            if len(idle) < self._max:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()


class Response:
    """A response whose connection goes back to the pool once the body is read."""

    def __init__(self, raw: RawResponse, conn: Connection, ep: Endpoint, pool: Pool, method: str,
                 url: str) -> None:
        self.raw = raw
        self.status = raw.status
        self.reason = raw.reason
        self.method = method
        self.url = url
        self._conn: Connection | None = conn
        self._ep = ep
        self._pool = pool
        if raw.complete:
            self._release()

    def header(self, name: str, default: str = "") -> str:
        return self.raw.getheader(name, default) or default

    def header_all(self, name: str) -> list[str]:
        return self.raw.get_all(name)

    @property
    def content_length(self) -> int | None:
        v = self.header("Content-Length").strip()
        if not v:
            return None
        if not v.isdigit() or not v.isascii() or len(v) > 19:
            raise RegistryError(f"{self.method} {_where(self.url)}: invalid Content-Length {v[:40]!r}")
        return int(v)

    def read(self, n: int = -1) -> bytes:
        """Up to *n* bytes of the body (all for n < 0), as soon as some arrived; b'' at its end."""
        if self._conn is None and not self.raw.complete:
            raise RegistryError(f"{self.method} {_where(self.url)}: the response was already closed")
        try:
            data = self.raw.read(n)
        except _RETRY_EXC as e:
            self._drop()
            raise RegistryError(f"{self.method} {_where(self.url)}: connection lost while reading ({_exc(e)})",
                                retryable=True) from None
        except (ProtocolError, ValueError, OSError) as e:
            self._drop()
            raise RegistryError(f"{self.method} {_where(self.url)}: malformed response body ({_exc(e)[:120]})",
                                retryable=True) from None
        if self.raw.complete:
            self._release()
        return data

    def read_limited(self, limit: int, what: str, exact: int | None = None) -> bytes:
        """The whole body, refusing (early, and while reading) more than *limit* bytes.

        With *exact*, a ``Content-Length`` other than *exact* is a :class:`DigestMismatch`.
        """
        from ...errors import DigestMismatch, ManifestError
        cl = self.content_length
        if exact is not None and cl is not None and cl != exact:
            self._drop()
            raise DigestMismatch(f"{what}: the registry announces {cl} bytes, the descriptor {exact} "
                                 f"({self.method} {_where(self.url)})")
        if cl is not None and cl > limit:
            self._drop()
            raise ManifestError(f"{what}: the registry announces {cl} bytes, over the {limit} byte limit "
                                f"({self.method} {_where(self.url)})")
        chunks: list[bytes] = []
        n = 0
        while True:
            c = self.read(min(1 << 20, limit + 1 - n))
            if not c:
                break
            chunks.append(c)
            n += len(c)
            if n > limit:
                self._drop()
                raise ManifestError(f"{what}: more than {limit} bytes ({self.method} {_where(self.url)})")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def close(self) -> None:
        """Finish with the response: a small unread rest is drained to keep the connection."""
        if self._conn is None:
            return
        if not self.raw.complete:
            length = self.raw.length
            if length is not None and length <= ERROR_BODY_LIMIT:
                try:
                    while self.raw.read(ERROR_BODY_LIMIT):
                        pass
                except (OSError, ProtocolError, ValueError):
                    self._drop()
                    return
            else:
                self._drop()
                return
        self._release()

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if self.raw.will_close:
                conn.close()
            else:
                self._pool.put(self._ep, conn)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _where(url: str) -> str:
    """The path for messages (no query: upload URLs carry long state tokens)."""
    return urls.split(url)[2][:200]


def _exc(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def parse_error_body(body: bytes) -> tuple[tuple[str, ...], str]:
    """The spec's error codes and a short message from a registry error body (hostile-safe)."""
    try:
        obj = json.loads(body[:ERROR_BODY_LIMIT])
    except (ValueError, RecursionError):
        text = body[:200].decode("utf-8", "replace").strip()
        return (), " ".join(text.split())[:200]
    codes: list[str] = []
    msgs: list[str] = []
    errs = obj.get("errors") if isinstance(obj, dict) else None
    if isinstance(errs, list):
        for e in errs[:20]:
            if not isinstance(e, dict):
                continue
            code, msg = e.get("code"), e.get("message")
            if isinstance(code, str) and code:
                codes.append(code[:64])
            if isinstance(msg, str) and msg:
                msgs.append(" ".join(msg.split())[:200])
    elif isinstance(obj, dict) and isinstance(obj.get("message"), str):  # some registries
        msgs.append(" ".join(obj["message"].split())[:200])
    return tuple(codes), "; ".join(msgs)[:300]


def backoff_delay(attempt: int, retry_after: str = "") -> float:
    """Seconds to wait before try *attempt* + 1: ``Retry-After`` if given, else capped jittered backoff."""
    ra = retry_after.strip()
    if ra.isdigit():
        return min(float(ra), RETRY_AFTER_CAP)
    if ra:
        from email.utils import parsedate_to_datetime
        try:
            when = parsedate_to_datetime(ra).timestamp()
            return max(0.0, min(when - time.time(), RETRY_AFTER_CAP))
        except (TypeError, ValueError, OverflowError):
            pass
    import random
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * (2 ** attempt)))


class RegistryClient:
    """Requests against one registry host, authenticated and retried."""

    def __init__(self, registry: str, api_host: str, opts: "Options", pool: Pool | None = None) -> None:
        from .auth import Authenticator
        self.registry = registry
        insecure = api_host in opts.insecure or registry in opts.insecure or \
            api_host.rsplit(":", 1)[0] in opts.insecure
        #: certificate directory and verification (--cert-dir, --tls-verify, certs.d)
        self.tls = _tls.settings_for(registry, api_host, getattr(opts, "cert_dir", None),
                                     getattr(opts, "tls_verify", None))
        # loopback is plain http unless TLS was configured for it; --insecure HOST always is
        scheme = "http" if insecure or (is_local_host(api_host) and not self.tls.configured) else "https"
        self._ssl_context: object = None
        self.endpoint = Endpoint(scheme, api_host)
        self.base = f"{scheme}://{api_host}"
        self.pool = pool or Pool()
        self.opts = opts
        self.sleep = time.sleep
        #: (method, path, status) of every request sent, for tests and --debug
        self.log: list[tuple[str, str, int]] = []
        self.auth: Authenticator = Authenticator(self, opts)

    # -- the one request path --------------------------------------------------
    def request(self, method: str, path_or_url: str, *, scopes: Iterable[str] = (),
                headers: dict[str, str] | None = None, body: bytes | bytearray | memoryview | None = None,
                ok: Iterable[int] = (200,), retry: bool = True, follow: bool = False,
                auth: bool = True, idempotent: bool = True, what: str = "") -> Response:
        """Send *method* to a path of this registry (or an absolute URL) and return an accepted response.

        ``ok`` lists the statuses returned to the caller; anything else raises.
        ``follow`` follows redirects (GET/HEAD of blobs), dropping credentials
        when the redirect leaves this host. ``auth=False`` sends no credentials
        and returns a 401 like any other status (the probe, token requests).
        ``idempotent=False`` (PATCH of an upload chunk) is never sent twice after a
        lost connection, not even on a stale pooled one: its effect is unknown.
        """
        ok = frozenset(ok)
        scopes = tuple(scopes)
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        reauthed = False
        attempt = redirects = timeouts = 0
        while True:
            ep = Endpoint.of_url(url)
            same_host = auth and ep == self.endpoint
            hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
            if same_host:
                hdrs.update(self.auth.headers(scopes))
            try:
                resp = self.send(ep, method, url, hdrs, body, replay_stale=idempotent)
            except _RETRY_EXC as e:
                attempt += 1
                timeouts += isinstance(e, TimeoutError)
                if not retry or not idempotent or attempt >= MAX_TRIES or timeouts > 1:
                    raise RegistryError(f"{method} {_where(url)} on {ep.netloc}: connection failed ({_exc(e)}) "
                                        f"after {attempt} {'try' if attempt == 1 else 'tries'}", retryable=True,
                                        hint="the registry may be overloaded; try again") from None
                self.sleep(backoff_delay(attempt - 1))
                continue
            except ProtocolError as e:
                raise RegistryError(f"{method} {_where(url)} on {ep.netloc}: not a valid HTTP response "
                                    f"({_exc(e)[:120]})", hint="is this an OCI registry?") from None
            except OSError as e:            # (before ValueError: a certificate error is both)
                if _tls.is_tls_error(e):        # never retried, never answered by falling back to http
                    raise _tls.tls_error(e, f"{method} {_where(url)}", ep.netloc, self.registry,
                                         self.tls) from None
                raise RegistryError(f"{method} {_where(url)}: cannot connect to {ep.netloc} ({_exc(e)})",
                                    hint="is the registry running? is the host name right?") from None
            except ValueError as e:
                raise RegistryError(f"{method} {_where(url)} on {ep.netloc}: cannot send this request "
                                    f"({_exc(e)[:120]})") from None
            st = resp.status
            if follow and st in (301, 302, 303, 307, 308) and resp.header("Location"):
                resp.close()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f"{method} {_where(url)}: more than {MAX_REDIRECTS} redirects")
                url = urls.join(url, resp.header("Location"))
                continue
            if st == 401 and same_host and not reauthed:
                challenge = resp.header("WWW-Authenticate")
                err_body = self._error_body(resp)
                reauthed = True
                if self.auth.on_unauthorized(challenge, scopes):
                    continue
                raise self.error(resp, err_body, what)
            if st in ok:
                return resp
            if retry and st in RETRY_STATUSES and attempt + 1 < MAX_TRIES:
                delay = backoff_delay(attempt, resp.header("Retry-After"))
                resp.close()
                attempt += 1
                self.sleep(delay)
                continue
            raise self.error(resp, self._error_body(resp), what)

    @staticmethod
    def _error_body(resp: Response) -> bytes:
        return read_error_body(resp)

    def ssl_context(self) -> object:
        """The SSL context of this client's https connections (built on first use, then shared)."""
        if self._ssl_context is None:
            self._ssl_context = _tls.context(self.tls)
        return self._ssl_context

    def send(self, ep: Endpoint, method: str, url: str, headers: dict[str, str],
             body: bytes | bytearray | memoryview | None, replay_stale: bool = True) -> Response:
        """One HTTP exchange; a stale pooled connection is replaced once, transparently
        (unless *replay_stale* is False: a non-idempotent request is never sent twice here)."""
        target = urls.target(url)
        for _ in range(2):
            conn, reused = self.pool.get(ep, TIMEOUT, self.ssl_context)
            try:
                conn.request(method, target, headers, body)
                raw = conn.getresponse()
            except _RETRY_EXC + (ConnectionError,):
                conn.close()
                if reused and replay_stale:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            self.log.append((method, target, raw.status))
            return Response(raw, conn, ep, self.pool, method, url)
        raise ConnectionResetError("connection closed by the server")  # pragma: no cover

    def error(self, resp: Response, body: bytes, what: str = "") -> RegistryError | NotFound:
        """The exception for a refused request."""
        codes, msg = parse_error_body(body) if body else ((), "")
        where = f"{resp.method} {_where(resp.url)} on {urls.split(resp.url)[1]}"
        head = f"{what}: " if what else ""
        detail = f"{resp.status} {resp.reason}".strip()
        if codes:
            detail += f" [{', '.join(codes)}]"
        if msg:
            detail += f": {msg}"
        text = f"{head}{where} -> {detail}"
        st = resp.status
        if st == 401:
            return AuthError(text, status=st, codes=codes,
                             hint="log in: kilobox login HOST, or --username and --password-stdin")
        if st == 403:
            return AuthError(text, status=st, codes=codes, hint="these credentials may not access this repository")
        if st == 404:
            return NotFound(text, hint="check the repository, tag or digest")
        hint = None
        if st == 400 and resp.url.startswith("http:") and "https" in msg.lower():   # "HTTP request to an HTTPS server"
            hint = (f"the registry speaks https: trust its CA with --cert-dir DIR or "
                    f"/etc/containers/certs.d/{self.registry}/ca.crt (or --tls-verify=false)")
        return RegistryError(text, status=st, codes=codes, retryable=st in RETRY_STATUSES, hint=hint)

    def close(self) -> None:
        self.pool.close()


_CLIENTS: dict[tuple[object, ...], RegistryClient] = {}


def get_client(registry: str, api_host: str, opts: "Options") -> RegistryClient:
    """The process-wide client for a registry and a set of credentials (shares probe, tokens, connections)."""
    from .credentials import auth_files
    key = (api_host, tuple(opts.insecure), opts.username, opts.password, auth_files(opts),
           getattr(opts, "cert_dir", None), getattr(opts, "tls_verify", None))
    client = _CLIENTS.get(key)
    if client is None:
        client = _CLIENTS[key] = RegistryClient(registry, api_host, opts)
    client.opts = opts          # progress callbacks and extras follow the latest caller
    return client


def client_for(ref: "Reference", opts: "Options") -> RegistryClient:
    """The process-wide client for *ref*'s registry."""
    return get_client(ref.registry, ref.api_host, opts)


def reset_clients() -> None:
    """Forget every client (tokens, probes, connections): for tests."""
    for c in _CLIENTS.values():
        c.close()
    _CLIENTS.clear()
