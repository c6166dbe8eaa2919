"""Registry references with Docker's rules.

``alpine`` → ``docker.io/library/alpine:latest``;
``host:port/repo:tag@sha256:…`` keeps both tag and digest (the digest wins on pull).
"""

from __future__ import annotations

from .._record import FrozenRecord
from ..errors import ReferenceError_
from .digest import Digest

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

# The grammar (distribution/reference), as regular expressions; the checks below implement
# them by hand (compiling these costs ~0.5 ms per process) and the tests hold them to it.
COMPONENT_PATTERN = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPO_PATTERN = rf"^{COMPONENT_PATTERN}(?:/{COMPONENT_PATTERN})*$"
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
HOST_PATTERN = (r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$")

_DIGITS = frozenset("0123456789")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz") | _DIGITS
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TAG_CHARS = _ALNUM | frozenset("_.-")
_LABEL_CHARS = _ALNUM | frozenset("-")
_BRACKETED = frozenset("0123456789abcdefABCDEF:.")


def valid_tag(tag: str) -> bool:
    """:data:`TAG_PATTERN`: a word character first, then up to 127 of ``[A-Za-z0-9_.-]``."""
    return 0 < len(tag) <= 128 and tag[0] != "." and tag[0] != "-" and _TAG_CHARS.issuperset(tag)


def _valid_component(part: str) -> bool:
    """:data:`COMPONENT_PATTERN`: lower-case alphanumeric runs joined by ``.``, ``_``, ``__`` or ``-``+."""
    if not part or part[0] not in _LOWER_ALNUM or part[-1] not in _LOWER_ALNUM:
        return False
    i, n = 0, len(part)
    while i < n:
        if part[i] in _LOWER_ALNUM:
            i += 1
            continue
        j = i
        while j < n and part[j] not in _LOWER_ALNUM:
            j += 1
        sep = part[i:j]
        if sep not in (".", "_", "__") and sep.strip("-"):
            return False
        i = j
    return True


def valid_repository(repo: str) -> bool:
    """:data:`REPO_PATTERN`: components separated by ``/``."""
    return all(_valid_component(p) for p in repo.split("/"))


def valid_host(host: str) -> bool:
    """:data:`HOST_PATTERN`: a DNS name or a bracketed IPv6 address, with an optional port."""
    if host.startswith("["):
        end = host.find("]")
        if end < 2 or not _BRACKETED.issuperset(host[1:end]):
            return False
        rest = host[end + 1:]
    else:
        name, colon, port = host.partition(":")
        rest = colon + port
        for label in name.split("."):
            if not label or label[0] == "-" or label[-1] == "-" or not _LABEL_CHARS.issuperset(label):
                return False
    if not rest:
        return True
    port = rest[1:]
    return rest[0] == ":" and 0 < len(port) <= 5 and _DIGITS.issuperset(port)


def _short(text: str, n: int = 80) -> str:
    """*text* quoted for a one-line message, cut to *n* characters."""
    return repr(text) if len(text) <= n else repr(text[:n]) + "…"


class Reference(FrozenRecord):
    """A parsed registry reference (immutable, hashable)."""

    __slots__ = ("registry", "repository", "tag", "digest")
    registry: str
    repository: str
    tag: str
    digest: Digest | None

    def __init__(self, registry: str, repository: str, tag: str = "", digest: Digest | None = None) -> None:
        self._set(registry=registry, repository=repository, tag=tag, digest=digest)

    @classmethod
    def parse(cls, text: str) -> "Reference":
        orig = text
        if not text or len(text) > 1024 or any(c.isspace() for c in text):
            raise ReferenceError_(f"invalid image reference {orig[:100]!r}")
        digest = None
        if "@" in text:
            text, _, dig = text.partition("@")
            try:
                digest = Digest.parse(dig)
            except Exception:
                raise ReferenceError_(f"invalid digest in reference {_short(orig)}") from None
        tag = ""
        slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > slash:
            text, tag = text[:colon], text[colon + 1:]
            if not valid_tag(tag):
                raise ReferenceError_(f"invalid tag {_short(tag)} in reference {_short(orig)}")
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            registry, repo = first, rest
            if not valid_host(registry):
                raise ReferenceError_(f"invalid registry host {_short(registry)} in reference {_short(orig)}")
        else:
            registry, repo = DEFAULT_REGISTRY, text
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DEFAULT_REGISTRY
        if registry == DEFAULT_REGISTRY and "/" not in repo:
            repo = f"library/{repo}"
        if not valid_repository(repo) or len(repo) > 255:
            raise ReferenceError_(f"invalid repository name {_short(repo)} in reference {_short(orig)}",
                                  hint="repository names are lower case: letters, digits and . _ - separators")
        if not tag and digest is None:
            tag = DEFAULT_TAG
        return cls(registry, repo, tag, digest)

    @property
    def api_host(self) -> str:
        """The host serving the registry API (docker.io is served by registry-1.docker.io)."""
        return "registry-1.docker.io" if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def identifier(self) -> str:
        """What goes after /manifests/: the digest if any, else the tag."""
        return str(self.digest) if self.digest else self.tag

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: Digest) -> "Reference":
        return Reference(self.registry, self.repository, self.tag, digest)

    @property
    def repo_ref(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        s = self.repo_ref
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def is_local_host(registry: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (with or without a port): plain http is used."""
    host = registry
    if host.startswith("["):
        host = host[1:host.index("]")] if "]" in host else host
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if host == "localhost" or host.endswith(".localhost"):
        return True
    if ":" not in host:             # not IPv6: an IPv4 address (127.0.0.0/8) or a name
        parts = host.split(".")
        if len(parts) != 4 or not all(p.isdigit() and p.isascii() and len(p) <= 3 and
                                      (p == "0" or not p.startswith("0")) and int(p) <= 255 for p in parts):
            return False
        return parts[0] == "127"
    import ipaddress  # lazily: only IPv6 needs it
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
