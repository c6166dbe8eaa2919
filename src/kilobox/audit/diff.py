"""Diff of two images: files added, removed and changed; findings that appear or disappear; deltas."""

from __future__ import annotations

from dataclasses import dataclass

from .report import AuditReport, build_report
from .scan import Entry, Scan, ScanOptions

SCHEMA = "kilobox.diff/v1"


@dataclass
class DiffReport:
    a: AuditReport
    b: AuditReport
    added: list[dict]
    removed: list[dict]
    changed: list[dict]
    findings_added: list[dict]
    findings_removed: list[dict]

    def totals(self) -> dict:
        sa, sb = self.a.summary, self.b.summary
        return {
            "added_files": len(self.added), "added_bytes": sum(d["size"] for d in self.added),
            "removed_files": len(self.removed), "removed_bytes": sum(d["size"] for d in self.removed),
            "changed_files": len(self.changed),
            "changed_bytes_delta": sum(d["size_b"] - d["size_a"] for d in self.changed),
            "size": {"a": sa["total_bytes"], "b": sb["total_bytes"], "delta": sb["total_bytes"] - sa["total_bytes"]},
            "compressed": {"a": sa["compressed_bytes"], "b": sb["compressed_bytes"],
                           "delta": sb["compressed_bytes"] - sa["compressed_bytes"]},
            "files": {"a": sa["files"], "b": sb["files"], "delta": sb["files"] - sa["files"]},
            "executables": {"a": sa["executables"], "b": sb["executables"],
                            "delta": sb["executables"] - sa["executables"]},
            "score": {"a": sa["score"], "b": sb["score"], "delta": sb["score"] - sa["score"]},
            "grade": {"a": sa["grade"], "b": sb["grade"]},
            "scope": {"a": sa["scope"]["files"], "b": sb["scope"]["files"],
                      "delta": sb["scope"]["files"] - sa["scope"]["files"]},
        }

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "a": self.a.image_info(), "b": self.b.image_info(), "totals": self.totals(),
                "added": self.added, "removed": self.removed, "changed": self.changed,
                "findings_added": self.findings_added, "findings_removed": self.findings_removed}


def _changes(x: Entry, y: Entry) -> list[str]:
    what = []
    if x.kind != y.kind:
        what.append("kind")
    elif x.kind == "file" and (x.sha256 != y.sha256 or x.size != y.size):
        what.append("content")
    elif x.kind in ("symlink", "hardlink") and x.linkname != y.linkname:
        what.append("target")
    if x.mode != y.mode:
        what.append("mode")
    if (x.uid, x.gid) != (y.uid, y.gid):
        what.append("owner")
    if x.caps != y.caps:
        what.append("capabilities")
    return what


def diff_scans(a: Scan, b: Scan) -> DiffReport:
    ra, rb = build_report(a), build_report(b)
    added, removed, changed = [], [], []
    for path, y in b.entries.items():
        x = a.entries.get(path)
        if x is None:
            added.append({"path": path, "kind": y.kind, "size": y.size})
        else:
            what = _changes(x, y)
            if what:
                changed.append({"path": path, "changes": what, "size_a": x.size, "size_b": y.size})
    for path, x in a.entries.items():
        if path not in b.entries:
            removed.append({"path": path, "kind": x.kind, "size": x.size})

    def key(f) -> tuple:  # noqa: ANN001
        return (f.rule, f.path, f.detail.get("program", ""), f.detail.get("variable", ""))

    fa = {key(f): f for f in ra.findings}
    fb = {key(f): f for f in rb.findings}
    findings_added = [f.to_dict() for k, f in fb.items() if k not in fa]
    findings_removed = [f.to_dict() for k, f in fa.items() if k not in fb]
    by_size = lambda d: (-d["size"], d["path"])  # noqa: E731
    return DiffReport(ra, rb, sorted(added, key=by_size), sorted(removed, key=by_size),
                      sorted(changed, key=lambda d: d["path"]), findings_added, findings_removed)


def diff(a: "str | Scan | object", b: "str | Scan | object", *, platform: str | None = None,
         source_options: object = None) -> DiffReport:
    """Compare image *a* (before) with image *b* (after)."""
    from .inputs import load_scan
    opts = ScanOptions(content=True, hashes=("sha256",))
    sa = load_scan(a, opts, platform=platform, source_options=source_options)  # type: ignore[arg-type]
    sb = load_scan(b, opts, platform=platform, source_options=source_options)  # type: ignore[arg-type]
    return diff_scans(sa, sb)


def render_diff(d: DiffReport, *, limit: int = 10) -> str:
    from ..cli._common import human_bytes
    t = d.totals()
    out = [f"--- {d.a.scan.name}  {d.a.scan.digest[:19]}", f"+++ {d.b.scan.name}  {d.b.scan.digest[:19]}", ""]

    def section(title: str, sign: str, items: list[dict], fmt) -> None:  # noqa: ANN001
        if not items:
            return
        out.append(f"{title} ({len(items)}):")
        for it in items[:limit] if limit else items:
            out.append(f"  {sign} {fmt(it)}")
        if limit and len(items) > limit:
            out.append(f"  … and {len(items) - limit} more (--all)")
        out.append("")

    section("removed", "-", d.removed, lambda i: f"{i['path']}  {human_bytes(i['size'])}" if i["kind"] == "file"
            else f"{i['path']}  ({i['kind']})")
    section("added", "+", d.added, lambda i: f"{i['path']}  {human_bytes(i['size'])}" if i["kind"] == "file"
            else f"{i['path']}  ({i['kind']})")
    section("changed", "~", d.changed, lambda i: f"{i['path']}  {','.join(i['changes'])}  "
            f"{human_bytes(i['size_a'])} → {human_bytes(i['size_b'])}")
    section("findings gone", "-", d.findings_removed, lambda f: f"[{f['severity']}] {f['id']} {f['path'] or '(config)'}")
    section("findings new", "+", d.findings_added, lambda f: f"[{f['severity']}] {f['id']} {f['path'] or '(config)'}")

    def pct(a: int, b: int) -> str:
        return f" ({(b - a) * 100 / a:+.1f}%)" if a else ""

    out.append(f"size {human_bytes(t['size']['a'])} → {human_bytes(t['size']['b'])}{pct(t['size']['a'], t['size']['b'])}, "
               f"compressed {human_bytes(t['compressed']['a'])} → {human_bytes(t['compressed']['b'])}"
               f"{pct(t['compressed']['a'], t['compressed']['b'])}")
    out.append(f"files {t['files']['a']} → {t['files']['b']}, executables {t['executables']['a']} → "
               f"{t['executables']['b']}, audit scope {t['scope']['a']} → {t['scope']['b']} files")
    out.append(f"score {t['score']['a']} → {t['score']['b']}, grade {t['grade']['a']} → {t['grade']['b']}")
    return "\n".join(out)


__all__ = ["DiffReport", "diff", "diff_scans", "render_diff", "SCHEMA"]
