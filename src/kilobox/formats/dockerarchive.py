"""docker-archive: the tar of ``docker save`` / ``podman save`` / ``skopeo copy … docker-archive:``.

Read, both flavours::

    manifest.json   [{"Config": "<hex>.json", "RepoTags": ["app:1"], "Layers": ["<id>/layer.tar"]}]
                    (legacy: docker < 25, podman, skopeo; plus ``repositories``, ``<id>/json`` …)
    manifest.json   [{"Config": "blobs/sha256/<hex>", …, "Layers": ["blobs/sha256/<hex>"]}]
    index.json, oci-layout, blobs/sha256/<manifest>   (docker 25+: also an OCI layout)

The tar is indexed once (member headers only, by kilobox's own bounded tar
parser, :mod:`._tarindex`; never Python's ``tarfile``) and blobs are served by
offset: nothing is extracted. Member names are never trusted: a name that is
absolute or climbs with ``..``, or a duplicate member, makes the archive
invalid, paths in ``manifest.json`` must be clean relative paths, symlink
members are followed only to regular members inside the archive (skopeo
writes ``<id>/layer.tar -> ../<hex>.tar``) and hardlinks are refused — the
same policy as for oci-archive. When ``index.json`` holds the very manifest that
``manifest.json`` describes, that manifest (raw bytes, digest) is the root;
otherwise an OCI manifest is synthesised from the config and the stored layer
bytes (layer media type sniffed: tar, gzip or zstd).

Write: the docker 25 flavour — ``manifest.json`` plus an OCI layout
(``index.json``, ``oci-layout``, ``blobs/sha256/…``) in one tar, so the
manifest digest survives a round trip and ``docker load``, ``podman load``
and ``skopeo`` all read it. Layers are stored as given (``podman load`` and
``podman pull docker-archive:`` accept gzip, zstd and plain layers: tested);
entries are written in a fixed order with mtime 0, uid/gid 0, mode 0644, to a
temp file renamed into place on commit. RepoTags use Docker's rules in full
(``app`` → ``docker.io/library/app:latest``), as skopeo writes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .._atomic import fsync_dir
from ..errors import DigestMismatch, FormatError, LayoutError, ManifestError, NotFound, ReferenceError_, UsageError
from ..oci import MAX_MANIFEST_BYTES, Descriptor, Digest, ImageConfig, Index, Manifest, Reference
from ..oci import canonical_json, parse_manifest_or_index
from ..oci import mediatypes as mt
from ._tarindex import Member, TarIndex, clean_path, sniff_compression
from .base import Sink, Source

MANIFEST_JSON = "manifest.json"
CHUNK = 1 << 20
BLOCK = 512
RECORD = 20 * BLOCK
_HEX_NAME = re.compile(r"^(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json|\.tar)?$")
_LAYER_TYPES = {"": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}


# -- manifest.json -------------------------------------------------------------

@dataclass(frozen=True)
class ArchiveEntry:
    """One image of ``manifest.json``."""

    config: str
    repo_tags: tuple[str, ...]
    layers: tuple[str, ...]


def parse_manifest_json(raw: bytes, where: str) -> list[ArchiveEntry]:
    """Parse ``manifest.json`` (outside data: strict about types)."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise LayoutError(f"{where}: {len(raw)} bytes is over the 4 MiB limit")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise LayoutError(f"{where}: not valid JSON", hint="the archive is damaged") from None
    if not isinstance(obj, list) or not obj:
        raise LayoutError(f"{where}: must be a non-empty JSON list of images")
    out = []
    for i, item in enumerate(obj):
        w = f"{where} image {i}"
        if not isinstance(item, dict):
            raise LayoutError(f"{w}: must be an object")
        layers, tags = item.get("Layers"), item.get("RepoTags") or []
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise LayoutError(f"{w}: Layers must be a list of paths")
        if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
            raise LayoutError(f"{w}: RepoTags must be a list of strings")
        out.append(ArchiveEntry(clean_path(item.get("Config"), f"{w} Config"), tuple(tags),  # type: ignore[arg-type]
                                tuple(clean_path(x, f"{w} layer {j}") for j, x in enumerate(layers))))
    return out


