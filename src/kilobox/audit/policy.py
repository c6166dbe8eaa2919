"""A TOML policy gate over an audit report (``kilobox audit --policy FILE``).

Keys (top level, or under a ``[policy]`` table; unknown keys are refused)::

    fail_on = "high"                      # any finding of this severity or worse
    forbid_rules = ["secret-file"]        # any finding of these rules
    forbid_shells = true                  # same as forbid_rules = ["shell"]
    forbid_package_managers = true
    forbid_interpreters = true
    forbid_network_tools = true
    forbid_setuid = true                  # setuid, setgid and file capabilities
    require_non_root = true
    max_size = "20MiB"                    # compressed; max_unpacked_size: unpacked
    max_files = 100
    max_executables = 1
    max_scope_files = 1
    min_grade = "B"
    allowed_packages = ["musl", "ca-*"]   # every package must match one (fnmatch)
    denied_packages = ["openssl*"]
    ignore_paths = ["/usr/bin/tini"]      # findings on these paths (fnmatch) are ignored
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .findings import RANK, parse_severity
from .report import AuditReport
from .score import GRADES

_BOOL = {"forbid_shells": ["shell"], "forbid_package_managers": ["package-manager"],
         "forbid_interpreters": ["interpreter"], "forbid_network_tools": ["network-tool"],
         "forbid_setuid": ["setuid", "setgid", "file-capability"]}
_INT = ("max_files", "max_executables", "max_scope_files")
_SIZE = ("max_size", "max_unpacked_size")
_LIST = ("forbid_rules", "allowed_packages", "denied_packages", "ignore_paths")
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


@dataclass
class Policy:
    fail_on: str | None = None
    forbid_rules: list[str] = field(default_factory=list)
    require_non_root: bool = False
    max_size: int | None = None
    max_unpacked_size: int | None = None
    max_files: int | None = None
    max_executables: int | None = None
    max_scope_files: int | None = None
    min_grade: str | None = None
    allowed_packages: list[str] | None = None
    denied_packages: list[str] = field(default_factory=list)
    ignore_paths: list[str] = field(default_factory=list)


def parse_size(value: object, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise UsageError(f"policy: {key} = {value!r} is not a size", hint="use bytes or e.g. \"20MiB\", \"5MB\"")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def load_policy(path: str | Path) -> Policy:
    import tomllib
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read policy {p}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"policy {p} is not valid TOML: {e}", hint="see docs/audit.md for the policy keys") from None
    except RecursionError:
        raise UsageError(f"policy {p} is not valid TOML: nested too deep",
                         hint="see docs/audit.md for the policy keys") from None
    return parse_policy(doc, str(p))


def parse_policy(doc: dict, where: str = "policy") -> Policy:
    if isinstance(doc.get("policy"), dict) and len(doc) == 1:
        doc = doc["policy"]
    pol = Policy()
    for key, value in doc.items():
        if key in _BOOL:
            if not isinstance(value, bool):
                raise UsageError(f"{where}: {key} must be true or false")
            if value:
                pol.forbid_rules.extend(_BOOL[key])
        elif key == "require_non_root":
            if not isinstance(value, bool):
                raise UsageError(f"{where}: {key} must be true or false")
            pol.require_non_root = value
        elif key == "fail_on":
            pol.fail_on = parse_severity(str(value))
        elif key == "min_grade":
            if str(value).upper() not in [g for g, _ in GRADES] + ["F"]:
                raise UsageError(f"{where}: min_grade {value!r} is not a grade", hint="use A, B, C, D, E or F")
            pol.min_grade = str(value).upper()
        elif key in _INT:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UsageError(f"{where}: {key} must be a non-negative integer")
            setattr(pol, key, value)
        elif key in _SIZE:
            setattr(pol, key, parse_size(value, key))
        elif key in _LIST:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"{where}: {key} must be a list of strings")
            if key == "forbid_rules":
                pol.forbid_rules.extend(value)
            else:
                setattr(pol, key, list(value))
        else:
            raise UsageError(f"{where}: unknown key {key!r}", hint="see docs/audit.md for the policy keys")
    from .findings import RULES
    unknown = [r for r in pol.forbid_rules if r not in RULES]
    if unknown:
        raise UsageError(f"{where}: unknown rule {unknown[0]!r}", hint=f"rules: {', '.join(RULES)}")
    return pol


def evaluate(report: AuditReport, pol: Policy) -> list[str]:
    """One line per violation (empty: the image passes)."""
    out: list[str] = []
    s = report.summary
    findings = [f for f in report.findings
                if not (f.path and any(fnmatch.fnmatchcase(f.path, pat) for pat in pol.ignore_paths))]
    if pol.fail_on:
        bad = [f for f in findings if RANK[f.severity] <= RANK[pol.fail_on]]
        if bad:
            out.append(f"{len(bad)} finding{'s' if len(bad) != 1 else ''} at or above {pol.fail_on} "
                       f"(first: {bad[0].rule} {bad[0].path or '(config)'})")
    for rule in dict.fromkeys(pol.forbid_rules):
        hits = [f for f in findings if f.rule == rule]
        if hits:
            paths = ", ".join(f.path or "(config)" for f in hits[:3])
            out.append(f"forbidden: {rule} ({len(hits)}: {paths}{', …' if len(hits) > 3 else ''})")
    if pol.require_non_root and not s["non_root"]:
        out.append(f"must not run as root (User {s['user']!r})")
    for key, actual in (("max_size", s["compressed_bytes"]), ("max_unpacked_size", s["total_bytes"]),
                        ("max_files", s["files"]), ("max_executables", s["executables"]),
                        ("max_scope_files", s["scope"]["files"])):
        limit = getattr(pol, key)
        if limit is not None and actual > limit:
            out.append(f"{key}: {actual} > {limit}")
    if pol.min_grade and s["grade"] > pol.min_grade:
        out.append(f"grade {s['grade']} is worse than {pol.min_grade}")
    for p in report.packages:
        if pol.allowed_packages is not None and not any(fnmatch.fnmatchcase(p.name, pat) for pat in pol.allowed_packages):
            out.append(f"package not allowed: {p.name} {p.version} ({p.type})")
        if any(fnmatch.fnmatchcase(p.name, pat) for pat in pol.denied_packages):
            out.append(f"package denied: {p.name} {p.version} ({p.type})")
    return out


__all__ = ["Policy", "load_policy", "parse_policy", "evaluate", "parse_size"]
