"""In-memory images: :class:`MemorySource` and its pair :class:`MemorySink`.

The one place kilobox keeps an image in a dict. The builder hands a
:class:`MemorySource` to the copy engine, so every sink (layout, archives,
registry) is reached by the same code path as ``kilobox copy``; the test
helpers (:mod:`kilobox.testing`) build their fixtures on it, and tests corrupt
``source.blobs`` to prove that every sink verifies what it is given::

    src = MemorySource(name="demo")
    cfg = src.add(mt.OCI_CONFIG, config_bytes)
    src.root_desc = src.add(mt.OCI_MANIFEST, manifest_bytes)
    src.blobs[cfg.digest] = b"tampered"              # keys: Digest or "sha256:…"

Large blobs can stay on disk: ``files`` maps a digest to a local file, which
is served (and offered to sinks as :meth:`blob_path`) without being read in.
"""

from __future__ import annotations

import io
from pathlib import Path
from collections.abc import Mapping

from ..errors import ManifestError, NotFound
from ..oci import MAX_MANIFEST_BYTES, Descriptor, Digest
from .base import Sink, Source

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs ~3 ms of a CLI start
    from typing import Any, BinaryIO, Iterable


def _key(key: object) -> Digest:
    if isinstance(key, Digest):
        return key
    try:
        return Digest.parse(key)  # type: ignore[arg-type]
    except ManifestError:
        raise KeyError(key) from None


class BlobMap(dict):  # type: ignore[type-arg]
    """``Digest → bytes``; a key may also be written as text (``"sha256:…"``)."""

    def __init__(self, items: Mapping[Any, bytes] | Iterable[tuple[Any, bytes]] = ()) -> None:
        super().__init__()
        for k, v in (items.items() if isinstance(items, Mapping) else items):
            self[k] = v

    def __getitem__(self, key: object) -> bytes:
        return super().__getitem__(_key(key))

    def __setitem__(self, key: object, value: bytes) -> None:
        super().__setitem__(_key(key), bytes(value))

    def __delitem__(self, key: object) -> None:
        super().__delitem__(_key(key))

    def __contains__(self, key: object) -> bool:
        try:
            return super().__contains__(_key(key))
        except KeyError:
            return False

    def get(self, key: object, default: Any = None) -> Any:
        return self[key] if key in self else default

    def pop(self, key: object, *default: Any) -> Any:
        try:
            return super().pop(_key(key), *default)
        except KeyError:
            if default:
                return default[0]
            raise

    def update(self, *others: Any, **kw: bytes) -> None:  # type: ignore[override]
        for other in (*others, kw):
            for k, v in (other.items() if isinstance(other, Mapping) else other):
                self[k] = v


class MemorySource(Source):
    """Serve ``root_desc`` and ``blobs`` (digest → bytes) from memory.

    *blobs* is a mapping or an iterable of blob bytes (digests are computed).
    When both *root* and *blobs* are given, the root must be among the blobs;
    a source built up with :meth:`add` sets ``root_desc`` when it is done.
    ``opened`` records the digest of every blob opened (tests check skips).
    """

    def __init__(self, root: Descriptor | None = None,
                 blobs: Mapping[Any, bytes] | Iterable[bytes] | None = None, name: str = "memory", *,
                 files: Mapping[Any, str | Path] | None = None) -> None:
        if blobs is None or isinstance(blobs, Mapping):
            self.blobs = BlobMap(blobs or {})
        else:
            self.blobs = BlobMap((Digest.of(b), b) for b in blobs)
        self.files: dict[Digest, Path] = {_key(k): Path(v) for k, v in (files or {}).items()}
        self.root_desc = root
        self.name = name
        self.opened: list[Digest] = []
        if root is not None and blobs is not None and root.digest not in self.blobs:
            raise NotFound(f"{name}: the root {root.digest} is not among the blobs")

    # -- building --------------------------------------------------------------
    def add(self, media_type: str, data: bytes, **kw: Any) -> Descriptor:
        """Store *data*; its descriptor (extra fields, e.g. ``platform=``, go into it)."""
        desc = Descriptor.for_bytes(media_type, data, **kw)
        self.blobs[desc.digest] = data
        return desc

    # -- Source ----------------------------------------------------------------
    def root(self) -> Descriptor:
        if self.root_desc is None:
            raise NotFound(f"{self.name}: no root descriptor yet", hint="add a manifest and set root_desc")
        return self.root_desc

    def _get(self, desc: Descriptor) -> bytes:
        try:
            return self.blobs[desc.digest]
        except KeyError:
            raise NotFound(f"{self.name}: blob {desc.digest} is missing") from None

    def manifest_bytes(self, desc: Descriptor) -> bytes:
        if desc.size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{self.name}: {desc.digest} is {desc.size} bytes, over the 4 MiB manifest limit")
        data = self._get(desc)
        desc.digest.verify(data, desc.size, what=f"{self.name}: blob")
        return data

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        self.opened.append(desc.digest)
        path = self.files.get(desc.digest)
        if path is not None and desc.digest not in self.blobs:
            return open(path, "rb")
        return io.BytesIO(self._get(desc))

    def blob_path(self, desc: Descriptor) -> Path | None:
        return self.files.get(desc.digest) if desc.digest not in self.blobs else None


class MemorySink(Sink):
    """Collect what a copy writes into ``blobs``; ``root`` is set on commit.

    Blobs are read to the end (so the engine's verifying reader checks them)
    before they are kept; a failed copy leaves ``root`` None.
    """

    def __init__(self, name: str = "memory") -> None:
        self.blobs = BlobMap()
        self.root: Descriptor | None = None
        self.name = name

    def has_blob(self, desc: Descriptor) -> bool:
        return desc.digest in self.blobs

    def write_blob(self, desc: Descriptor, stream: BinaryIO, source_path: Path | None = None) -> None:
        parts = []
        while chunk := stream.read(1 << 20):
            parts.append(chunk)
        self.blobs[desc.digest] = b"".join(parts)

    def write_manifest(self, desc: Descriptor, raw: bytes) -> None:
        desc.digest.verify(raw, desc.size, what=f"{self.name}: manifest")
        self.blobs[desc.digest] = raw

    def commit(self, root: Descriptor, raw: bytes) -> None:
        root.digest.verify(raw, root.size, what=f"{self.name}: root")
        self.blobs[root.digest] = raw
        self.root = root

    def source(self) -> MemorySource:
        """What was committed, as a :class:`MemorySource` (to copy it on)."""
        return MemorySource(self.root, self.blobs, name=self.name)


__all__ = ["BlobMap", "MemorySource", "MemorySink"]
