"""Registry credentials: options, the containers auth files, Docker's config.json; login/logout.

:func:`lookup`, first match wins:

1. ``Options.username``/``password`` (``--username``, ``--password-stdin``);
2. the files of :func:`auth_files`, in order, each only if it exists: ``--authfile F``
   (``Options.docker_config``) means just F; else ``$REGISTRY_AUTH_FILE``,
   ``$XDG_RUNTIME_DIR/containers/auth.json`` (unset: ``/run/containers/UID/auth.json``, as
   skopeo), ``$XDG_CONFIG_HOME/containers/auth.json`` (``~/.config/…``), then Docker's
   ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``.

The two formats share one shape (containers-auth.json(5), Docker's config.json). In each
file: ``credHelpers[host]`` (a helper that knows nothing ends this file's turn), then
``credsStore``, then ``auths``, whose keys are ``host``, ``host/namespace`` or
``host/namespace/repo``: the most specific key containing the repository wins (``auth`` =
base64 ``user:password``, or ``username``/``password``; ``identitytoken`` with or without them).
A URL key (``https://host/v1/``) means its host; Docker Hub answers to ``docker.io``,
``index.docker.io`` and ``registry-1.docker.io``.

:func:`login` checks credentials against the registry (``GET /v2/``, Basic or Bearer) and
stores ``auths[key].auth`` in :func:`login_file`, atomically, mode 0600, every other key
kept; :func:`logout` removes the entry.

A helper is a program ``docker-credential-NAME``: ``get`` with the server
address on stdin prints ``{"Username": …, "Secret": …}``; ``Username: "<token>"`` means the
Secret is an identity token, as an ``auths`` entry's ``identitytoken`` is (see :class:`Credentials`).
"""

from __future__ import annotations

import json
import os

from ...errors import AuthError, NotFound, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path
    from typing import Any

    from .. import Options

MAX_CONFIG = 4 << 20
MAX_HELPER_OUTPUT = 1 << 20
HELPER_TIMEOUT = 30
HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")
HUB_SERVER = "https://index.docker.io/v1/"
#: a credential helper's ``Username`` meaning "the Secret is an identity (refresh) token"
TOKEN_USERNAME = "<token>"
#: skopeo's and podman's primary file on Linux when ``$XDG_RUNTIME_DIR`` is unset
RUN_AUTH_FILE = "/run/containers/{uid}/auth.json"
#: string fields of an ``auths`` entry (Docker's AuthConfig); other fields are left alone
_ENTRY_STRINGS = ("auth", "username", "password", "identitytoken", "registrytoken", "email", "serveraddress")
_BROKEN_HINT = "fix or remove the file"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class Credentials:
    """A user name and password (or token) for one registry, and optionally an identity token.

    ``identity_token`` is an OAuth2 refresh token (``auths[key].identitytoken`` as ``docker login``
    and ``az acr login`` write it, or a helper's ``Secret`` under ``Username: "<token>"``): the
    Bearer flow trades it for access tokens with a ``POST`` to the realm. Never printed.
    """

    __slots__ = ("username", "password", "identity_token")

    def __init__(self, username: str, password: str, identity_token: str = "") -> None:
        object.__setattr__(self, "username", username)
        object.__setattr__(self, "password", password)
        object.__setattr__(self, "identity_token", identity_token)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def _key(self) -> tuple[str, str, str]:
        return (self.username, self.password, self.identity_token)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[object, ...]:
        return (Credentials, self._key())

    def __repr__(self) -> str:  # never print a secret
        tail = ", identity_token=***" if self.identity_token else ""
        return f"Credentials(username={self.username!r}, password=***{tail})"

    @property
    def has_password(self) -> bool:
        """A user name and a password (Basic auth can be sent; the token GET flow can use them)."""
        return bool(self.username and self.password)


