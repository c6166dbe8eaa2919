"""The copy engine: walk a root from a :class:`Source` into a :class:`Sink`.

Manifests travel as their raw bytes, so digests never change. Blobs are
streamed, verified on the way, and skipped when the sink already has them.
Order: blobs, then child manifests, then the root — what registries require.
"""

from __future__ import annotations

from .errors import ManifestError
from .formats import Options, Sink, Source, open_sink, open_source
from .formats.base import RetryCopy
from .oci import Descriptor, Index, Manifest, Platform, VerifyingReader, parse_manifest_or_index
from .transports import Location

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable

    Progress = Callable[[str, int, int], None]

def copy_blob(src: Source, dst: Sink, desc: Descriptor, progress: Progress | None = None) -> bool:
    """Copy one blob unless *dst* has it; True when bytes moved. *progress*: (what, done, total)."""
    if dst.has_blob(desc):
        return False
    mount = getattr(dst, "mount_blob", None)   # optional sink hook: registry cross-repo mount
    if mount is not None and mount(desc, src):
        return True
    link = getattr(dst, "link_blob", None)     # optional sink hook: take a verified local file as is
    if link is not None:
        local = src.verified_blob_path(desc) if hasattr(src, "verified_blob_path") else None
        if local is not None and link(desc, local):
            if progress is not None:
                progress(desc.digest.hex[:12], desc.size, desc.size)
            return True
    with src.open_blob(desc) as raw:
        stream = raw
        if progress is not None:
            from .progress import CountingReader
            stream = CountingReader(raw, progress, desc.digest.hex[:12], desc.size)
        dst.write_blob(desc, VerifyingReader(stream, desc.digest, desc.size, what=f"blob {desc.digest}"))
    return True


def _copy_config(src: Source, dst: Sink, cfg: Descriptor) -> None:
    if not dst.has_blob(cfg):
        dst.write_manifest(cfg, src.manifest_bytes(cfg))


def _copy_layer(src: Source, dst: Sink, layer: Descriptor, progress: Progress | None) -> None:
    if layer.urls:
        # foreign layers are referenced, not copied (as skopeo does by default)
        try:
            copy_blob(src, dst, layer, progress)
        except Exception:
            pass
    else:
        copy_blob(src, dst, layer, progress)


def _copy_manifest(src: Source, dst: Sink, desc: Descriptor, raw: bytes, manifest: Manifest,
                   progress: Progress | None = None) -> None:
    """The config and the layers of one image manifest."""
    _copy_config(src, dst, manifest.config)
    for layer in manifest.layers:
        _copy_layer(src, dst, layer, progress)


def copy_root(src: Source, dst: Sink, platform: str | Platform | None = None,
              progress: Progress | None = None) -> Descriptor:
    """Copy the root of *src* into *dst* and commit; return the committed root descriptor.

    With *platform*, or when *dst* holds single images only, one manifest of an
    index is chosen (host platform by default) and copied unchanged.
    """
    root = src.root()
    raw = src.manifest_bytes(root)
    node = parse_manifest_or_index(raw, root.media_type, what=f"{src.name} root")
    if isinstance(node, Index) and (platform is not None or not dst.supports_index):
        want = platform if isinstance(platform, Platform) else (Platform.parse(platform) if platform else Platform.host())
        root = node.select(want)
        raw = src.manifest_bytes(root)
        node = parse_manifest_or_index(raw, root.media_type, what=f"manifest {root.digest}")
    root = Descriptor(root.media_type, root.digest, root.size, platform=root.platform)
    try:
        _copy_tree(src, dst, root, raw, node, progress)
    except RetryCopy:
        # the sink skipped blobs on a cache's word and the destination proved it wrong;
        # it has forgotten that cache: copy again, asking the destination this time
        _copy_tree(src, dst, root, raw, node, progress)
    return root


def _copy_tree(src: Source, dst: Sink, root: Descriptor, raw: bytes, node: Manifest | Index,
               progress: Progress | None) -> None:
    """Blobs, child manifests, then the root (committed)."""
    if isinstance(node, Index):
        for child in node.manifests:
            child_raw = src.manifest_bytes(child)
            sub = parse_manifest_or_index(child_raw, child.media_type, what=f"manifest {child.digest}")
            if isinstance(sub, Index):
                raise ManifestError(f"{src.name}: nested index {child.digest} is not supported")
            _copy_manifest(src, dst, child, child_raw, sub, progress)
            dst.write_manifest(child, child_raw)
    else:
        _copy_manifest(src, dst, root, raw, node, progress)
    dst.commit(root, raw)


def copy(src: str | Location, dst: str | Location, *, platform: str | None = None,
         options: Options | None = None) -> Descriptor:
    """Copy an image or index from *src* to *dst* (skopeo-style locations).

    >>> kilobox.copy("oci:./out:hello", "docker://127.0.0.1:5000/demo/hello:1")  # doctest: +SKIP
    """
    opts = options or Options()
    with open_source(src, opts) as s:
        if not opts.tag:
            # a sink without a tag takes the source's tag (as skopeo does)
            loc = src if isinstance(src, Location) else Location.parse(src)
            opts.tag = loc.tag or (loc.ref.tag if loc.ref else "")
            dst_loc = dst if isinstance(dst, Location) else Location.parse(dst)
            if dst_loc.transport == "docker-archive" and loc.ref is not None and loc.ref.tag:
                opts.tag = str(loc.ref.with_tag(loc.ref.tag))   # docker-archive names images by reference
        with open_sink(dst, opts) as d:
            return copy_root(s, d, platform, opts.progress)
