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
from pathlib import Path
from typing import Iterable

from ..layers import Entry, write_layer
from ..oci import Descriptor, ImageConfig, Manifest, canonical_json
from ..oci import mediatypes as mt
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
    info = write_layer(entries, out, compression="gzip", epoch=0)
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


__all__ = ["build_layer", "closure_with_parents", "slim_config", "slim_manifest", "canonical_json", "mt"]
