"""Writing to a registry: :class:`RegistrySink` (push).

- ``has_blob``: ``HEAD /v2/<repo>/blobs/<digest>`` — the copy skips what the registry has;
  blobs this repository got in an accepted push less than a day ago are known
  without asking (:mod:`.known`; a stale entry costs one more try of the copy).
- ``write_blob``: blobs up to ``chunked_threshold`` (16 MiB) go monolithically
  (``POST`` then ``PUT ?digest=``); larger ones in ``PATCH`` chunks of
  ``chunk_size`` (8 MiB, held in memory so a chunk can be resent after a lost
  connection) with ``Content-Range``, then a closing ``PUT``. The stream is
  verified to its end before the closing ``PUT``; a failure cancels the upload.
- ``mount_blob``: cross-repository mount (``POST ?mount=<digest>&from=<repo>``)
  when the source is another repository of the same registry. The copy engine
  calls it before opening the source blob, so nothing is downloaded. A
  repository to mount from can also be named in ``Options.extra["mount_from"]``.
- ``write_manifest`` / ``commit``: ``PUT /v2/<repo>/manifests/<digest|tag>``
  with ``Content-Type`` = the descriptor's media type, the raw bytes unchanged.

Tunables in ``Options.extra``: ``chunked_threshold``, ``chunk_size``, ``mount_from``,
``blob_cache`` (False: always ``HEAD``).
"""

from __future__ import annotations

import io

from ...errors import DigestMismatch, KiloboxError, ManifestError, RegistryError, UsageError
from ...oci import Descriptor, Digest, Reference, VerifyingReader, mediatypes as mt
from ..base import RetryCopy, Sink, Source
from .client import MAX_TRIES, Response, _RETRY_EXC, backoff_delay, client_for
from .known import KnownBlobs
from .urls import join as urljoin, quote

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path
    from typing import BinaryIO

    from .. import Options

CHUNKED_THRESHOLD = 16 << 20
CHUNK_SIZE = 8 << 20
OCTET = "application/octet-stream"


def _read_up_to(stream: BinaryIO, n: int) -> bytearray:
    """Up to *n* bytes (one buffer, no join copy); fewer only at end of stream (which a
    VerifyingReader then checks)."""
    buf = bytearray()
    while len(buf) < n:
        c = stream.read(min(n - len(buf), 1 << 20))
        if not c:
            break
        buf += c
    if len(buf) < n:
        stream.read(1)      # make sure EOF was seen (verifies a VerifyingReader)
    return buf


def _with_query(url: str, **params: str) -> str:
    q = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return url + ("&" if "?" in url else "?") + q


