"""The OCI image layout directory (image-spec ``image-layout.md``): ``oci:DIR[:TAG]``.

::

    DIR/oci-layout          {"imageLayoutVersion": "1.0.0"}
    DIR/index.json          an image index; each entry may carry the annotation
                            org.opencontainers.image.ref.name = TAG
    DIR/blobs/sha256/<hex>  content

Several tagged images share one layout: writing a tag replaces the entry with
the same ``ref.name`` (as skopeo and umoci do); an untagged write adds an entry
unless the same untagged root is already there.

Safety: blob paths are built from validated digests only (no traversal), a blob
that is a symlink resolving outside the layout or not a regular file is
refused, sizes are checked on open and digests on read. Writes go to a temp
file, are verified, fsynced and renamed into place; ``index.json`` is replaced
atomically while holding an exclusive ``flock`` on the layout directory, so
concurrent writers (kilobox processes) never lose each other's tags.

A blob the source has already verified as a local file (a registry pull's
store entry, fsynced there) is hard-linked instead of copied
(:meth:`LayoutSink.link_blob`): one write and one fsync per blob for a pull.
The directories are fsynced once, before ``index.json`` makes the image visible.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat as _stat

from .._atomic import atomic_write, fsync_dir, mkstemp
from ..errors import DigestMismatch, LayoutError, ManifestError, NotFound, UsageError
from ..oci import MAX_MANIFEST_BYTES, Descriptor, Digest, Index, VerifyingReader, canonical_json
from ..oci import mediatypes as mt
from .base import Sink, Source

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path
    from typing import Any, BinaryIO

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
CHUNK = 1 << 20
_TMP_PREFIX = ".kilobox-tmp-"


def validate_tag(tag: str) -> str:
    """Check a tag used as ``ref.name``: printable, no whitespace, at most 255 chars."""
    if not tag or len(tag) > 255 or any(c.isspace() or not c.isprintable() for c in tag):
        raise UsageError(f"invalid tag {tag[:80]!r} for an OCI layout",
                         hint="use letters, digits and . _ - / : (no spaces)")
    return tag


def _norm(path: str | os.PathLike[str]) -> str:
    """*path* spelled as :class:`pathlib.PurePosixPath` spells it (for messages, without pathlib)."""
    text = os.fspath(path)
    parts = [p for p in text.split("/") if p and p != "."]
    absolute = text.startswith("/")
    return ("/" if absolute else "") + "/".join(parts) or ("/" if absolute else ".")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _DirLock:
    """``with _DirLock(dir):`` holds an exclusive ``flock`` on the directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


