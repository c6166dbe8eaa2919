"""The registry format: an OCI distribution client on the standard library.

Modules: :mod:`.client` (HTTP, pool, retries, errors), :mod:`.auth` (challenge
flow, Basic/Bearer, token cache), :mod:`.credentials` (options, Docker's
config.json, credential helpers), :mod:`.source` (pull), :mod:`.sink` (push).

Plain http is used for hosts named in ``Options.insecure``, and for localhost,
127.0.0.0/8 and ::1 unless TLS is configured for them (a certs.d directory,
``Options.cert_dir`` or ``Options.tls_verify``: see :mod:`.tls`); https otherwise.
"""

from __future__ import annotations

import json

from ...errors import DigestMismatch, ManifestError, RegistryError
from ...oci import Descriptor, Digest, Reference, mediatypes as mt
from .client import client_for
from .urls import join as urljoin

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from .. import Options
    from .sink import RegistrySink
    from .source import RegistrySource


def __getattr__(name: str) -> object:
    """:class:`RegistrySource` and :class:`RegistrySink` load on first use (a push needs no pull code)."""
    if name == "RegistrySource":
        from .source import RegistrySource
        return RegistrySource
    if name == "RegistrySink":
        from .sink import RegistrySink
        return RegistrySink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

MAX_TAGS_PAGE = 16 << 20
MAX_PAGES = 10_000


def _opts(opts: "Options | None") -> "Options":
    if opts is None:
        from .. import Options
        return Options()
    return opts


def list_tags(ref: Reference, opts: "Options | None" = None, page_size: int | None = None) -> list[str]:
    """All tags of ``ref``'s repository, following ``Link: <…>; rel="next"`` pages (``n``/``last``)."""
    client = client_for(ref, _opts(opts))
    path = f"/v2/{ref.repository}/tags/list"
    url = client.base + path + (f"?n={int(page_size)}" if page_size else "")
    scopes = (f"repository:{ref.repository}:pull",)
    tags: list[str] = []
    seen: set[str] = set()
    what = f"tags of {ref.repo_ref}"
    for _ in range(MAX_PAGES):
        seen.add(url)
        resp = client.request("GET", url, scopes=scopes, what=what)
        body = resp.read_limited(MAX_TAGS_PAGE, what)
        tags.extend(parse_tags_page(body, what))
        nxt = next_link(resp.header_all("Link"))
        if not nxt:
            return tags
        url = urljoin(url, nxt)
        if url in seen:
            raise RegistryError(f"{what}: the registry's next page {url[:120]!r} repeats a page")
    raise RegistryError(f"{what}: more than {MAX_PAGES} pages")


def parse_tags_page(body: bytes, what: str) -> list[str]:
    """The ``tags`` of one ``/tags/list`` reply (``null`` means none)."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        raise ManifestError(f"{what}: the reply is not JSON") from None
    if not isinstance(obj, dict):
        raise ManifestError(f"{what}: the reply is not a JSON object")
    tags = obj.get("tags")
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ManifestError(f"{what}: 'tags' must be a list of strings")
    return tags


def next_link(values: list[str]) -> str:
    """The target of ``rel="next"`` in ``Link`` header values, or ''."""
    import re
    pattern = re.compile(r'<([^>]*)>\s*;[^,]*\brel\s*=\s*"?next"?', re.IGNORECASE)
    for v in values:
        m = pattern.search(v[:8192])
        if m:
            return m.group(1).strip()
    return ""


def resolve(ref: Reference, opts: "Options | None" = None) -> Descriptor:
    """The descriptor of the manifest or index ``ref`` names.

    One ``HEAD`` (which registries do not count against pull limits) when the
    registry sends ``Docker-Content-Digest``, ``Content-Type`` and
    ``Content-Length``; otherwise a ``GET`` whose bytes are hashed.
    """
    opts = _opts(opts)
    client = client_for(ref, opts)
    what = f"manifest {ref}"
    resp = client.request("HEAD", f"/v2/{ref.repository}/manifests/{ref.identifier}",
                          scopes=(f"repository:{ref.repository}:pull",),
                          headers={"Accept": mt.ACCEPT_MANIFESTS}, what=what)
    resp.close()
    ctype = resp.header("Content-Type").split(";", 1)[0].strip().lower()
    try:
        digest = Digest.parse(resp.header("Docker-Content-Digest").strip())
        size = resp.content_length
    except (ManifestError, RegistryError):
        digest, size = None, None
    if digest is not None and size is not None and (ctype in mt.MANIFEST_TYPES or ctype in mt.INDEX_TYPES):
        if ref.digest is not None and digest != ref.digest:
            raise DigestMismatch(f"{what}: the registry answers with {digest}")
        return Descriptor(ctype, digest, size)
    from .source import RegistrySource
    with RegistrySource(ref, opts) as src:
        return src.root()


__all__ = ["RegistrySource", "RegistrySink", "list_tags", "resolve", "parse_tags_page", "next_link"]