class RegistrySink(Sink):
    """Push one image or index to ``registry/repository[:tag]``."""

    def __init__(self, ref: Reference, opts: "Options") -> None:
        self.ref = ref
        self.opts = opts
        self.name = f"docker://{ref}"
        self.client = client_for(ref, opts)
        self.scopes = (f"repository:{ref.repository}:pull,push",)
        self.tag = ref.tag
        extra = opts.extra
        self.threshold = int(extra.get("chunked_threshold", CHUNKED_THRESHOLD))  # type: ignore[call-overload]
        self.chunk_size = max(1, int(extra.get("chunk_size", CHUNK_SIZE)))  # type: ignore[call-overload]
        self.mount_from = str(extra.get("mount_from") or "")
        self._have: set[Digest] = set()
        self._open_uploads: set[str] = set()
        self._pending: dict[Digest, str] = {}     # upload sessions started by a refused mount
        self._known: KnownBlobs | None = None
        if extra.get("blob_cache", True):
            self._known = KnownBlobs(ref.api_host, ref.repository)
        self._trusted: set[Digest] = set()        # skipped on the cache's word, not asked
        #: what happened, for tests and --debug: counts of skipped/mounted/uploaded blobs
        self.stats = {"skipped": 0, "mounted": 0, "uploaded": 0, "chunked": 0}

    def _path(self, kind: str, ident: str = "") -> str:
        return f"/v2/{self.ref.repository}/{kind}/{ident}"

    # -- blobs -------------------------------------------------------------------------
    def has_blob(self, desc: Descriptor) -> bool:
        if desc.digest in self._have:
            return True
        if self._known is not None and desc.digest in self._known:
            self._have.add(desc.digest)
            self._trusted.add(desc.digest)
            self.stats["skipped"] += 1
            return True
        resp = self.client.request("HEAD", self._path("blobs", str(desc.digest)), scopes=self.scopes,
                                   ok=(200, 404), follow=True, what=f"blob {desc.digest}")
        resp.close()
        if resp.status == 200:
            self._have.add(desc.digest)
            self.stats["skipped"] += 1
            return True
        return False

    def mount_blob(self, desc: Descriptor, source: Source | None = None) -> bool:
        """Try a cross-repository mount; True when the registry linked the blob."""
        frm = self.mount_from
        if not frm and source is not None:
            sref = getattr(source, "ref", None)
            if isinstance(sref, Reference) and sref.api_host == self.ref.api_host:
                frm = sref.repository
        if not frm or frm == self.ref.repository or desc.digest in self._pending:
            return False
        scopes = self.scopes + (f"repository:{frm}:pull",)
        url = _with_query(self._path("blobs", "uploads/"), mount=str(desc.digest), **{"from": frm})
        try:
            resp = self.client.request("POST", url, scopes=scopes, ok=(201, 202), what=f"mount {desc.digest}")
        except KiloboxError:
            return False            # best effort: no access to the source repository, or no mount support
        resp.close()
        if resp.status == 201:
            self._have.add(desc.digest)
            self.stats["mounted"] += 1
            return True
        self._pending[desc.digest] = self._location(resp)   # reuse this session for the upload
        return False

    def _location(self, resp: Response) -> str:
        loc = resp.header("Location")
        if not loc:
            raise RegistryError(f"{resp.method} {self._path('blobs', 'uploads/')} on {self.ref.registry}: "
                                f"{resp.status} without a Location header")
        url = urljoin(resp.url, loc)
        self._open_uploads.add(url)
        return url

    def _start_upload(self, desc: Descriptor) -> str:
        pending = self._pending.pop(desc.digest, None)
        if pending:
            return pending
        resp = self.client.request("POST", self._path("blobs", "uploads/"), scopes=self.scopes,
                                   headers={"Content-Length": "0"}, body=b"", ok=(202,),
                                   what=f"upload of {desc.digest}")
        resp.close()
        return self._location(resp)

    def write_blob(self, desc: Descriptor, stream: BinaryIO, source_path: Path | None = None) -> None:
        if not isinstance(stream, VerifyingReader):
            stream = VerifyingReader(stream, desc.digest, desc.size, what=f"blob {desc.digest}")  # type: ignore[assignment]
        url = self._start_upload(desc)
        try:
            if desc.size <= self.threshold:
                data = _read_up_to(stream, desc.size + 1)
                final = url
                body: bytes | bytearray | None = data
            else:
                offset = 0
                while True:
                    chunk = _read_up_to(stream, self.chunk_size)
                    if not chunk:
                        break
                    url = self._patch(url, chunk, offset, desc)
                    offset += len(chunk)
                self.stats["chunked"] += 1
                final, body = url, None
            resp = self.client.request("PUT", _with_query(final, digest=str(desc.digest)), scopes=self.scopes,
                                       headers={"Content-Type": OCTET}, body=body or b"", ok=(201, 204),
                                       what=f"blob {desc.digest}")
            resp.close()
        except BaseException:
            self._cancel(url)
            raise
        self._open_uploads.discard(url)
        self._have.add(desc.digest)
        self.stats["uploaded"] += 1

    def _patch(self, url: str, chunk: bytearray, offset: int, desc: Descriptor) -> str:
        """Send one chunk. After a failure (lost connection, 5xx, 429, 416) ask the registry how
        much of the upload it holds and send the rest of the chunk from there."""
        start = offset
        end = offset + len(chunk) - 1
        for attempt in range(MAX_TRIES):
            headers = {"Content-Type": OCTET, "Content-Range": f"{start}-{end}"}
            try:
                resp = self.client.request("PATCH", url, scopes=self.scopes, headers=headers,
                                           body=memoryview(chunk)[start - offset:], ok=(202,), retry=False,
                                           idempotent=False, what=f"blob {desc.digest} chunk at {start}")
            except RegistryError as e:
                if not (e.retryable or e.status == 416) or attempt + 1 >= MAX_TRIES:
                    raise
                self.client.sleep(backoff_delay(attempt))
                url, start = self._upload_status(url)
                if not offset <= start <= end + 1:
                    raise RegistryError(f"upload of {desc.digest}: the registry holds {start} bytes after a "
                                        f"failed chunk that started at {offset}") from None
                if start > end:
                    return url
                continue
            resp.close()
            self._open_uploads.discard(url)
            return self._location(resp)
        raise AssertionError("unreachable")  # pragma: no cover

    def _upload_status(self, url: str) -> tuple[str, int]:
        """(upload URL, next offset) of an upload session (``GET`` on its location, ``Range: 0-N``)."""
        resp = self.client.request("GET", url, scopes=self.scopes, ok=(204,), what="upload status")
        resp.close()
        rng = resp.header("Range").strip()
        _, _, last = rng.partition("-")
        nxt = int(last) + 1 if last.isdigit() else 0
        return self._location(resp) if resp.header("Location") else url, nxt

    def _cancel(self, url: str) -> None:
        self._open_uploads.discard(url)
        try:
            self.client.request("DELETE", url, scopes=self.scopes, ok=(204, 200, 404), retry=False,
                                what="cancel upload").close()
        except (KiloboxError, OSError, *_RETRY_EXC):
            pass

    # -- manifests -------------------------------------------------------------------------
    def write_manifest(self, desc: Descriptor, raw: bytes) -> None:
        if desc.media_type in mt.MANIFEST_TYPES or desc.media_type in mt.INDEX_TYPES:
            desc.digest.verify(raw, desc.size, what=f"manifest {desc.digest}")
            self._put_manifest(str(desc.digest), desc, raw)
        else:       # a config (or another small JSON blob) is a blob to the registry
            self.write_blob(desc, io.BytesIO(raw))

    def _put_manifest(self, ident: str, desc: Descriptor, raw: bytes) -> Response:
        try:
            resp = self.client.request("PUT", self._path("manifests", ident), scopes=self.scopes,
                                       headers={"Content-Type": desc.media_type}, body=raw, ok=(201, 200),
                                       what=f"manifest {desc.digest}")
        except RegistryError as e:
            if self._trusted and e.status == 400 and {"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"} & set(e.codes):
                if self._known is not None:
                    self._known.forget()        # empty from now on; the push that follows records anew
                self._have -= self._trusted
                self._trusted.clear()
                raise RetryCopy(f"{self.name}: the registry no longer has blobs a recent push left there",
                                hint="copy again") from e
            raise
        resp.close()
        claim = resp.header("Docker-Content-Digest").strip()
        if claim:
            try:
                d = Digest.parse(claim)
            except ManifestError:
                return resp
            if d.algorithm == desc.digest.algorithm and d != desc.digest:
                raise DigestMismatch(f"PUT manifest {ident} on {self.ref.registry}: the registry stored {d}, "
                                     f"we sent {desc.digest}")
        return resp

    def commit(self, root: Descriptor, raw: bytes) -> None:
        if self.ref.digest is not None and self.ref.digest != root.digest:
            raise UsageError(f"{self.name}: the image is {root.digest}, not the digest in the destination",
                             hint="drop @DIGEST from the destination")
        root.digest.verify(raw, root.size, what=f"manifest {root.digest}")
        self._put_manifest(self.tag or str(root.digest), root, raw)
        if self._known is not None:
            self._known.record(self._have)      # all referenced by the manifest just accepted

    def close(self) -> None:
        for url in list(self._open_uploads) + list(self._pending.values()):
            self._cancel(url)
        self._pending.clear()


__all__ = ["RegistrySink", "CHUNKED_THRESHOLD", "CHUNK_SIZE"]
