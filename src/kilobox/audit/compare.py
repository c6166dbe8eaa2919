"""Compare several images side by side: what "micro" buys, in one table (and a bar chart)."""

from __future__ import annotations

from pathlib import Path

from .report import AuditReport, build_report
from .scan import Scan, ScanOptions

SCHEMA = "kilobox.compare/v1"
COLUMNS = ("image", "compressed", "unpacked", "files", "executables", "shells", "setuid", "packages",
           "critical", "high", "medium", "low", "scope", "score", "grade")


def row(report: AuditReport) -> dict:
    s = report.summary
    f = s["findings"]
    return {"image": report.scan.name, "digest": report.scan.digest, "compressed": s["compressed_bytes"],
            "unpacked": s["total_bytes"], "files": s["files"], "executables": s["executables"],
            "shells": len(s["shells"]), "setuid": s["setuid"], "packages": s["packages"],
            "critical": f["critical"], "high": f["high"], "medium": f["medium"], "low": f["low"],
            "scope": s["scope"]["files"], "scope_bytes": s["scope"]["bytes"], "score": s["score"],
            "grade": s["grade"]}


def compare(images: list["str | Scan | object"], *, platform: str | None = None,
            source_options: object = None) -> list[dict]:
    """One row per image (see :data:`COLUMNS`)."""
    from .inputs import load_scan
    opts = ScanOptions(content=True, hashes=())
    return [row(build_report(load_scan(i, opts, platform=platform, source_options=source_options)))  # type: ignore[arg-type]
            for i in images]


def render_table(rows: list[dict]) -> str:
    from ..cli._common import human_bytes
    head = list(COLUMNS)
    cells = [[r["image"], human_bytes(r["compressed"]), human_bytes(r["unpacked"]), *(str(r[c]) for c in head[3:])]
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


def plot(rows: list[dict], path: str | Path) -> Path:
    """A bar chart (SVG, or any format matplotlib knows by extension) of size, files, findings and scope."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        from ..errors import ToolMissing
        raise ToolMissing("matplotlib", None) from e
    path = Path(path)
    names = [_short(r["image"]) for r in rows]
    panels = [("compressed size (KiB, log)", [max(r["compressed"] / 1024, 0.01) for r in rows], True),
              ("files (log)", [max(r["files"], 1) for r in rows], True),
              ("executables (log)", [max(r["executables"], 1) for r in rows], True),
              ("audit scope: files (log)", [max(r["scope"], 1) for r in rows], True),
              ("findings critical+high", [r["critical"] + r["high"] for r in rows], False),
              ("attack-surface score", [r["score"] for r in rows], False)]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    colors = ["#c0392b" if r["grade"] in ("E", "F") else "#e67e22" if r["grade"] in ("C", "D") else "#27ae60"
              for r in rows]
    for ax, (title, vals, log) in zip(axes.flat, panels):
        bars = ax.bar(range(len(vals)), vals, color=colors)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(vals)), names, rotation=20, ha="right", fontsize=8)
        if log:
            ax.set_yscale("log")
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:,.0f}" if v >= 10 or float(v).is_integer() else f"{v:.2g}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=7)
    fig.suptitle("kilobox compare — grade: " + ", ".join(f"{n} {r['grade']}" for n, r in zip(names, rows)),
                 fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return path


def _short(name: str) -> str:
    return name if len(name) <= 24 else "…" + name[-23:]


__all__ = ["compare", "row", "render_table", "plot", "COLUMNS", "SCHEMA"]