class Layout:
    """Low-level access to one layout directory (shared by source, sink and oci-archive).

    Works on path strings inside; :attr:`path` and the ``*_path`` methods hand
    out :class:`~pathlib.Path` objects (pathlib is imported only then).
    """

    def __init__(self, path: str | os.PathLike[str], durable: bool = True) -> None:
        self.root = _norm(path)
        #: fsync blobs before they are renamed into place (False for throw-away staging layouts)
        self.durable = durable
        self._dirty: set[str] = set()

    @property
    def path(self) -> Path:
        from pathlib import Path
        return Path(self.root)

    def _file(self, name: str) -> str:
        return os.path.join(self.root, name)

    # -- reading -------------------------------------------------------------
    def check(self) -> None:
        """Raise unless *path* is a readable OCI layout (oci-layout present and valid)."""
        if not os.path.isdir(self.root):
            raise NotFound(f"OCI layout {self.root} does not exist",
                           hint="check the path after oci:")
        lf = self._file(LAYOUT_FILE)
        try:
            with open(lf, "rb") as f:
                raw = f.read(4096)
        except FileNotFoundError:
            raise LayoutError(f"{self.root} is not an OCI layout: {LAYOUT_FILE} is missing") from None
        except OSError as e:
            raise LayoutError(f"{lf}: cannot read ({e.strerror})") from None
        parse_oci_layout(raw, lf)

    def read_index_raw(self) -> bytes | None:
        """The bytes of index.json, or None when it does not exist."""
        p = self._file(INDEX_FILE)
        try:
            with open(p, "rb") as f:
                if os.fstat(f.fileno()).st_size > MAX_MANIFEST_BYTES:
                    raise LayoutError(f"{p}: larger than the 4 MiB limit")
                return f.read()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise LayoutError(f"{p}: is a directory") from None

    def read_index(self) -> Index:
        """Parse index.json (it must exist)."""
        raw = self.read_index_raw()
        if raw is None:
            raise LayoutError(f"{self.root} is not an OCI layout: {INDEX_FILE} is missing")
        return parse_layout_index(raw, self._file(INDEX_FILE))

    def blob_file(self, digest: Digest) -> str:
        """The path of a blob as a string (no checks on the file; the digest is already validated)."""
        return os.path.join(self.root, "blobs", digest.algorithm, digest.hex)

    def blob_path(self, digest: Digest) -> Path:
        """The path of a blob (no checks on the file; the digest is already validated)."""
        from pathlib import Path
        return Path(self.blob_file(digest))

    def safe_blob_file(self, desc: Descriptor) -> str:
        """The real path of *desc*'s blob after safety checks (inside the layout, regular file)."""
        p = self.blob_file(desc.digest)
        try:
            real = os.path.realpath(p, strict=True)
        except (FileNotFoundError, OSError):
            raise LayoutError(f"{self.root}: blob {desc.digest} is missing",
                              hint="the layout is incomplete; copy the image again") from None
        root = os.path.realpath(self.root)
        if not real.startswith(root.rstrip("/") + "/"):
            raise LayoutError(f"{self.root}: blob {desc.digest} is a link pointing outside the layout")
        st = os.stat(real)
        if not _stat.S_ISREG(st.st_mode):
            raise LayoutError(f"{self.root}: blob {desc.digest} is not a regular file")
        if st.st_size != desc.size:
            raise DigestMismatch(f"{self.root}: blob {desc.digest} has {st.st_size} bytes, "
                                 f"expected {desc.size}", hint="the layout is corrupt; copy the image again")
        return real

    def safe_blob_path(self, desc: Descriptor) -> Path:
        """:meth:`safe_blob_file` as a :class:`~pathlib.Path`."""
        from pathlib import Path
        return Path(self.safe_blob_file(desc))

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        real = self.safe_blob_file(desc)
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        return os.fdopen(fd, "rb")

    def read_blob_verified(self, desc: Descriptor) -> bytes:
        """A small blob (manifest, index, config), verified against *desc*."""
        if desc.size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{self.root}: {desc.digest} is {desc.size} bytes, over the 4 MiB manifest limit")
        with self.open_blob(desc) as f:
            data = f.read(desc.size + 1)
        desc.digest.verify(data, desc.size, what=f"{self.root}: blob")
        return data

    def has_blob(self, desc: Descriptor) -> bool:
        try:
            st = os.lstat(self.blob_file(desc.digest))
        except FileNotFoundError:
            return False
        return _stat.S_ISREG(st.st_mode) and st.st_size == desc.size

    # -- writing -------------------------------------------------------------
    def lock(self) -> _DirLock:
        """An exclusive flock on the layout directory itself (no extra files), as a ``with`` block."""
        return _DirLock(self.root)

    def write_blob_stream(self, desc: Descriptor, stream: BinaryIO) -> bool:
        """Stream, verify, fsync and rename a blob into place; True when it was written."""
        if self.has_blob(desc):
            # drain anyway? No: the engine asked has_blob first; a racing writer wrote identical content.
            return False
        reader = stream if isinstance(stream, VerifyingReader) else VerifyingReader(
            stream, desc.digest, desc.size, what=f"blob {desc.digest}")
        dest = self.blob_file(desc.digest)
        parent = os.path.dirname(dest)
        os.makedirs(parent, exist_ok=True)
        fd, tmp = mkstemp(parent, prefix=_TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                if self.durable:
                    f.flush()
                    os.fsync(f.fileno())
            if isinstance(reader, VerifyingReader) and not reader.verified:
                raise DigestMismatch(f"blob {desc.digest}: stream was not verified")
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            _unlink(tmp)
            raise
        self._dirty.add(parent)         # renames made durable once, in sync(), before the index
        return True

    def link_blob(self, desc: Descriptor, source: str | os.PathLike[str]) -> bool:
        """Hard-link *source*, a local file whose content is *desc*'s, verified and durable
        (the caller vouches for both), as the blob; True when linked. False when a link
        is impossible (another filesystem, no permission) or the name is taken."""
        dest = self.blob_file(desc.digest)
        try:
            st = os.stat(source)
        except OSError:
            return False
        if not _stat.S_ISREG(st.st_mode) or st.st_size != desc.size:
            return False
        parent = os.path.dirname(dest)
        for _ in range(2):
            try:
                os.link(source, dest)
            except FileExistsError:
                return False              # a concurrent writer's blob (or junk the copy path replaces)
            except FileNotFoundError:
                if os.path.isdir(parent):
                    return False
                os.makedirs(parent, exist_ok=True)
                continue
            except OSError:               # EXDEV, EPERM (protected_hardlinks), EMLINK, …
                return False
            self._dirty.add(parent)
            return True
        return False

    def sync(self) -> None:
        """Make the renames of the blobs written so far durable (one fsync per directory)."""
        if self.durable:
            for d in sorted(self._dirty):
                fsync_dir(d)
        self._dirty.clear()

    def write_blob_bytes(self, desc: Descriptor, data: bytes) -> bool:
        desc.digest.verify(data, desc.size, what=f"blob for {self.root}")
        import io
        return self.write_blob_stream(desc, io.BytesIO(data))

    def ensure_layout_file(self) -> None:
        lf = self._file(LAYOUT_FILE)
        if not os.path.exists(lf):
            # the layout directory is fsynced when index.json is written (add_root)
            atomic_write(lf, canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}), durable=self.durable,
                         sync_dir=False)

    def add_root(self, root: Descriptor, tag: str) -> bytes:
        """Add *root* to index.json (replacing *tag*'s old entry) under the lock; returns the new bytes."""
        self.sync()
        with self.lock():
            self.ensure_layout_file()
            raw = self.read_index_raw()
            obj = _index_obj(raw, self._file(INDEX_FILE))
            new = updated_index(obj, root, tag)
            data = canonical_json(new)
            atomic_write(self._file(INDEX_FILE), data, durable=self.durable)
            return data