def repo_tag(text: str) -> str:
    """Docker's full form of a reference for RepoTags: ``app`` → ``docker.io/library/app:latest``."""
    try:
        ref = Reference.parse(text)
    except ReferenceError_ as e:
        raise ReferenceError_(f"docker-archive: {e.message}",
                              hint="name the image: docker-archive:FILE:NAME[:TAG]") from None
    if ref.digest is not None:
        raise ReferenceError_(f"docker-archive: {text!r}: a digest cannot name an image in an archive",
                              hint="use NAME:TAG")
    return f"{ref.repo_ref}:{ref.tag}"


def select_image(entries: list[ArchiveEntry], tag: str, where: str) -> int:
    """The position of the image *tag* selects: ``""`` (the only one), ``@N`` or a reference."""
    listing = ", ".join(t for e in entries for t in e.repo_tags) or "untagged images only"
    if not tag:
        if len(entries) == 1:
            return 0
        raise UsageError(f"{where}: holds {len(entries)} images; choose one",
                         hint=f"add :NAME:TAG or :@INDEX (tags: {listing})")
    if tag.startswith("@"):
        if not tag[1:].isdigit() or int(tag[1:]) >= len(entries):
            raise NotFound(f"{where}: no image {tag} (the archive holds {len(entries)})")
        return int(tag[1:])
    want = Reference.parse(tag)
    if want.digest is not None:
        raise ReferenceError_(f"{where}: select an image by NAME:TAG or @INDEX, not by digest")
    short = not _has_registry(tag)
    exact, loose = [], []
    for i, e in enumerate(entries):
        for t in e.repo_tags:
            with contextlib.suppress(ReferenceError_):
                have = Reference.parse(t)
                if (have.registry, have.repository, have.tag) == (want.registry, want.repository, want.tag):
                    exact.append(i)
                elif short and have.tag == want.tag and _short(have) == _short(want):
                    loose.append(i)
    found = sorted(set(exact or loose))
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(f"{where}: no image named {tag!r}", hint=f"the archive holds: {listing}")
    raise UsageError(f"{where}: {tag!r} names {len(found)} images", hint="select one with :@INDEX")


def _has_registry(text: str) -> bool:
    first, sep, _ = text.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def _short(ref: Reference) -> str:
    return ref.repository.removeprefix("library/")


# -- source --------------------------------------------------------------------

