"""Assembly: a binary (+ files) → one layer → config → manifest → (index).

Everything here is pure given its inputs (bytes in, bytes out): the same
inputs give the same digests on any machine, any day, under any umask or
working directory. Host files are read by :func:`rootfs_items`' callers, never
their metadata (only the executable bit of extra files, which git keeps).

The image has an empty base and exactly one layer holding the binary at the
entrypoint path, the extra files and the directories they need (0755,
root-owned, in sorted order).
"""

from __future__ import annotations

import posixpath
import time
from pathlib import Path

from ..errors import BuildError
from ..oci import Descriptor, Digest, ImageConfig, Index, Manifest, Platform
from .._record import FrozenRecord, Record
from .config import ProjectConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DIR_MODE = 0o755
BIN_MODE = 0o755
FILE_MODE = 0o644
#: more files than this in one image is certainly a mistake (a whole tree copied by accident)
MAX_ITEMS = 100_000
#: gzip level 9 up to this much content (micro images: every byte counts, and it costs
#: microseconds); level 6 above it (level 9 is ~3x slower there for ~0.5% fewer bytes)
BEST_COMPRESSION_MAX = 1 << 20


class Item(FrozenRecord):
    """One entry of the image's single layer (an absolute path in the image)."""

    __slots__ = ("path", "kind", "mode", "uid", "gid", "data", "linkname")

    def __init__(self, path: str, kind: str = "file", mode: int = FILE_MODE, uid: int = 0, gid: int = 0,
                 data: bytes = b"", linkname: str = "") -> None:
        self._set(path=path, kind=kind, mode=mode, uid=uid, gid=gid, data=data, linkname=linkname)

    path: str
    kind: str                        # file | dir | symlink
    mode: int
    uid: int
    gid: int
    data: bytes
    linkname: str


class PlatformImage(Record):
    """One platform's assembled image, all blobs in memory."""

    __slots__ = ("platform", "binary_bytes", "layer", "layer_descriptor", "diff_id", "layer_uncompressed_bytes",
                 "config", "manifest", "warnings")

    def __init__(self, platform: Platform, binary_bytes: int, layer: bytes, layer_descriptor: Descriptor,
                 diff_id: Digest, layer_uncompressed_bytes: int, config: ImageConfig, manifest: Manifest,
                 warnings: list[str] | None = None) -> None:
        self.platform = platform
        self.binary_bytes = binary_bytes
        self.layer = layer
        self.layer_descriptor = layer_descriptor
        self.diff_id = diff_id
        self.layer_uncompressed_bytes = layer_uncompressed_bytes
        self.config = config
        self.manifest = manifest
        self.warnings: list[str] = warnings if warnings is not None else []

    @property
    def blobs(self) -> dict[Digest, bytes]:
        return {self.layer_descriptor.digest: self.layer, self.config.digest: self.config.raw,
                self.manifest.digest: self.manifest.raw}

    def descriptor(self, with_platform: bool = True) -> Descriptor:
        return self.manifest.descriptor(platform=self.platform if with_platform else None)


# -- the file tree ------------------------------------------------------------------

def rootfs_items(items: list[Item]) -> list[Item]:
    """*items* plus every parent directory they need, sorted parents-first; conflicts are errors."""
    by_path: dict[str, Item] = {}
    for it in items:
        path = posixpath.normpath(it.path)
        if not path.startswith("/") or path == "/" or ".." in path.split("/"):
            raise BuildError(f"invalid path {it.path!r} in the image")
        it = Item(path, it.kind, it.mode, it.uid, it.gid, it.data, it.linkname)
        old = by_path.get(path)
        if old is not None and not (old.kind == it.kind == "dir"):
            raise BuildError(f"{path} is added to the image twice",
                             hint="check entrypoint and [[files]] targets for duplicates")
        if old is None or it.kind != "dir":
            by_path[path] = it
    for path in list(by_path):
        parent = posixpath.dirname(path)
        while parent != "/":
            have = by_path.get(parent)
            if have is None:
                by_path[parent] = Item(parent, "dir", DIR_MODE)
            elif have.kind != "dir":
                raise BuildError(f"{parent} is a file in the image, but {path} needs it to be a directory")
            parent = posixpath.dirname(parent)
    if len(by_path) > MAX_ITEMS:
        raise BuildError(f"{len(by_path)} files is too many for one micro-image (limit {MAX_ITEMS})")
    return sorted(by_path.values(), key=lambda i: i.path.split("/"))


