"""Reading from a registry: :class:`RegistrySource` (pull by tag or digest).

Everything the registry sends is verified before it is used or stored:
manifests against the digest we compute (``Docker-Content-Digest`` is only a
cross-check), child manifests and configs against their descriptors (size
and digest, at most 4 MiB, refused early on ``Content-Length``), blobs
streamed through a :class:`~kilobox.oci.VerifyingReader` into the local store,
where they appear only once complete and correct (the store is a read-through
cache: a blob already there is never downloaded again). A download whose
connection breaks resumes with ``Range: bytes=N-`` where it stopped
(:mod:`.resume`), the hash state carried over. A layout sink
hard-links those store files (:meth:`RegistrySource.verified_blob_path`), so a
pull writes each blob once.

Prefetch: once a layer of a manifest is opened, the manifest's later layers
are downloaded into the store by up to :data:`PREFETCH` background threads,
so the next download overlaps with the caller's work on this one (a copy
into a layout writes while the network reads). Reading only a config (inspect)
downloads nothing. A prefetch error surfaces when that layer is opened;
:meth:`RegistrySource.close` cancels what is still running.
"""

from __future__ import annotations

import _thread
import io
import os

from ...errors import DigestMismatch, KiloboxError, ManifestError
from ...oci import MAX_MANIFEST_BYTES, Descriptor, Digest, Manifest, Reference, VerifyingReader, mediatypes as mt
from ..base import Source
from .client import Response, client_for

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from ..._parallel import Job, Workers
    from pathlib import Path
    from typing import BinaryIO, Callable

    from ...store import Store
    from .. import Options

READ_CHUNK = 1 << 20
PREFETCH = 2            # background downloads besides the caller's own


class _Cancelled(KiloboxError):
    """A background download stopped because its source was closed."""