def parse_oci_layout(raw: bytes, where: str) -> str:
    """Validate the ``oci-layout`` file; returns its version."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise LayoutError(f"{where}: not valid JSON") from None
    ver = obj.get("imageLayoutVersion") if isinstance(obj, dict) else None
    if not isinstance(ver, str) or not ver.startswith("1."):
        raise LayoutError(f"{where}: unsupported imageLayoutVersion {ver!r}", hint="expected 1.0.0")
    return ver


def parse_layout_index(raw: bytes, where: str) -> Index:
    """Parse a layout's index.json; every error becomes a :class:`LayoutError`."""
    try:
        return Index.parse(raw, mt.OCI_INDEX, what=where)
    except ManifestError as e:
        raise LayoutError(e.message, hint="the layout's index.json is damaged") from None


def _index_obj(raw: bytes | None, where: str) -> dict[str, Any]:
    """The JSON object of an existing index.json (validated), or a fresh one."""
    if raw is None:
        return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    parse_layout_index(raw, where)  # validate before touching anything
    return json.loads(raw)


def updated_index(obj: dict[str, Any], root: Descriptor, tag: str) -> dict[str, Any]:
    """Pure: *obj* (an index.json object) with *root* added under *tag* (unknown fields kept)."""
    entry = root.with_(annotations={**root.annotations, REF_NAME: tag} if tag else
                       {k: v for k, v in root.annotations.items() if k != REF_NAME}).to_dict()
    kept = []
    for m in obj.get("manifests", []):
        name = (m.get("annotations") or {}).get(REF_NAME, "")
        if tag and name == tag:
            continue                      # a tag moves: replace the old entry
        if not tag and not name and m.get("digest") == entry["digest"]:
            continue                      # the same untagged root: keep one
        kept.append(m)
    kept.append(entry)
    new = dict(obj)
    new["schemaVersion"] = 2
    new.setdefault("mediaType", mt.OCI_INDEX)
    new["manifests"] = kept
    return new


def select_entry(index: Index, tag: str, where: str) -> Descriptor:
    """The index entry for *tag* (or the only entry when *tag* is empty)."""
    tags = sorted({m.ref_name for m in index.manifests if m.ref_name})
    if tag:
        for m in index.manifests:
            if m.ref_name == tag:
                return m
        if tag.startswith(("sha256:", "sha512:")):   # oci:DIR:sha256:… selects by digest
            for m in index.manifests:
                if str(m.digest) == tag:
                    return m
        raise NotFound(f"{where}: no image tagged {tag!r}",
                       hint=f"available tags: {', '.join(tags)}" if tags else "the layout has no tagged images")
    if len(index.manifests) == 1:
        return index.manifests[0]
    if not index.manifests:
        raise NotFound(f"{where}: the layout holds no images")
    raise UsageError(f"{where}: holds {len(index.manifests)} images; name one with :TAG",
                     hint=f"available tags: {', '.join(tags)}" if tags else "entries have no tags")


def list_tags(path: str | os.PathLike[str]) -> list[str]:
    """The ``ref.name`` tags of a layout, sorted."""
    lay = Layout(path)
    lay.check()
    return sorted({m.ref_name for m in lay.read_index().manifests if m.ref_name})