def host_items(source: Path, target: str, mode: int | None, uid: int, gid: int, where: str) -> list[Item]:
    """Items for a host file or directory tree copied to *target* (content and x bit only)."""
    import os
    import stat

    def one(src: Path, dst: str) -> Item:
        try:
            st = os.lstat(src)
        except OSError as e:
            raise BuildError(f"{where}: cannot read {src}: {e.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            return Item(dst, "symlink", 0o777, uid, gid, linkname=os.readlink(src))
        if stat.S_ISDIR(st.st_mode):
            return Item(dst, "dir", mode if mode is not None else DIR_MODE, uid, gid)
        if not stat.S_ISREG(st.st_mode):
            raise BuildError(f"{where}: {src} is not a regular file, directory or symlink")
        m = mode if mode is not None else (BIN_MODE if st.st_mode & 0o111 else FILE_MODE)
        return Item(dst, "file", m, uid, gid, data=src.read_bytes())

    if not source.is_dir() or source.is_symlink():
        return [one(source, target)]
    out = [Item(target, "dir", DIR_MODE, uid, gid)]
    for dirpath, dirnames, files in os.walk(source):
        dirnames.sort()
        rel = Path(dirpath).relative_to(source).as_posix()
        base = target if rel == "." else f"{target}/{rel}"
        for name in dirnames:
            p = Path(dirpath) / name
            if p.is_symlink():
                out.append(one(p, f"{base}/{name}"))
            else:
                out.append(Item(f"{base}/{name}", "dir", DIR_MODE, uid, gid))
        for name in sorted(files):
            item = one(Path(dirpath) / name, f"{base}/{name}")
            if item.kind == "file" and mode is not None:
                item = Item(item.path, "file", mode, uid, gid, item.data)
            out.append(item)
            if len(out) > MAX_ITEMS:
                raise BuildError(f"{where}: {source} holds more than {MAX_ITEMS} files")
    return out


def passwd_items(user: str, uid: int, gid: int) -> list[Item]:
    """/etc/passwd and /etc/group with root and the image's user (no shell, home /)."""
    name = {0: "root", 65532: "nonroot", 65534: "nobody"}.get(uid, user if user.isalpha() else "app")
    gname = {0: "root", 65532: "nonroot", 65534: "nogroup"}.get(gid, name)
    passwd = ["root:x:0:0:root:/root:/sbin/nologin"]
    group = ["root:x:0:"]
    if uid != 0:
        passwd.append(f"{name}:x:{uid}:{gid}:{name}:/:/sbin/nologin")
    if gid != 0:
        group.append(f"{gname}:x:{gid}:")
    return [Item("/etc/passwd", data=("\n".join(passwd) + "\n").encode()),
            Item("/etc/group", data=("\n".join(group) + "\n").encode())]


def ca_items() -> tuple[list[Item], str]:
    """The certifi CA bundle at /etc/ssl/certs/ca-certificates.crt, and a note naming its origin."""
    try:
        import certifi
    except ImportError:
        raise BuildError("ca_certs = true needs the Python package certifi",
                         hint="pip install certifi") from None
    path = Path(certifi.where())
    return ([Item("/etc/ssl/certs/ca-certificates.crt", data=path.read_bytes())],
            f"CA bundle from certifi {getattr(certifi, '__version__', '')}".strip())


def timezone_items(zones: bool | tuple[str, ...], where: str = "timezone") -> tuple[list[Item], str]:
    """Zone files under /usr/share/zoneinfo from the ``tzdata`` package, else the host's."""
    root, origin = _zoneinfo_root()
    if zones is True:
        names = sorted(_all_zones(root))
    else:
        names = list(zones)  # type: ignore[arg-type]
    items: list[Item] = []
    for i, z in enumerate(names):
        p = root / z
        if ".." in z.split("/") or not p.is_file():
            raise BuildError(f"{where}[{i}]: unknown time zone {z!r} (not in {origin})",
                             hint="names like 'Europe/Berlin', 'America/New_York' or 'UTC'")
        data = p.read_bytes()
        if not data.startswith(b"TZif"):
            raise BuildError(f"{where}[{i}]: {p} is not a TZif zone file")
        items.append(Item(f"/usr/share/zoneinfo/{z}", data=data))
    return items, f"time zones ({len(items)}) from {origin}"


def _zoneinfo_root() -> tuple[Path, str]:
    try:
        from importlib.metadata import version
        from importlib.resources import files
        root = Path(str(files("tzdata").joinpath("zoneinfo")))
        if root.is_dir():
            return root, f"the Python package tzdata {version('tzdata')}"
    except Exception:  # noqa: BLE001 - not installed or not a plain directory
        pass
    host = Path("/usr/share/zoneinfo")
    if host.is_dir():
        return host, "the host's /usr/share/zoneinfo"
    raise BuildError("timezone needs zone data: neither the Python package tzdata nor /usr/share/zoneinfo exists",
                     hint="pip install tzdata")


def _all_zones(root: Path) -> list[str]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] in ("posix", "right") or "__" in rel or not p.is_file():
            continue
        with open(p, "rb") as f:
            if f.read(4) == b"TZif":
                out.append(rel)
    return out