# -- where ---------------------------------------------------------------------------------
def docker_config_file() -> str:
    """Docker's config.json: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ.get("DOCKER_CONFIG")
    if env:
        return os.path.join(env, "config.json")
    return os.path.join(os.path.expanduser("~"), ".docker", "config.json")


def config_file(opts: "Options | None" = None) -> str:
    """The ``--authfile`` if given, else Docker's config.json (see :func:`auth_files` for the search)."""
    if opts is not None and opts.docker_config:
        return os.fspath(opts.docker_config)
    return docker_config_file()


def config_path(opts: "Options | None" = None) -> "Path":
    """:func:`config_file` as a Path."""
    from pathlib import Path
    return Path(config_file(opts))


def _xdg(name: str, default: str | None) -> str | None:
    v = os.environ.get(name, "")
    return v if os.path.isabs(v) else default     # XDG: a relative path is ignored


def auth_files(opts: "Options | None" = None) -> tuple[str, ...]:
    """The files :func:`lookup` reads, in order (existing or not), as containers-auth.json(5) says:
    the primary file (``--authfile``, else ``$REGISTRY_AUTH_FILE``, else
    ``$XDG_RUNTIME_DIR/containers/auth.json``), then the read-only fallbacks
    ``$XDG_CONFIG_HOME/containers/auth.json`` and Docker's config.json."""
    override = (os.fspath(opts.docker_config) if opts is not None and opts.docker_config else
                os.environ.get("REGISTRY_AUTH_FILE"))
    if override:
        out = [override]
    else:
        run = _xdg("XDG_RUNTIME_DIR", None)
        out = [os.path.join(run, "containers", "auth.json") if run else RUN_AUTH_FILE.format(uid=os.getuid())]
    home_cfg = _xdg("XDG_CONFIG_HOME", os.path.join(os.path.expanduser("~"), ".config"))
    out.append(os.path.join(home_cfg or "", "containers", "auth.json"))
    out.append(docker_config_file())
    return tuple(dict.fromkeys(out))


def login_file(opts: "Options | None" = None) -> str:
    """Where :func:`login` writes: ``--authfile``, else ``$REGISTRY_AUTH_FILE``, else Docker's config.json."""
    if opts is not None and opts.docker_config:
        return os.fspath(opts.docker_config)
    return os.environ.get("REGISTRY_AUTH_FILE") or docker_config_file()