class DockerArchiveSource(Source):
    """Read one image of a docker-archive (``docker-archive:FILE[:NAME:TAG|:@N]``)."""

    def __init__(self, path: str | os.PathLike[str], tag: str = "") -> None:
        self.path = Path(path)
        self.name = f"docker-archive:{path}" + (f":{tag}" if tag else "")
        self._tar = TarIndex(self.path, self.name)
        try:
            self._open(tag)
        except BaseException:
            self._tar.close()
            raise

    def _open(self, tag: str) -> None:
        tar = self._tar
        if MANIFEST_JSON not in tar.members:
            hint = ("it is an OCI archive: use oci-archive:FILE" if "index.json" in tar.members
                    else "is it a docker save / podman save tarball?")
            raise LayoutError(f"{self.name}: no manifest.json, not a docker-archive", hint=hint)
        raw = tar.read_small(tar.resolve(MANIFEST_JSON, "manifest.json"), "manifest.json")
        self.entries = parse_manifest_json(raw, f"{self.name} manifest.json")
        self.entry = self.entries[select_image(self.entries, tag, self.name)]
        self._json: dict[Digest, bytes] = {}
        self._blobs: dict[Digest, Member] = {}
        cfg_m = tar.resolve(self.entry.config, "config")
        cfg_raw = tar.read_small(cfg_m, "config")
        cfg_digest = Digest.of(cfg_raw)
        named = _HEX_NAME.match(self.entry.config)
        if named and named.group(1) != cfg_digest.hex:
            raise DigestMismatch(f"{self.name}: config {self.entry.config!r} does not match its digest "
                                 f"({cfg_digest})", hint="the archive is damaged or was tampered with")
        try:
            self.config = ImageConfig.parse(cfg_raw, what=f"{self.name} config")
        except ManifestError as e:
            raise LayoutError(e.message, hint="the archive's image config is damaged") from None
        if len(self.config.diff_ids) != len(self.entry.layers):
            raise LayoutError(f"{self.name}: {len(self.entry.layers)} layers but {len(self.config.diff_ids)} "
                              "diff_ids in the config", hint="the archive is damaged")
        self._layer_members = [tar.resolve(p, f"layer {i}") for i, p in enumerate(self.entry.layers)]
        self._root = self._from_oci_index(cfg_m) or self._synthesise(cfg_raw, cfg_digest)

    def _from_oci_index(self, cfg_m: Member) -> Descriptor | None:
        """The manifest in ``index.json`` that matches this entry exactly (docker 25+, kilobox)."""
        tar = self._tar
        if "index.json" not in tar.members:
            return None
        try:
            index = Index.parse(tar.read_small(tar.resolve("index.json", "index.json"), "index.json"))
            todo = list(index.manifests)
            for _ in range(64):
                if not todo:
                    break
                d = todo.pop(0)
                m = tar.members.get(f"blobs/{d.digest.algorithm}/{d.digest.hex}")
                if m is None or m.kind != "file" or m.size != d.size:
                    continue
                raw = tar.read_small(m, "manifest")
                d.digest.verify(raw, d.size, what=f"{self.name}: manifest")
                node = parse_manifest_or_index(raw, d.media_type)
                if isinstance(node, Index):
                    todo.extend(node.manifests)
                elif self._matches(node, cfg_m):
                    self._json[d.digest] = raw
                    self._blobs[node.config.digest] = cfg_m
                    for layer, lm in zip(node.layers, self._layer_members):
                        self._blobs[layer.digest] = lm
                    return Descriptor(d.media_type, d.digest, d.size, platform=d.platform)
        except FormatError:
            return None                    # optional data: fall back to synthesis
        return None

    def _matches(self, node: Manifest, cfg_m: Member) -> bool:
        def member(d: Descriptor) -> Member | None:
            return self._tar.members.get(f"blobs/{d.digest.algorithm}/{d.digest.hex}")
        return (member(node.config) == cfg_m and node.config.size == cfg_m.size
                and len(node.layers) == len(self._layer_members)
                and all(member(l) == m and l.size == m.size for l, m in zip(node.layers, self._layer_members)))

    def _synthesise(self, cfg_raw: bytes, cfg_digest: Digest) -> Descriptor:
        """An OCI manifest for the entry: config + layers as stored."""
        layers = []
        for i, (m, path, diff_id) in enumerate(zip(self._layer_members, self.entry.layers, self.config.diff_ids)):
            comp = sniff_compression(self._tar.pread(m, 6))
            if comp not in _LAYER_TYPES:
                raise LayoutError(f"{self.name}: layer {i} ({path}) is {comp}-compressed",
                                  hint="only tar, tar+gzip and tar+zstd layers are supported")
            named = _HEX_NAME.match(path)
            if not comp:
                digest = diff_id            # an uncompressed layer is its diff_id (verified on read)
            elif named and path.startswith("blobs/"):
                digest = Digest("sha256", named.group(1))
            else:
                digest = self._hash(m)
            self._blobs[digest] = m
            layers.append(Descriptor(_LAYER_TYPES[comp], digest, m.size))
        cfg_desc = Descriptor(mt.OCI_CONFIG, cfg_digest, len(cfg_raw))
        self._json[cfg_digest] = cfg_raw
        man = Manifest.build(cfg_desc, layers)
        self._json[man.digest] = man.raw
        return man.descriptor()

    def _hash(self, m: Member) -> Digest:
        h, pos = hashlib.sha256(), 0
        while pos < m.size:
            chunk = self._tar.pread(m, CHUNK, pos)
            if not chunk:
                raise LayoutError(f"{self.name}: member {m.name!r} is truncated")
            h.update(chunk)
            pos += len(chunk)
        return Digest("sha256", h.hexdigest())

    # -- Source API ------------------------------------------------------------
    def root(self) -> Descriptor:
        return self._root

    def tags(self) -> list[str]:
        """The RepoTags of the selected image."""
        return list(self.entry.repo_tags)

    def manifest_bytes(self, desc: Descriptor) -> bytes:
        raw = self._json.get(desc.digest)
        if raw is None:
            raw = self._tar.read_small(self._member(desc), "blob")
        desc.digest.verify(raw, desc.size, what=f"{self.name}: {desc.media_type}")
        return raw

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        m = self._member(desc)
        if m.size != desc.size:
            raise DigestMismatch(f"{self.name}: blob {desc.digest} has {m.size} bytes, expected {desc.size}")
        return self._tar.open(m)

    def _member(self, desc: Descriptor) -> Member:
        m = self._blobs.get(desc.digest)
        if m is None:
            raise NotFound(f"{self.name}: blob {desc.digest} is not in the archive")
        return m

    def close(self) -> None:
        self._tar.close()


