"""The few URL operations the registry client needs, without :mod:`urllib.parse`.

(``urllib.parse`` imports ``ipaddress`` and ``collections``; a ``kilobox copy``
needs only splitting, joining a ``Location`` and percent-encoding a query.)
Uncommon relative references (dot segments, relative paths) are joined by
``urllib.parse.urljoin``, imported only then.
"""

from __future__ import annotations

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def split(url: str) -> tuple[str, str, str, str]:
    """(scheme, netloc, path, query) of an absolute or relative URL; the fragment is dropped.

    The scheme is lower-cased; a URL without ``//`` has an empty netloc.
    """
    url = url.split("#", 1)[0]
    scheme = ""
    head, sep, rest = url.partition(":")
    if sep and head and head[0].isalpha() and all(c.isalnum() or c in "+-." for c in head) and head.isascii():
        scheme, url = head.lower(), rest
    netloc = ""
    if url.startswith("//"):
        url = url[2:]
        cut = min((i for i in (url.find("/"), url.find("?")) if i >= 0), default=len(url))
        netloc, url = url[:cut], url[cut:]
    path, _, query = url.partition("?")
    return scheme, netloc, path, query


def target(url: str) -> str:
    """The request target of *url*: path (``/`` when empty) and query."""
    _, _, path, query = split(url)
    return (path or "/") + (f"?{query}" if query else "")


def join(base: str, ref: str) -> str:
    """Resolve *ref* (a ``Location`` header, a ``Link`` target) against *base* (RFC 3986)."""
    ref = ref.strip()
    if "/./" in ref or "/../" in ref or ref.endswith(("/.", "/..")) or ref in (".", ".."):
        from urllib.parse import urljoin
        return urljoin(base, ref)
    scheme, netloc, path, query = split(ref)
    if scheme:
        return ref
    bscheme, bnetloc, bpath, bquery = split(base)
    if ref.startswith("//"):
        return f"{bscheme}:{ref}"
    if ref.startswith("/"):
        return f"{bscheme}://{bnetloc}{ref}"
    if not path:                                   # "?q" or "": the base's path
        return f"{bscheme}://{bnetloc}{bpath}" + (f"?{query}" if query else (f"?{bquery}" if bquery and not ref else ""))
    from urllib.parse import urljoin
    return urljoin(base, ref)


def quote(text: str, safe: str = "") -> str:
    """Percent-encode *text* (UTF-8) except unreserved characters and *safe*."""
    keep = _UNRESERVED | frozenset(safe)
    if all(c in keep for c in text):
        return text
    return "".join(c if c in keep else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def urlencode(pairs: list[tuple[str, str]]) -> str:
    """``k=v&…`` with both sides percent-encoded (spaces as ``%20``)."""
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)


__all__ = ["split", "target", "join", "quote", "urlencode"]
