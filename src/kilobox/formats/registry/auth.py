"""Registry authentication: the ``WWW-Authenticate`` challenge flow, Basic and Bearer.

Flow (distribution's token spec)::

    GET /v2/                      -> 200: no auth needed
                                  -> 401 WWW-Authenticate: Basic realm=…   (send Basic creds)
                                  -> 401 WWW-Authenticate: Bearer realm=…,service=…
    GET realm?service=…&scope=…   (Basic creds if any) -> {"token"|"access_token", "expires_in"}
    request with Authorization: Bearer TOKEN
    401 with a Bearer scope=…     -> fetch a token for the wider scope, retry once

The probe happens once per client (one client per registry host). Tokens are
cached per scope set; a cached token whose scopes cover the request is reused.
"""

from __future__ import annotations

import _thread
import json
import time

from ...errors import AuthError
from . import urls

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Iterable

    from .. import Options
    from .client import RegistryClient
    from .credentials import Credentials

MAX_HEADER = 8192
MAX_TOKEN_RESPONSE = 1 << 20
MAX_TOKEN = 64 * 1024
DEFAULT_TOKEN_TTL = 60
EXPIRY_MARGIN = 10.0

_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=:")


class Challenge:
    """One challenge of a ``WWW-Authenticate`` header (scheme lower-cased, parameter names too)."""

    __slots__ = ("scheme", "params")

    def __init__(self, scheme: str, params: dict[str, str] | None = None) -> None:
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "params", {} if params is None else params)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.scheme, self.params) == (other.scheme, other.params)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.scheme, self.params))     # TypeError, as a frozen dataclass with a dict

    def __repr__(self) -> str:
        return f"Challenge(scheme={self.scheme!r}, params={self.params!r})"

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split())


