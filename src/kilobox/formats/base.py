"""The two small interfaces every format implements: :class:`Source` and :class:`Sink`.

A *source* reads one root (an image manifest or an index) and its blobs; a
*sink* receives blobs, then manifests, then the root, and makes the result
visible only on :meth:`Sink.commit` (atomically). The copy engine
(:mod:`kilobox.copying`) is the only code that drives them, so each format
stays a small adapter (the go-containerregistry ``partial`` idea).

Rules every implementation follows:

- ``open_blob`` returns raw stored bytes; callers wrap it in
  :class:`~kilobox.oci.VerifyingReader`. ``manifest_bytes`` verifies itself
  (manifests are small) and refuses more than 4 MiB.
- ``write_blob`` must consume the stream to its end (which verifies it) before
  the blob becomes visible; a failure leaves nothing behind.
- ``close`` without ``commit`` discards everything written.

Optional hooks the engine uses when present: ``Sink.mount_blob(desc, source)``
(a registry's cross-repository mount) and ``Sink.link_blob(desc, path)``
(take a local file the source vouches for, from
:meth:`Source.verified_blob_path`, without reading it: a hard link).
"""

from __future__ import annotations

import abc

from ..errors import KiloboxError
from ..oci import Descriptor

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path
    from typing import BinaryIO


class RetryCopy(KiloboxError):
    """Raised by a sink that skipped blobs on a cache's word when the destination then
    refused a manifest for a missing blob: the sink has dropped that cache, and the
    copy engine copies the image once more (asking the destination about every blob)."""


class Source(abc.ABC):
    """Reads one image or index."""

    #: a human-readable name for messages, e.g. ``oci:./out:hello``
    name: str = ""

    @abc.abstractmethod
    def root(self) -> Descriptor:
        """The descriptor of the selected manifest or index."""

    @abc.abstractmethod
    def manifest_bytes(self, desc: Descriptor) -> bytes:
        """The raw, verified bytes of a manifest, index or config (small JSON)."""

    @abc.abstractmethod
    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """A stream of the stored bytes of a blob (caller verifies)."""

    def blob_path(self, desc: Descriptor) -> Path | None:
        """The path of the blob as a plain local file, when it is one (fast paths)."""
        return None

    def verified_blob_path(self, desc: Descriptor) -> str | Path | None:
        """A local file with *desc*'s exact content that this source has verified
        against the digest and made durable — one a sink may hard-link without
        reading it; None when the source has no such file (the default)."""
        return None

    def close(self) -> None:
        """Release resources."""

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sink(abc.ABC):
    """Receives one image or index; nothing is visible before :meth:`commit`."""

    name: str = ""
    #: False for formats that hold a single image (docker-archive): the engine picks a platform.
    supports_index: bool = True

    @abc.abstractmethod
    def has_blob(self, desc: Descriptor) -> bool:
        """True when the blob is already present (the copy skips it)."""

    @abc.abstractmethod
    def write_blob(self, desc: Descriptor, stream: BinaryIO, source_path: Path | None = None) -> None:
        """Store a blob from *stream* (already verifying). *source_path*: a local copy, if any."""

    @abc.abstractmethod
    def write_manifest(self, desc: Descriptor, raw: bytes) -> None:
        """Store a non-root manifest (a child of an index) or a config-like JSON blob."""

    @abc.abstractmethod
    def commit(self, root: Descriptor, raw: bytes) -> None:
        """Store the root manifest/index and make it visible under the sink's tag."""

    def close(self) -> None:
        """Discard uncommitted work and release resources."""

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