class LayoutSource(Source):
    """Read one image or index from an OCI layout directory."""

    def __init__(self, path: str | os.PathLike[str], tag: str = "") -> None:
        self.layout = Layout(path)
        self.tag = tag
        self.name = f"oci:{path}" + (f":{tag}" if tag else "")
        self.layout.check()
        self.index = self.layout.read_index()
        self._root = select_entry(self.index, tag, self.name)

    def root(self) -> Descriptor:
        return self._root

    def tags(self) -> list[str]:
        return sorted({m.ref_name for m in self.index.manifests if m.ref_name})

    def manifest_bytes(self, desc: Descriptor) -> bytes:
        if desc.data is not None:
            return desc.data
        return self.layout.read_blob_verified(desc)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        return self.layout.open_blob(desc)

    def blob_path(self, desc: Descriptor) -> Path | None:
        return self.layout.safe_blob_path(desc)

    def blob_file(self, desc: Descriptor) -> str:
        """:meth:`blob_path` as a string."""
        return self.layout.safe_blob_file(desc)


class LayoutSink(Sink):
    """Write one image or index into an OCI layout directory under *tag*.

    Blobs land as they arrive (verified, atomically); ``index.json`` changes only
    on :meth:`commit`. Closing without commit leaves the index untouched; when
    the sink created the directory, it removes it again.
    """

    def __init__(self, path: str | os.PathLike[str], tag: str = "") -> None:
        self.layout = Layout(path)
        self.tag = validate_tag(tag) if tag else ""
        self.name = f"oci:{path}" + (f":{tag}" if tag else "")
        p = self.layout.root
        self._created: list[str] = []
        self._written: list[str] = []
        self._committed = False
        if os.path.exists(p) and not os.path.isdir(p):
            raise LayoutError(f"{p} exists and is not a directory")
        q = p
        while not os.path.exists(q):
            self._created.append(q)          # deepest first
            q = os.path.dirname(q) or "."
        os.makedirs(p, exist_ok=True)
        with self.layout.lock():             # checks and oci-layout under the lock: a concurrent
            if os.path.exists(os.path.join(p, LAYOUT_FILE)) or os.path.exists(os.path.join(p, INDEX_FILE)):
                self.layout.check()          # (a writer never sees a half state)
                raw = self.layout.read_index_raw()
                if raw is not None:
                    parse_layout_index(raw, os.path.join(p, INDEX_FILE))
            elif os.listdir(p):
                raise LayoutError(f"{p} is not empty and not an OCI layout",
                                  hint="write to a new or empty directory, or to an existing layout")
            self.layout.ensure_layout_file()

    def has_blob(self, desc: Descriptor) -> bool:
        return self.layout.has_blob(desc)

    def write_blob(self, desc: Descriptor, stream: BinaryIO, source_path: Path | None = None) -> None:
        if self.layout.write_blob_stream(desc, stream):
            self._written.append(self.layout.blob_file(desc.digest))

    def link_blob(self, desc: Descriptor, source: str | os.PathLike[str]) -> bool:
        """Hard-link a verified, durable local file as the blob (see :meth:`Layout.link_blob`)."""
        if self.layout.link_blob(desc, source):
            self._written.append(self.layout.blob_file(desc.digest))
            return True
        return self.layout.has_blob(desc)

    def write_manifest(self, desc: Descriptor, raw: bytes) -> None:
        if self.layout.write_blob_bytes(desc, raw):
            self._written.append(self.layout.blob_file(desc.digest))

    def commit(self, root: Descriptor, raw: bytes) -> None:
        root.digest.verify(raw, root.size, what=f"{self.name}: root")
        self.write_manifest(root, raw)
        self.layout.add_root(root, self.tag)
        self._committed = True

    def close(self) -> None:
        if self._committed or not self._created:
            return
        # a directory we created and never committed: remove what we wrote, then empty dirs
        root = self.layout.root
        try:
            with self.layout.lock():
                if os.path.exists(os.path.join(root, INDEX_FILE)):
                    return                   # another writer committed meanwhile: keep everything
                for f in [*self._written, os.path.join(root, LAYOUT_FILE)]:
                    _unlink(f)
        except OSError:
            pass
        blobs = os.path.join(root, "blobs")
        try:
            algos = [os.path.join(blobs, a) for a in os.listdir(blobs)]
        except OSError:
            algos = []
        for d in [*algos, blobs, *self._created]:
            try:
                os.rmdir(d)
            except OSError:
                pass


__all__ = ["Layout", "LayoutSource", "LayoutSink", "list_tags", "select_entry", "updated_index",
           "parse_oci_layout", "parse_layout_index", "validate_tag", "REF_NAME"]
