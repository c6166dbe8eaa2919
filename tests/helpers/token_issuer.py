"""A small token server for distribution's ``auth: token`` (the Bearer flow), for tests.

``GET /token?service=S&scope=repository:NAME:pull,push`` with Basic credentials
returns ``{"token": JWT, "access_token": JWT, "expires_in": 300}``. The JWT is
signed RS256 with a key whose self-signed certificate the registry trusts
(``rootcertbundle``); the header names the key by its libtrust key id (``kid``),
which is how distribution finds it. Users: ``{name: (password, allowed actions[, repositories])}``.
Every request is counted (``requests``, ``scopes_seen``) so tests can prove caching.

The OAuth2 flow of distribution's spec (``docs/spec/auth/oauth.md``) as well:
``POST /token`` with a form ``grant_type=refresh_token&refresh_token=R&service=S&scope=…&client_id=C``
(``scope`` repeated, or one space-separated list) returns ``{"access_token": JWT, "expires_in", "scope"}``
(no ``token`` field) for a refresh token of ``refresh_tokens`` (``{token: user}``, see
:meth:`TokenIssuer.new_refresh_token`); an unknown one gets 401 ``{"error": "invalid_grant"}``.
``post_status = 404|405`` makes the POST answer that instead (a realm without OAuth2 support).
``posts`` counts the POSTs and ``forms`` keeps their parsed bodies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ISSUER = "kilobox-test-issuer"
SERVICE = "kilobox-test-registry"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_kid(public_der: bytes) -> str:
    """libtrust's key id: base32 of the first 240 bits of sha256(DER SubjectPublicKeyInfo), in groups of 4."""
    b32 = base64.b32encode(hashlib.sha256(public_der).digest()[:30]).decode()
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


@dataclass
class TokenIssuer:
    """Keys, certificate and a threading HTTP server on 127.0.0.1."""

    directory: Path
    users: dict[str, tuple] = field(default_factory=dict)
    anonymous_actions: tuple[str, ...] = ()
    ttl: int = 300
    requests: int = 0
    scopes_seen: list[list[str]] = field(default_factory=list)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    post_status: int = 0
    posts: int = 0
    forms: list[dict[str, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self._key, hashes.SHA256()))
        self.cert_path = self.directory / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        der = self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = libtrust_kid(der)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- tokens ----------------------------------------------------------------------
    def sign(self, claims: dict) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(sig)}"

    def grant(self, user: str | None, scopes: list[str]) -> str:
        entry = self.users[user] if user else ("", self.anonymous_actions)
        allowed = entry[1]
        repos = entry[2] if len(entry) > 2 else None          # type: ignore[misc]
        access = []
        for sc in scopes:
            typ, _, rest = sc.partition(":")
            name, _, actions = rest.rpartition(":")
            ok = [a for a in actions.split(",") if a in allowed]
            if repos is not None and name not in repos:
                ok = []
            if typ == "repository" and name and ok:
                access.append({"type": "repository", "name": name, "actions": ok})
        now = int(time.time())
        return self.sign({"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + self.ttl,
                          "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access})

    def new_refresh_token(self, user: str) -> str:
        """A refresh token (an identity token, to clients) for *user*; it has ``+/=`` to test escaping."""
        token = f"rt.{secrets.token_urlsafe(24)}+/={secrets.token_hex(4)}"
        self.refresh_tokens[token] = user
        return token

    def oauth(self, form: dict[str, list[str]]) -> tuple[int, dict]:
        """(status, reply) for a parsed OAuth2 token POST."""
        def one(name: str) -> str:
            v = form.get(name, [""])
            return v[0] if len(v) == 1 else ""
        if one("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type", "error_description": "only refresh_token"}
        if not one("client_id"):
            return 400, {"error": "invalid_request", "error_description": "client_id is required"}
        if one("service") != SERVICE:
            return 400, {"error": "invalid_request", "error_description": "unknown service"}
        user = self.refresh_tokens.get(one("refresh_token"))
        if user is None or user not in self.users:
            return 401, {"error": "invalid_grant", "error_description": "unknown or expired refresh token"}
        scopes = [sc for v in form.get("scope", []) for sc in v.split()]
        token = self.grant(user, scopes)
        return 200, {"access_token": token, "expires_in": self.ttl, "scope": " ".join(scopes)}

    # -- server ----------------------------------------------------------------------
    def start(self) -> str:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                u = urlsplit(self.path)
                if u.path != "/token":
                    self.send_error(404)
                    return
                q = parse_qs(u.query)
                scopes = q.get("scope", [])
                with issuer._lock:
                    issuer.requests += 1
                    issuer.scopes_seen.append(scopes)
                user = None
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    try:
                        name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    except ValueError:
                        name, pw = "", ""
                    if name not in issuer.users or issuer.users[name][0] != pw:
                        self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                        return
                    user = name
                elif not issuer.anonymous_actions:
                    self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "credentials required"}]})
                    return
                if q.get("service", [""])[0] != SERVICE:
                    self._reply(400, {"errors": [{"code": "INVALID", "message": "unknown service"}]})
                    return
                token = issuer.grant(user, scopes)
                self._reply(200, {"token": token, "access_token": token, "expires_in": issuer.ttl})

            def do_POST(self) -> None:  # noqa: N802
                if urlsplit(self.path).path != "/token":
                    self.send_error(404)
                    return
                try:
                    n = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    n = -1
                if not 0 <= n <= 65536:
                    self._reply(400, {"error": "invalid_request", "error_description": "bad body length"})
                    return
                body = self.rfile.read(n)
                with issuer._lock:
                    issuer.requests += 1
                    issuer.posts += 1
                if issuer.post_status:
                    self.send_response(issuer.post_status)
                    self.send_header("Allow", "GET")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype != "application/x-www-form-urlencoded":
                    self._reply(400, {"error": "invalid_request", "error_description": "not a form"})
                    return
                form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
                with issuer._lock:
                    issuer.forms.append(form)
                    issuer.scopes_seen.append(form.get("scope", []))
                status, reply = issuer.oauth(form)
                self._reply(status, reply)

            def _reply(self, status: int, obj: dict) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self.realm

    @property
    def realm(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
