"""Test helpers that ship with the library (as go-containerregistry's ``random`` and ``validate``).

::

    from kilobox.testing import random_image, random_index, write_image, validate_image
    src = random_image(layers=2, size=4096, seed=1)          # an in-memory Source
    write_image(src, "oci:/tmp/lay:t")                       # through the real sink
    validate_image("oci:/tmp/lay:t")                         # walks and verifies everything

Images are deterministic for a given seed: same arguments, same digests.
"""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from typing import Any

from .errors import DigestMismatch, ManifestError
from .formats import Options, Source
from .formats.memory import MemorySink, MemorySource
from .oci import (Descriptor, Digest, ImageConfig, Index, Manifest, Platform, VerifyingReader,
                  parse_manifest_or_index)
from .oci import mediatypes as mt
from .transports import Location


def tar_bytes(files: dict[str, bytes], *, mode: int = 0o644) -> bytes:
    """A deterministic tar of *files* (sorted, parents first, mtime 0, uid/gid 0)."""
    buf = io.BytesIO()
    dirs: set[str] = set()
    for name in files:
        parts = name.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    entries = sorted([(d, None) for d in dirs] + [(n.strip("/"), b) for n, b in files.items()])
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.mode = mode
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """gzip with mtime 0 and no file name (deterministic)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="", compresslevel=6) as g:
        g.write(data)
    return out.getvalue()


def _layer(src: MemorySource, files: dict[str, bytes], compression: str) -> tuple[Descriptor, str]:
    tar = tar_bytes(files)
    diff_id = str(Digest.of(tar))
    if compression == "gzip":
        return src.add(mt.OCI_LAYER_GZIP, gzip_bytes(tar)), diff_id
    if compression == "zstd":
        import zstandard
        return src.add(mt.OCI_LAYER_ZSTD, zstandard.ZstdCompressor(level=3).compress(tar)), diff_id
    return src.add(mt.OCI_LAYER, tar), diff_id


def _add_image(src: MemorySource, rng: random.Random, layers: int, size: int, platform: Platform,
               compression: str, files: dict[str, bytes] | None, config: dict[str, Any] | None,
               layer_files: list[dict[str, bytes]] | list[bytes] | None = None) -> Descriptor:
    descs, diff_ids = [], []
    if layer_files is not None:
        layers = len(layer_files)
    for i in range(layers):
        if layer_files is not None and isinstance(layer_files[i], (bytes, bytearray)):
            tar = bytes(layer_files[i])                    # a ready-made (possibly hostile) tar
            descs.append(src.add(mt.OCI_LAYER_GZIP, gzip_bytes(tar)))
            diff_ids.append(str(Digest.of(tar)))
            continue
        content = layer_files[i] if layer_files is not None else (
            files if (files is not None and i == layers - 1) else {
                f"layer{i}/random-{rng.randrange(1 << 30):08x}.bin": rng.randbytes(size)})
        d, diff = _layer(src, content, compression)  # type: ignore[arg-type]
        descs.append(d)
        diff_ids.append(diff)
    cfg: dict[str, Any] = {
        "architecture": platform.architecture, "os": platform.os,
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"kilobox.testing layer {i}"}
                    for i in range(layers)],
    }
    if platform.variant:
        cfg["variant"] = platform.variant
    if config:
        cfg["config"].update(config)
    cfg_obj = ImageConfig.build(cfg)
    cfg_desc = src.add(mt.OCI_CONFIG, cfg_obj.raw)
    man = Manifest.build(cfg_desc, descs)
    return src.add(mt.OCI_MANIFEST, man.raw, platform=platform)


def random_image(layers: int = 1, size: int = 1024, *, seed: int | None = 0,
                 platform: str | Platform = "linux/amd64", compression: str = "gzip",
                 files: dict[str, bytes] | None = None, config: dict[str, Any] | None = None,
                 layer_files: list[dict[str, bytes]] | list[bytes] | None = None) -> MemorySource:
    """An in-memory image of *layers* layers with *size* random bytes each.

    *files* replaces the content of the last layer; *layer_files* gives every
    layer explicitly (a dict of path → bytes, or ready-made tar bytes, which may
    be hostile); *config* is merged into the config block (Entrypoint, Cmd,
    Env, User, Labels…). Same arguments, same digests.
    """
    rng = random.Random(seed)
    plat = platform if isinstance(platform, Platform) else Platform.parse(platform)
    src = MemorySource(name="random-image")
    d = _add_image(src, rng, layers, size, plat, compression, files, config, layer_files)
    src.root_desc = Descriptor(d.media_type, d.digest, d.size)
    return src


def random_index(platforms: tuple[str, ...] | list[str] = ("linux/amd64", "linux/arm64"), layers: int = 1,
                 size: int = 1024, *, seed: int | None = 0, compression: str = "gzip") -> MemorySource:
    """An in-memory index with one random image per platform."""
    rng = random.Random(seed)
    src = MemorySource(name="random-index")
    children = [_add_image(src, rng, layers, size, Platform.parse(p), compression, None, None) for p in platforms]
    idx = Index.build(children)
    src.root_desc = src.add(mt.OCI_INDEX, idx.raw)
    return src


def write_image(src: Source, location: str | Location, *, platform: str | None = None,
                options: Options | None = None) -> Descriptor:
    """Copy *src* (e.g. a :func:`random_image`) to *location* through the real sink."""
    from .copying import copy_root
    from .formats import open_sink
    with open_sink(location, options) as sink:
        return copy_root(src, sink, platform)


def validate_image(image: str | Location | Source, *, options: Options | None = None,
                   check_layers: bool = True) -> dict[str, int]:
    """Walk an image or index end to end and verify everything; raise on the first problem.

    Checks: every manifest/index/config parses and matches its digest and size;
    every layer blob matches its digest and size; the number of layers equals
    the config's ``diff_ids`` and (with *check_layers*) each decompressed layer
    hashes to its diff_id. Returns counts: manifests, configs, layers, bytes.
    """
    from .formats import open_source
    own = not isinstance(image, Source)
    src = open_source(image, options) if own else image
    stats = {"manifests": 0, "configs": 0, "layers": 0, "bytes": 0}
    try:
        todo = [src.root()]
        while todo:
            desc = todo.pop()
            raw = src.manifest_bytes(desc)
            node = parse_manifest_or_index(raw, desc.media_type, what=f"manifest {desc.digest}")
            desc.digest.verify(raw, desc.size, what="manifest")
            stats["manifests"] += 1
            if isinstance(node, Index):
                todo.extend(node.manifests)
                continue
            cfg = ImageConfig.parse(src.manifest_bytes(node.config), node.config.media_type,
                                    what=f"config {node.config.digest}")
            stats["configs"] += 1
            if len(cfg.diff_ids) != len(node.layers):
                raise ManifestError(f"manifest {desc.digest}: {len(node.layers)} layers but "
                                    f"{len(cfg.diff_ids)} diff_ids in the config")
            for layer, diff_id in zip(node.layers, cfg.diff_ids):
                with src.open_blob(layer) as raw_f:
                    reader = VerifyingReader(raw_f, layer.digest, layer.size, what=f"layer {layer.digest}")
                    if check_layers:
                        _check_diff_id(reader, layer.media_type, diff_id)
                    else:
                        reader.drain()
                stats["layers"] += 1
                stats["bytes"] += layer.size
    finally:
        if own:
            src.close()
    return stats


def _check_diff_id(reader: VerifyingReader, media_type: str, diff_id: Digest) -> None:
    """Decompress (bounded, as every reader of kilobox does) and compare with *diff_id*.

    A stream that does not decompress is a :class:`~kilobox.errors.DigestMismatch`
    when the blob itself is not what its descriptor says, else a ``LayerError``.
    """
    from .errors import LayerError
    from .layers import open_decompressed
    h = diff_id.hasher()
    stream = open_decompressed(reader, media_type, what=f"layer of type {media_type}")  # closes *reader*
    try:
        while chunk := stream.read(1 << 20):
            h.update(chunk)
        reader.drain()                     # the compressed blob is checked first…
    except LayerError:
        reader.drain()                     # …also when it does not decompress
        raise
    finally:
        stream.close()
    if h.hexdigest() != diff_id.hex:
        raise DigestMismatch(f"layer of type {media_type}: uncompressed content does not match "
                             f"diff_id {diff_id}")


__all__ = ["MemorySource", "MemorySink", "random_image", "random_index", "write_image", "validate_image",
           "tar_bytes", "gzip_bytes"]
