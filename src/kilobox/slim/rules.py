"""What an image needs besides what a trace shows: paths its config names, and rules for common needs.

Pure functions of a rootfs directory, the image config and the run options; each
returns ``(path, reason)`` pairs for :class:`kilobox.slim.plan.Plan`.

- config: WORKDIR, absolute paths in ENV values (files whole, directories empty; not PATH),
  absolute paths among the entrypoint/cmd arguments;
- user: /etc/passwd, /etc/group, /etc/nsswitch.conf when the image runs as a named or numeric user
  (the runtime resolves names there, libc's getpw* read them);
- name resolution basics: /etc/hosts, /etc/resolv.conf, /etc/host.conf (tiny; any getaddrinfo);
- dynamic loader cache: /etc/ld.so.cache when a dynamic ELF is kept;
- CA certificates: the bundle (and OpenSSL's paths to it) when a TLS library is kept;
- zoneinfo: /etc/localtime's chain, and $TZ's file;
- locale: only when LANG/LC_ALL/LC_* name one other than C/POSIX (the archive, or its directory);
- mount points: /proc, /dev, /sys and every --tmpfs target, as empty directories.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from . import rootpath

#: file systems the runtime mounts: their contents never come from the image
RUNTIME_DIRS = ("/proc", "/sys", "/dev")
_TLS_LIB = re.compile(r"/lib(ssl|crypto|gnutls|nss3|mbedtls|wolfssl|curl)[^/]*\.so")
CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem")
CA_LINKS = ("/usr/lib/ssl/cert.pem", "/usr/lib/ssl/certs", "/etc/ssl/certs/ca-bundle.crt")
USER_DB = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf")
RESOLVER = ("/etc/hosts", "/etc/resolv.conf", "/etc/host.conf")
_LOCALE_VARS = ("LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LANG")


def under(path: str, prefixes: Iterable[str]) -> bool:
    """True when *path* is one of *prefixes* or inside one."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def env_dict(env: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        k, sep, v = item.partition("=")
        if sep and k:
            out[k] = v
    return out


def tmpfs_targets(tmpfs: Iterable[str]) -> list[str]:
    return [rootpath.normalize(t.partition(":")[0]) for t in tmpfs]


def config_paths(root: Path, cfg: dict[str, Any], argv: list[str], env: list[str],
                 workdir: str) -> list[tuple[str, str]]:
    """Paths the image config names: WORKDIR, absolute paths in ENV values and command arguments."""
    out: list[tuple[str, str]] = []
    if workdir and workdir != "/":
        out.append((workdir, "WORKDIR"))
    for key, value in env_dict(env).items():
        if key == "PATH":
            continue
        for part in value.split(":"):
            if part.startswith("/") and "\0" not in part and rootpath.exists(root, part):
                out.append((part, f"named by ENV {key}"))
    for arg in argv[1:]:
        for part in (arg, arg.partition("=")[2]):
            if part.startswith("/") and "\0" not in part and len(part) < 4096 and rootpath.exists(root, part):
                out.append((part, "named in the command"))
    return out


def rule_paths(root: Path, *, env: list[str], kept: Iterable[str], user_set: bool, tmpfs: Iterable[str],
               has_dynamic_elf: bool) -> list[tuple[str, str]]:
    """The rules' paths that exist in *root* (see the module docstring)."""
    kept = list(kept)
    envd = env_dict(env)
    out: list[tuple[str, str]] = []

    def want(path: str, reason: str) -> None:
        if rootpath.exists(root, path):
            out.append((path, reason))

    if user_set:
        for p in USER_DB:
            want(p, "rule: user and group database for the image's user")
    for p in RESOLVER:
        want(p, "rule: name resolution basics")
    if has_dynamic_elf:
        want("/etc/ld.so.cache", "rule: dynamic loader cache")
    if any(_TLS_LIB.search(p) for p in kept):
        for p in CA_BUNDLES + CA_LINKS:
            want(p, "rule: CA certificates (a TLS library is kept)")
    want("/etc/localtime", "rule: zoneinfo via /etc/localtime")
    want("/etc/timezone", "rule: zoneinfo via /etc/localtime")
    tz = envd.get("TZ", "").lstrip(":")
    if tz and "\0" not in tz and ".." not in tz.split("/"):
        want(tz if tz.startswith("/") else "/usr/share/zoneinfo/" + tz, "rule: zoneinfo for $TZ")
    for var in _LOCALE_VARS:
        name = envd.get(var, "")
        if name and name not in ("C", "POSIX") and "/" not in name and "\0" not in name:
            lower = re.sub(r"\.(utf-?8)$", ".utf8", name, flags=re.I)
            want(f"/usr/lib/locale/{lower}", f"rule: locale {name} (${var})")
            want(f"/usr/lib/locale/{name}", f"rule: locale {name} (${var})")
            if not name.upper().startswith("C."):
                want("/usr/lib/locale/locale-archive", f"rule: locale {name} (${var})")
    for p in list(RUNTIME_DIRS) + tmpfs_targets(tmpfs):
        want(p, "rule: mount point")
    return out


__all__ = ["RUNTIME_DIRS", "under", "env_dict", "tmpfs_targets", "config_paths", "rule_paths"]
