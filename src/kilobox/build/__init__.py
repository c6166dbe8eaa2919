"""Build micro-containers: C or Zig sources, or any static binary, into OCI images.

::

    kilobox.build("examples/httpd", output="oci:out:httpd")
    kilobox.build(binaries=["./app"], entrypoint="/app", output="docker-archive:app.tar")

The pipeline, one module per step: :mod:`.config` (kilobox.toml) →
:mod:`.toolchain` (compile) → :mod:`.elf` (checks) → :mod:`.assemble` (layer,
config, manifest, index, all in memory) → :mod:`.report` (sizes, budget) →
the copy engine into every requested sink. Nothing reaches a destination
unless every step succeeded and the image fits its budget.

Submodules are imported inside :func:`build` so ``import kilobox.build.config`` stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._record import Record

TYPE_CHECKING = False  # typing stays unimported at run time (see _record.py for why that matters)
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Sequence

    from ..formats import Options
    from ..oci import Descriptor, Digest, Platform
    from .config import ProjectConfig
    from .report import BuildReport

    Progress = Callable[[str], None]


class BuildResult(Record):
    """What :func:`build` made: the report, the root descriptor and every blob (in memory)."""

    __slots__ = ("report", "root", "blobs")

    def __init__(self, report: "BuildReport", root: "Descriptor", blobs: "dict[Digest, bytes]") -> None:
        self.report = report
        self.root = root
        self.blobs = blobs

    def __repr__(self) -> str:  # the blobs are bytes: leave them out
        return f"BuildResult(report={self.report!r}, root={self.root!r})"

    @property
    def digest(self) -> str:
        return str(self.root.digest)

    def source(self) -> "Any":
        """A :class:`~kilobox.formats.memory.MemorySource` over the result (to copy it elsewhere)."""
        from ..formats.memory import MemorySource
        return MemorySource(self.root, self.blobs, name=f"build:{self.report.name}")


def build(project: str | os.PathLike[str] | None = None, *,
          output: str | Sequence[str] | None = None, push: str | None = None,
          platforms: str | Sequence[str] | None = None, max_size: int | str | None = None,
          tag: str | None = None, binaries: str | os.PathLike[str] | Sequence[str] | Mapping[str, str] | None = None,
          name: str | None = None, entrypoint: str | Sequence[str] | None = None,
          cmd: str | Sequence[str] | None = None, env: Mapping[str, str] | Sequence[str] | None = None,
          user: str | None = None, options: "Options | None" = None,
          progress: "Progress | None" = None, created: int | None = None) -> BuildResult:
    """Build the project at *project* (a directory with kilobox.toml), or a prebuilt binary.

    *binaries*: ``PATH`` or ``PLATFORM=PATH`` items (or a mapping); without a platform the
    architecture is read from the ELF header. The other keywords override kilobox.toml.
    Raises :class:`~kilobox.errors.BudgetExceeded` (with ``.report``) when over budget;
    nothing is written then, nor on any other error.
    """
    from ..errors import BudgetExceeded, UsageError
    from ..formats import Options
    from .assemble import assemble_image, assemble_index, rfc3339
    from .report import budget_message

    dests = _destinations(output, push)
    cfg = _configure(project, binaries, name)
    cfg = _overrides(cfg, platforms=platforms, max_size=max_size, tag=tag, entrypoint=entrypoint,
                     cmd=cmd, env=env, user=user)
    if len(cfg.platforms) > 1:
        for d in dests:
            if d.transport == "docker-archive":
                raise UsageError(f"docker-archive holds a single platform, but {len(cfg.platforms)} were "
                                 f"requested ({', '.join(map(str, cfg.platforms))})",
                                 hint="pick one with --platform linux/amd64, or write oci: / oci-archive:")

    warnings: list[str] = []
    notes: list[str] = []
    binaries_by_platform = _binaries(cfg, warnings, progress)
    extra = _extra_items(cfg, notes)
    ts = created if created is not None else source_date_epoch(cfg.project_dir)
    annotations = dict(git_annotations(cfg.project_dir, ts)) if cfg.git_annotations and cfg.project_dir else {}
    annotations.update(cfg.annotations)
    annotations = {k: v for k, v in annotations.items() if v != ""}

    multi = len(cfg.platforms) > 1
    images = [assemble_image(cfg, p, binaries_by_platform[p], extra, created=ts,
                             annotations=None if multi else annotations) for p in cfg.platforms]
    blobs: dict = {}
    for im in images:
        blobs.update(im.blobs)
    if multi:
        index = assemble_index(images, annotations)
        root = index.descriptor()
        blobs[index.digest] = index.raw
        index_digest, index_bytes = str(index.digest), len(index.raw)
    else:
        root = images[0].descriptor()
        index_digest, index_bytes = None, 0

    report = _report(cfg, images, root, rfc3339(ts), index_digest, index_bytes, warnings, notes)
    result = BuildResult(report=report, root=root, blobs=blobs)
    if not report.ok:
        exc = BudgetExceeded(budget_message(report),
                             hint="shrink the binary (see the table) or raise max_size / --max-size")
        exc.report = report  # type: ignore[attr-defined]
        raise exc

    opts = options or Options()
    for loc in dests:
        _write(result, loc, opts, cfg)
        report.destinations.append(str(loc))
    return result


def init(directory: str | os.PathLike[str], lang: str = "c") -> list[Path]:
    """Scaffold a project (kilobox.toml, main.c or main.zig, README.md); the files written."""
    from .templates import scaffold
    return scaffold(directory, lang)


# -- steps ------------------------------------------------------------------------------------

def _destinations(output: str | Sequence[str] | None, push: str | None) -> list:
    from ..transports import Location
    outs = [output] if isinstance(output, (str, Location)) else list(output or [])
    locs = [o if isinstance(o, Location) else Location.parse(o) for o in outs]
    if push:
        from ..oci import Reference
        ref = push[len("docker://"):] if push.startswith("docker://") else push
        locs.append(Location("docker", ref=Reference.parse(ref)))
    return locs


def _configure(project: Any, binaries: Any, name: str | None) -> "ProjectConfig":
    from ..errors import UsageError
    from . import config as C
    if project is not None:
        cfg = C.load_config(project)
        if name:
            cfg = cfg.with_(name=_checked_name(name))
        if binaries:
            cfg = cfg.with_(lang="", sources=(), binary=_binary_map(binaries))
        return cfg
    if not binaries:
        raise UsageError("nothing to build: give a project directory (with kilobox.toml) or --binary PATH",
                         hint="kilobox build DIR, or kilobox build --binary ./app --entrypoint /app")
    bmap = _binary_map(binaries)
    first = next(iter(bmap.values()))
    nm = _checked_name(name) if name else (C._default_name(first.name) or "app")
    return C.ProjectConfig(name=nm, binary=bmap, entrypoint=(f"/{nm}",), platforms=())


def _checked_name(name: str) -> str:
    from ..errors import UsageError
    from . import config as C
    if not C.valid_name(name):
        raise UsageError(f"invalid image name {name!r}", hint="lower case letters, digits and . _ - separators")
    return name


def _binary_map(binaries: Any) -> dict[str, Path]:
    """``{"linux/arm64": Path, "*": Path}`` from PATH / PLATFORM=PATH items or a mapping."""
    from collections.abc import Mapping

    from ..errors import UsageError
    from . import config as C
    items: list[tuple[str, str]]
    if isinstance(binaries, Mapping):
        items = [(str(k), str(v)) for k, v in binaries.items()]
    else:
        seq = [binaries] if isinstance(binaries, (str, os.PathLike)) else list(binaries)
        items = []
        for b in seq:
            b = os.fspath(b)
            plat, sep, path = b.partition("=")
            items.append((plat, path) if sep and "/" in plat and not os.path.exists(b) else ("*", b))
    out: dict[str, Path] = {}
    for plat, path in items:
        key = "*" if plat == "*" else str(C.parse_platform(plat, f"--binary {plat}"))
        if key in out:
            raise UsageError(f"--binary: two binaries for {'the same platform' if key == '*' else key}",
                             hint="give one PATH, or one PLATFORM=PATH per platform")
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"--binary: {path} does not exist or is not a file")
        out[key] = p.absolute()
    if "*" in out and len(out) > 1:
        raise UsageError("--binary: mix of PATH and PLATFORM=PATH", hint="give PLATFORM=PATH for every binary")
    return out


def _split(words: str) -> tuple[str, ...]:
    """Split like a shell (``shlex``, imported only when *words* has quotes, escapes or spaces)."""
    if words and not any(c in words for c in " \t\n\r\f\v'\"\\#"):
        return (words,)
    import shlex
    return tuple(shlex.split(words))


def _overrides(cfg: "ProjectConfig", **kw: Any) -> "ProjectConfig":
    from collections.abc import Mapping

    from ..errors import BuildError, UsageError
    from . import config as C
    changes: dict[str, Any] = {}
    try:
        if kw["platforms"]:
            changes["platforms"] = C.parse_platforms(kw["platforms"] if isinstance(kw["platforms"], str)
                                                     else list(kw["platforms"]), "--platform")
        if kw["max_size"] is not None:
            changes["max_size"] = C.parse_size(kw["max_size"], "--max-size")
        if kw["tag"]:
            if not C.valid_tag(kw["tag"]):
                raise UsageError(f"--tag: invalid tag {kw['tag']!r}")
            changes["tag"] = kw["tag"]
        ep = kw["entrypoint"]
        if ep:
            ep = _split(ep) if isinstance(ep, str) else tuple(ep)
            changes["entrypoint"] = (C.image_path(ep[0], "--entrypoint"), *ep[1:])
        if kw["cmd"] is not None:
            changes["cmd"] = _split(kw["cmd"]) if isinstance(kw["cmd"], str) else tuple(kw["cmd"])
        if kw["env"]:
            env = dict(cfg.env)
            pairs = kw["env"].items() if isinstance(kw["env"], Mapping) else (C.parse_env_item(e, "--env") for e in kw["env"])
            env.update(pairs)
            changes["env"] = env
        if kw["user"]:
            changes["user"] = C.parse_user(kw["user"], "--user")
    except BuildError as e:
        raise UsageError(e.message, hint=e.hint) from None
    cfg = cfg.with_(**changes)
    if not cfg.platforms:  # --binary without --platform: read the ELF headers
        cfg = cfg.with_(platforms=_sniff_platforms(cfg.binary))
    if cfg.binary and "*" not in cfg.binary:
        missing = [str(p) for p in cfg.platforms if str(p) not in cfg.binary]
        if missing:
            raise UsageError(f"no binary for platform {', '.join(missing)}",
                             hint="give PLATFORM=PATH for it, or leave it out of --platform")
    elif "*" in cfg.binary and len(cfg.platforms) > 1:
        raise UsageError(f"one binary cannot serve {len(cfg.platforms)} platforms",
                         hint="give one binary per platform: --binary linux/arm64=PATH (binary table in kilobox.toml)")
    return cfg


def _sniff_platforms(bmap: dict[str, Path]) -> tuple["Platform", ...]:
    from ..oci import Platform
    plats = []
    for key, path in bmap.items():
        plats.append(Platform.parse(key) if key != "*" else sniff_platform(path))
    return tuple(plats)


def sniff_platform(path: Path) -> "Platform":
    """The platform of an ELF executable from its first 20 bytes (``EM_ARM`` is taken as ``arm/v7``).

    Only identifies; :func:`kilobox.build.elf.check_binary` then checks the whole file.
    """
    from ..errors import BuildError
    from ..oci import Platform
    from .elf import ARCHES, MACHINES, inspect_binary
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError as e:
        raise BuildError(f"cannot read binary {path}: {e.strerror}") from None
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        inspect_binary(path)  # raises the precise error
        raise BuildError(f"{path}: not an ELF executable")
    endian = "little" if head[5] == 1 else "big"
    machine = MACHINES.get(int.from_bytes(head[18:20], endian), f"e_machine {int.from_bytes(head[18:20], endian)}")
    bits = 64 if head[4] == 2 else 32
    for arch, spec in ARCHES.items():
        if spec == (machine, bits, endian):
            return Platform("linux", arch, "v7" if arch == "arm" else "")
    raise BuildError(f"{path}: no OCI platform known for {machine} {bits}-bit {endian}-endian",
                     hint="name it: --binary PLATFORM=PATH or --platform")


def _binaries(cfg: "ProjectConfig", warnings: list[str], progress: "Progress | None") -> dict:
    """platform → binary bytes (compiled or given), each read once and ELF-checked."""
    from .elf import check_bytes, read_binary

    paths: dict = {}
    if cfg.binary:
        for p in cfg.platforms:
            paths[p] = cfg.binary.get(str(p)) or cfg.binary["*"]
    else:
        paths = _compile_all(cfg, progress)
    out = {}
    for p, path in paths.items():
        data = read_binary(path)
        info = check_bytes(data, p, path)
        warnings.extend(f"{p}: {w}" for w in info.warnings)
        out[p] = data
    return out


def _compile_all(cfg: "ProjectConfig", progress: "Progress | None") -> dict:
    from .toolchain import Target, compile_sources

    def one(p: "Platform") -> Path:
        return compile_sources(cfg.lang, list(cfg.sources), Target.from_platform(p), cflags=list(cfg.cflags),
                               ldflags=list(cfg.ldflags), freestanding=cfg.freestanding, progress=progress,
                               base_dir=cfg.project_dir)

    if len(cfg.platforms) == 1:
        return {cfg.platforms[0]: one(cfg.platforms[0])}
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(len(cfg.platforms), os.cpu_count() or 1)) as ex:
        futures = {p: ex.submit(one, p) for p in cfg.platforms}
        return {p: f.result() for p, f in futures.items()}


def _extra_items(cfg: "ProjectConfig", notes: list[str]) -> list:
    from . import assemble as A
    items: list = []
    if cfg.workdir and cfg.workdir != "/":   # the runtime would have to create it (as root)
        items.append(A.Item(cfg.workdir, "dir", A.DIR_MODE))
    for i, spec in enumerate(cfg.files):
        items += A.host_items(spec.source, spec.target, spec.mode, spec.uid, spec.gid,
                              f"{cfg.path or 'files'}: key 'files[{i}]'")
    if cfg.passwd:
        uid, gid = cfg.uid_gid
        items += A.passwd_items(cfg.user, uid, gid)
    if cfg.ca_certs:
        ca, note = A.ca_items()
        items += ca
        notes.append(note)
    if cfg.timezone:
        tz, note = A.timezone_items(cfg.timezone)
        items += tz
        notes.append(note)
    return items


def _report(cfg: "ProjectConfig", images: list, root: "Descriptor", created: str, index_digest: str | None,
            index_bytes: int, warnings: list[str], notes: list[str]) -> "BuildReport":
    from .report import BuildReport, PlatformFigures
    figs = [PlatformFigures(platform=str(im.platform), digest=str(im.manifest.digest), binary_bytes=im.binary_bytes,
                            layer_bytes=im.layer_descriptor.size, layer_uncompressed_bytes=im.layer_uncompressed_bytes,
                            config_bytes=len(im.config.raw), manifest_bytes=len(im.manifest.raw),
                            index_bytes=index_bytes, budget_bytes=cfg.max_size) for im in images]
    return BuildReport(name=cfg.name, tag=cfg.tag, root_digest=str(root.digest), root_media_type=root.media_type,
                       created=created, platforms=figs, index_digest=index_digest, index_bytes=index_bytes,
                       budget_bytes=cfg.max_size, warnings=warnings, notes=notes)


def _write(result: BuildResult, loc: Any, opts: "Options", cfg: "ProjectConfig") -> None:
    from ..copying import copy_root
    from ..formats import open_sink
    tag = cfg.tag
    if loc.transport == "docker-archive" and not loc.tag:
        tag = f"{cfg.name}:{cfg.tag}"
    # the sink's default tag matters only when the location names none (oci:DIR, docker-archive:FILE)
    o = opts if opts.tag or loc.tag or loc.transport == "docker" else _with_tag(opts, tag)
    with open_sink(loc, o) as sink:
        copy_root(result.source(), sink, None, o.progress)


def _with_tag(opts: "Options", tag: str) -> "Options":
    """A copy of *opts* with *tag* (whether Options is a dataclass or a plain slots class)."""
    import copy
    o = copy.copy(opts)
    o.tag = tag
    return o


# -- reproducible time and git metadata ------------------------------------------------------

def source_date_epoch(project_dir: Path | None) -> int:
    """``SOURCE_DATE_EPOCH``, else the last git commit touching *project_dir*, else 0."""
    from ..errors import BuildError
    env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if env:
        if not env.isdigit() or int(env) > 253402300799:
            raise BuildError(f"SOURCE_DATE_EPOCH={env!r} is not a Unix time in seconds",
                             hint="unset it, or set it to e.g. $(git log -1 --format=%ct)")
        return int(env)
    if project_dir is not None:
        out = _git(project_dir, "log", "-1", "--format=%ct", "--", ".")
        if out and out.isdigit():
            return int(out)
    return 0


def git_annotations(project_dir: Path, created: int) -> dict[str, str]:
    """org.opencontainers.image.{revision,source,version,created} from git, when *project_dir* is in a repo."""
    from .assemble import rfc3339
    rev = _git(project_dir, "rev-parse", "HEAD")
    if not rev:
        return {}
    pre = "org.opencontainers.image."
    ann = {pre + "revision": rev, pre + "created": rfc3339(created)}
    url = _git(project_dir, "config", "--get", "remote.origin.url")
    if url:
        ann[pre + "source"] = _strip_credentials(url)
    version = _git(project_dir, "describe", "--tags", "--abbrev=0")
    if version:
        ann[pre + "version"] = version
    return ann


def _strip_credentials(url: str) -> str:
    """``https://user:token@host/x`` → ``https://host/x`` (never publish a token in an image)."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def _git(cwd: Path, *args: str) -> str:
    import subprocess
    try:
        p = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, timeout=10,
                           stdin=subprocess.DEVNULL, env=dict(os.environ, GIT_TERMINAL_PROMPT="0",
                                                              GIT_OPTIONAL_LOCKS="0"))
    except (OSError, subprocess.SubprocessError):
        return ""
    return p.stdout.decode(errors="replace").strip() if p.returncode == 0 else ""


class _CallableModule(type(os)):  # type: ignore[misc]
    """``kilobox.build(...)`` works even when the name ``kilobox.build`` is this package.

    ``kilobox.build`` is the public API function, but importing any submodule
    (``kilobox.build.config``) binds the package to that attribute of ``kilobox``.
    Calling the package calls :func:`build`.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> BuildResult:
        return build(*args, **kwargs)


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _CallableModule

__all__ = ["build", "init", "BuildResult", "source_date_epoch", "git_annotations", "sniff_platform"]
