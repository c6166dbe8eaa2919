"""Where the audit reads images from: any kilobox location, an open Image, or plain tar files."""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

from .scan import LayerInput, Scan, ScanOptions, scan_layers

if TYPE_CHECKING:
    from ..image import Image


def image_layers(img: "Image") -> list[LayerInput]:
    """One :class:`LayerInput` per layer of *img* (bottom first), with the history's created_by."""
    history = [h for h in img.config.history if isinstance(h, dict) and not h.get("empty_layer")]
    out = []
    for i, desc in enumerate(img.layers):
        created_by = str(history[i].get("created_by", "")) if i < len(history) else ""

        @contextlib.contextmanager
        def opener(desc=desc) -> Iterator[BinaryIO]:  # noqa: ANN001
            stream = img.open_layer_tar(desc)
            try:
                yield stream
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()

        out.append(LayerInput(open=opener, digest=str(desc.digest), media_type=desc.media_type,
                              compressed_size=desc.size, created_by=created_by[:200]))
    return out


def scan_image(img: "Image", options: ScanOptions | None = None, name: str = "") -> Scan:
    """Scan an open :class:`~kilobox.image.Image`."""
    return scan_layers(image_layers(img), name=name or img.source.name or img.digest, digest=img.digest,
                       config=img.config.obj, options=options)


def scan_location(location: str, options: ScanOptions | None = None, *, platform: str | None = None,
                  source_options: object = None) -> Scan:
    """Open *location* (``oci:DIR:TAG``, a registry reference…) and scan it."""
    from ..image import open_image
    with open_image(location, platform=platform, options=source_options) as img:  # type: ignore[arg-type]
        return scan_image(img, options, name=location)


def tar_layers(paths: list[str | Path]) -> list[LayerInput]:
    """Layers from tar files on disk (plain or gzip), bottom first: tests and quick looks."""
    out = []
    for p in paths:
        p = Path(p)

        @contextlib.contextmanager
        def opener(p=p) -> Iterator[BinaryIO]:  # noqa: ANN001
            with open(p, "rb") as f:
                gz = f.read(2) == b"\x1f\x8b"
                f.seek(0)
                if gz:
                    with gzip.GzipFile(fileobj=f) as g:
                        yield g  # type: ignore[misc]
                else:
                    yield f

        out.append(LayerInput(open=opener, digest="", compressed_size=p.stat().st_size))
    return out


def scan_tars(paths: list[str | Path], config: dict | None = None, options: ScanOptions | None = None,
              name: str = "") -> Scan:
    return scan_layers(tar_layers(paths), name=name or str(paths[-1]), config=config, options=options)





def load_scan(image: "str | Image | Scan", options: ScanOptions | None = None, *, platform: str | None = None,
              source_options: object = None) -> Scan:
    """A :class:`Scan` of *image*: a location string, an open Image, or an existing Scan (returned as is)."""
    if isinstance(image, Scan):
        return image
    if isinstance(image, str):
        return scan_location(image, options, platform=platform, source_options=source_options)
    return scan_image(image, options)
__all__ = ["image_layers", "scan_image", "scan_location", "tar_layers", "scan_tars", "load_scan"]
