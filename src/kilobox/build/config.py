"""``kilobox.toml``: parse, validate, and describe a build.

Parsing is two steps, as in *packaging*: :func:`load_config` reads TOML (a
syntax error names the file and line), :func:`parse_config` validates the
table into a frozen :class:`ProjectConfig`. Every error names the file and the
key, e.g. ``examples/x/kilobox.toml: key 'platforms[2]': unknown platform
'linux/foo'``; unknown keys are errors with a "did you mean" suggestion.

Pure apart from reading the TOML file and checking that listed paths exist.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from ..errors import BuildError
from ..oci.platform import Platform
from .._record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONFIG_NAME = "kilobox.toml"
DEFAULT_USER = "65532:65532"
DEFAULT_PLATFORMS = ("linux/amd64",)

#: platforms kilobox can build or check a binary for
KNOWN_PLATFORMS = (
    "linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/riscv64",
    "linux/386", "linux/ppc64le", "linux/s390x", "linux/mips64le", "linux/loong64",
)
#: well-known user names accepted in ``user`` (uid, gid)
KNOWN_USERS = {"root": (0, 0), "nonroot": (65532, 65532), "nobody": (65534, 65534)}

# patterns as strings: re compiles (and caches) each on first use, keeping the import cheap
_NAME_RE = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
_TAG_RE = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_ENV_KEY_RE = r"[A-Za-z_][A-Za-z0-9_]*"
_PORT_RE = r"([0-9]{1,5})(?:/(tcp|udp|sctp))?"
_ZONE_RE = r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*"
_SIZE_RE = r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*"
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024 ** 2, "mb": 1000 ** 2,
               "mib": 1024 ** 2, "g": 1024 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3}


class FileSpec(FrozenRecord):
    """An extra file (or directory tree) copied into the image."""

    __slots__ = ("source", "target", "mode", "uid", "gid")

    def __init__(self, source: Path, target: str, mode: int | None, uid: int = 0, gid: int = 0) -> None:
        # source: absolute path on the host; target: absolute path in the image;
        # mode None: 0755 if the source is executable, else 0644
        self._set(source=source, target=target, mode=mode, uid=uid, gid=gid)

    source: Path
    target: str
    mode: int | None
    uid: int
    gid: int


class ProjectConfig(FrozenRecord):
    """A validated build description (from kilobox.toml or from command-line flags)."""

    __slots__ = ("name", "project_dir", "path", "tag", "lang", "sources", "cflags", "ldflags", "freestanding",
                 "binary", "entrypoint", "cmd", "env", "workdir", "user", "ports", "labels", "annotations",
                 "git_annotations", "platforms", "max_size", "files", "ca_certs", "timezone", "passwd")

    def __init__(self, name: str,
                 project_dir: Path | None = None,      # None for ``--binary`` builds without a project
                 path: Path | None = None,             # the kilobox.toml it came from
                 tag: str = "latest",
                 lang: str = "",                       # "c" | "zig" | "" (prebuilt binary)
                 sources: tuple[Path, ...] = (),
                 cflags: tuple[str, ...] = (),
                 ldflags: tuple[str, ...] = (),
                 freestanding: bool = False,
                 binary: dict[str, Path] | None = None,  # platform (or "*") -> path
                 entrypoint: tuple[str, ...] = (),
                 cmd: tuple[str, ...] | None = None,
                 env: dict[str, str] | None = None,
                 workdir: str = "",
                 user: str = DEFAULT_USER,
                 ports: tuple[str, ...] = (),
                 labels: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None,
                 git_annotations: bool = True,
                 platforms: tuple[Platform, ...] = (),
                 max_size: int | None = None,
                 files: tuple[FileSpec, ...] = (),
                 ca_certs: bool = False,
                 timezone: bool | tuple[str, ...] = False,
                 passwd: bool = False) -> None:
        self._set(name=name, project_dir=project_dir, path=path, tag=tag, lang=lang, sources=sources,
                  cflags=cflags, ldflags=ldflags, freestanding=freestanding,
                  binary=binary if binary is not None else {}, entrypoint=entrypoint, cmd=cmd,
                  env=env if env is not None else {}, workdir=workdir, user=user, ports=ports,
                  labels=labels if labels is not None else {},
                  annotations=annotations if annotations is not None else {},
                  git_annotations=git_annotations, platforms=platforms, max_size=max_size, files=files,
                  ca_certs=ca_certs, timezone=timezone, passwd=passwd)

    # the fields (set by _set above)
    name: str
    project_dir: Path | None
    path: Path | None
    tag: str
    lang: str
    sources: tuple[Path, ...]
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    freestanding: bool
    binary: dict[str, Path]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] | None
    env: dict[str, str]
    workdir: str
    user: str
    ports: tuple[str, ...]
    labels: dict[str, str]
    annotations: dict[str, str]
    git_annotations: bool
    platforms: tuple[Platform, ...]
    max_size: int | None
    files: tuple[FileSpec, ...]
    ca_certs: bool
    timezone: bool | tuple[str, ...]
    passwd: bool

    @property
    def binary_path(self) -> str:
        """Where the binary goes in the image: the entrypoint's first element."""
        return self.entrypoint[0] if self.entrypoint else f"/{self.name}"

    @property
    def uid_gid(self) -> tuple[int, int]:
        return user_ids(self.user)

    def with_(self, **changes: "Any") -> "ProjectConfig":
        return self._replace(**changes)  # type: ignore[return-value]


