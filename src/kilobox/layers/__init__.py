"""Layers: a deterministic tar writer, a streaming reader and a safe extractor.

::

    from kilobox.layers import Entry, write_layer, iter_layer, extract_layer, flatten

    with open("layer.tar.gz", "wb") as f:
        info = write_layer([Entry("bin/hello", data=b"...", mode=0o755)], f)   # same input, same digest
    with open("layer.tar.gz", "rb") as f:
        for m in iter_layer(f):                    # streamed, bounded memory, names normalised
            print(m.name, m.kind, m.size)
    with open("layer.tar.gz", "rb") as f:
        extract_layer(f, Path("rootfs"))           # never writes outside rootfs

Modules: :mod:`.compress` (bounded gzip/zstd), :mod:`.writer`, :mod:`.reader`, :mod:`.extract`.
"""

from .compress import DEFAULT_MAX_BYTES, max_layer_bytes, open_decompressed
from .extract import extract_layer, flatten
from .reader import Member, iter_layer
from .writer import Entry, LayerInfo, entries_from_dir, write_layer

__all__ = ["DEFAULT_MAX_BYTES", "max_layer_bytes", "open_decompressed", "Entry", "LayerInfo", "write_layer",
           "entries_from_dir", "Member", "iter_layer", "extract_layer", "flatten"]
