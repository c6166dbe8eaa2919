"""Registry credentials: explicit options first, then Docker's ``config.json``.

Order (Docker's): ``Options.username``/``password`` (``--username``,
``--password-stdin``); then in the config file (``Options.docker_config``, else
``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``):
``credHelpers[host]``, then ``credsStore``, then ``auths[host]`` (``auth`` =
base64 ``user:password``, or ``username``/``password``). Keys of ``auths`` may
be written ``https://host/v1/``; Docker Hub answers to ``docker.io``,
``index.docker.io`` and ``registry-1.docker.io``.

A helper is a program ``docker-credential-NAME``: ``get`` with the server
address on stdin prints ``{"Username": …, "Secret": …}``.
"""

from __future__ import annotations

import json
import os

from ...errors import AuthError

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


class Credentials:
    """A user name and password (or token) for one registry."""

    __slots__ = ("username", "password")

    def __init__(self, username: str, password: str) -> None:
        object.__setattr__(self, "username", username)
        object.__setattr__(self, "password", password)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.username, self.password) == (other.username, other.password)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.username, self.password))

    def __reduce__(self) -> tuple[object, ...]:
        return (Credentials, (self.username, self.password))

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(username={self.username!r}, password=***)"


def config_file(opts: "Options | None" = None) -> str:
    """Where Docker's config.json is read from (a path string; :func:`config_path` for a Path)."""
    if opts is not None and opts.docker_config:
        return os.fspath(opts.docker_config)
    env = os.environ.get("DOCKER_CONFIG")
    if env:
        return os.path.join(env, "config.json")
    return os.path.join(os.path.expanduser("~"), ".docker", "config.json")


def config_path(opts: "Options | None" = None) -> "Path":
    """Where Docker's config.json is read from."""
    from pathlib import Path
    return Path(config_file(opts))


def normalize_host(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://h:5000/x`` -> ``h:5000``."""
    k = key.strip()
    if "://" in k:
        k = k.split("://", 1)[1]
    k = k.split("/", 1)[0].lower()
    return "docker.io" if k in HUB_NAMES else k


def load_config(path: "str | Path") -> dict[str, Any]:
    """The parsed config file, {} when absent; a broken file is an :class:`AuthError`."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise AuthError(f"cannot read {path}: {e.strerror}") from None
    if len(raw) > MAX_CONFIG:
        raise AuthError(f"{path}: larger than {MAX_CONFIG} bytes")
    try:
        obj = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise AuthError(f"{path}: not valid JSON", hint="fix or remove the file") from None
    if not isinstance(obj, dict):
        raise AuthError(f"{path}: must be a JSON object")
    return obj


def from_auths(auths: Any, host: str, where: str) -> Credentials | None:
    """Credentials for *host* from an ``auths`` mapping."""
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if not isinstance(key, str) or normalize_host(key) != host or not isinstance(entry, dict):
            continue
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            import base64
            try:
                text = base64.b64decode(auth, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise AuthError(f"{where}: auths[{key!r}].auth is not base64 of user:password") from None
            user, sep, pw = text.partition(":")
            if not sep:
                raise AuthError(f"{where}: auths[{key!r}].auth is not base64 of user:password")
            return Credentials(user, pw)
        user, pw = entry.get("username"), entry.get("password")
        if isinstance(user, str) and isinstance(pw, str) and user:
            return Credentials(user, pw)
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
                        hint="install it, or remove credsStore/credHelpers from ~/.docker/config.json") from None
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
    return Credentials(user, secret)


def lookup(registry: str, opts: "Options | None" = None) -> Credentials | None:
    """Credentials for *registry* (``host[:port]`` or ``docker.io``), or None for anonymous."""
    if opts is not None and opts.username:
        return Credentials(opts.username, opts.password or "")
    host = normalize_host(registry)
    path = config_file(opts)
    cfg = load_config(path)
    if not cfg:
        return None
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
    return from_auths(cfg.get("auths"), host, str(path))


__all__ = ["Credentials", "lookup", "config_path", "config_file", "normalize_host", "load_config", "from_auths", "run_helper"]