# -- config, manifest, index ----------------------------------------------------------

def rfc3339(ts: int) -> str:
    """``1970-01-01T00:00:00Z`` for a Unix time."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def image_config(cfg: ProjectConfig, platform: Platform, diff_id: Digest, created: int) -> ImageConfig:
    """The image configuration: only the fields that are set, canonical JSON."""
    c: dict[str, Any] = {"Entrypoint": list(cfg.entrypoint)}
    if cfg.cmd:
        c["Cmd"] = list(cfg.cmd)
    if cfg.env:
        c["Env"] = [f"{k}={v}" for k, v in cfg.env.items()]
    if cfg.user:
        c["User"] = cfg.user
    if cfg.workdir:
        c["WorkingDir"] = cfg.workdir
    if cfg.ports:
        c["ExposedPorts"] = {p: {} for p in cfg.ports}
    if cfg.labels:
        c["Labels"] = dict(cfg.labels)
    obj: dict[str, Any] = {"architecture": platform.architecture, "os": platform.os, "config": c,
                           "created": rfc3339(created), "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]}}
    if platform.variant:
        obj["variant"] = platform.variant
    return ImageConfig.build(obj)


def assemble_image(cfg: ProjectConfig, platform: Platform, binary: bytes, extra: list[Item], *,
                   created: int, annotations: dict[str, str] | None = None,
                   compression: str = "gzip") -> PlatformImage:
    """Build one platform's layer, config and manifest in memory."""
    import io

    from ..layers import Entry, write_layer

    items = rootfs_items([Item(cfg.binary_path, "file", BIN_MODE, data=binary), *extra])
    entries = [_entry(Entry, it, created) for it in items]
    buf = io.BytesIO()
    content = sum(len(it.data) for it in items)
    info = write_layer(entries, buf, compression=compression, epoch=created,
                       level=compression_level(content, compression))
    layer = buf.getvalue()
    desc = info.descriptor()
    if desc.size != len(layer) or Digest.of(layer) != desc.digest:
        raise BuildError(f"layer for {platform}: written bytes do not match the layer descriptor")
    diff_id = info.diff_id if isinstance(info.diff_id, Digest) else Digest.parse(str(info.diff_id))
    config = image_config(cfg, platform, diff_id, created)
    manifest = Manifest.build(config.descriptor(), [desc], annotations=annotations or None)
    return PlatformImage(platform=platform, binary_bytes=len(binary), layer=layer, layer_descriptor=desc,
                         diff_id=diff_id, layer_uncompressed_bytes=int(info.uncompressed_size),
                         config=config, manifest=manifest)


def compression_level(content_bytes: int, compression: str = "gzip") -> int:
    """The level for a layer holding *content_bytes* (a pure function of the input: reproducible)."""
    if compression == "zstd":
        return 19 if content_bytes <= BEST_COMPRESSION_MAX else 9
    return 9 if content_bytes <= BEST_COMPRESSION_MAX else 6


def _entry(Entry: Any, it: Item, mtime: int) -> Any:  # noqa: N803 - the class is passed in
    kw: dict[str, Any] = {"path": it.path.lstrip("/"), "kind": it.kind, "mode": it.mode, "uid": it.uid,
                          "gid": it.gid, "mtime": mtime}
    if it.kind == "file":
        kw["data"] = it.data
    elif it.kind == "symlink":
        kw["linkname"] = it.linkname
    return Entry(**kw)


def assemble_index(images: list[PlatformImage], annotations: dict[str, str] | None = None) -> Index:
    """An OCI image index over *images*, each descriptor with its platform."""
    return Index.build([im.descriptor() for im in images], annotations=annotations or None)


__all__ = ["Item", "PlatformImage", "rootfs_items", "host_items", "passwd_items", "ca_items",
           "timezone_items", "image_config", "assemble_image", "assemble_index", "rfc3339", "compression_level"]
