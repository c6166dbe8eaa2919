"""Runtime bundles, cached per (image digest, run options).

``Store().area("bundles")/<key>/`` holds ``config.json`` (validated-shape OCI
runtime config), ``meta.json`` (what kilobox needs to launch it), an empty
``rootfs/`` mount point and an empty ``scratch/`` (tmpfs overlay upper).
Bundles are immutable once renamed into place, so any number of containers
share one: each mounts its root at ``rootfs/`` inside its own mount namespace.

The warm path (:func:`lookup`) maps (location, platform, options) to a bundle
through ``bundles/refs/<hash>.ref``, validated by the (mtime, size, inode) of
the file that names the image (a layout's index.json, an archive) and of the
bundle's ``meta.json``: a warm ``kilobox run`` reads one small file (a copy of
``meta.json`` in :mod:`marshal` form — no :mod:`json` import on that path) and
starts the runtime.
"""

from __future__ import annotations

import os

from ..errors import RunError
from .options import RunOptions

META_VERSION = 1
#: first bytes of a ref file; the rest is marshal((key text, stamp_path, stamp, meta_stamp, meta))
REF_MAGIC = b"kilobox-ref 3\n"


def _sha(text: str) -> str:
    try:
        from _sha256 import sha256  # builtin: avoids loading OpenSSL on the warm path
    except ImportError:  # pragma: no cover - other Pythons
        from hashlib import sha256
    return sha256(text.encode()).hexdigest()


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _store_root() -> str:
    """Same rule as :func:`kilobox.store.default_root` (not imported: it pulls in the image model)."""
    env = os.environ.get("KILOBOX_CACHE")
    if env:
        return env
    xdg = os.environ.get("XDG_CACHE_HOME")
    return os.path.join(xdg, "kilobox") if xdg else os.path.join(os.path.expanduser("~"), ".cache", "kilobox")


def normal_location(location: str) -> str:
    """*location* with a file path made absolute (``oci:out:hello`` names another image elsewhere)."""
    for t in ("oci:", "oci-archive:", "docker-archive:"):
        if location.startswith(t):
            path, sep, tag = location[len(t):].partition(":")
            return t + os.path.abspath(path) + sep + tag
    return location


def _key_text(location: str, platform: str | None, opts: RunOptions) -> str:
    return f"{normal_location(location)}\0{platform or ''}\0{os.uname().machine}\0{opts.key()}"


def _fnv(text: str) -> str:
    """FNV-1a, 64 bits, as hex (no hashlib import on the warm path; a ref holds its whole key text,
    so a collision is a cache miss, never a wrong bundle)."""
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def ref_key(location: str, platform: str | None, opts: RunOptions) -> str:
    """The name of the ref file for *location* + *platform* + *opts* (``bundles/refs/<key>.ref``)."""
    return _fnv(_key_text(location, platform, opts))


def lookup(location: str, platform: str | None, opts: RunOptions, store_root: object = None) -> dict[str, object] | None:
    """The cached bundle for *location* + *opts*, if nothing it depends on has changed."""
    from marshal import loads          # builtin
    root = os.fspath(store_root) if store_root is not None else _store_root()
    text = _key_text(location, platform, opts)
    try:
        with open(os.path.join(root, "bundles", "refs", _fnv(text) + ".ref"), "rb") as f:
            data = f.read(1 << 20)
        if not data.startswith(REF_MAGIC):
            return None
        key, stamp_path, stamp, meta_stamp, meta = loads(data[len(REF_MAGIC):])
        if (key != text or not isinstance(stamp_path, str) or not isinstance(meta, dict) or meta.get("v") != META_VERSION
                or not isinstance(meta.get("dir"), str) or not isinstance(meta.get("rootfs"), str)):
            return None
        if stamp is None or _stamp(stamp_path) != stamp or not os.path.isdir(meta["rootfs"]):
            return None
        if _stamp(os.path.join(meta["dir"], "meta.json")) != meta_stamp:
            return None
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return meta


