"""``kilobox inspect --files``: where an image's bytes are, per layer and per directory, and what is wasted.

Wasted bytes are the bytes of regular files shipped in a layer but not visible in the
final image, because a later layer overwrote or deleted them (whiteouts included). Unlike
dive, the copy that stays visible is not counted: a 10 MB file written in layer 1 and
rewritten in layer 2 wastes 10 MB, not 20. Efficiency = visible bytes / shipped bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from .scan import Scan, ScanOptions

SCHEMA = "kilobox.inspect-files/v1"
SORTS = ("size", "name")


@dataclass
class FilesReport:
    image: dict
    layers: list[dict]
    directories: list[dict]          # {path, bytes, files, depth} up to the requested depth, in tree order
    largest: list[dict]              # biggest visible files
    wasted: list[dict]               # per path: bytes shipped but not visible, worst first
    totals: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "image": self.image, "totals": self.totals, "layers": self.layers,
                "directories": self.directories, "largest": self.largest, "wasted": self.wasted}


def inspect_files(image: "str | Scan | object", sort: str = "size", *, depth: int = 3, top: int = 20,
                  platform: str | None = None, source_options: object = None) -> FilesReport:
    """Size breakdown of *image* (a location, an open Image, or a Scan)."""
    if sort not in SORTS:
        raise UsageError(f"unknown sort {sort!r}", hint=f"use one of {', '.join(SORTS)}")
    if depth < 0 or top < 0:
        raise UsageError("--depth and --top must not be negative")
    from .inputs import load_scan
    scan = load_scan(image, ScanOptions(content=False, hashes=()), platform=platform,  # type: ignore[arg-type]
                     source_options=source_options)
    return files_report(scan, sort, depth=depth, top=top)


def files_report(scan: Scan, sort: str = "size", *, depth: int = 3, top: int = 20) -> FilesReport:
    shipped = sum(ly.file_bytes for ly in scan.layers)
    visible = sum(ly.visible_bytes for ly in scan.layers)
    wasted_by_path: dict[str, list] = {}
    for s in scan.shadowed:
        w = wasted_by_path.setdefault(s.path, [0, 0, set(), set()])
        w[0] += s.size
        w[1] += 1
        w[2].add(s.layer)
        w[3].add(s.reason)
    wasted = sorted(({"path": p, "bytes": w[0], "copies": w[1], "layers": sorted(w[2]), "reason": "/".join(sorted(w[3]))}
                     for p, w in wasted_by_path.items()), key=lambda d: (-d["bytes"], d["path"]))
    layers = [{"index": ly.index, "digest": ly.digest, "media_type": ly.media_type, "size": ly.compressed_size,
               "entries": ly.entries, "files": ly.files, "file_bytes": ly.file_bytes,
               "visible_bytes": ly.visible_bytes, "wasted_bytes": ly.wasted_bytes, "whiteouts": ly.whiteouts,
               "created_by": ly.created_by} for ly in scan.layers]
    files = [e for e in scan.entries.values() if e.kind == "file"]
    largest = sorted(({"path": e.path, "bytes": e.size, "layer": e.layer} for e in files),
                     key=lambda d: (-d["bytes"], d["path"]))[:top]
    totals = {"layers": len(scan.layers), "compressed_bytes": scan.compressed_size, "shipped_bytes": shipped,
              "visible_bytes": visible, "wasted_bytes": shipped - visible, "wasted_files": len(wasted),
              "efficiency": round(visible / shipped, 6) if shipped else 1.0, "files": len(files),
              "entries": len(scan.entries)}
    image = {"name": scan.name, "digest": scan.digest}
    return FilesReport(image, layers, directory_tree(scan, sort, depth), largest, wasted[:max(top, 0)], totals)


def directory_tree(scan: Scan, sort: str = "size", depth: int = 3) -> list[dict]:
    """Directories up to *depth* with the visible bytes and files below them, as a pre-order walk."""
    sizes: dict[str, list[int]] = {"/": [0, 0]}
    for e in scan.entries.values():
        if e.kind != "file":
            continue
        parts = e.path.split("/")[1:-1]
        sizes["/"][0] += e.size
        sizes["/"][1] += 1
        for i in range(1, min(len(parts), depth) + 1):
            d = "/" + "/".join(parts[:i])
            s = sizes.setdefault(d, [0, 0])
            s[0] += e.size
            s[1] += 1
    children: dict[str, list[str]] = {}
    for d in sizes:
        if d != "/":
            parent = d.rsplit("/", 1)[0] or "/"
            children.setdefault(parent, []).append(d)

    def key(d: str) -> tuple:
        return (-sizes[d][0], d) if sort == "size" else (d,)

    out: list[dict] = []
    stack = [("/", 0)]
    while stack:
        d, lvl = stack.pop()
        out.append({"path": d, "bytes": sizes[d][0], "files": sizes[d][1], "depth": lvl})
        kids = sorted(children.get(d, []), key=key)
        stack.extend((k, lvl + 1) for k in reversed(kids))
    return out


def render_files(report: FilesReport, *, min_share: float = 0.0) -> str:
    """Text: per-layer table, directory tree with bars, largest files, wasted bytes, efficiency."""
    from ..cli._common import human_bytes
    t = report.totals
    out = [f"{report.image['name']}  {report.image['digest'][:19]}".rstrip(), "", "layers:"]
    for ly in report.layers:
        cb = f"  ({ly['created_by'][:60]})" if ly["created_by"] else ""
        out.append(f"  #{ly['index']:<2} {human_bytes(ly['size']):>10} compressed {human_bytes(ly['file_bytes']):>10} files"
                   f"  {ly['entries']:>6} entries  wasted {human_bytes(ly['wasted_bytes'])}"
                   f"{'  whiteouts ' + str(ly['whiteouts']) if ly['whiteouts'] else ''}{cb}")
    out += ["", "directories (visible bytes):"]
    root = max(report.directories[0]["bytes"], 1) if report.directories else 1
    for d in report.directories:
        share = d["bytes"] / root
        if d["depth"] and share < min_share:
            continue
        bar = "█" * max(0, round(share * 20))
        name = d["path"] if d["depth"] == 0 else d["path"].rsplit("/", 1)[-1] + "/"
        out.append(f"  {human_bytes(d['bytes']):>10} {share * 100:5.1f}% {bar:<20} {'  ' * d['depth']}{name}"
                   f"  ({d['files']} files)")
    if report.largest:
        out += ["", "largest files:"]
        out += [f"  {human_bytes(f['bytes']):>10}  {f['path']}  (layer {f['layer']})" for f in report.largest]
    if report.wasted:
        out += ["", "wasted (shipped, then overwritten or deleted by a later layer):"]
        out += [f"  {human_bytes(w['bytes']):>10}  {w['path']}  ({w['reason']} in layer "
                f"{', '.join(map(str, w['layers']))})" for w in report.wasted]
    out += ["", f"shipped {human_bytes(t['shipped_bytes'])}, visible {human_bytes(t['visible_bytes'])}, "
                f"wasted {human_bytes(t['wasted_bytes'])} in {t['wasted_files']} paths, "
                f"efficiency {t['efficiency'] * 100:.1f}%"]
    return "\n".join(out)


__all__ = ["FilesReport", "inspect_files", "files_report", "directory_tree", "render_files", "SORTS", "SCHEMA"]
