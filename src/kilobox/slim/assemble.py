"""Assembly: a new single-layer image holding exactly the kept paths of a rootfs.

Parent directories keep their own modes and owners (``/tmp`` stays 1777,
``/var/lib/nginx`` stays www-data's); the config is the fat image's with a new
``rootfs``/``history`` and the source recorded in annotations and labels.
"""

from __future__ import annotations

import io
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from ..errors import NotFound
from ..formats import Options
from ..formats.base import Source
from ..layers import Entry, write_layer
from ..oci import Descriptor, ImageConfig, Manifest
from . import rootpath

SOURCE_ANNOTATION = "dev.kilobox.slim.source"
SOURCE_DIGEST_ANNOTATION = "dev.kilobox.slim.source.digest"


def _entry(root: Path, path: str) -> Entry | None:
    host = rootpath.host_path(root, path)
    try:
        st = os.lstat(host)
    except OSError:
        return None
    m = st.st_mode
    common = dict(mode=stat.S_IMODE(m), uid=st.st_uid, gid=st.st_gid)
    rel = path.lstrip("/")
    if stat.S_ISDIR(m):
        return Entry(rel, "dir", **common)
    if stat.S_ISREG(m):
        xattrs = {}
        try:
            xattrs["security.capability"] = os.getxattr(host, "security.capability", follow_symlinks=False)
        except OSError:
            pass
        return Entry(rel, "file", source=host, xattrs=xattrs, **common)
    if stat.S_ISLNK(m):
        return Entry(rel, "symlink", linkname=os.readlink(host), **common)
    return None  # devices, fifos, sockets: the runtime provides /dev


def closure_with_parents(root: Path, paths: Iterable[str]) -> list[str]:
    """*paths* plus every ancestor directory (each as an image path)."""
    out: set[str] = set()
    for p in paths:
        p = rootpath.normalize(p)
        if p == "/":
            continue
        out.add(p)
        parent = rootpath.dirname(p)
        while parent != "/":
            out.add(parent)
            parent = rootpath.dirname(parent)
    return sorted(out)


def build_layer(root: Path, paths: Iterable[str], out: io.BufferedIOBase | io.BytesIO):
    """Write the layer of *paths* (with parents) from *root* to *out*; returns (LayerInfo, files, bytes)."""
    entries = [e for e in (_entry(root, p) for p in closure_with_parents(root, paths)) if e is not None]
    files = sum(1 for e in entries if e.kind != "dir")
    size = sum(os.lstat(e.source).st_size for e in entries if e.kind == "file" and e.source is not None)
    info = write_layer(entries, out, compression="gzip", epoch=0, level=6)
    return info, files, size


def slim_config(fat: ImageConfig, diff_id: str, source_name: str, source_digest: str) -> ImageConfig:
    """The fat config with one layer, a history entry, and the source recorded in a label."""
    obj = dict(fat.obj)
    obj["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
    created = obj.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0))
    obj["history"] = [{"created": created, "created_by": f"kilobox slim {source_name}@{source_digest}"}]
    cfg = dict(obj.get("config") or {})
    labels = dict(cfg.get("Labels") or {})
    labels[SOURCE_DIGEST_ANNOTATION] = source_digest
    cfg["Labels"] = labels
    obj["config"] = cfg
    return ImageConfig.build(obj)


def slim_manifest(config: ImageConfig, layer: Descriptor, source_name: str, source_digest: str) -> Manifest:
    return Manifest.build(config.descriptor(), [layer], annotations={
        SOURCE_ANNOTATION: source_name, SOURCE_DIGEST_ANNOTATION: source_digest,
        "org.opencontainers.image.base.digest": source_digest,
    })


@dataclass
class SlimImage:
    """An assembled slim image: the layer in a file, config and manifest in memory."""

    layer_path: Path
    layer: Descriptor
    config: ImageConfig
    manifest: Manifest
    files: int            # non-directory entries
    file_bytes: int       # bytes of regular files
    entries: int

    @property
    def digest(self) -> str:
        return str(self.manifest.descriptor().digest)

    @property
    def compressed_bytes(self) -> int:
        return self.layer.size + len(self.config.raw) + len(self.manifest.raw)


class SlimSource(Source):
    """A :class:`Source` over a :class:`SlimImage` (so the copy engine writes it to any location)."""

    def __init__(self, image: SlimImage, name: str = "slim") -> None:
        self.image = image
        self.name = name
        self._small = {image.config.descriptor().digest: image.config.raw,
                       image.manifest.descriptor().digest: image.manifest.raw}

    def root(self) -> Descriptor:
        return self.image.manifest.descriptor()

    def manifest_bytes(self, desc: Descriptor) -> bytes:
        try:
            return self._small[desc.digest]
        except KeyError:
            raise NotFound(f"{self.name}: blob {desc.digest} is not a manifest or config") from None

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        if desc.digest == self.image.layer.digest:
            return open(self.image.layer_path, "rb")
        return io.BytesIO(self.manifest_bytes(desc))

    def blob_path(self, desc: Descriptor) -> Path | None:
        return self.image.layer_path if desc.digest == self.image.layer.digest else None


def assemble(root: Path, paths: Iterable[str], fat: ImageConfig, source_name: str, source_digest: str,
             workdir: Path) -> SlimImage:
    """The single-layer slim image of *paths* from *root*, its layer written into *workdir*."""
    workdir.mkdir(parents=True, exist_ok=True)
    layer_path = workdir / "layer.tar.gz"
    paths = list(paths)
    with open(layer_path, "wb") as f:
        info, files, size = build_layer(root, paths, f)
    cfg = slim_config(fat, str(info.diff_id), source_name, source_digest)
    desc = info.descriptor()
    man = slim_manifest(cfg, desc, source_name, source_digest)
    return SlimImage(layer_path, desc, cfg, man, files, size, len(closure_with_parents(root, paths)))


def write_image(image: SlimImage, location: str, options: Options | None = None) -> Descriptor:
    """Write *image* to *location* (any sink kilobox has: oci:, oci-archive:, docker-archive:, registry)."""
    from ..copying import copy_root
    from ..formats import open_sink
    from ..transports import Location
    loc = Location.parse(location)
    opts = options or Options()
    tag = loc.tag or (loc.ref.tag if loc.ref else "") or "latest"
    opts = opts._replace(tag=opts.tag or tag)
    with open_sink(loc, opts) as sink:
        return copy_root(SlimSource(image, name=f"slim:{location}"), sink, None)


__all__ = ["build_layer", "closure_with_parents", "slim_config", "slim_manifest", "SlimImage", "SlimSource",
           "assemble", "write_image"]