def list_images(path: str | os.PathLike[str]) -> list[ArchiveEntry]:
    """The images a docker-archive holds (``manifest.json``), without reading any blob."""
    tar = TarIndex(Path(path), f"docker-archive:{path}")
    try:
        if MANIFEST_JSON not in tar.members:
            raise LayoutError(f"docker-archive:{path}: no manifest.json, not a docker-archive")
        return parse_manifest_json(tar.read_small(tar.resolve(MANIFEST_JSON, "manifest.json"), "manifest.json"),
                                   f"docker-archive:{path} manifest.json")
    finally:
        tar.close()


def list_tags(path: str | os.PathLike[str]) -> list[str]:
    """Every RepoTag in the archive, sorted (``kilobox tags docker-archive:FILE``)."""
    return sorted({t for e in list_images(path) for t in e.repo_tags})


# -- sink ----------------------------------------------------------------------

def _header(name: str, size: int, directory: bool = False) -> bytes:
    """A PAX-format member header (writing only: reading never uses ``tarfile``)."""
    import tarfile
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0, 0, "", ""
    ti.type, ti.mode = (tarfile.DIRTYPE, 0o755) if directory else (tarfile.REGTYPE, 0o644)
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


class DockerArchiveSink(Sink):
    """Write one image as a docker-archive at *path*, named *tag* (RepoTags); atomic on commit."""

    supports_index = False

    def __init__(self, path: str | os.PathLike[str], tag: str = "") -> None:
        self.path = Path(path)
        self.name = f"docker-archive:{path}" + (f":{tag}" if tag else "")
        self.repo_tags = [repo_tag(tag)] if tag else []
        if self.path.is_dir():
            raise LayoutError(f"{self.name}: {self.path} is a directory", hint="give a file name, e.g. app.tar")
        self._f: BinaryIO | None = None
        self._tmp = ""
        self._dirs: set[str] = set()
        self._blobs: dict[Digest, int] = {}
        self._small: dict[Digest, bytes] = {}
        self._committed = False

    def _out(self) -> BinaryIO:
        if self._f is None:
            parent = self.path.parent
            if not parent.is_dir():
                raise NotFound(f"{self.name}: directory {parent} does not exist")
            fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=parent)
            self._f = os.fdopen(fd, "wb")
        return self._f

    def _add(self, name: str, size: int, stream: BinaryIO) -> None:
        f = self._out()
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i]) + "/"
            if d not in self._dirs:
                self._dirs.add(d)
                f.write(_header(d, 0, directory=True))
        f.write(_header(name, size))
        n = 0
        while chunk := stream.read(CHUNK):
            n += len(chunk)
            if n > size:
                raise DigestMismatch(f"{self.name}: {name} is longer than its {size} bytes")
            f.write(chunk)
        if n != size:
            raise DigestMismatch(f"{self.name}: {name} has {n} bytes, expected {size}")
        f.write(b"\0" * (-size % BLOCK))

    def _blob_name(self, d: Digest) -> str:
        return f"blobs/{d.algorithm}/{d.hex}"

    def has_blob(self, desc: Descriptor) -> bool:
        return desc.digest in self._blobs

    def write_blob(self, desc: Descriptor, stream: BinaryIO, source_path: Path | None = None) -> None:
        if desc.digest in self._blobs:
            while stream.read(CHUNK):       # consume (and so verify) anyway
                pass
            return
        self._add(self._blob_name(desc.digest), desc.size, stream)
        self._blobs[desc.digest] = desc.size

    def write_manifest(self, desc: Descriptor, raw: bytes) -> None:
        desc.digest.verify(raw, desc.size, what=f"{self.name}: {desc.media_type}")
        self._small[desc.digest] = raw
        if desc.digest not in self._blobs:
            self._add(self._blob_name(desc.digest), len(raw), io.BytesIO(raw))
            self._blobs[desc.digest] = len(raw)

    def commit(self, root: Descriptor, raw: bytes) -> None:
        root.digest.verify(raw, root.size, what=f"{self.name}: root")
        node = parse_manifest_or_index(raw, root.media_type, what=f"{self.name} root")
        if isinstance(node, Index):
            raise LayoutError(f"{self.name}: a docker-archive holds single images, not an index",
                              hint="choose one with --platform")
        cfg_raw = self._small.get(node.config.digest)
        if cfg_raw is None or node.config.media_type not in mt.CONFIG_TYPES:
            raise LayoutError(f"{self.name}: the image config was not written "
                              f"(config media type {node.config.media_type!r})",
                              hint="a docker-archive holds container images only")
        config = ImageConfig.parse(cfg_raw, node.config.media_type, what=f"{self.name} config")
        if len(config.diff_ids) != len(node.layers):
            raise LayoutError(f"{self.name}: {len(node.layers)} layers but {len(config.diff_ids)} diff_ids")
        missing = [str(l.digest) for l in node.layers if l.digest not in self._blobs]
        if missing:
            raise LayoutError(f"{self.name}: layer {missing[0]} was not written",
                              hint="foreign (non-distributable) layers cannot be stored in a docker-archive")
        self.write_manifest(root, raw)
        ann: dict[str, str] = {}
        if self.repo_tags:
            ann = {"io.containerd.image.name": self.repo_tags[0],
                   "org.opencontainers.image.ref.name": self.repo_tags[0].rsplit(":", 1)[1]}
        entry = Descriptor(root.media_type, root.digest, root.size, annotations=ann, platform=root.platform)
        index = Index.build([entry])
        manifest_json = json.dumps([{"Config": self._blob_name(node.config.digest),
                                     "RepoTags": self.repo_tags,
                                     "Layers": [self._blob_name(l.digest) for l in node.layers]}],
                                   separators=(",", ":")).encode()
        for name, data in (("index.json", index.raw),
                           ("oci-layout", canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION})),
                           (MANIFEST_JSON, manifest_json)):
            self._add(name, len(data), io.BytesIO(data))
        f = self._out()
        end = f.tell() + 2 * BLOCK
        f.write(b"\0" * (2 * BLOCK + (-end % RECORD)))
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)
        fsync_dir(self.path.parent)
        self._committed = True

    def close(self) -> None:
        if self._f is not None and not self._f.closed:
            self._f.close()
        if not self._committed and self._tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = ""


__all__ = ["DockerArchiveSource", "DockerArchiveSink", "ArchiveEntry", "TarIndex", "list_images", "list_tags",
           "parse_manifest_json", "select_image", "repo_tag", "clean_path", "sniff_compression"]
