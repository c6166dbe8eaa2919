"""oci-archive: an OCI image layout in a tar file (``oci-archive:FILE[:TAG]``), as skopeo writes it.

Reading never extracts: the tar's members are indexed by name once, by
kilobox's own bounded tar parser (never Python's ``tarfile``), and blobs are
served straight from their offsets, verified by the caller (sizes checked
here). The policy is the one docker-archive uses (:mod:`._tarindex`): a member
name that is absolute or contains ``..``, a duplicate member, a sparse or
multi-volume member makes the whole archive invalid (``LayoutError``);
symlinks are followed only to regular members inside the archive, hardlinks
and devices are never served; a compressed archive is refused with a hint to
decompress it first. Only ``oci-layout``, ``index.json`` and
``blobs/<algo>/<hex>`` are used.

Writing stages a layout in a temp directory beside FILE, then writes a
deterministic tar (sorted names, mtime 0, uid/gid 0, no user names, 0644/0755)
to a temp file and renames it over FILE. **Existing tags are kept**: when FILE
already is an oci-archive, its other tagged images (and their blobs) are
carried over and only the entry of the same tag is replaced — the same rule as
for a layout directory. (skopeo instead overwrites the whole file.) A
damaged existing FILE is an error, never silently replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from ..errors import DigestMismatch, LayoutError, ManifestError, NotFound
from ..oci import MAX_MANIFEST_BYTES, Descriptor, Index, parse_manifest_or_index
from ..oci import mediatypes as mt
from ._tarindex import Member, TarIndex
from .base import Sink, Source
from .layout import (INDEX_FILE, LAYOUT_FILE, Layout, parse_layout_index, parse_oci_layout,
                     select_entry, validate_tag)


class OciArchive:
    """The members of an oci-archive, indexed by name (read-only, no extraction)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        where = f"oci-archive:{self.path}"
        if self.path.is_dir():
            raise LayoutError(f"{self.path} is a directory, not an oci-archive",
                              hint=f"use oci:{self.path} for a layout directory")
        self.tar = TarIndex(self.path, where, what="oci-archive")
        self.members: dict[str, Member] = self.tar.members
        try:
            if LAYOUT_FILE not in self.members:
                raise LayoutError(f"{self.path} is not an oci-archive: {LAYOUT_FILE} is missing",
                                  hint="oci-archive files are uncompressed tars of an OCI layout")
            parse_oci_layout(self.read_member(LAYOUT_FILE, 4096), f"{self.path}:{LAYOUT_FILE}")
            if INDEX_FILE not in self.members:
                raise LayoutError(f"{self.path} is not an oci-archive: {INDEX_FILE} is missing")
            self.index_raw = self.read_member(INDEX_FILE, MAX_MANIFEST_BYTES)
            self.index: Index = parse_layout_index(self.index_raw, f"{self.path}:{INDEX_FILE}")
        except BaseException:
            self.tar.close()
            raise

    def read_member(self, name: str, limit: int) -> bytes:
        return self.tar.read_small(self.tar.resolve(name, name), name, limit)

    def _blob(self, desc: Descriptor) -> Member | None:
        """The regular member holding *desc* (symlinks inside the archive followed), or None."""
        return self.tar.get(f"blobs/{desc.digest.algorithm}/{desc.digest.hex}", f"blob {desc.digest}")

    def tags(self) -> list[str]:
        return sorted({m.ref_name for m in self.index.manifests if m.ref_name})

    def has_blob(self, desc: Descriptor) -> bool:
        m = self._blob(desc)
        return m is not None and m.size == desc.size

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        m = self._blob(desc)
        if m is None:
            raise LayoutError(f"{self.path}: blob {desc.digest} is missing",
                              hint="the archive is incomplete")
        if m.size != desc.size:
            raise DigestMismatch(f"{self.path}: blob {desc.digest} has {m.size} bytes, expected {desc.size}")
        return self.tar.open(m)

    def read_blob_verified(self, desc: Descriptor) -> bytes:
        if desc.data is not None:
            return desc.data
        if desc.size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{self.path}: {desc.digest} is {desc.size} bytes, over the 4 MiB manifest limit")
        with self.open_blob(desc) as f:
            data = f.read()
        desc.digest.verify(data, desc.size, what=f"{self.path}: blob")
        return data

    def close(self) -> None:
        self.tar.close()

    def __enter__(self) -> "OciArchive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_tags(path: str | os.PathLike[str]) -> list[str]:
    """The tags held by an oci-archive."""
    with OciArchive(path) as archive:
        return archive.tags()


