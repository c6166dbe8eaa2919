"""The Python API behind the core commands: digest, inspect, unpack, tags, prune.

Each function is what the command of the same name does (``kilobox.copy`` lives
in :mod:`kilobox.copying`)::

    kilobox.digest("127.0.0.1:5000/demo/hello:1")          # 'sha256:…'
    kilobox.inspect("docker-archive:app.tar")               # dict, like `skopeo inspect`
    kilobox.unpack("oci:./lay:app", "./rootfs", platform="linux/arm64")
    kilobox.tags("127.0.0.1:5000/demo/hello")
    kilobox.prune(older_than="7d")

References use skopeo's spelling (``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]``,
``docker-archive:FILE[:TAG]``, ``docker://REF`` or a bare registry REF).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .errors import KiloboxError, NotFound, UsageError
from .formats import Options, Source, open_source
from .oci import Descriptor, Index, Manifest, Platform, parse_manifest_or_index
from .transports import Location

__all__ = ["digest", "inspect", "inspect_raw", "unpack", "tags", "prune", "parse_duration"]


def _loc(ref: str | Location) -> Location:
    return ref if isinstance(ref, Location) else Location.parse(ref)


def _plat(platform: str | Platform | None) -> Platform | None:
    if platform is None or isinstance(platform, Platform):
        return platform
    return Platform.parse(platform)


def _select(src: Source, root: Descriptor, node: Manifest | Index, want: Platform) -> Descriptor:
    """The manifest for *want*: from an index, or the root itself when its config matches."""
    if isinstance(node, Index):
        return node.select(want)
    from .oci import ImageConfig
    cfg = ImageConfig.parse(src.manifest_bytes(node.config), node.config.media_type)
    have = cfg.platform
    if not have.matches(want):
        raise NotFound(f"{src.name} is a single {have} image, not {want}",
                       hint="drop --platform, or pick an index that has it")
    return root


# -- digest ---------------------------------------------------------------------

def digest(ref: str | Location, options: Options | None = None,
           platform: str | Platform | None = None) -> str:
    """The digest of *ref*'s root manifest or index; with *platform*, of that platform's manifest.

    For a registry without *platform* a single HEAD request answers it.
    """
    loc, want = _loc(ref), _plat(platform)
    if loc.transport == "docker" and want is None:
        try:
            from .formats.registry import resolve
        except ImportError:
            resolve = None  # type: ignore[assignment]
        if resolve is not None:
            assert loc.ref is not None
            return str(resolve(loc.ref, options or Options()).digest)
    with open_source(loc, options) as src:
        root = src.root()
        if want is None:
            return str(root.digest)
        node = parse_manifest_or_index(src.manifest_bytes(root), root.media_type, what=f"{src.name} root")
        return str(_select(src, root, node, want).digest)


# -- inspect --------------------------------------------------------------------

def inspect_raw(ref: str | Location, options: Options | None = None,
                platform: str | Platform | None = None, config: bool = False) -> bytes:
    """The raw bytes of the root manifest/index (or the platform's manifest, or its config)."""
    loc, want = _loc(ref), _plat(platform)
    with open_source(loc, options) as src:
        root = src.root()
        raw = src.manifest_bytes(root)
        if want is None and not config:
            return raw
        node = parse_manifest_or_index(raw, root.media_type, what=f"{src.name} root")
        if isinstance(node, Index):
            desc = node.select(want or Platform.host())
            raw = src.manifest_bytes(desc)
            node = parse_manifest_or_index(raw, desc.media_type, what=f"manifest {desc.digest}")
        elif want is not None:
            _select(src, root, node, want)
        if config:
            if not isinstance(node, Manifest):
                raise KiloboxError(f"{src.name}: nested index")
            return src.manifest_bytes(node.config)
        return raw


def _name(loc: Location) -> str:
    if loc.transport == "docker":
        assert loc.ref is not None
        return loc.ref.repo_ref
    return f"{loc.transport}:{loc.path}"


def _repo_tags(loc: Location, src: Source, options: Options | None) -> list[str]:
    lister = getattr(src, "tags", None)
    if callable(lister):
        return list(lister())
    if loc.transport == "docker":
        with contextlib.suppress(KiloboxError, ImportError):
            return tags(loc, options)
    return []


def _image_fields(src: Source, desc: Descriptor, man: Manifest) -> dict[str, Any]:
    from .oci import ImageConfig
    cfg = ImageConfig.parse(src.manifest_bytes(man.config), man.config.media_type,
                            what=f"config {man.config.digest}")
    c = cfg.config
    out: dict[str, Any] = {
        "ImageDigest": str(desc.digest),
        "Created": cfg.obj.get("created"),
        "Architecture": cfg.platform.architecture,
        "Os": cfg.platform.os,
    }
    if cfg.platform.variant:
        out["Variant"] = cfg.platform.variant
    out.update({
        "Config": {"Digest": str(man.config.digest), "MediaType": man.config.media_type,
                   "Size": man.config.size},
        "Layers": [str(l.digest) for l in man.layers],
        "LayersData": [{"MIMEType": l.media_type, "Digest": str(l.digest), "Size": l.size,
                        "Annotations": l.annotations or None} for l in man.layers],
        "Size": man.config.size + sum(l.size for l in man.layers) + desc.size,
        "Env": cfg.env,
        "Entrypoint": cfg.entrypoint,
        "Cmd": cfg.cmd,
        "User": cfg.user,
        "WorkingDir": cfg.workdir,
        "Labels": c.get("Labels") or None,
        "ExposedPorts": sorted((c.get("ExposedPorts") or {}).keys()) or None,
    })
    if man.annotations:
        out["Annotations"] = man.annotations
    return out


def inspect(ref: str | Location, options: Options | None = None,
            platform: str | Platform | None = None) -> dict[str, Any]:
    """A JSON-able summary of *ref*, close to ``skopeo inspect``.

    Keys: Name, Tag, RepoTags, Digest (of the root), MediaType, and for one
    image (or the selected platform of an index: *platform*, else the host's
    when the index has it) ImageDigest, Created, Architecture, Os, Variant,
    Config, Layers (digests), LayersData (digest, size, media type), Size, Env,
    Entrypoint, Cmd, User, WorkingDir, Labels. An index adds Manifests
    (digest, media type, size, platform of each).
    """
    loc, want = _loc(ref), _plat(platform)
    with open_source(loc, options) as src:
        root = src.root()
        raw = src.manifest_bytes(root)
        node = parse_manifest_or_index(raw, root.media_type, what=f"{src.name} root")
        tag = loc.tag if loc.transport != "docker" else (loc.ref.tag if loc.ref else "")
        out: dict[str, Any] = {
            "Name": _name(loc),
            "Tag": tag or root.ref_name or None,
            "RepoTags": _repo_tags(loc, src, options),
            "Digest": str(root.digest),
            "MediaType": root.media_type if root.media_type else getattr(node, "media_type", ""),
        }
        if isinstance(node, Index):
            out["Manifests"] = [{"Digest": str(m.digest), "MediaType": m.media_type, "Size": m.size,
                                 "Platform": str(m.platform) if m.platform else None,
                                 **({"Annotations": m.annotations} if m.annotations else {})}
                                for m in node.manifests]
            try:
                desc = node.select(want or Platform.host())
            except NotFound:
                if want is not None:
                    raise
                return out          # no image for the host: the index alone
            child = parse_manifest_or_index(src.manifest_bytes(desc), desc.media_type,
                                            what=f"manifest {desc.digest}")
            if isinstance(child, Manifest):
                out.update(_image_fields(src, desc, child))
            return out
        if want is not None:
            _select(src, root, node, want)
        out.update(_image_fields(src, root, node))
        return out


# -- unpack ---------------------------------------------------------------------

def _rmtree(p: Path) -> None:
    def onerror(func, path, exc):  # noqa: ANN001 - read-only directories inside a rootfs
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(path), 0o755)
            func(path)
    if p.is_symlink() or not p.is_dir():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, onerror=onerror)