class _Flag:
    """A cancel flag shared with download threads (``threading.Event`` without importing threading)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def media_type_of(raw: bytes, content_type: str) -> str:
    """The media type of a fetched manifest: its declared ``mediaType``, else the header, else its shape."""
    import json
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise ManifestError("the registry sent a manifest that is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ManifestError("the registry sent a manifest that is not a JSON object")
    if obj.get("schemaVersion") == 1:
        raise ManifestError("the registry sent a Docker schema 1 manifest, which kilobox does not read",
                            hint="push the image again with a current tool (schema 2 or OCI)")
    declared = obj.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype in mt.MANIFEST_TYPES or ctype in mt.INDEX_TYPES:
        return ctype
    from ...oci.manifest import sniff_media_type
    return sniff_media_type(obj)


def check_digest_header(resp: Response, computed: Digest, what: str) -> None:
    """A ``Docker-Content-Digest`` that disagrees with the bytes received is an error."""
    claim = resp.header("Docker-Content-Digest").strip()
    if not claim:
        return
    try:
        d = Digest.parse(claim)
    except ManifestError:
        return      # an unreadable hint is ignored; the computed digest is what counts
    if d.algorithm == computed.algorithm and d != computed:
        raise DigestMismatch(f"{what}: the registry says {d}, the bytes hash to {computed}")


class _Watched:
    """A read-through wrapper: reports (what, done, total) at most once per MiB, stops when cancelled."""

    def __init__(self, raw: BinaryIO, cb: Callable[[str, int, int], None] | None, what: str, total: int,
                 cancel: _Flag) -> None:
        self._raw, self._cb, self._what, self._total, self._cancel = raw, cb, what, total, cancel
        self._done = 0
        self._last = -1
        if cb is not None:
            cb(what, 0, total)

    def read(self, n: int = -1) -> bytes:
        if self._cancel.is_set():
            raise _Cancelled(f"download of {self._what} cancelled")
        data = self._raw.read(n)
        self._done += len(data)
        if self._cb is not None and (not data or self._done - self._last >= READ_CHUNK):
            self._last = self._done
            self._cb(self._what, self._done, self._total)
        return data

    def close(self) -> None:
        pass


class RegistrySource(Source):
    """Pull one image or index from ``registry/repository`` by tag or digest."""

    def __init__(self, ref: Reference, opts: "Options") -> None:
        self.ref = ref
        self.opts = opts
        self.name = f"docker://{ref}"
        self.client = client_for(ref, opts)
        self.scopes = (f"repository:{ref.repository}:pull",)
        self._raw: dict[Digest, bytes] = {}
        self._store: "Store | None" = None
        self._siblings: dict[Digest, tuple[Descriptor, ...]] = {}   # layer -> the layers after it
        self._pending: dict[Digest, "Job"] = {}
        self._verified: set[Digest] = set()     # in the store, verified and fsynced by this process
        self._pool: "Workers | None" = None
        self._cancel = _Flag()
        self._lock = _thread.allocate_lock()

    @property
    def store(self) -> "Store":
        if self._store is None:
            from ...store import Store
            self._store = Store()
        return self._store

    def _path(self, kind: str, ident: str) -> str:
        return f"/v2/{self.ref.repository}/{kind}/{ident}"

    # -- Source ----------------------------------------------------------------------
    def root(self) -> Descriptor:
        ref = self.ref
        what = f"manifest {ref}"
        if ref.digest is not None:
            raw = self._cached(ref.digest, None)
            if raw is not None:
                media_type = media_type_of(raw, "")
                self._note_layers(media_type, raw)
                return Descriptor(media_type, ref.digest, len(raw))
        resp = self.client.request("GET", self._path("manifests", ref.identifier), scopes=self.scopes,
                                   headers={"Accept": mt.ACCEPT_MANIFESTS}, what=what)
        raw = resp.read_limited(MAX_MANIFEST_BYTES, what)
        if ref.digest is not None:
            ref.digest.verify(raw, what=what)
            digest = ref.digest
        else:
            digest = Digest.of(raw)
        check_digest_header(resp, digest, what)
        media_type = media_type_of(raw, resp.header("Content-Type"))
        self._raw[digest] = raw
        self._note_layers(media_type, raw)
        return Descriptor(media_type, digest, len(raw))

    def manifest_bytes(self, desc: Descriptor) -> bytes:
        what = f"{'manifest' if _is_manifest(desc.media_type) else 'blob'} {desc.digest}"
        if desc.size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{what} in {self.name}: {desc.size} bytes is over the 4 MiB limit")
        if desc.data is not None:
            return desc.data        # embedded data was verified when the descriptor was parsed
        raw = self._cached(desc.digest, desc.size)
        if raw is not None:
            self._note_layers(desc.media_type, raw)
            return raw
        kind = "manifests" if _is_manifest(desc.media_type) else "blobs"
        headers = {"Accept": mt.ACCEPT_MANIFESTS if kind == "manifests" else "*/*"}
        resp = self.client.request("GET", self._path(kind, str(desc.digest)), scopes=self.scopes,
                                   headers=headers, follow=True, what=what)
        raw = resp.read_limited(desc.size, what, exact=desc.size)
        desc.digest.verify(raw, desc.size, what=f"{what} from {self.ref.registry}")
        self._raw[desc.digest] = raw
        # not fsynced: the store is a cache, and every read of a manifest from it is verified
        self.store.store_blob(desc, io.BytesIO(raw), durable=False)
        self._note_layers(desc.media_type, raw)
        return raw

    def _note_layers(self, media_type: str, raw: bytes) -> None:
        """Remember, for each layer of an image manifest, the layers that follow it (prefetch)."""
        if media_type not in mt.MANIFEST_TYPES:
            return
        try:
            layers = Manifest.parse(raw, media_type).layers
        except ManifestError:
            return      # the caller's own parse reports it
        for i, layer in enumerate(layers):
            self._siblings.setdefault(layer.digest, layers[i + 1:])

    def _cached(self, digest: Digest, size: int | None) -> bytes | None:
        raw = self._raw.get(digest)
        if raw is None and self.store.has_blob(digest, size):
            try:
                data = self.store.read_blob(digest)
                digest.verify(data, size)
            except (DigestMismatch, OSError):
                return None
            raw = self._raw[digest] = data
        return raw

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        if desc.data is not None:
            return io.BytesIO(desc.data)
        return open(self._ensure(desc), "rb")

    def _ensure(self, desc: Descriptor) -> str:
        """The store path of *desc*'s blob, downloading it (and prefetching its siblings) when missing."""
        with self._lock:
            fut = self._pending.pop(desc.digest, None)
        if fut is not None and not fut.cancel():
            fut.result()            # running or done: wait; a prefetch error is this blob's error
        if not self.store.has_blob(desc.digest, desc.size):
            self._prefetch(self._siblings.get(desc.digest, ()))
            self.download(desc)
        return self.store.blob_file(desc.digest)

    def verified_blob_path(self, desc: Descriptor) -> str | None:
        """The store file of *desc*'s blob, verified and fsynced (a sink may hard-link it).

        Downloaded by this process: verified on the way in. Cached by an earlier
        run: hashed again now (and fsynced), never trusted on its name alone.
        """
        if desc.data is not None or desc.urls:
            return None
        path = self._ensure(desc)
        if desc.digest in self._verified:
            return path
        try:
            with open(path, "rb") as f:
                VerifyingReader(f, desc.digest, desc.size, what=f"blob {desc.digest} in the store").drain()
                os.fsync(f.fileno())
        except (DigestMismatch, OSError):
            return None             # the copy path reads it again and reports the error
        self._verified.add(desc.digest)
        return path

    def _prefetch(self, layers: tuple[Descriptor, ...]) -> None:
        todo = [d for d in layers if d.data is None and not d.urls and d.digest not in self._pending
                and not self.store.has_blob(d.digest, d.size)]
        if not todo or self._cancel.is_set():
            return
        if self._pool is None:
            from ..._parallel import Workers     # not concurrent.futures: it imports logging
            self._pool = Workers(PREFETCH)
        with self._lock:
            for d in todo:
                if d.digest not in self._pending:
                    self._pending[d.digest] = self._pool.submit(self.download, d)

    def close(self) -> None:
        """Cancel prefetches (a running download stops at its next read; its temp file goes)."""
        self._cancel.set()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self._pending.clear()
        self._cancel = _Flag()                  # usable again (what it reads comes from the store)

    def blob_path(self, desc: Descriptor) -> Path | None:
        p = self.store.blob_path(desc.digest)
        return p if self.store.has_blob(desc.digest, desc.size) else None

    def download(self, desc: Descriptor) -> str:
        """Stream a blob into the store, verified; a broken connection resumes where it stopped.

        One :class:`~.resume.ResumingBody` feeds one :class:`VerifyingReader` and one temp
        file across connections (``Range: bytes=N-``); they start over only when the server
        ignores or botches the Range, or when a resumed blob does not verify (once).
        """
        from .resume import Restart, ResumingBody
        what = f"blob {desc.digest} from {self.ref.registry}"
        body = ResumingBody(self.client, self.client.base + self._path("blobs", str(desc.digest)), self.scopes,
                            desc.size, what)
        try:
            while True:
                watched = _Watched(body, self.opts.progress, desc.digest.hex[:12], desc.size,  # type: ignore[arg-type]
                                   self._cancel)
                reader = VerifyingReader(watched, desc.digest, desc.size, what=what)  # type: ignore[arg-type]
                try:
                    path = self.store.store_blob(desc, reader)  # type: ignore[arg-type]
                except Restart:
                    continue            # the temp file is gone; a new one and a new hash
                except DigestMismatch:
                    if body.resumed and body.start_over():
                        continue        # the pieces did not join up: once more from byte 0
                    raise
                if reader.verified:
                    self._verified.add(desc.digest)
                return path
        finally:
            body.close()


def _is_manifest(media_type: str) -> bool:
    return media_type in mt.MANIFEST_TYPES or media_type in mt.INDEX_TYPES


__all__ = ["RegistrySource", "client_for", "media_type_of"]