class OciArchiveSource(Source):
    """Read one image or index from an oci-archive, without extracting it."""

    def __init__(self, path: str | os.PathLike[str], tag: str = "") -> None:
        self.archive = OciArchive(path)
        self.name = f"oci-archive:{path}" + (f":{tag}" if tag else "")
        try:
            self._root = select_entry(self.archive.index, tag, self.name)
        except BaseException:
            self.archive.close()
            raise

    def root(self) -> Descriptor:
        return self._root

    def tags(self) -> list[str]:
        return self.archive.tags()

    def manifest_bytes(self, desc: Descriptor) -> bytes:
        return self.archive.read_blob_verified(desc)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self.archive.open_blob(desc)

    def close(self) -> None:
        self.archive.close()


def _reachable(read: Any, desc: Descriptor, out: dict[str, Descriptor]) -> None:
    """Collect every blob *desc* refers to (itself, children, configs, layers)."""
    if str(desc.digest) in out:
        return
    out[str(desc.digest)] = desc
    if desc.media_type in mt.INDEX_TYPES or desc.media_type in mt.MANIFEST_TYPES:
        node = parse_manifest_or_index(read(desc), desc.media_type, what=f"manifest {desc.digest}")
        if isinstance(node, Index):
            for child in node.manifests:
                _reachable(read, child, out)
        else:
            for d in (node.config, *node.layers):
                out.setdefault(str(d.digest), d)


@contextlib.contextmanager
def _dir_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_layout_tar(layout_dir: Path, out: BinaryIO) -> None:
    """Write *layout_dir* as a deterministic tar (sorted, mtime 0, uid/gid 0, fixed modes)."""
    from ..layers import Entry, write_layer
    entries: list[Entry] = []
    for dirpath, dirs, files in os.walk(layout_dir):
        rel = os.path.relpath(dirpath, layout_dir)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        if prefix:
            entries.append(Entry(prefix[:-1], "dir", mode=0o755))
        entries.extend(Entry(prefix + f, "file", mode=0o644, source=Path(dirpath) / f)
                       for f in files if not f.startswith("."))   # dot files: temp files
    write_layer(entries, out, compression="", epoch=0)


class OciArchiveSink(Sink):
    """Write one image or index into an oci-archive under *tag* (other tags kept)."""

    def __init__(self, path: str | os.PathLike[str], tag: str = "") -> None:
        self.path = Path(path)
        self.tag = validate_tag(tag) if tag else ""
        self.name = f"oci-archive:{path}" + (f":{tag}" if tag else "")
        if self.path.is_dir():
            raise LayoutError(f"{self.path} is a directory", hint=f"use oci:{self.path} for a layout directory")
        parent = self.path.parent
        if not parent.is_dir():
            raise NotFound(f"directory {parent} does not exist", hint="create it first")
        if self.path.exists():
            OciArchive(self.path).close()                 # refuse to replace a damaged file
        self._stage = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.kilobox-", dir=parent))
        self.layout = Layout(self._stage, durable=False)   # only the final tar is fsynced
        self.layout.ensure_layout_file()

    def has_blob(self, desc: Descriptor) -> bool:
        return self.layout.has_blob(desc)

    def write_blob(self, desc: Descriptor, stream: BinaryIO, source_path: Path | None = None) -> None:
        self.layout.write_blob_stream(desc, stream)

    def link_blob(self, desc: Descriptor, source: str | os.PathLike[str]) -> bool:
        """Hard-link a verified local file into the stage (it is only read, then removed)."""
        return self.layout.link_blob(desc, source) or self.layout.has_blob(desc)

    def write_manifest(self, desc: Descriptor, raw: bytes) -> None:
        self.layout.write_blob_bytes(desc, raw)

    def commit(self, root: Descriptor, raw: bytes) -> None:
        root.digest.verify(raw, root.size, what=f"{self.name}: root")
        self.write_manifest(root, raw)
        with _dir_lock(self.path.parent):
            if self.path.exists():
                with OciArchive(self.path) as old:
                    self._carry_over(old)
            self.layout.add_root(root, self.tag)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    write_layout_tar(self._stage, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        from .._atomic import fsync_dir
        fsync_dir(self.path.parent)

    def _carry_over(self, old: OciArchive) -> None:
        """Copy the old archive's other entries and their blobs into the stage."""
        import json
        keep = [m for m in old.index.manifests if not (self.tag and m.ref_name == self.tag)]
        need: dict[str, Descriptor] = {}
        for m in keep:
            _reachable(old.read_blob_verified, m, need)
        for d in need.values():
            if self.layout.has_blob(d) or not old.has_blob(d):
                continue                                   # foreign layers may be absent
            with old.open_blob(d) as f:
                self.layout.write_blob_stream(d, f)
        obj = json.loads(old.index_raw)
        from ..oci import canonical_json
        from .._atomic import atomic_write
        atomic_write(self._stage / INDEX_FILE, canonical_json(obj))

    def close(self) -> None:
        shutil.rmtree(self._stage, ignore_errors=True)


__all__ = ["OciArchive", "OciArchiveSource", "OciArchiveSink", "list_tags", "write_layout_tar"]
