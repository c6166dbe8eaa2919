"""The slim report: what was kept and why, sizes before/after, the audit delta, the probe's results.

JSON schema ``kilobox.slim/v1`` (stable keys); :func:`render_text` for terminals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "kilobox.slim/v1"


@dataclass
class KeptPath:
    path: str
    kind: str          # file | dir | symlink
    size: int
    category: str      # runtime | elf | config | rule | include | auto-fix | symlink
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "size": self.size, "category": self.category,
                "reason": self.reason}


@dataclass
class Attempt:
    """One verification of a slim candidate."""

    ok: bool
    detail: str
    seconds: float
    missing: list[str] = field(default_factory=list)   # ENOENT in the slim run, present in the fat image
    added: list[str] = field(default_factory=list)     # what --auto-fix added for the next attempt
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 3), "missing": self.missing,
                "added": self.added, "output": self.output[-2000:]}


@dataclass
class SlimReport:
    source: str
    source_digest: str
    output: str
    output_digest: str = ""
    written: bool = False
    probe: str = ""
    runtime: str = ""
    before: dict[str, int] = field(default_factory=dict)     # files, bytes, compressed_bytes
    after: dict[str, int] = field(default_factory=dict)
    kept: list[KeptPath] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    fat_probe: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)      # before/after summaries
    static_missing: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    @property
    def ratio(self) -> float:
        """How many times fewer file bytes the slim image holds."""
        return self.before.get("bytes", 0) / max(1, self.after.get("bytes", 0))

    @property
    def compressed_ratio(self) -> float:
        return self.before.get("compressed_bytes", 0) / max(1, self.after.get("compressed_bytes", 0))

    @property
    def missing(self) -> list[str]:
        return self.attempts[-1].missing if self.attempts else []

    def by_category(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for k in self.kept:
            if k.kind == "dir":
                continue
            c = out.setdefault(k.category, {"files": 0, "bytes": 0})
            c["files"] += 1
            c["bytes"] += k.size
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "ok": self.ok, "source": self.source, "source_digest": self.source_digest,
            "output": self.output, "output_digest": self.output_digest, "written": self.written,
            "probe": self.probe, "runtime": self.runtime,
            "before": self.before, "after": self.after,
            "ratio": round(self.ratio, 2), "compressed_ratio": round(self.compressed_ratio, 2),
            "by_category": self.by_category(),
            "kept": [k.to_dict() for k in self.kept], "excluded": self.excluded,
            "fat_probe": self.fat_probe, "verification": [a.to_dict() for a in self.attempts],
            "missing": self.missing, "audit": self.audit, "static_missing": self.static_missing,
            "timings": {k: round(v, 3) for k, v in self.timings.items()}, "warnings": self.warnings,
        }


def _h(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


_ORDER = ("runtime", "elf", "config", "rule", "include", "auto-fix", "symlink")


def render_text(r: SlimReport, *, limit: int = 12) -> str:
    """A terminal report; *limit* files listed per category (0: all)."""
    from .plan import CATEGORIES
    lines = [f"slim {r.source} -> {r.output}" + ("" if r.written else "  (NOT written)")]
    lines.append(f"  probe        {r.probe}   runtime {r.runtime}")
    b, a = r.before, r.after
    lines.append(f"  files        {b.get('files', 0):>8} -> {a.get('files', 0):<8}")
    lines.append(f"  bytes        {_h(b.get('bytes', 0)):>10} -> {_h(a.get('bytes', 0)):<10}  {r.ratio:.1f}x smaller")
    lines.append(f"  compressed   {_h(b.get('compressed_bytes', 0)):>10} -> {_h(a.get('compressed_bytes', 0)):<10}  "
                 f"{r.compressed_ratio:.1f}x smaller")
    if r.audit:
        ab, aa = r.audit.get("before", {}), r.audit.get("after", {})
        lines.append(f"  audit        grade {ab.get('grade', '?')} (score {ab.get('score', '?')}) -> "
                     f"grade {aa.get('grade', '?')} (score {aa.get('score', '?')});  executables "
                     f"{ab.get('executables', '?')} -> {aa.get('executables', '?')};  shells "
                     f"{len(ab.get('shells', []))} -> {len(aa.get('shells', []))}"
                     + (f" ({', '.join(aa['shells'][:3])})" if aa.get("shells") else ""))
    fp = r.fat_probe
    if fp:
        lines.append(f"  fat image    probe ok: {fp.get('detail', '')} ({fp.get('seconds', 0):.2f}s)")
    for i, at in enumerate(r.attempts, 1):
        state = "ok" if at.ok else "FAILED"
        lines.append(f"  slim image   attempt {i}: probe {state}: {at.detail} ({at.seconds:.2f}s)")
        said = [ln for ln in at.output.splitlines() if ln.strip()][-1:] if not at.ok else []
        if said:
            lines.append(f"               container said: {said[0][:200]}")
        if at.missing:
            lines.append(f"               missing (ENOENT, present in the fat image): {', '.join(at.missing[:10])}"
                         + (" …" if len(at.missing) > 10 else ""))
        if at.added:
            lines.append(f"               --auto-fix added {len(at.added)}: {', '.join(at.added[:10])}")
    lines.append("")
    lines.append("kept (why):")
    cats = r.by_category()
    for cat in _ORDER:
        items = [k for k in r.kept if k.category == cat and k.kind != "dir"]
        if not items:
            continue
        lines.append(f"  {CATEGORIES.get(cat, cat)}: {cats[cat]['files']} files, {_h(cats[cat]['bytes'])}")
        shown = items if limit == 0 else sorted(items, key=lambda k: -k.size)[:limit]
        for k in sorted(shown, key=lambda k: k.path):
            extra = "" if cat in ("runtime",) else f"  ({k.reason})"
            lines.append(f"    {k.path}{' -> symlink' if k.kind == 'symlink' else ''}  {_h(k.size)}{extra}")
        if len(shown) < len(items):
            lines.append(f"    … {len(items) - len(shown)} more (--json lists all)")
    if r.excluded:
        lines.append(f"  excluded by --exclude: {len(r.excluded)} paths")
    for w in r.warnings:
        lines.append(f"warning: {w}")
    if r.timings:
        lines.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in r.timings.items()))
    if not r.ok:
        lines.append("")
        lines.append("the slim image FAILED its probe" + (": add the missing paths with --include, or use --auto-fix"
                                                         if r.missing else ""))
    return "\n".join(lines)


__all__ = ["SlimReport", "KeptPath", "Attempt", "render_text", "SCHEMA"]
