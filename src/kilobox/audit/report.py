"""The audit report: image facts, summary, findings, packages; JSON (stable, ``kilobox.audit/v1``) and text."""

from __future__ import annotations

from dataclasses import dataclass, field

from .findings import SEVERITIES, Finding, count_by_severity, run_rules, user_of
from .libs import Resolver
from .packages import Package, find_packages, os_release
from .scan import Scan
from .score import attack_surface_score, audit_scope, executables, grade

SCHEMA = "kilobox.audit/v1"


@dataclass
class AuditReport:
    scan: Scan
    findings: list[Finding]
    packages: list[Package]
    summary: dict = field(default_factory=dict)

    @property
    def grade(self) -> str:
        return self.summary["grade"]

    @property
    def score(self) -> int:
        return self.summary["score"]

    def image_info(self) -> dict:
        s = self.scan
        cfg = s.config if isinstance(s.config, dict) else {}
        osr = os_release(s)
        return {
            "name": s.name, "digest": s.digest,
            "platform": "/".join(x for x in (str(cfg.get("os", "")), str(cfg.get("architecture", "")),
                                             str(cfg.get("variant", "") or "")) if x),
            "created": str(cfg.get("created", "") or ""),
            "os_release": osr.get("PRETTY_NAME", ""),
            "layers": [{"digest": ly.digest, "media_type": ly.media_type, "size": ly.compressed_size,
                        "entries": ly.entries, "file_bytes": ly.file_bytes} for ly in s.layers],
        }

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "image": self.image_info(), "summary": self.summary,
                "findings": [f.to_dict() for f in self.findings],
                "packages": [p.to_dict() for p in self.packages],
                "warnings": list(self.scan.warnings)}


def build_report(scan: Scan) -> AuditReport:
    """Run every rule over *scan* and summarise."""
    resolver = Resolver(scan)
    findings = run_rules(scan, resolver)
    packages = find_packages(scan)
    exe = executables(scan)
    interpreters = {f.detail.get("program", "") for f in findings if f.rule == "interpreter"}
    shells = sorted({f.path for f in findings if f.rule == "shell"})
    score = attack_surface_score(findings, len(exe))
    user, uid = user_of(scan)
    rc = scan.runtime_config
    files = [e for e in scan.entries.values() if e.kind == "file"]
    summary = {
        "files": len(files),
        "entries": len(scan.entries),
        "total_bytes": sum(e.size for e in files),
        "compressed_bytes": scan.compressed_size,
        "layers": len(scan.layers),
        "executables": len(exe),
        "shells": shells,
        "setuid": sum(1 for f in findings if f.rule in ("setuid", "setgid")),
        "packages": len(packages),
        "user": user,
        "uid": uid,
        "non_root": uid is not None and uid != 0,
        "entrypoint": list(rc.get("Entrypoint") or []),
        "cmd": list(rc.get("Cmd") or []),
        "findings": count_by_severity(findings),
        "score": score,
        "grade": grade(score, findings),
        "scope": audit_scope(scan, interpreters),
    }
    return AuditReport(scan, findings, packages, summary)


def render_text(report: AuditReport, *, limit: int = 5, color: bool = False) -> str:
    """A terminal report: findings grouped by rule (first *limit* of each), then the summary."""
    s = report.summary
    info = report.image_info()
    lines = [f"{info['name']}  {info['digest'][:19]}  {info['platform']}  {info['os_release']}".rstrip()]
    by_rule: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_rule.setdefault(f.rule, []).append(f)
    for rule, fs in by_rule.items():
        sev = fs[0].severity
        lines.append("")
        lines.append(f"[{sev.upper()}] {rule} ({len(fs)})  hint: {fs[0].hint}")
        for f in fs[:limit] if limit else fs:
            lines.append(f"  {f.path or '(config)'}: {f.message.split(': ', 1)[0]}")
        if limit and len(fs) > limit:
            lines.append(f"  … and {len(fs) - limit} more (--all shows every finding)")
    if not report.findings:
        lines.append("")
        lines.append("no findings")
    counts = ", ".join(f"{s['findings'][k]} {k}" for k in SEVERITIES if s["findings"][k])
    scope = s["scope"]
    from ..cli._common import human_bytes
    lines += [
        "",
        f"files {s['files']}, {human_bytes(s['total_bytes'])} unpacked, {human_bytes(s['compressed_bytes'])} "
        f"compressed, {s['layers']} layer{'s' if s['layers'] != 1 else ''}",
        f"executables {s['executables']}, shells {len(s['shells'])}, setuid/setgid {s['setuid']}, "
        f"packages {s['packages']}, user {s['user'] or '(unset)'}{'' if s['non_root'] else ' = root'}",
        f"audit scope: {scope['files']} file{'s' if scope['files'] != 1 else ''}, {human_bytes(scope['bytes'])}",
        f"findings: {counts or 'none'}",
        f"attack-surface score {s['score']}/100, grade {s['grade']}",
    ]
    return "\n".join(lines)


__all__ = ["AuditReport", "build_report", "render_text", "SCHEMA"]
