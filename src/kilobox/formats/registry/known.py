"""Which blobs a registry repository is known to hold: a small cache in the local store.

After a push whose manifest the registry accepted, every blob that manifest
references is in the repository. :class:`KnownBlobs` remembers those digests
(``<store>/known/<key>``, one digest per line, keyed by registry host and
repository) for :data:`TTL` seconds, so pushing the same blobs there again
needs no ``HEAD`` per blob — what skopeo's blob-info cache does.

The cache only ever saves a request; it is never trusted blindly: a registry
refuses a manifest that references a blob it does not have
(``MANIFEST_BLOB_UNKNOWN``), and then the sink forgets the repository's
entries and the copy engine sends the blobs again (:class:`~..base.RetryCopy`).
The file is outside data: malformed lines are ignored, size and count are
bounded, writes are atomic.
"""

from __future__ import annotations

import os
import time

from ...oci import Digest

TTL = 24 * 3600.0                 # seconds an entry is trusted after the push that recorded it
MAX_BYTES = 1 << 20
MAX_ENTRIES = 4096


def _key(host: str, repository: str) -> str:
    from ...oci.digest import new_hash
    h = new_hash("sha256", 1)
    h.update(f"{host}/{repository}".encode())
    return h.hexdigest()[:40]


class KnownBlobs:
    """The cached digests of one registry repository (loaded on first use)."""

    def __init__(self, host: str, repository: str, store_root: str | None = None) -> None:
        if store_root is None:
            from ...store import Store
            store_root = Store().root_dir
        self.path = os.path.join(store_root, "known", _key(host, repository))
        self._digests: set[str] | None = None
        self._loaded = False            # the file was read and is fresh

    def _load(self) -> set[str]:
        if self._digests is None:
            self._digests = set()
            try:
                with open(self.path, "rb") as f:
                    if time.time() - os.fstat(f.fileno()).st_mtime > TTL:
                        return self._digests
                    raw = f.read(MAX_BYTES)
            except OSError:
                return self._digests
            self._loaded = True
            for line in raw.decode("ascii", "replace").splitlines()[:MAX_ENTRIES]:
                try:
                    self._digests.add(str(Digest.parse(line.strip())))
                except Exception:  # noqa: BLE001 - a damaged line is only a cache miss
                    continue
        return self._digests

    def __contains__(self, digest: Digest) -> bool:
        return str(digest) in self._load()

    def record(self, digests: set[Digest] | list[Digest]) -> None:
        """Remember *digests* (with the entries still fresh), replacing the file atomically."""
        new = {str(d) for d in digests}
        have = self._load()
        if self._loaded and new <= have:
            try:
                os.utime(self.path)     # nothing to add: the entries were just confirmed
                return
            except OSError:
                pass
        from ..._atomic import atomic_write
        merged = sorted(have | new)[-MAX_ENTRIES:]
        try:
            atomic_write(self.path, ("\n".join(merged) + "\n").encode(), durable=False)
        except OSError:
            return                      # a read-only or full store: no cache, no harm
        self._digests = set(merged)

    def forget(self) -> None:
        """Drop every entry of this repository (they proved wrong)."""
        self._digests = set()
        self._loaded = False
        try:
            os.unlink(self.path)
        except OSError:
            pass


__all__ = ["KnownBlobs", "TTL"]
