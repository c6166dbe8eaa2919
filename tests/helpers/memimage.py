"""Tiny in-memory images for the registry tests, on the library's :class:`MemorySource`.

:class:`MemImage` adds two builders (:meth:`~MemImage.add_image`, :meth:`~MemImage.add_index`)
made with the model alone (:class:`Manifest.build`, :class:`ImageConfig.build`,
:class:`Index.build`), independent of the layout and layer code; :class:`MemSink`
is :class:`~kilobox.formats.memory.MemorySink`, which collects what a copy writes.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from kilobox.formats import Options
    from kilobox.formats.registry import RegistrySink

import random

from kilobox.formats.memory import MemorySink as MemSink
from kilobox.formats.memory import MemorySource
from kilobox.oci import Descriptor, Digest, ImageConfig, Index, Manifest, Platform, mediatypes as mt
from kilobox.testing import gzip_bytes, tar_bytes


def layer_tgz(files: dict[str, bytes]) -> tuple[bytes, Digest]:
    """(gzip bytes, diff_id) of a small deterministic tar."""
    tar = tar_bytes(files)
    return gzip_bytes(tar), Digest.of(tar)


class MemImage(MemorySource):
    """An image or index whose blobs live in a dict; doubles as the builder."""

    def __init__(self, name: str = "memory") -> None:
        super().__init__(name=name)

    @property
    def _root(self) -> Descriptor | None:        # old spelling, still set by benchmarks/copy_registry.py
        return self.root_desc

    @_root.setter
    def _root(self, desc: Descriptor | None) -> None:
        self.root_desc = desc

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
            self.root_desc = desc
        return desc

    def add_index(self, platforms: list[str], *, layers: int = 1, size: int = 512, seed: int = 0) -> Descriptor:
        children = []
        for i, p in enumerate(platforms):
            d = self.add_image(layers=layers, size=size, seed=seed + i, platform=p, set_root=False)
            children.append(d.with_(platform=Platform.parse(p)))
        idx = Index.build(children)
        self.root_desc = self.add(idx.media_type, idx.raw)
        return self.root_desc


__all__ = ["MemImage", "MemSink", "layer_tgz", "pull", "push"]


def push(ref: str, opts: "Options", seed: int = 0) -> "RegistrySink":
    """Push a small one-layer MemImage to registry reference *ref*; the sink (its stats) is returned."""
    from kilobox.copying import copy_root
    from kilobox.formats.registry import RegistrySink
    from kilobox.oci import Reference
    img = MemImage()
    img.add_image(layers=1, size=500, seed=seed)
    with RegistrySink(Reference.parse(ref), opts) as sink:
        copy_root(img, sink)
    return sink


def pull(ref: str, opts: "Options") -> "MemSink":
    """Pull registry reference *ref* into a MemSink."""
    from kilobox.copying import copy_root
    from kilobox.formats.registry import RegistrySource
    from kilobox.oci import Reference
    out = MemSink()
    with RegistrySource(Reference.parse(ref), opts) as src:
        copy_root(src, out)
    return out