def remember(location: str, platform: str | None, opts: RunOptions, meta: dict[str, object], stamp_path: str | None,
             store_root: object = None) -> None:
    """Record the warm-path entry for *location* (no-op when it has no stamp file)."""
    if not stamp_path:
        return
    stamp = _stamp(stamp_path)
    meta_stamp = _stamp(os.path.join(str(meta["dir"]), "meta.json"))
    if stamp is None or meta_stamp is None:
        return
    from marshal import dumps
    root = os.fspath(store_root) if store_root is not None else _store_root()
    text = _key_text(location, platform, opts)
    refs = os.path.join(root, "bundles", "refs")
    path = os.path.join(refs, _fnv(text) + ".ref")
    os.makedirs(refs, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(REF_MAGIC + dumps((text, stamp_path, stamp, meta_stamp, dict(meta))))
    os.replace(tmp, path)
    try:                                  # the JSON ref of earlier versions (sha256-named)
        os.unlink(os.path.join(refs, _sha(text)[:40] + ".json"))
    except OSError:
        pass


def stamp_path_for(location: str) -> str | None:
    """The file whose change means *location* may name another image now."""
    from ..transports import Location
    loc = Location.parse(location)
    if loc.transport == "oci":
        return os.path.join(os.path.realpath(loc.path), "index.json")
    if loc.transport in ("oci-archive", "docker-archive"):
        return os.path.realpath(loc.path)
    return None


def make_bundle(rootfs: object, image_cfg: dict[str, object], opts: RunOptions, *, image: str, digest: str = "",
                store: object = None) -> dict[str, object]:
    """The bundle for *rootfs* + image config + *opts*: from the cache, or generated and cached."""
    import json
    from pathlib import Path

    from . import rootfs as rfs
    from . import spec
    from .seccomp import oci_profile
    rootfs = Path(rootfs)
    if store is None:
        from ..store import Store
        store = Store()
    basis = digest or f"rootfs:{rootfs}:{_sha(json.dumps(image_cfg, sort_keys=True))}"
    key = _sha(f"{basis}\0{os.uname().machine}\0{opts.key()}")[:40]
    area = store.area("bundles")
    bdir = area / key
    meta_path = bdir / "meta.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            if isinstance(meta, dict) and meta.get("v") == META_VERSION and os.path.isdir(meta.get("rootfs", "")):
                return meta
        except (OSError, ValueError, TypeError):
            pass
        from ..store import _rmtree
        _rmtree(bdir)                 # damaged: rebuild it
    uid, gid, gids = rfs.resolve_user(rootfs, spec.user_spec(image_cfg, opts))
    spec.check_root(uid, opts, image)
    argv = spec.command(image_cfg, opts)
    env = spec.merge_env(list(image_cfg.get("Env") or []), opts.env)
    cwd = opts.workdir or image_cfg.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        cwd = "/" + cwd
    rfs.find_executable(rootfs, argv[0], env, cwd)
    wanted = list(rfs.BASE_MOUNTPOINTS) + [spec.tmpfs_mount(t)["destination"] for t in opts.tmpfs]
    mkdirs = rfs.missing_dirs(rootfs, wanted + ([cwd] if cwd != "/" else []))
    overlay = "disk" if opts.read_write else ("tmpfs" if mkdirs else "")
    if overlay and any(c in str(rootfs) for c in ",:\\"):
        raise RunError(f"rootfs path {rootfs} contains ',', ':' or '\\' (unusable as an overlay lower dir)",
                       hint="move the store: set KILOBOX_CACHE to a plain path")
    caps = opts.cap_add
    seccomp = oci_profile(caps) if opts.seccomp == "default" else None
    annotations = {"org.kilobox.image": image[:512], **({"org.kilobox.digest": digest} if digest else {})}
    if seccomp is not None:
        annotations.update(_precompiled_seccomp(seccomp, store))
    config = spec.runtime_config(argv=argv, env=env, cwd=cwd, uid=uid, gid=gid, gids=gids, opts=opts,
                                 seccomp=seccomp, annotations=annotations)
    meta = {"v": META_VERSION, "dir": str(bdir), "rootfs": str(rootfs), "overlay": overlay, "mkdirs": mkdirs,
            "has_limits": opts.has_limits, "image": image, "digest": digest, "argv": argv,
            "user": f"{uid}:{gid}", "network": opts.network}
    tmp = store.temp_dir("bundle.")
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        (tmp / "rootfs").mkdir()
        (tmp / "scratch").mkdir()
        meta_tmp = dict(meta)
        (tmp / "meta.json").write_text(json.dumps(meta_tmp, indent=1))
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, bdir)
        except OSError:
            if not meta_path.is_file():
                raise
            from ..store import _rmtree
            _rmtree(tmp)
    except BaseException:
        if tmp.exists():
            from ..store import _rmtree
            _rmtree(tmp)
        raise
    return meta