def _is_tchar(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235) leniently; garbage yields fewer challenges, never a crash."""
    s = header[:MAX_HEADER]
    n = len(s)
    i = 0
    out: list[Challenge] = []
    current: Challenge | None = None

    def skip(chars: str) -> None:
        nonlocal i
        while i < n and s[i] in chars:
            i += 1

    def token() -> str:
        nonlocal i
        j = i
        while i < n and _is_tchar(s[i]):
            i += 1
        return s[j:i]

    while i < n:
        skip(" \t,")
        if i >= n:
            break
        name = token()
        if not name:
            i += 1          # a stray character: skip it
            continue
        skip(" \t")
        if i < n and s[i] == "=" and current is not None:
            i += 1
            skip(" \t")
            if i < n and s[i] == '"':
                i += 1
                buf: list[str] = []
                while i < n and s[i] != '"':
                    if s[i] == "\\" and i + 1 < n:
                        i += 1
                    buf.append(s[i])
                    i += 1
                i += 1      # closing quote (or end)
                value = "".join(buf)
            else:           # unquoted: a token, leniently up to the next comma or space
                j = i
                while i < n and s[i] not in " \t,":
                    i += 1
                value = s[j:i]
            if len(current.params) < 32:
                current.params.setdefault(name.lower(), value)
            continue
        if i < n and s[i] == "=":     # a parameter before any scheme: ignore it
            i += 1
            continue
        current = Challenge(name.lower(), {})
        out.append(current)
        # token68 form (``Basic dXNlcjpwYXNz==``): a bare value, not name=value
        skip(" \t")
        j = i
        while j < n and (_is_tchar(s[j]) or s[j] in "/="):
            j += 1
        if j > i and (j == n or s[j] in " \t,") and "=" not in s[i:j].rstrip("="):
            i = j
    return out


def _atoms(scopes: Iterable[str]) -> frozenset[tuple[str, str, str]]:
    """``repository:a/b:pull,push`` -> {(repository, a/b, pull), (repository, a/b, push)}."""
    out: set[tuple[str, str, str]] = set()
    for sc in scopes:
        head, _, actions = sc.rpartition(":")
        typ, _, name = head.partition(":")
        for a in actions.split(","):
            out.add((typ, name, a))
    return frozenset(out)


def _repository_of(scopes: Iterable[str]) -> str:
    """``repository:a/b:pull`` -> ``a/b`` (the first repository scope), else ''."""
    for sc in scopes:
        typ, _, rest = sc.partition(":")
        if typ == "repository":
            return rest.rpartition(":")[0]
    return ""


def basic_header(user: str, password: str) -> str:
    import binascii
    return "Basic " + binascii.b2a_base64(f"{user}:{password}".encode(), newline=False).decode()


class Authenticator:
    """Chooses the ``Authorization`` header for a request to one registry."""

    def __init__(self, client: "RegistryClient", opts: "Options") -> None:
        self.client = client
        self.opts = opts
        self.challenge: Challenge | None = None
        self.probed = False
        self._creds: "dict[str, Credentials | None]" = {}    # repository -> credentials (looked up once)
        self._tokens: list[tuple[frozenset[tuple[str, str, str]], str, float]] = []
        self._sent_basic = False
        #: how many token requests were made (tests check the cache)
        self.token_requests = 0
        self._lock = _thread.RLock()      # prefetch threads share the tokens

    # -- credentials ---------------------------------------------------------------
    def credentials(self, scopes: tuple[str, ...] = ()) -> "Credentials | None":
        """The credentials for the repository of the first ``repository:`` scope (auth files may
        hold per-namespace keys), or for the registry as a whole."""
        repo = _repository_of(scopes)
        if repo not in self._creds:
            from .credentials import lookup
            self._creds[repo] = lookup(self.client.registry, self.opts, repo)
        return self._creds[repo]

    # -- the request path ------------------------------------------------------------
    def probe(self) -> None:
        """``GET /v2/`` once: learn whether and how this registry wants credentials."""
        resp = self.client.request("GET", "/v2/", ok=(200, 401), auth=False, what="probe")
        header = resp.header("WWW-Authenticate")
        status = resp.status
        resp.close()
        self.probed = True
        if status == 401:
            self.challenge = self._pick(header)
            if self.challenge is None:
                raise AuthError(f"GET /v2/ on {self.client.registry}: 401 without a usable challenge "
                                f"({header[:120]!r})", status=401)

    @staticmethod
    def _pick(header: str) -> Challenge | None:
        chs = parse_challenges(header)
        for want in ("bearer", "basic"):
            for ch in chs:
                if ch.scheme == want and (want == "basic" or ch.params.get("realm")):
                    return ch
        return None

    def headers(self, scopes: tuple[str, ...]) -> dict[str, str]:
        """The ``Authorization`` header for a request needing *scopes* (may fetch a token)."""
        with self._lock:
            return self._headers(scopes)

    def _headers(self, scopes: tuple[str, ...]) -> dict[str, str]:
        if not self.probed:
            self.probe()
        ch = self.challenge
        if ch is None:
            return {}
        if ch.scheme == "basic":
            creds = self.credentials(scopes)
            if creds is None:
                return {}
            self._sent_basic = True
            return {"Authorization": basic_header(creds.username, creds.password)}
        token = self._cached(scopes) or self.fetch_token(ch, scopes)
        return {"Authorization": f"Bearer {token}"}

    def on_unauthorized(self, header: str, scopes: tuple[str, ...]) -> bool:
        """After a 401: True when a retry with new credentials makes sense."""
        with self._lock:
            return self._on_unauthorized(header, scopes)

    def _on_unauthorized(self, header: str, scopes: tuple[str, ...]) -> bool:
        ch = self._pick(header)
        if ch is None:
            return False
        if ch.scheme == "basic":
            first = self.challenge is None or self.challenge.scheme != "basic" or not self._sent_basic
            self.challenge = ch
            return first and self.credentials(scopes) is not None
        want = tuple(dict.fromkeys(scopes + ch.scopes))
        failed = _atoms(scopes)
        self._tokens = [t for t in self._tokens if not failed <= t[0]]   # they were refused
        self.challenge = ch
        self.fetch_token(ch, want)
        return True

    # -- tokens ------------------------------------------------------------------------
    def _cached(self, scopes: tuple[str, ...]) -> str:
        need = _atoms(scopes)
        now = time.time()
        self._tokens = [t for t in self._tokens if t[2] > now]
        for have, token, _exp in self._tokens:
            if need <= have:
                return token
        return ""

    def fetch_token(self, ch: Challenge, scopes: tuple[str, ...]) -> str:
        """GET a Bearer token from the challenge's realm for *scopes* (Basic creds if known)."""
        realm = ch.params.get("realm", "")
        scheme, netloc, _, query_s = urls.split(realm)
        if scheme not in ("http", "https") or not netloc:
            raise AuthError(f"{self.client.registry}: token realm {realm[:120]!r} is not an http(s) URL")
        query: list[tuple[str, str]] = []
        if ch.params.get("service"):
            query.append(("service", ch.params["service"]))
        query += [("scope", s) for s in scopes]
        url = realm + (("&" if query_s else "?") + urls.urlencode(query) if query else "")
        headers: dict[str, str] = {}
        creds = self.credentials(scopes)
        if creds is not None:
            headers["Authorization"] = basic_header(creds.username, creds.password)
        self.token_requests += 1
        what = f"token for {' '.join(scopes) or 'registry'}"
        try:
            resp = self.client.request("GET", url, headers=headers, ok=(200,), auth=False, what=what)
        except AuthError as e:
            e.hint = ("check the user name and password" if creds else
                      "log in: kilobox login HOST, or --username and --password-stdin")
            raise
        body = resp.read_limited(MAX_TOKEN_RESPONSE, what)
        token, ttl = parse_token_response(body, f"{what} from {netloc}")
        # renew a little early (a token must not expire in flight), never sooner than half its life
        self._tokens.append((_atoms(scopes), token, time.time() + ttl - min(EXPIRY_MARGIN, ttl / 2)))
        return token


def parse_token_response(body: bytes, what: str) -> tuple[str, float]:
    """(token, lifetime in seconds) from a token server reply; hostile-safe."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        raise AuthError(f"{what}: the reply is not JSON") from None
    if not isinstance(obj, dict):
        raise AuthError(f"{what}: the reply is not a JSON object")
    token = obj.get("token") or obj.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthError(f"{what}: the reply has no token")
    if len(token) > MAX_TOKEN or not set(token) <= _TOKEN_CHARS:
        raise AuthError(f"{what}: the token is malformed")
    ttl = obj.get("expires_in", DEFAULT_TOKEN_TTL)
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not 0 < ttl < 10 ** 7:
        ttl = DEFAULT_TOKEN_TTL
    return token, float(ttl)


__all__ = ["Challenge", "parse_challenges", "Authenticator", "basic_header", "parse_token_response"]
