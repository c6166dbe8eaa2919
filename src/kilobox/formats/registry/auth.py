"""Registry authentication: the ``WWW-Authenticate`` challenge flow, Basic and Bearer.

Flow (distribution's token spec)::

    GET /v2/                      -> 200: no auth needed
                                  -> 401 WWW-Authenticate: Basic realm=…   (send Basic creds)
                                  -> 401 WWW-Authenticate: Bearer realm=…,service=…
    GET realm?service=…&scope=…   (Basic creds if any) -> {"token"|"access_token", "expires_in"}
    request with Authorization: Bearer TOKEN
    401 with a Bearer scope=…     -> fetch a token for the wider scope, retry once

With an identity token (an OAuth2 refresh token: ``identitytoken`` in config.json, or a
helper's ``Username: "<token>"``) the token comes from distribution's OAuth2 flow instead::

    POST realm  grant_type=refresh_token&refresh_token=…&service=…&scope=…&client_id=kilobox
                -> {"access_token"|"token", "expires_in"}
                -> 404/405: the realm has no OAuth2 POST: the GET flow, if there is a password
                -> 400/401: refused (an expired or revoked identity token)

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
    from .client import RegistryClient, Response
    from .credentials import Credentials

MAX_HEADER = 8192
MAX_TOKEN_RESPONSE = 1 << 20
MAX_TOKEN = 64 * 1024
DEFAULT_TOKEN_TTL = 60
EXPIRY_MARGIN = 10.0
MAX_OAUTH_ERROR = 64 * 1024
#: ``client_id`` of the OAuth2 POST (the spec asks for one; any meaningful name will do)
OAUTH_CLIENT_ID = "kilobox"
#: the realm does not implement the OAuth2 POST (distribution's spec names 404; some answer 405)
OAUTH_UNSUPPORTED = frozenset({404, 405})
_FORM = "application/x-www-form-urlencoded"
_EXPIRED_HINT = "the identity token may have expired: log in again (docker login, az acr login or kilobox login)"

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
            if creds is None or not (creds.username or creds.password):     # an identity token alone
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
            creds = self.credentials(scopes)
            return first and creds is not None and bool(creds.username or creds.password)
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
        """A Bearer token from the challenge's realm for *scopes*: the OAuth2 ``POST`` when the
        credentials hold an identity token, else ``GET`` (Basic creds if known)."""
        realm = ch.params.get("realm", "")
        scheme, netloc, _, _ = urls.split(realm)
        if scheme not in ("http", "https") or not netloc:
            raise AuthError(f"{self.client.registry}: token realm {realm[:120]!r} is not an http(s) URL")
        creds = self.credentials(scopes)
        self.token_requests += 1
        what = f"token for {' '.join(scopes) or 'registry'}"
        keys: tuple[str, ...] = ("token", "access_token")
        body = None
        if creds is not None and creds.identity_token:
            body = self._post_refresh(ch, scopes, creds, what)
            keys = ("access_token", "token")
        if body is None:
            body = self._get_token(ch, scopes, creds, what)
        token, ttl = parse_token_response(body, f"{what} from {netloc}", keys)
        # renew a little early (a token must not expire in flight), never sooner than half its life
        self._tokens.append((_atoms(scopes), token, time.time() + ttl - min(EXPIRY_MARGIN, ttl / 2)))
        return token

    def _get_token(self, ch: Challenge, scopes: tuple[str, ...], creds: "Credentials | None", what: str) -> bytes:
        """distribution's token ``GET`` (Basic credentials if any): the reply's body."""
        realm = ch.params["realm"]
        query_s = urls.split(realm)[3]
        query: list[tuple[str, str]] = []
        if ch.params.get("service"):
            query.append(("service", ch.params["service"]))
        query += [("scope", s) for s in scopes]
        url = realm + (("&" if query_s else "?") + urls.urlencode(query) if query else "")
        headers: dict[str, str] = {}
        if creds is not None and (creds.username or creds.password):
            headers["Authorization"] = basic_header(creds.username, creds.password)
        try:
            resp = self.client.request("GET", url, headers=headers, ok=(200,), auth=False, what=what)
        except AuthError as e:
            e.hint = ("check the user name and password" if creds else
                      "log in: kilobox login HOST, or --username and --password-stdin")
            raise
        return _read_reply(resp, what)

    def _post_refresh(self, ch: Challenge, scopes: tuple[str, ...], creds: "Credentials", what: str) -> bytes | None:
        """The OAuth2 refresh-token ``POST``: the reply's body, or None to fall back to ``GET``
        (the realm lacks the POST and there is a password). Errors never show the token."""
        from .client import RETRY_STATUSES
        realm = ch.params["realm"]
        scheme, netloc, path, _ = urls.split(realm)
        where = f"POST {_clean(path, 100) or '/'} on {_clean(netloc, 100)}"
        if scheme == "http" and self.client.endpoint.scheme == "https":
            raise AuthError(f"{what}: {self.client.registry} (https) names a plain-http token realm "
                            f"{realm[:120]!r}: the identity token is not sent there",
                            hint="the registry's auth configuration looks wrong (or tampered with)")
        form = oauth_form(creds.identity_token, ch.params.get("service", ""), scopes)
        ok = frozenset(range(200, 600)) - RETRY_STATUSES       # 5xx: the client retries, then raises
        resp = self.client.request("POST", realm, headers={"Content-Type": _FORM}, body=form,
                                   ok=ok, auth=False, what=what)
        st = resp.status
        if st == 200:
            return _read_reply(resp, what)
        detail = _clean(f"{st} {resp.reason}", 80)
        location = resp.header("Location")
        err = _read_error(resp)
        if st in OAUTH_UNSUPPORTED:
            if creds.has_password:
                return None
            raise AuthError(f"{what}: {where} -> {detail}: the token realm {realm[:120]!r} has no OAuth2 POST "
                            f"and there is no password to fall back on", status=st,
                            hint="log in with a user name and password: kilobox login HOST")
        if 300 <= st < 400:
            to = _clean(urls.split(location)[1], 100) if location else ""
            raise AuthError(f"{what}: {where} -> {detail}" + (f" (to {to})" if to else "") +
                            ": the token endpoint's redirects are not followed", status=st)
        code, msg = parse_oauth_error(err, creds.identity_token)
        text = f"{what}: {where} -> {detail}" + (f" [{code}]" if code else "") + (f": {msg}" if msg else "")
        raise AuthError(text, status=st, codes=(code,) if code else (),
                        hint=_EXPIRED_HINT if st in (400, 401, 403) else None)


def _read_reply(resp: "Response", what: str) -> bytes:
    """A token reply's body, at most :data:`MAX_TOKEN_RESPONSE` bytes (more: an AuthError)."""
    from ...errors import ManifestError
    try:
        return resp.read_limited(MAX_TOKEN_RESPONSE, what)
    except ManifestError:
        raise AuthError(f"{what}: the token endpoint's reply is over {MAX_TOKEN_RESPONSE} bytes") from None


