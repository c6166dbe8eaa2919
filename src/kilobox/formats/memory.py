"""An in-memory :class:`Source`: an image or index assembled by kilobox itself.

The builder puts every blob (layers, configs, manifests, the index) in a dict
and hands a :class:`MemorySource` to the copy engine, so every sink (layout,
archives, registry) is reached by the same code path as ``kilobox copy``.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Iterable

from ..errors import ManifestError, NotFound
from ..oci import MAX_MANIFEST_BYTES, Descriptor, Digest
from .base import Source


class MemorySource(Source):
    """Serve *root* and *blobs* (digest → bytes) from memory."""

    def __init__(self, root: Descriptor, blobs: dict[Digest, bytes] | Iterable[bytes], name: str = "memory") -> None:
        if isinstance(blobs, dict):
            self._blobs = dict(blobs)
        else:
            self._blobs = {Digest.of(b): b for b in blobs}
        self._root = root
        self.name = name
        if root.digest not in self._blobs:
            raise NotFound(f"{name}: the root {root.digest} is not among the blobs")

    def root(self) -> Descriptor:
        return self._root

    def _get(self, desc: Descriptor) -> bytes:
        try:
            return self._blobs[desc.digest]
        except KeyError:
            raise NotFound(f"{self.name}: blob {desc.digest} is missing") from None

    def manifest_bytes(self, desc: Descriptor) -> bytes:
        if desc.size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{self.name}: {desc.digest} is {desc.size} bytes, over the 4 MiB manifest limit")
        data = self._get(desc)
        desc.digest.verify(data, desc.size, what=f"{self.name}: {desc.digest}")
        return data

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return io.BytesIO(self._get(desc))


__all__ = ["MemorySource"]