# -- small parsers (also used by the CLI) -------------------------------------------

def valid_name(name: str) -> bool:
    """True for an image name kilobox accepts (lower case, digits, . _ - separators, ≤ 128)."""
    return len(name) <= 128 and re.fullmatch(_NAME_RE, name) is not None


def valid_tag(tag: str) -> bool:
    return re.fullmatch(_TAG_RE, tag) is not None


def parse_size(value: Any, where: str = "size") -> int:
    """Bytes from ``16KiB``, ``1KB`` (1000), ``1024``, ``1.5MiB``; a bare ``K``/``M`` is binary."""
    if isinstance(value, bool):
        raise BuildError(f"{where}: expected a size like '16KiB', got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise BuildError(f"{where}: size must be positive, got {value}")
        return value
    if not isinstance(value, str):
        raise BuildError(f"{where}: expected a size like '16KiB', got {type(value).__name__}")
    m = re.fullmatch(_SIZE_RE, value)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _SIZE_UNITS:
        raise BuildError(f"{where}: invalid size {value!r}",
                         hint="use bytes or a unit: B, KB, KiB, MB, MiB, e.g. '16KiB'")
    n = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if n <= 0:
        raise BuildError(f"{where}: size must be positive, got {value!r}")
    return n


def parse_platform(text: Any, where: str = "platform") -> Platform:
    """A :class:`Platform` among :data:`KNOWN_PLATFORMS` (``linux/arm64/v8`` is ``linux/arm64``)."""
    if not isinstance(text, str):
        raise BuildError(f"{where}: expected a string like 'linux/amd64', got {type(text).__name__}")
    try:
        p = Platform.parse(text)
    except Exception:
        p = None
    if p is not None and p.architecture == "arm64" and p.variant == "v8":
        p = Platform(p.os, p.architecture)
    if p is not None and p.architecture == "arm" and not p.variant:
        p = Platform(p.os, "arm", "v7")
    if p is None or str(p) not in KNOWN_PLATFORMS:
        raise BuildError(f"{where}: unknown platform {text!r}",
                         hint="known platforms: " + ", ".join(KNOWN_PLATFORMS))
    return p


def parse_platforms(value: Any, where: str = "platforms") -> tuple[Platform, ...]:
    """A non-empty list (or comma-separated string) of distinct platforms."""
    items = [s.strip() for s in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise BuildError(f"{where}: expected a non-empty list of platforms like ['linux/amd64']")
    out: list[Platform] = []
    for i, item in enumerate(items):
        p = parse_platform(item, f"{where}[{i}]")
        if p in out:
            raise BuildError(f"{where}[{i}]: platform {p} is listed twice")
        out.append(p)
    return tuple(out)


def user_ids(user: str) -> tuple[int, int]:
    """(uid, gid) of a ``user`` value: ``UID[:GID]`` or a well-known name (root, nonroot, nobody)."""
    if user in KNOWN_USERS:
        return KNOWN_USERS[user]
    uid, _, gid = user.partition(":")
    if uid.isdigit() and (not gid or gid.isdigit()):
        return int(uid), int(gid or uid)
    raise ValueError(f"invalid user {user!r}")


def parse_user(value: Any, where: str = "user") -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise BuildError(f"{where}: expected 'UID:GID' like '65532:65532', got {type(value).__name__}")
    text = str(value)
    try:
        uid, gid = user_ids(text)
    except ValueError:
        raise BuildError(f"{where}: invalid user {text!r}",
                         hint="use UID[:GID] (numbers, e.g. '65532:65532') or root, nonroot, nobody") from None
    if uid > 0xFFFFFFFE or gid > 0xFFFFFFFE:
        raise BuildError(f"{where}: uid/gid out of range in {text!r}")
    return text


def parse_port(value: Any, where: str = "ports") -> str:
    """``8080/tcp`` from ``8080``, ``"8080"`` or ``"8080/udp"``."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    m = re.fullmatch(_PORT_RE, text) if isinstance(text, str) else None
    if not m or not 1 <= int(m.group(1)) <= 65535:
        raise BuildError(f"{where}: invalid port {value!r}", hint="use PORT[/tcp|udp|sctp], e.g. '8080/tcp'")
    return f"{int(m.group(1))}/{m.group(2) or 'tcp'}"


def parse_env_item(text: str, where: str = "env") -> tuple[str, str]:
    """``KEY=VALUE`` → (KEY, VALUE)."""
    key, sep, val = text.partition("=")
    if not sep or not re.fullmatch(_ENV_KEY_RE, key):
        raise BuildError(f"{where}: expected KEY=VALUE, got {text!r}")
    return key, val


def image_path(value: Any, where: str) -> str:
    """An absolute, normalised path inside the image (no '..', no NUL)."""
    if not isinstance(value, str) or not value:
        raise BuildError(f"{where}: expected an absolute path in the image, like '/app'")
    if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
        raise BuildError(f"{where}: {value!r} must be an absolute path without '..'")
    norm = posixpath.normpath(value)
    if norm == "/":
        raise BuildError(f"{where}: {value!r} is the image root, not a file path")
    return norm


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` or ''."""
    import difflib
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- the validator ----------------------------------------------------------------

class _V:
    """Reads one table, naming the file and key in every error."""

    def __init__(self, data: dict[str, Any], where: str, base: Path) -> None:
        self.data, self.where, self.base = data, where, base

    def fail(self, key: str, msg: str, hint: str | None = None) -> BuildError:
        return BuildError(f"{self.where}: key {key!r}: {msg}", hint=hint)

    def wrap(self, exc: BuildError) -> BuildError:
        """Re-prefix a helper's ``key: message`` with the file."""
        return BuildError(f"{self.where}: key {exc.message.split(':', 1)[0]!r}:"
                          f"{exc.message.split(':', 1)[1]}", hint=exc.hint)

    def typed(self, key: str, kind: type, what: str, default: Any = None) -> Any:
        if key not in self.data:
            return default
        v = self.data[key]
        if not isinstance(v, kind):
            raise self.fail(key, f"expected {what}, got {_tname(v)}")
        return v

    def string(self, key: str, default: str = "") -> str:
        return self.typed(key, str, "a string", default)

    def boolean(self, key: str, default: bool = False) -> bool:
        return self.typed(key, bool, "true or false", default)

    def str_list(self, key: str, *, split: bool = False) -> tuple[str, ...] | None:
        """A list of strings; with *split*, a string is split like a shell would."""
        v = self.data.get(key)
        if v is None:
            return None
        if isinstance(v, str) and split:
            import shlex
            try:
                return tuple(shlex.split(v))
            except ValueError as e:
                raise self.fail(key, f"cannot split {v!r}: {e}") from None
        if not isinstance(v, list):
            raise self.fail(key, f"expected a list of strings, got {_tname(v)}")
        for i, s in enumerate(v):
            if not isinstance(s, str):
                raise self.fail(f"{key}[{i}]", f"expected a string, got {_tname(s)}")
        return tuple(v)

    def str_map(self, key: str, *, scalars: bool = False) -> dict[str, str]:
        v = self.data.get(key, {})
        if not isinstance(v, dict):
            raise self.fail(key, f"expected a table of strings, got {_tname(v)}")
        out: dict[str, str] = {}
        for k, s in v.items():
            if scalars and isinstance(s, (int, float)) and not isinstance(s, bool):
                s = str(s)
            if not isinstance(s, str):
                raise self.fail(f"{key}.{k}", f"expected a string, got {_tname(s)}")
            out[k] = s
        return out

    def host_path(self, key: str, value: Any, *, must_exist: bool = True) -> Path:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a file path, got {_tname(value)}")
        p = (self.base / value).absolute()
        if must_exist and not p.exists():
            raise self.fail(key, f"file not found: {_rel(p)}", hint="paths are relative to the directory of kilobox.toml")
        return p


def _tname(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


KEYS = ("name", "tag", "lang", "sources", "cflags", "ldflags", "freestanding", "binary", "entrypoint",
        "cmd", "env", "workdir", "user", "ports", "labels", "annotations", "git_annotations", "platforms",
        "max_size", "files", "ca_certs", "timezone", "passwd")
FILE_KEYS = ("source", "target", "mode", "owner")


def parse_config(data: dict[str, Any], where: str, base: Path, default_name: str = "") -> ProjectConfig:
    """Validate a parsed kilobox.toml table. *where* names the file in messages; paths resolve against *base*."""
    v = _V(data, where, base)
    for key in data:
        if key not in KEYS:
            raise v.fail(key, "unknown key" + suggest(key, KEYS),
                         hint="see docs/build.md for the keys of kilobox.toml")

    name = v.string("name", default_name)
    if not name:
        raise v.fail("name", "missing", hint="add name = \"myapp\" (lower case letters, digits, . _ -)")
    if not valid_name(name):
        raise v.fail("name", f"invalid image name {name!r}", hint="use lower case letters, digits and . _ - separators")
    tag = v.string("tag", "latest")
    if not valid_tag(tag):
        raise v.fail("tag", f"invalid tag {tag!r}", hint="letters, digits, _ . - (at most 128)")

    lang = v.string("lang", "")
    if lang and lang not in ("c", "zig"):
        raise v.fail("lang", f"unsupported language {lang!r}" + suggest(lang, ["c", "zig"]), hint="use \"c\" or \"zig\"")
    sources_raw = v.str_list("sources")
    binary = _parse_binary(v)
    if binary and (lang or sources_raw):
        raise v.fail("binary", "give either 'binary' or 'lang' + 'sources', not both")
    if not binary:
        if not lang:
            raise v.fail("lang", "missing", hint="set lang = \"c\" or \"zig\" with sources = [...], or binary = \"path\"")
        if not sources_raw:
            raise v.fail("sources", "missing or empty", hint="list the source files, e.g. sources = [\"main.c\"]")
    sources = tuple(v.host_path(f"sources[{i}]", s) for i, s in enumerate(sources_raw or ()))
    for key in ("cflags", "ldflags", "freestanding"):
        if key in data and binary:
            raise v.fail(key, "only applies when compiling from sources (lang + sources)")

    ep = (data["entrypoint"],) if isinstance(data.get("entrypoint"), str) else v.str_list("entrypoint")
    entrypoint = ep if ep is not None else (f"/{name}",)
    if not entrypoint:
        raise v.fail("entrypoint", "must not be empty")
    entrypoint = (_wrap(v, "entrypoint", lambda: image_path(entrypoint[0], "entrypoint")), *entrypoint[1:])

    env = v.str_map("env", scalars=True)
    for k in env:
        if not re.fullmatch(_ENV_KEY_RE, k):
            raise v.fail(f"env.{k}", "invalid variable name")
    workdir = v.string("workdir", "")
    if workdir and not workdir.startswith("/"):
        raise v.fail("workdir", f"{workdir!r} must be an absolute path")
    user = _wrap(v, "user", lambda: parse_user(data.get("user", DEFAULT_USER), "user"))
    ports_raw = data.get("ports", [])
    if not isinstance(ports_raw, list):
        raise v.fail("ports", f"expected a list like ['8080/tcp'], got {_tname(ports_raw)}")
    ports = tuple(_wrap(v, f"ports[{i}]", lambda p=p, i=i: parse_port(p, f"ports[{i}]")) for i, p in enumerate(ports_raw))

    platforms = _wrap(v, "platforms", lambda: parse_platforms(data.get("platforms", list(DEFAULT_PLATFORMS))))
    max_size = None
    if "max_size" in data:
        max_size = _wrap(v, "max_size", lambda: parse_size(data["max_size"], "max_size"))

    timezone: bool | tuple[str, ...] = False
    tz = data.get("timezone", False)
    if isinstance(tz, bool):
        timezone = tz
    elif isinstance(tz, list):
        for i, z in enumerate(tz):
            if not isinstance(z, str) or not re.fullmatch(_ZONE_RE, z):
                raise v.fail(f"timezone[{i}]", f"invalid time zone name {z!r}", hint="e.g. 'Europe/Berlin' or 'UTC'")
        timezone = tuple(tz)
    else:
        raise v.fail("timezone", f"expected true/false or a list of zones, got {_tname(tz)}")

    for key in binary:
        if key != "*" and Platform.parse(key) not in platforms:
            raise v.fail(f"binary.{key}", f"platform {key} is not in platforms",
                         hint="add it to platforms, or remove this binary")

    return ProjectConfig(
        name=name, project_dir=base, tag=tag, lang=lang, sources=sources,
        cflags=v.str_list("cflags", split=True) or (), ldflags=v.str_list("ldflags", split=True) or (),
        freestanding=v.boolean("freestanding"), binary=binary, entrypoint=entrypoint,
        cmd=v.str_list("cmd", split=True), env=env, workdir=workdir, user=user, ports=ports,
        labels=v.str_map("labels"), annotations=v.str_map("annotations"),
        git_annotations=v.boolean("git_annotations", True), platforms=platforms, max_size=max_size,
        files=_parse_files(v), ca_certs=v.boolean("ca_certs"), timezone=timezone, passwd=v.boolean("passwd"),
    )


def _wrap(v: _V, key: str, fn: Any) -> Any:
    try:
        return fn()
    except BuildError as e:
        raise v.wrap(e) from None


def _parse_binary(v: _V) -> dict[str, Path]:
    raw = v.data.get("binary")
    if raw is None:
        return {}
    if isinstance(raw, str):
        return {"*": v.host_path("binary", raw)}
    if not isinstance(raw, dict) or not raw:
        raise v.fail("binary", f"expected a path or a table of platform = path, got {_tname(raw)}")
    out: dict[str, Path] = {}
    for plat, path in raw.items():
        p = _wrap(v, f"binary.{plat}", lambda plat=plat: parse_platform(plat, f"binary.{plat}"))
        out[str(p)] = v.host_path(f"binary.{plat}", path)
    return out


def _parse_files(v: _V) -> tuple[FileSpec, ...]:
    raw = v.data.get("files", [])
    if not isinstance(raw, list):
        raise v.fail("files", f"expected an array of tables ([[files]]), got {_tname(raw)}")
    out: list[FileSpec] = []
    for i, item in enumerate(raw):
        key = f"files[{i}]"
        if not isinstance(item, dict):
            raise v.fail(key, f"expected a table with source and target, got {_tname(item)}")
        for k in item:
            if k not in FILE_KEYS:
                raise v.fail(f"{key}.{k}", "unknown key" + suggest(k, FILE_KEYS))
        if "source" not in item:
            raise v.fail(f"{key}.source", "missing")
        source = v.host_path(f"{key}.source", item["source"])
        if "target" not in item:
            raise v.fail(f"{key}.target", "missing", hint="the absolute path in the image, e.g. '/www/index.html'")
        target = _wrap(v, f"{key}.target", lambda: image_path(item["target"], f"{key}.target"))
        mode = item.get("mode")
        if mode is not None:
            mode = _parse_mode(v, f"{key}.mode", mode)
        uid = gid = 0
        if "owner" in item:
            o = item["owner"]
            try:
                uid, gid = user_ids(str(o)) if isinstance(o, (str, int)) and not isinstance(o, bool) else (-1, -1)
            except ValueError:
                uid = -1
            if uid < 0:
                raise v.fail(f"{key}.owner", f"invalid owner {o!r}", hint="use UID[:GID], e.g. '65532:65532'")
        out.append(FileSpec(source=source, target=target, mode=mode, uid=uid, gid=gid))
    return tuple(out)


def _parse_mode(v: _V, key: str, mode: Any) -> int:
    if isinstance(mode, str) and re.fullmatch(r"0?o?[0-7]{3,4}", mode):
        mode = int(mode.replace("o", ""), 8)
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777:
        raise v.fail(key, f"invalid mode {mode!r}", hint="use an octal number: mode = 0o644 or mode = \"0644\"")
    return mode


def find_config(path: str | Path) -> Path:
    """The kilobox.toml for *path* (a project directory or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / CONFIG_NAME
    if not p.is_file():
        raise BuildError(f"{path}: no {CONFIG_NAME} found",
                         hint="create one with: kilobox init --lang c NAME, or build a binary with --binary")
    return p


def load_config(path: str | Path) -> ProjectConfig:
    """Read and validate the kilobox.toml of a project directory (or the file itself)."""
    import tomllib
    file = find_config(path)
    where = str(path if Path(path).is_file() else Path(path) / CONFIG_NAME)
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise BuildError(f"{where}: cannot read: {e.strerror}") from None
    if len(raw) > 1 << 20:
        raise BuildError(f"{where}: {len(raw)} bytes is too large for a kilobox.toml (limit 1 MiB)")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BuildError(f"{where}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        if msg.endswith("(at end of document)"):
            lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
            msg = msg.replace("(at end of document)", f"(at line {lines}, the end of the file)")
        raise BuildError(f"{where}: invalid TOML: {msg}", hint="see https://toml.io for the syntax") from None
    except RecursionError:
        raise BuildError(f"{where}: invalid TOML: nested too deeply") from None
    default_name = _default_name(file.parent.absolute().name)
    return parse_config(data, where, file.parent.absolute(), default_name).with_(path=Path(where))


def _default_name(dirname: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", dirname.lower()).strip("._-")
    return name if valid_name(name) else ""


__all__ = ["CONFIG_NAME", "DEFAULT_USER", "KNOWN_PLATFORMS", "FileSpec", "ProjectConfig", "find_config",
           "load_config", "parse_config", "parse_platform", "parse_platforms", "parse_port", "parse_size",
           "parse_user", "parse_env_item", "image_path", "user_ids", "valid_name", "valid_tag"]
