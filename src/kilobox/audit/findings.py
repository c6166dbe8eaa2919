"""The audit rules: from a :class:`~kilobox.audit.scan.Scan` to a list of :class:`Finding`.

Every rule is a pure function over the scan (metadata and content facts collected in
the streaming pass). Programs are recognised by content where names lie (a renamed
shell, an ELF without an extension) and by name where content says nothing (scripts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

from . import libs
from .signatures import LIBRARY_SIGNATURES
from .scan import Entry, Scan

SEVERITIES = ("critical", "high", "medium", "low", "info")
RANK = {s: i for i, s in enumerate(SEVERITIES)}   # 0 = worst
MAX_PER_RULE = 2000


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    title: str
    why: str
    hint: str


RULES: dict[str, Rule] = {r.id: r for r in [
    Rule("shell", "high", "Shell", "a shell turns any command injection into arbitrary code execution",
         "remove it; build a static binary and run it directly (exec-form ENTRYPOINT)"),
    Rule("package-manager", "medium", "Package manager",
         "a package manager lets an intruder install any tool they need",
         "remove it in a final stage, or start from scratch/distroless"),
    Rule("interpreter", "medium", "Interpreter", "an interpreter runs code an attacker writes or downloads",
         "ship only the program; compile it, or remove interpreters it does not need"),
    Rule("network-tool", "medium", "Network tool", "a download/connect tool fetches payloads and exfiltrates data",
         "remove it; health checks can be a flag of the program itself"),
    Rule("setuid", "high", "Setuid file", "a setuid file runs with its owner's privileges (root) when exploited",
         "remove the file or clear the bit (chmod u-s)"),
    Rule("setgid", "medium", "Setgid file", "a setgid file runs with its group's privileges",
         "remove the file or clear the bit (chmod g-s)"),
    Rule("file-capability", "high", "File capability",
         "file capabilities grant privileges to whoever runs the file",
         "drop the security.capability xattr (setcap -r) and grant capabilities at run time if needed"),
    Rule("world-writable", "medium", "World-writable file", "any user in the container can change it",
         "chmod o-w"),
    Rule("world-writable-dir", "medium", "World-writable directory without sticky bit",
         "any user can replace or delete the files of others in it", "chmod o-w, or chmod +t"),
    Rule("dynamic-executable", "low", "Dynamically linked executable",
         "every shared library it loads is attack surface and must be patched too",
         "link statically (kilobox build does) to make the binary the whole audit scope"),
    Rule("root-user", "high", "Runs as root", "a compromise of the process is a compromise of root in the container",
         "set a numeric non-root user (USER 65532:65532 / user = in kilobox.toml)"),
    Rule("secret-file", "high", "Credential file", "credentials in an image are readable by everyone who can pull it",
         "remove it and inject secrets at run time (mounted files, environment from a secret store)"),
    Rule("secret-content", "critical", "Secret in file content",
         "a private key or token in an image is readable by everyone who can pull it",
         "remove it, rotate the secret, inject it at run time"),
    Rule("secret-env", "critical", "Secret in image environment",
         "ENV values are stored in the image config, readable by everyone who can pull it",
         "remove it from ENV, rotate it, pass it at run time"),
    Rule("timestamps", "low", "Non-reproducible timestamps",
         "varying file times make every rebuild a new digest, so images cannot be verified by rebuilding",
         "set SOURCE_DATE_EPOCH / clamp mtimes (kilobox build is reproducible)"),
]}


@dataclass
class Finding:
    rule: str
    severity: str
    path: str               # "" for image-level findings
    message: str            # one line: what, and why it matters
    hint: str
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"id": self.rule, "severity": self.severity, "path": self.path, "message": self.message,
             "hint": self.hint}
        if self.detail:
            d["detail"] = self.detail
        return d


# --------------------------------------------------------------------------- names

SHELL_NAMES = {"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "lksh", "ksh93", "pdksh", "fish", "tcsh",
               "csh", "rbash", "yash", "posh", "busybox", "toybox"}
PKG_NAMES = {"dpkg", "apt", "apt-get", "aptitude", "apk", "rpm", "dnf", "yum", "microdnf", "zypper", "pacman",
             "opkg", "pip", "pip3", "pipx", "easy_install", "npm", "yarn", "pnpm", "gem", "conda", "mamba"}
INTERP_NAMES = {"python", "python2", "python3", "perl", "node", "nodejs", "ruby", "lua", "luajit", "php",
                "tclsh", "wish", "java", "Rscript", "awk", "gawk", "mawk", "nawk", "deno", "bun"}
NET_NAMES = {"curl", "wget", "nc", "netcat", "ncat", "socat", "telnet", "ftp", "tftp", "ssh", "scp", "sftp",
             "rsync"}
_VERSIONED = re.compile(r"^(python|perl|ruby|lua|php|pip|tclsh|node)[0-9][0-9.]*$")
_SECRET_NAMES = {".env", ".git-credentials", ".netrc", ".npmrc", ".pypirc", ".htpasswd", ".pgpass",
                 "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "application_default_credentials.json",
                 "credentials.db", "access_tokens.db"}
_SECRET_PATHS = re.compile(r"(^|/)(\.aws/credentials|\.docker/config\.json|\.kube/config|\.config/gcloud/"
                           r"[^/]+\.json|\.azure/accessTokens\.json|\.ssh/id_[a-z0-9]+)$")
_DOC_DIRS = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/common-licenses/")
_SECRET_ENV_NAME = re.compile(r"(SECRET|TOKEN|PASSW(OR)?D|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH)",
                              re.I)
_TOKEN_VALUE = re.compile(r"^(ghp_[A-Za-z0-9]{36}|github_pat_\w{60,}|glpat-[\w-]{20}|xox[bpsar]-[\w-]{10,}|"
                          r"sk_live_\w{20,}|(AKIA|ASIA)[A-Z0-9]{16}|AIza[\w-]{35}|eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]+)$")
_PLACEHOLDER = re.compile(r"^(|\$\{?\w+\}?|changeme|change_me|xxx+|none|null|false|true|0|1|/.*|\*+)$", re.I)


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _program_name(name: str, names: set[str]) -> str | None:
    if name in names:
        return name
    m = _VERSIONED.match(name)
    if m and m.group(1) in names:
        return m.group(1)
    return None


def is_executable(e: Entry) -> bool:
    """A program someone can run: an ELF executable, or a file with an x bit that is ELF or a script."""
    if e.kind != "file":
        return False
    if e.elf is not None and e.elf.executable:
        return True
    return bool(e.mode & 0o111) and e.content in ("elf", "script")


# --------------------------------------------------------------------------- program rules

class _Programs:
    """Executables of the image with every path (symlinks, hardlinks) that reaches them."""

    def __init__(self, scan: Scan) -> None:
        self.scan = scan
        self.links: dict[str, list[str]] = {}
        for e in scan.entries.values():
            if e.kind in ("symlink", "hardlink"):
                t = scan.resolve(e.path)
                if t is not None and t.kind == "file":
                    self.links.setdefault(t.path, []).append(e.path)
        for v in self.links.values():
            v.sort()

    def names(self, e: Entry) -> list[str]:
        """Names under which *e* can be run from a PATH-like directory (``*/bin``, ``*/sbin``, ``/``)."""
        return [_base(p) for p in [e.path] + self.links.get(e.path, []) if _in_path_dir(p)]


def _in_path_dir(path: str) -> bool:
    parent = path.rsplit("/", 1)[0]
    return parent == "" or parent.rsplit("/", 1)[-1] in ("bin", "sbin")


def _program_findings(scan: Scan, progs: _Programs) -> Iterator[Finding]:
    for e in scan.entries.values():
        if e.kind != "file" or not (is_executable(e) or (e.mode & 0o111 and e.content in ("text", ""))):
            continue
        sigs = {s.split(":", 1)[0]: s.split(":", 1)[1] for s in e.signatures if not s.endswith(":sh")}
        generic_shell = "shell:sh" in e.signatures
        names = progs.names(e)
        links = progs.links.get(e.path, [])
        own = _base(e.path)
        yield from _shell(e, sigs, generic_shell, names, links, own)
        for rule, cat, table in (("package-manager", "pkg", PKG_NAMES), ("interpreter", "interp", INTERP_NAMES),
                                 ("network-tool", "net", NET_NAMES)):
            what = next((n for n in (_program_name(x, table) for x in names) if n), None)
            by = "name"
            if not what:
                what, by = sigs.get(cat), "content"
            if not what or (sigs.get("shell") == "busybox"):
                continue
            r = RULES[rule]
            sev = "low" if what in ("awk", "gawk", "mawk", "nawk") else r.severity
            if by == "content" and f"{cat}:{what}" in LIBRARY_SIGNATURES:
                label = f"{own} (uses lib{what})" if own != what else what
            else:
                renamed = by == "content" and _program_name(own, table) is None and not any(
                    _program_name(_base(p), table) for p in links)
                label = f"{what} (renamed to {own})" if renamed else what
            msg = f"{label}: {r.why}"
            yield Finding(rule, sev, e.path, msg, r.hint, _detail(by, what, links))


def _shell(e: Entry, sigs: dict, generic: bool, names: list[str], links: list[str], own: str) -> Iterator[Finding]:
    r = RULES["shell"]
    what = sigs.get("shell")
    by = "content"
    if not what and generic and e.elf is not None:
        what = "sh"
    if not what:
        what = next((n for n in names if n in SHELL_NAMES), None)
        by = "name"
        if what in ("busybox", "toybox") and e.content != "elf":
            what = None
    if not what:
        return
    detail = _detail(by, what, links)
    if what in ("busybox", "toybox"):
        detail["applets"] = len(links)
        shown = ", ".join(sorted({_base(p) for p in links})[:8])
        msg = (f"{what} with {len(links)} applet link{'s' if len(links) != 1 else ''}"
               f"{' (' + shown + ', …)' if links else ''}: a shell plus network and file tools in one binary")
    else:
        renamed = by == "content" and own not in SHELL_NAMES and not any(_base(p) in SHELL_NAMES for p in links)
        via = [p for p in links if _base(p) == "sh"]
        msg = f"{what}{' (renamed to ' + own + ')' if renamed else ''}" + (f", reached as {via[0]}" if via else "")
        msg += f": {r.why}"
    yield Finding("shell", r.severity, e.path, msg, r.hint, detail)


def _detail(by: str, what: str, links: list[str]) -> dict:
    d: dict = {"program": what, "detected_by": by}
    if links:
        d["links"] = links[:50]
        if len(links) > 50:
            d["links_total"] = len(links)
    return d


# --------------------------------------------------------------------------- file rules

def _file_findings(scan: Scan) -> Iterator[Finding]:
    for e in scan.entries.values():
        if e.kind == "symlink":
            continue
        if e.kind in ("file", "hardlink"):
            owner = "root" if e.uid == 0 else f"uid {e.uid}"
            if e.mode & 0o4000:
                r = RULES["setuid"]
                yield Finding("setuid", r.severity if e.uid == 0 else "medium", e.path,
                              f"setuid {owner} ({oct(e.mode)}): {r.why}", r.hint, {"mode": oct(e.mode), "uid": e.uid})
            if e.mode & 0o2000:
                r = RULES["setgid"]
                yield Finding("setgid", r.severity, e.path, f"setgid gid {e.gid} ({oct(e.mode)}): {r.why}", r.hint,
                              {"mode": oct(e.mode), "gid": e.gid})
            if e.caps:
                r = RULES["file-capability"]
                yield Finding("file-capability", r.severity, e.path, f"capabilities {e.caps}: {r.why}", r.hint,
                              {"capabilities": e.caps})
        if e.mode & 0o002 and e.kind not in ("char", "block"):
            if e.kind == "dir":
                if not e.mode & 0o1000:
                    r = RULES["world-writable-dir"]
                    yield Finding(r.id, r.severity, e.path, f"directory mode {oct(e.mode)}: {r.why}", r.hint,
                                  {"mode": oct(e.mode)})
            else:
                r = RULES["world-writable"]
                yield Finding(r.id, r.severity, e.path, f"mode {oct(e.mode)}: {r.why}", r.hint, {"mode": oct(e.mode)})


def _secret_findings(scan: Scan) -> Iterator[Finding]:
    for e in scan.entries.values():
        if e.kind != "file":
            continue
        name = _base(e.path)
        if e.secrets and not e.path.startswith(_DOC_DIRS):
            r = RULES["secret-content"]
            kinds = ", ".join(e.secrets)
            yield Finding(r.id, r.severity, e.path, f"contains {kinds}: {r.why}", r.hint, {"kinds": list(e.secrets)})
        elif (name in _SECRET_NAMES or name.startswith(".env.") or _SECRET_PATHS.search(e.path)) and e.size:
            r = RULES["secret-file"]
            yield Finding(r.id, r.severity, e.path, f"{name}: {r.why}", r.hint, {})


def _env_findings(scan: Scan) -> Iterator[Finding]:
    r = RULES["secret-env"]
    for item in scan.runtime_config.get("Env") or []:
        if not isinstance(item, str):
            continue
        k, _, v = item.partition("=")
        token = bool(_TOKEN_VALUE.match(v))
        named = bool(_SECRET_ENV_NAME.search(k)) and not _PLACEHOLDER.match(v) and len(v) >= 8
        if token or named:
            yield Finding(r.id, r.severity, "", f"ENV {k}=<redacted, {len(v)} chars>"
                          f"{' looks like a token' if token else ''}: {r.why}", r.hint, {"variable": k})


def user_of(scan: Scan) -> tuple[str, int | None]:
    """(the configured User, its uid when known; 0 when unset)."""
    user = str(scan.runtime_config.get("User") or "")
    name = user.split(":", 1)[0]
    if not name:
        return user, 0
    if name.isdigit():
        return user, int(name)
    for line in scan.captured.get("/etc/passwd", b"").decode("utf-8", "replace").splitlines()[:10000]:
        f = line.split(":")
        if len(f) >= 3 and f[0] == name and f[2].isdigit():
            return user, int(f[2])
    return user, (0 if name == "root" else None)


def _user_findings(scan: Scan) -> Iterator[Finding]:
    r = RULES["root-user"]
    user, uid = user_of(scan)
    if uid == 0:
        what = "User is unset (defaults to root)" if not user else f"User {user!r} is root"
        yield Finding(r.id, r.severity, "", f"{what}: {r.why}", r.hint, {"user": user})


def _timestamp_findings(scan: Scan) -> Iterator[Finding]:
    times = {e.mtime for e in scan.entries.values()}
    if len(times) > 1:
        r = RULES["timestamps"]
        import datetime as dt

        def iso(t: int) -> str:
            try:
                return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d")
            except (OverflowError, OSError, ValueError):
                return str(t)
        yield Finding(r.id, r.severity, "", f"{len(times)} distinct file times ({iso(min(times))} … "
                      f"{iso(max(times))}): {r.why}", r.hint, {"distinct_mtimes": len(times)})


def _dynamic_findings(scan: Scan, resolver: "libs.Resolver") -> Iterator[Finding]:
    r = RULES["dynamic-executable"]
    for e in scan.entries.values():
        if e.kind == "file" and e.elf is not None and e.elf.executable and e.elf.dynamic:
            closure = resolver.closure(e)
            missing = [n for n, p in closure.items() if p is None]
            detail = {"interpreter": e.elf.interp, "needed": e.elf.needed[:64],
                      "libraries": sorted(p for p in closure.values() if p)[:200]}
            if missing:
                detail["missing"] = missing[:64]
            n = len(closure)
            yield Finding(r.id, r.severity, e.path, f"loads {n} shared librar{'y' if n == 1 else 'ies'}"
                          f"{' (' + str(len(missing)) + ' not found)' if missing else ''}: {r.why}", r.hint, detail)


def run_rules(scan: Scan, resolver: "libs.Resolver | None" = None) -> list[Finding]:
    """Every finding of *scan*, worst first; at most :data:`MAX_PER_RULE` per rule."""
    resolver = resolver or libs.Resolver(scan)
    progs = _Programs(scan)
    gens: list[Callable[[], Iterator[Finding]]] = [
        lambda: _user_findings(scan), lambda: _env_findings(scan), lambda: _secret_findings(scan),
        lambda: _program_findings(scan, progs), lambda: _file_findings(scan),
        lambda: _dynamic_findings(scan, resolver), lambda: _timestamp_findings(scan)]
    out: list[Finding] = []
    per_rule: dict[str, int] = {}
    for g in gens:
        for f in g():
            per_rule[f.rule] = per_rule.get(f.rule, 0) + 1
            if per_rule[f.rule] <= MAX_PER_RULE:
                out.append(f)
    out.sort(key=lambda f: (RANK[f.severity], f.rule, f.path))
    return out


def worst(findings: list[Finding]) -> str | None:
    return min((f.severity for f in findings), key=lambda s: RANK[s], default=None)


def count_by_severity(findings: list[Finding]) -> dict[str, int]:
    out = {s: 0 for s in SEVERITIES}
    for f in findings:
        out[f.severity] += 1
    return out


def parse_severity(text: str) -> str:
    from ..errors import UsageError
    s = text.strip().lower()
    if s not in RANK:
        raise UsageError(f"unknown severity {text!r}", hint=f"use one of {', '.join(SEVERITIES)}")
    return s


def at_least(findings: list[Finding], severity: str) -> list[Finding]:
    """Findings of *severity* or worse."""
    limit = RANK[parse_severity(severity)]
    return [f for f in findings if RANK[f.severity] <= limit]


__all__ = ["Finding", "Rule", "RULES", "SEVERITIES", "RANK", "run_rules", "worst", "count_by_severity",
           "parse_severity", "at_least", "is_executable", "user_of"]