def unpack(ref: str | Location, dest: str | os.PathLike[str], platform: str | Platform | None = None,
           options: Options | None = None) -> dict[str, Any]:
    """Write the flattened root filesystem of *ref* into *dest* (empty or absent).

    Layers are applied in order with whiteouts (:func:`kilobox.layers.flatten`);
    nothing is written outside *dest*; on failure what was created is removed.
    Returns {"digest", "path", "layers"}.
    """
    from .image import open_image
    target = Path(dest)
    if target.is_symlink():
        raise UsageError(f"{target} is a symbolic link", hint="unpack into a real, empty directory")
    existed = target.exists()
    if existed and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} is not an empty directory", hint="choose a new or empty directory")
    with open_image(ref, _plat(platform), options) as img:
        created: list[Path] = []
        q = target
        while not q.exists():
            created.append(q)
            q = q.parent
        target.mkdir(parents=True, exist_ok=True)
        try:
            _flatten(img, target)
        except BaseException:
            if created:
                _rmtree(created[-1])      # the topmost directory we created
            else:
                for child in list(target.iterdir()):
                    _rmtree(child)
            raise
        return {"digest": img.digest, "path": str(target), "layers": len(img.layers)}


def _flatten(img: Any, dest: Path) -> None:
    """Apply *img*'s layers into *dest* through :mod:`kilobox.layers`."""
    from .layers import flatten
    flatten(img, dest)          # streams every layer to its end, so each digest is verified


