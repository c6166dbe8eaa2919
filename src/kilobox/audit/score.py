"""Attack-surface score, grade A–F and the audit scope.

Score (0–100, lower is better): each finding weighs by severity (critical 25, high 10,
medium 5, low 1, info 0); one rule counts at most three times its heaviest finding (ten
setuid files are not worse than three, but a shell *and* setuid files are); plus one point
per ten executables beyond the first (at most 20). Grade: **A** ≤ 5 with nothing high or
critical, **B** ≤ 15, **C** ≤ 35, **D** ≤ 60, **E** ≤ 80, **F** above or any critical finding.

Audit scope: the files a reviewer must read to know everything that can run in the
container — every ELF file (programs and shared libraries), every script, and, when an
interpreter is present, every source file it could load.
"""

from __future__ import annotations

from .findings import RANK, Finding, is_executable
from .scan import Scan

WEIGHTS = {"critical": 25, "high": 10, "medium": 5, "low": 1, "info": 0}
RULE_CAP = 3
GRADES = (("A", 5), ("B", 15), ("C", 35), ("D", 60), ("E", 80))
_SOURCE_EXT = {"python": (".py",), "perl": (".pl", ".pm"), "ruby": (".rb",), "node": (".js", ".mjs", ".cjs"),
               "lua": (".lua",), "php": (".php",)}
SCOPE_LIST = 50


def attack_surface_score(findings: list[Finding], executables: int) -> int:
    per_rule: dict[str, list[int]] = {}
    for f in findings:
        per_rule.setdefault(f.rule, []).append(WEIGHTS[f.severity])
    total = sum(min(sum(ws), RULE_CAP * max(ws)) for ws in per_rule.values())
    total += min(20, max(0, executables - 1) // 10)
    return min(100, total)


def grade(score: int, findings: list[Finding]) -> str:
    worst = min((RANK[f.severity] for f in findings), default=len(RANK))
    if worst == RANK["critical"]:
        return "F"
    for letter, limit in GRADES:
        if score <= limit and (letter != "A" or worst > RANK["high"]):
            return letter
    return "F"


def audit_scope(scan: Scan, interpreters: set[str]) -> dict:
    """{files, bytes, paths (first :data:`SCOPE_LIST`)}: what a reviewer must read."""
    exts = tuple(x for name in interpreters for x in _SOURCE_EXT.get(name, ()))
    paths = []
    total = 0
    for e in scan.entries.values():
        if e.kind != "file":
            continue
        if e.content in ("elf", "script") or (exts and e.path.endswith(exts)):
            paths.append(e.path)
            total += e.size
    paths.sort()
    return {"files": len(paths), "bytes": total, "paths": paths[:SCOPE_LIST]}


def executables(scan: Scan) -> list[str]:
    return sorted(e.path for e in scan.entries.values() if is_executable(e))


__all__ = ["attack_surface_score", "grade", "audit_scope", "executables", "WEIGHTS", "GRADES"]