def _precompiled_seccomp(section: dict[str, object], store: object) -> dict[str, str]:
    """crun's annotation with the filter compiled once (runc and youki ignore it and compile)."""
    from .runtimes import which
    from .seccomp import CRUN_BPF_ANNOTATION, crun_bpf
    crun = which("crun")
    if not crun or os.geteuid() != 0:
        return {}
    bpf = crun_bpf(section, crun, store.area("seccomp"))
    if not bpf:
        return {}
    import base64
    return {CRUN_BPF_ANNOTATION: base64.b64encode(bpf).decode()}


def local_image(location: str, *, platform: str | None = None, options: object = None, store: object = None,
                pull: bool = True) -> tuple[str, str | None]:
    """A location kilobox can open locally: registry references are pulled once into the store.

    Returns (local location, stamp file).
    """
    from ..transports import Location
    loc = Location.parse(location)
    if loc.transport != "docker":
        return location, stamp_path_for(location)
    if store is None:
        from ..store import Store
        store = Store()
    images = store.area("images")
    tag = str(loc.ref)
    local = f"oci:{images}:{tag}"
    stamp = str(images / "index.json")
    try:
        from ..formats.layout import list_tags
        if tag in list_tags(images):
            return local, stamp
    except Exception:  # noqa: BLE001 - no layout yet: pull
        pass
    if not pull:
        from ..errors import NotFound
        raise NotFound(f"{location} is not in the local store")
    from ..copying import copy
    with store.lock("images"):
        copy(f"docker://{loc.ref}", local, platform=platform or None, options=options)
    return local, stamp


def check_platform(img: object, location: str, platform: str | None) -> None:
    """Refuse an image of another OS/architecture unless --platform asked for it (qemu binfmt)."""
    from ..oci import Platform
    want = Platform.parse(platform) if platform else Platform.host()
    have = img.config.platform  # type: ignore[attr-defined]
    if have.architecture and (have.os, have.architecture) != (want.os, want.architecture):
        raise RunError(f"{location} is a {have.os}/{have.architecture} image; this host runs "
                       f"{want.os}/{want.architecture}",
                       hint="pass --platform to run it anyway (needs qemu-user-static binfmt handlers)")


def prepare(location: str, opts: RunOptions, *, platform: str | None = None, options: object = None,
            store: object = None) -> dict[str, object]:
    """The bundle for image *location* + *opts* (cold path: pull, unpack once, generate, cache)."""
    from ..image import open_image
    from .rootfs import ensure_rootfs
    if store is None:
        from ..store import Store
        store = Store()
    local, stamp = local_image(location, platform=platform, options=options, store=store)
    with open_image(local, platform) as img:
        check_platform(img, location, platform)
        rootfs = ensure_rootfs(img, store)
        meta = make_bundle(rootfs, img.config.config, opts, image=location, digest=img.digest, store=store)
    remember(location, platform, opts, meta, stamp, store.root)
    return meta