def _read_error(resp: "Response") -> bytes:
    """At most :data:`MAX_OAUTH_ERROR` bytes of an error body (the rest is dropped with the connection)."""
    from .client import read_error_body
    return read_error_body(resp, MAX_OAUTH_ERROR)


def oauth_form(refresh_token: str, service: str, scopes: Iterable[str], client_id: str = OAUTH_CLIENT_ID) -> bytes:
    """The ``application/x-www-form-urlencoded`` body of a refresh-token grant. The scopes go in
    one ``scope`` parameter, space-separated, as distribution's oauth.md (and RFC 6749) define it
    and go-containerregistry sends it: a server reading one value then sees them all."""
    pairs = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)]
    if service:
        pairs.append(("service", service))
    joined = " ".join(sc for sc in scopes if sc)
    if joined:
        pairs.append(("scope", joined))
    pairs.append(("client_id", client_id))
    return urls.urlencode(pairs).encode("ascii")


def _clean(text: str, limit: int) -> str:
    """One printable line of at most *limit* characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in text[:limit * 4]).split())[:limit]


def parse_oauth_error(body: bytes, secret: str = "") -> tuple[str, str]:
    """(error code, description) of a refused token request, sanitised and truncated: RFC 6749's
    ``error``/``error_description``, else distribution's ``errors[]``, else the text. *secret*
    (the refresh token) is masked should the server echo it."""
    from .client import parse_error_body
    code = msg = ""
    try:
        obj = json.loads(body[:MAX_OAUTH_ERROR])
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict) and ("error" in obj or "error_description" in obj):
        e, d = obj.get("error"), obj.get("error_description")
        code = _clean(e, 64) if isinstance(e, str) else ""
        msg = _clean(d, 200) if isinstance(d, str) else ""
    else:
        codes, msg = parse_error_body(body[:MAX_OAUTH_ERROR])
        code = _clean(codes[0], 64) if codes else ""
        msg = _clean(msg, 200)
    if secret:
        code, msg = _mask(code, secret), _mask(msg, secret)
    return code, msg


def _mask(text: str, secret: str) -> str:
    """*text* with every copy of *secret* masked, and a tail that starts it (an echo cut by truncation)."""
    text = text.replace(secret, "***")
    for n in range(min(len(secret), len(text)), 7, -1):
        if text.endswith(secret[:n]):
            return text[:-n] + "***"
    return text


def parse_token_response(body: bytes, what: str,
                         keys: tuple[str, ...] = ("token", "access_token")) -> tuple[str, float]:
    """(token, lifetime in seconds) from a token server reply, the first of *keys* that is set; hostile-safe."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        raise AuthError(f"{what}: the reply is not JSON") from None
    if not isinstance(obj, dict):
        raise AuthError(f"{what}: the reply is not a JSON object")
    token = next((obj[k] for k in keys if obj.get(k)), None)
    if not isinstance(token, str) or not token:
        raise AuthError(f"{what}: the reply has no token")
    if len(token) > MAX_TOKEN or not set(token) <= _TOKEN_CHARS:
        raise AuthError(f"{what}: the token is malformed")
    ttl = obj.get("expires_in", DEFAULT_TOKEN_TTL)
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not 0 < ttl < 10 ** 7:
        ttl = DEFAULT_TOKEN_TTL
    return token, float(ttl)


__all__ = ["Challenge", "parse_challenges", "Authenticator", "basic_header", "parse_token_response",
           "oauth_form", "parse_oauth_error"]