# -- keys ----------------------------------------------------------------------------------
def normalize_host(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://h:5000/x`` -> ``h:5000``."""
    k = key.strip()
    if "://" in k:
        k = k.split("://", 1)[1]
    k = k.split("/", 1)[0].lower()
    return "docker.io" if k in HUB_NAMES else k


def normalize_key(key: str) -> str:
    """An ``auths`` key as ``host[/path]``: a URL key names only its host (``https://h/v1/`` -> ``h``)."""
    k = key.strip()
    if "://" in k:
        return normalize_host(k)
    host, _, path = k.partition("/")
    path = path.strip("/")
    return f"{normalize_host(host)}/{path}" if path else normalize_host(host)


def key_candidates(host: str, repository: str = "") -> list[str]:
    """Keys for *repository* on *host*, most specific first: ``h/a/b``, ``h/a``, ``h``."""
    parts = [p for p in repository.split("/") if p]
    return [f"{host}/{'/'.join(parts[:i])}" for i in range(len(parts), 0, -1)] + [host]


def _short(key: object) -> str:
    return repr(key[:60] if isinstance(key, str) else key)


# -- reading -------------------------------------------------------------------------------
def load_config(path: "str | Path") -> dict[str, Any]:
    """The parsed, type-checked file; {} when absent. Anything else broken is an :class:`AuthError`."""
    import stat
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)   # a FIFO must not block us
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as e:
        raise AuthError(f"cannot read {p}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AuthError(f"{p}: not a regular file", hint=_BROKEN_HINT)
        if st.st_size > MAX_CONFIG:
            raise AuthError(f"{p}: larger than {MAX_CONFIG} bytes", hint=_BROKEN_HINT)
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_CONFIG + 1)
    except OSError as e:
        raise AuthError(f"cannot read {p}: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_CONFIG:
        raise AuthError(f"{p}: larger than {MAX_CONFIG} bytes", hint=_BROKEN_HINT)
    try:
        obj = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise AuthError(f"{p}: not valid JSON", hint=_BROKEN_HINT) from None
    if not isinstance(obj, dict):
        raise AuthError(f"{p}: must be a JSON object", hint=_BROKEN_HINT)
    check_config(obj, p)
    return obj


def check_config(obj: dict[str, Any], where: str) -> None:
    """Refuse wrong types in the keys kilobox uses (``auths``, ``credHelpers``, ``credsStore``)."""
    def bad(what: str) -> AuthError:
        return AuthError(f"{where}: {what}", hint=_BROKEN_HINT)
    auths = obj.get("auths")
    if auths is not None:
        if not isinstance(auths, dict):
            raise bad("'auths' must be a JSON object")
        for key, entry in auths.items():
            if entry is None:
                continue
            if not isinstance(entry, dict):
                raise bad(f"auths[{_short(key)}] must be a JSON object")
            for name in _ENTRY_STRINGS:
                v = entry.get(name)
                if v is not None and not isinstance(v, str):
                    raise bad(f"auths[{_short(key)}].{name} must be a string")
    helpers = obj.get("credHelpers")
    if helpers is not None and (not isinstance(helpers, dict) or not all(isinstance(v, str) for v in helpers.values())):
        raise bad("'credHelpers' must map registries to helper names (strings)")
    store = obj.get("credsStore")
    if store is not None and not isinstance(store, str):
        raise bad("'credsStore' must be a string")


def _decode(entry: dict[str, Any], key: str, where: str) -> Credentials | None:
    """An ``auths`` entry: ``auth`` (base64 ``user:password``) or ``username``/``password``, plus an
    optional ``identitytoken`` (alone, or beside ``auth`` as ``az acr login`` writes it)."""
    ident = entry.get("identitytoken")
    ident = ident if isinstance(ident, str) else ""
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        import base64
        bad = AuthError(f"{where}: auths[{_short(key)}].auth is not base64 of user:password", hint=_BROKEN_HINT)
        try:
            text = base64.b64decode(auth, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise bad from None
        user, sep, pw = text.partition(":")
        if not sep:
            raise bad
        return Credentials(user, pw, ident)
    user, pw = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(pw, str) and user:
        return Credentials(user, pw, ident)
    if ident:
        return Credentials(user if isinstance(user, str) else "", "", ident)
    return None


def from_auths(auths: Any, host: str, where: str, repository: str = "") -> Credentials | None:
    """Credentials for *repository* on *host* from an ``auths`` mapping: the most specific key wins."""
    if not isinstance(auths, dict):
        return None
    table: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, entry in auths.items():
        if not isinstance(key, str) or not isinstance(entry, dict):
            continue
        norm = normalize_key(key)
        if norm not in table or key.strip() == norm:     # ``h`` beats ``https://h/v1/``
            table[norm] = (key, entry)
    for cand in key_candidates(host, repository):
        hit = table.get(cand)
        if hit is not None:
            creds = _decode(hit[1], hit[0], where)
            if creds is not None:
                return creds
    return None


def helper_server(host: str) -> str:
    """The server address Docker stores for *host* (Docker Hub's legacy URL)."""
    return HUB_SERVER if host == "docker.io" else host


def run_helper(name: str, server: str) -> Credentials | None:
    """``docker-credential-NAME get``; None when the helper has no entry for *server*."""
    if not name or "/" in name or name.startswith("."):
        raise AuthError(f"invalid credential helper name {name[:60]!r}")
    exe = f"docker-credential-{name}"
    import subprocess
    try:
        p = subprocess.run([exe, "get"], input=server.encode(), capture_output=True, timeout=HELPER_TIMEOUT)
    except FileNotFoundError:
        raise AuthError(f"credential helper {exe} is not on PATH",
                        hint="install it, or remove credsStore/credHelpers from the auth file") from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {exe} did not answer within {HELPER_TIMEOUT} s") from None
    out = p.stdout[:MAX_HELPER_OUTPUT]
    if p.returncode != 0:
        msg = (out or p.stderr).decode("utf-8", "replace").strip()
        if "not found" in msg.lower() or not msg:
            return None
        raise AuthError(f"credential helper {exe} failed for {server}: {' '.join(msg.split())[:200]}")
    try:
        obj = json.loads(out)
    except (ValueError, RecursionError):
        raise AuthError(f"credential helper {exe}: output is not JSON") from None
    if not isinstance(obj, dict):
        raise AuthError(f"credential helper {exe}: output is not a JSON object")
    user, secret = obj.get("Username"), obj.get("Secret")
    if not isinstance(user, str) or not isinstance(secret, str):
        raise AuthError(f"credential helper {exe}: Username and Secret must be strings")
    if not user and not secret:
        return None
    if user == TOKEN_USERNAME:          # Docker's convention: the Secret is an identity token
        return Credentials("", "", secret) if secret else None
    return Credentials(user, secret)


def from_config(cfg: dict[str, Any], host: str, where: str, repository: str = "") -> Credentials | None:
    """Credentials from one parsed file: ``credHelpers[host]``, else ``credsStore``, then ``auths``."""
    helpers = cfg.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if isinstance(key, str) and normalize_host(key) == host and isinstance(name, str):
                return run_helper(name, helper_server(host) if key == host else key)
    store = cfg.get("credsStore")
    if isinstance(store, str) and store:
        creds = run_helper(store, helper_server(host))
        if creds is not None:
            return creds
    return from_auths(cfg.get("auths"), host, where, repository)


def lookup(registry: str, opts: "Options | None" = None, repository: str = "") -> Credentials | None:
    """Credentials for *repository* on *registry* (``host[:port]`` or ``docker.io``), or None for anonymous."""
    if opts is not None and opts.username:
        return Credentials(opts.username, opts.password or "")
    host = normalize_host(registry)
    for path in auth_files(opts):
        cfg = load_config(path)
        if cfg:
            creds = from_config(cfg, host, path, repository)
            if creds is not None:
                return creds
    return None


# -- login / logout ------------------------------------------------------------------------
def _component_ok(c: str) -> bool:
    """A path component of a repository name (distribution's grammar, leniently)."""
    return bool(c) and c[0].isalnum() and c[-1].isalnum() and \
        all(ch.isascii() and (ch.islower() or ch.isdigit() or ch in "._-") for ch in c)


def login_key(registry: str) -> tuple[str, str]:
    """``REGISTRY`` of ``kilobox login`` -> (host, ``auths`` key).

    ``https://Quay.io/`` -> (quay.io, quay.io); ``quay.io/ns/app`` -> (quay.io, quay.io/ns/app);
    Docker Hub -> (docker.io, ``https://index.docker.io/v1/``, the key Docker itself reads).
    """
    text = registry.strip()
    url = "://" in text
    if url:
        scheme, _, text = text.partition("://")
        if scheme.lower() not in ("http", "https"):
            raise UsageError(f"invalid registry {registry[:100]!r}: only http:// or https:// URLs")
    host, _, path = text.strip("/").partition("/")
    path = "" if url else path.strip("/")
    if not host or len(text) > 255 or \
            not all(c.isascii() and (c.isalnum() or c in ".-_:[]") for c in host) or \
            (path and not all(_component_ok(c) for c in path.split("/"))):
        raise UsageError(f"invalid registry {registry[:100]!r}",
                         hint="HOST[:PORT], optionally followed by /NAMESPACE[/REPO]")
    host = normalize_host(host)
    if path:
        return host, f"{host}/{path}"
    return host, helper_server(host)


def verify(host: str, creds: Credentials, opts: "Options | None" = None) -> None:
    """``GET /v2/`` with *creds* (Basic, or a Bearer token fetched with them); AuthError if refused."""
    from .. import Options
    from .client import RegistryClient
    o = Options(insecure=tuple(opts.insecure) if opts is not None else (),
                username=creds.username, password=creds.password)
    client = RegistryClient(host, "registry-1.docker.io" if host == "docker.io" else host, o)
    try:
        client.request("GET", "/v2/", ok=(200,), what=f"login to {host}").close()
    except AuthError as e:
        e.hint = "check the user name and password"
        raise
    finally:
        client.close()


def _write_config(path: str, cfg: dict[str, Any]) -> None:
    """Replace *path* atomically (temp file, fsync, rename), mode 0600."""
    from ..._atomic import atomic_open
    try:
        data = json.dumps(cfg, indent="\t", ensure_ascii=False).encode()
    except UnicodeEncodeError:      # a lone surrogate read from the file: keep it, escaped
        data = json.dumps(cfg, indent="\t").encode()
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        with atomic_open(path, mode=0o600) as f:
            f.write(data + b"\n")
    except OSError as e:
        raise AuthError(f"cannot write {path}: {e.strerror or e}") from None


def save_login(path: str, key: str, creds: Credentials) -> str:
    """Set ``auths[key].auth`` in the file at *path* (a symlink's target), keeping every other key;
    an equivalent key (``https://h/v1/`` for ``h``) is updated in place. Returns the file written."""
    import base64
    real = os.path.realpath(path)
    cfg = load_config(real)
    auths = cfg.get("auths")
    if auths is None:
        auths = cfg["auths"] = {}
    norm = normalize_key(key)
    same = [k for k in auths if normalize_key(k) == norm]
    for k in same[1:]:
        del auths[k]
    entry = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
    auths[same[0] if same else key] = entry
    _write_config(real, cfg)
    return real


def remove_login(path: str, key: str) -> bool:
    """Remove every ``auths`` key equivalent to *key* from the file; False if there was none."""
    real = os.path.realpath(path)
    cfg = load_config(real)
    auths = cfg.get("auths") or {}
    norm = normalize_key(key)
    same = [k for k in auths if normalize_key(k) == norm]
    if not same:
        return False
    for k in same:
        del auths[k]
    _write_config(real, cfg)
    return True


def login(registry: str, username: str, password: str, opts: "Options | None" = None) -> tuple[str, str]:
    """Check the credentials against *registry*, then store them; returns (key, file written).

    The file: ``--authfile`` (``opts.docker_config``), else ``$REGISTRY_AUTH_FILE``, else Docker's
    config.json. Nothing is written when the registry refuses them.
    """
    if not username:
        raise UsageError("a user name is required", hint="--username USER")
    if ":" in username:
        raise UsageError("a user name cannot contain ':'")
    if not password:
        raise UsageError("the password is empty")
    host, key = login_key(registry)
    creds = Credentials(username, password)
    path = login_file(opts)
    load_config(path)                     # a broken file: say so before asking the registry
    verify(host, creds, opts)
    return key, save_login(path, key, creds)


def logout(registry: str, opts: "Options | None" = None) -> tuple[str, str]:
    """Remove the stored credentials of *registry* from :func:`login_file`; returns (key, file).
    :class:`NotFound` when that file has none (the hint names another file that has some)."""
    _host, key = login_key(registry)
    path = login_file(opts)
    if remove_login(path, key):
        return key, os.path.realpath(path)
    hint = None
    norm = normalize_key(key)
    if opts is None or not opts.docker_config:
        for other in auth_files(opts):
            try:
                auths = load_config(other).get("auths") or {}
            except AuthError:
                continue
            if os.path.realpath(other) != os.path.realpath(path) and any(normalize_key(k) == norm for k in auths):
                hint = f"credentials for {norm} are in {other}: kilobox logout --authfile {other} {registry}"
                break
    raise NotFound(f"not logged in to {norm} (no entry in {path})", hint=hint)


__all__ = ["Credentials", "lookup", "auth_files", "login_file", "config_path", "config_file", "docker_config_file",
           "normalize_host", "normalize_key", "key_candidates", "load_config", "check_config", "from_auths",
           "from_config", "run_helper", "login_key", "verify", "save_login", "remove_login", "login", "logout"]
