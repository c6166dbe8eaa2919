"""Tiny in-memory images for the registry tests: a Source and a collecting Sink.

Built with the model (:class:`Manifest.build`, :class:`ImageConfig.build`,
:class:`Index.build`), independent of the layout and layer code.
"""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from pathlib import Path
from typing import BinaryIO

from kilobox.errors import NotFound
from kilobox.formats.base import Sink, Source
from kilobox.oci import Descriptor, Digest, ImageConfig, Index, Manifest, Platform, mediatypes as mt


def layer_tgz(files: dict[str, bytes]) -> tuple[bytes, Digest]:
    """(gzip bytes, diff_id) of a small deterministic tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            tf.addfile(info, io.BytesIO(files[name]))
    tar = buf.getvalue()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as g:
        g.write(tar)
    return out.getvalue(), Digest.of(tar)


class MemImage(Source):
    """An image or index whose blobs live in a dict; doubles as the builder."""

    def __init__(self, name: str = "memory") -> None:
        self.blobs: dict[Digest, bytes] = {}
        self.name = name
        self._root: Descriptor | None = None
        self.opened: list[Digest] = []

    # -- building --------------------------------------------------------------------
    def add(self, media_type: str, data: bytes, **kw: object) -> Descriptor:
        d = Descriptor.for_bytes(media_type, data, **kw)  # type: ignore[arg-type]
        self.blobs[d.digest] = data
        return d

    def add_image(self, *, layers: int = 1, size: int = 1024, seed: int = 0, raw_layers: bool = False,
                  platform: str = "linux/amd64", set_root: bool = True) -> Descriptor:
        """A manifest with *layers* layers of about *size* random bytes each.

        ``raw_layers`` stores the random bytes themselves as the layer blob (fast for big
        sizes; the registry does not look inside layers)."""
        rng = random.Random(seed)
        plat = Platform.parse(platform)
        descs, diff_ids = [], []
        for i in range(layers):
            payload = rng.randbytes(size)
            if raw_layers:
                d = self.add(mt.OCI_LAYER, payload)
                diff = d.digest
            else:
                blob, diff = layer_tgz({f"l{i}/data-{seed}.bin": payload})
                d = self.add(mt.OCI_LAYER_GZIP, blob)
            descs.append(d)
            diff_ids.append(str(diff))
        cfg = ImageConfig.build({"architecture": plat.architecture, "os": plat.os,
                                 **({"variant": plat.variant} if plat.variant else {}),
                                 "config": {"Cmd": ["/hello"]},
                                 "rootfs": {"type": "layers", "diff_ids": diff_ids}})
        self.add(cfg.media_type, cfg.raw)
        m = Manifest.build(cfg.descriptor(), descs)
        desc = self.add(m.media_type, m.raw)
        if set_root:
            self._root = desc
        return desc

    def add_index(self, platforms: list[str], *, layers: int = 1, size: int = 512, seed: int = 0) -> Descriptor:
        children = []
        for i, p in enumerate(platforms):
            d = self.add_image(layers=layers, size=size, seed=seed + i, platform=p, set_root=False)
            children.append(d.with_(platform=Platform.parse(p)))
        idx = Index.build(children)
        self._root = self.add(idx.media_type, idx.raw)
        return self._root

    # -- Source ----------------------------------------------------------------------
    def root(self) -> Descriptor:
        assert self._root is not None, "add an image first"
        return self._root

    def manifest_bytes(self, desc: Descriptor) -> bytes:
        data = self._get(desc)
        desc.digest.verify(data, desc.size)
        return data

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        self.opened.append(desc.digest)
        return io.BytesIO(self._get(desc))

    def _get(self, desc: Descriptor) -> bytes:
        try:
            return self.blobs[desc.digest]
        except KeyError:
            raise NotFound(f"{self.name}: no blob {desc.digest}") from None


class MemSink(Sink):
    """Collects what a copy writes (blobs read to the end, so verified)."""

    def __init__(self) -> None:
        self.blobs: dict[Digest, bytes] = {}
        self.root: Descriptor | None = None
        self.name = "memsink"

    def has_blob(self, desc: Descriptor) -> bool:
        return desc.digest in self.blobs

    def write_blob(self, desc: Descriptor, stream: BinaryIO, source_path: Path | None = None) -> None:
        parts = []
        while True:
            c = stream.read(1 << 20)
            if not c:
                break
            parts.append(c)
        self.blobs[desc.digest] = b"".join(parts)

    def write_manifest(self, desc: Descriptor, raw: bytes) -> None:
        desc.digest.verify(raw, desc.size)
        self.blobs[desc.digest] = raw

    def commit(self, root: Descriptor, raw: bytes) -> None:
        root.digest.verify(raw, root.size)
        self.blobs[root.digest] = raw
        self.root = root
