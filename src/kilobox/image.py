"""A read view of one image (manifest + config + layers) over any :class:`Source`.

This is what build, run, audit and slim consume::

    with kilobox.image.open_image("oci:out:hello", platform="linux/arm64") as img:
        img.config.entrypoint, img.layers
        with img.open_layer(img.layers[0]) as f:   # verified compressed stream
            ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from .errors import ManifestError
from .formats import Options, Source, open_source
from .oci import (Descriptor, ImageConfig, Index, Manifest, Platform, VerifyingReader,
                  parse_manifest_or_index)
from .transports import Location


@dataclass
class Image:
    """One platform's image, read lazily from its source."""

    source: Source
    descriptor: Descriptor          # of the manifest
    manifest: Manifest
    config: ImageConfig
    index: Index | None = None      # the index it was selected from, if any

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.manifest.layers

    @property
    def digest(self) -> str:
        return str(self.descriptor.digest)

    def open_layer(self, desc: Descriptor) -> VerifyingReader:
        """The layer's stored (compressed) bytes, verified against its digest at EOF."""
        return VerifyingReader(self.source.open_blob(desc), desc.digest, desc.size, what=f"layer {desc.digest}")

    def open_layer_tar(self, desc: Descriptor) -> BinaryIO:
        """The layer's uncompressed tar stream (bounded decompression)."""
        from .layers import open_decompressed
        return open_decompressed(self.open_layer(desc), desc.media_type)

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> "Image":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_image(source: Source, platform: str | Platform | None = None) -> Image:
    """Resolve *source*'s root to one image; from an index pick *platform* (default: the host)."""
    root = source.root()
    node = parse_manifest_or_index(source.manifest_bytes(root), root.media_type, what=f"{source.name} root")
    index = None
    desc = root
    if isinstance(node, Index):
        index = node
        want = platform if isinstance(platform, Platform) else (Platform.parse(platform) if platform else Platform.host())
        desc = node.select(want)
        node = parse_manifest_or_index(source.manifest_bytes(desc), desc.media_type, what=f"manifest {desc.digest}")
        if not isinstance(node, Manifest):
            raise ManifestError(f"{source.name}: nested indexes are not supported")
    cfg_raw = source.manifest_bytes(node.config)
    config = ImageConfig.parse(cfg_raw, node.config.media_type, what=f"config {node.config.digest}")
    return Image(source=source, descriptor=desc, manifest=node, config=config, index=index)


def open_image(location: str | Location, platform: str | Platform | None = None,
               options: Options | None = None) -> Image:
    """Open the image at *location* (skopeo spelling); close it when done."""
    src = open_source(location, options)
    try:
        return load_image(src, platform)
    except BaseException:
        src.close()
        raise