# -- tags -----------------------------------------------------------------------

def tags(repo: str | Location, options: Options | None = None) -> list[str]:
    """The tags of a registry repository (any tag or digest in *repo* is ignored).

    Layouts and archives answer too: the tags they hold.
    """
    loc = _loc(repo)
    if loc.transport == "oci":
        from .formats.layout import list_tags
        return list_tags(loc.path)
    if loc.transport == "oci-archive":
        from .formats.ociarchive import list_tags as archive_tags
        return archive_tags(loc.path)
    if loc.transport == "docker-archive":
        from .formats import dockerarchive
        lister = getattr(dockerarchive, "list_tags", None)
        if callable(lister):
            return sorted(lister(loc.path))
        with open_source(loc, options) as src:
            own = getattr(src, "tags", None)
            return sorted(own()) if callable(own) else []
    from .formats.registry import list_tags as registry_tags
    assert loc.ref is not None
    return list(registry_tags(loc.ref, options or Options()))


# -- prune ----------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``90``, ``30s``, ``15m``, ``12h``, ``7d``, ``2w``."""
    if isinstance(text, (int, float)):
        if text < 0:
            raise UsageError(f"invalid duration {text!r}")
        return float(text)
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"invalid duration {text!r}", hint="use a number with s, m, h, d or w, e.g. 7d")
    return float(m.group(1)) * _UNIT[m.group(2)]


def prune(older_than: str | float | None = None, all: bool = False,  # noqa: A002 - mirrors --all
          store: Any = None) -> dict[str, Any]:
    """Remove cached entries not used for *older_than* (default 7 days).

    Without *all*, blobs and temp files are pruned; with *all*, every cache area
    (and, when *older_than* is not given, regardless of age).
    Returns {"removed", "freed", "root"}.
    """
    from .store import Store
    st = store or Store()
    if older_than is None:
        seconds = 0.0 if all else 7 * 86400.0
    else:
        seconds = parse_duration(older_than)
    areas: tuple[str, ...] = ("blobs", "tmp")
    if all and st.root.is_dir():
        areas = tuple(sorted(p.name for p in st.root.iterdir() if p.is_dir() and p.name != "locks"))
    removed, freed = st.prune(older_than=seconds, areas=areas)
    return {"removed": removed, "freed": freed, "root": str(st.root), "areas": list(areas)}
