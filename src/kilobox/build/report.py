"""The size report printed after every build, and the budget check.

A platform's *total* is what a registry stores for it: manifest + config +
layer bytes (compressed). The budget (``max_size``) applies to that total, for
each platform. With several platforms there is also an index, shared by all of
them: it is not counted against the budget, but every platform's *total + index*
(what a pull of that platform fetches) is reported beside it — ``hello``'s
target is "manifest + config + layer ≤ 1,024 bytes", ``httpd``'s "≤ 8 KiB
(amd64, index included)".

Rendering is pure (a string, or rich renderables built on demand); only the CLI prints.
"""

from __future__ import annotations

from .._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class PlatformFigures(Record):
    """Byte counts of one platform's image."""

    __slots__ = ("platform", "digest", "binary_bytes", "layer_bytes", "layer_uncompressed_bytes", "config_bytes",
                 "manifest_bytes", "index_bytes", "budget_bytes")

    def __init__(self, platform: str, digest: str, binary_bytes: int, layer_bytes: int,
                 layer_uncompressed_bytes: int, config_bytes: int, manifest_bytes: int, index_bytes: int = 0,
                 budget_bytes: int | None = None) -> None:
        self.platform = platform
        self.digest = digest                          # of the manifest
        self.binary_bytes = binary_bytes
        self.layer_bytes = layer_bytes                # compressed, as stored
        self.layer_uncompressed_bytes = layer_uncompressed_bytes
        self.config_bytes = config_bytes
        self.manifest_bytes = manifest_bytes
        self.index_bytes = index_bytes                # 0 when there is no index
        self.budget_bytes = budget_bytes

    @property
    def total_bytes(self) -> int:
        """manifest + config + layer."""
        return self.manifest_bytes + self.config_bytes + self.layer_bytes

    @property
    def total_with_index_bytes(self) -> int:
        return self.total_bytes + self.index_bytes

    @property
    def ok(self) -> bool:
        return self.budget_bytes is None or self.total_bytes <= self.budget_bytes

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__slots__}
        d.update(total_bytes=self.total_bytes, total_with_index_bytes=self.total_with_index_bytes, ok=self.ok)
        return d


class BuildReport(Record):
    """What a build produced: figures per platform, digests, destinations, notes."""

    __slots__ = ("name", "tag", "root_digest", "root_media_type", "created", "platforms", "index_digest",
                 "index_bytes", "budget_bytes", "destinations", "warnings", "notes")

    def __init__(self, name: str, tag: str, root_digest: str, root_media_type: str, created: str,
                 platforms: list[PlatformFigures], index_digest: str | None = None, index_bytes: int = 0,
                 budget_bytes: int | None = None, destinations: list[str] | None = None,
                 warnings: list[str] | None = None, notes: list[str] | None = None) -> None:
        self.name = name
        self.tag = tag
        self.root_digest = root_digest
        self.root_media_type = root_media_type
        self.created = created
        self.platforms = platforms
        self.index_digest = index_digest
        self.index_bytes = index_bytes
        self.budget_bytes = budget_bytes
        self.destinations: list[str] = destinations if destinations is not None else []
        self.warnings: list[str] = warnings if warnings is not None else []
        self.notes: list[str] = notes if notes is not None else []

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.platforms)

    @property
    def over_budget(self) -> list[PlatformFigures]:
        return [p for p in self.platforms if not p.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "tag": self.tag, "ok": self.ok, "created": self.created,
            "root": {"mediaType": self.root_media_type, "digest": self.root_digest},
            "index": {"digest": self.index_digest, "size": self.index_bytes} if self.index_digest else None,
            "budget_bytes": self.budget_bytes,
            "platforms": [p.to_dict() for p in self.platforms],
            "destinations": list(self.destinations), "warnings": list(self.warnings), "notes": list(self.notes),
        }


def budget_message(report: BuildReport) -> str:
    """One line naming every platform over budget, with its figures."""
    parts = []
    for p in report.over_budget:
        parts.append(f"{p.platform}: {p.total_bytes} bytes (manifest {p.manifest_bytes} + config "
                     f"{p.config_bytes} + layer {p.layer_bytes}) > budget {p.budget_bytes}")
    return f"{report.name}: over the size budget: " + "; ".join(parts)


# -- rendering ------------------------------------------------------------------------------

_CAPTION = "bytes; total = manifest + config + layer, checked against the budget"
_CAPTION_INDEX = "+index = total + the index"
HEADERS = ("platform", "binary", "layer", "config+manifest", "total", "budget", "result", "+index", "digest")
_RESULT = 6


def rows(report: BuildReport) -> list[tuple[str, ...]]:
    out = []
    for p in report.platforms:
        out.append((p.platform, str(p.binary_bytes), str(p.layer_bytes),
                    f"{p.config_bytes}+{p.manifest_bytes}", str(p.total_bytes),
                    str(p.budget_bytes) if p.budget_bytes is not None else "-",
                    "-" if p.budget_bytes is None else ("ok" if p.ok else "OVER"),
                    str(p.total_with_index_bytes) if p.index_bytes else "-",
                    p.digest))
    return out


def _trailer(report: BuildReport) -> list[str]:
    lines = []
    if report.index_digest:
        lines.append(f"index   {report.index_digest} ({report.index_bytes} bytes)")
    else:
        lines.append(f"image   {report.root_digest}")
    for d in report.destinations:
        lines.append(f"written {d}")
    for n in report.notes:
        lines.append(f"note    {n}")
    for w in report.warnings:
        lines.append(f"warning {w}")
    return lines


def render_text(report: BuildReport) -> str:
    """A plain-text table (sizes in bytes), for logs and pipes."""
    table = [HEADERS, *rows(report)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADERS))]
    right = {1, 2, 3, 4, 5, 7}
    lines = []
    for r in table:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    head = f"{report.name}:{report.tag}  created {report.created}  ({_CAPTION}"
    head += f"; {_CAPTION_INDEX})" if report.index_digest else ")"
    return "\n".join([head, *lines, *_trailer(report)]) + "\n"


def render_rich(report: BuildReport) -> Any:
    """A rich renderable (imported lazily; only used on a terminal)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    caption = _CAPTION + (f"; {_CAPTION_INDEX}" if report.index_digest else "")
    t = Table(title=f"{report.name}:{report.tag}  created {report.created}", caption=caption,
              title_justify="left", caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
              padding=(0, 1, 0, 0), show_edge=False)
    for i, h in enumerate(HEADERS[:-1]):   # digests go below the table (they are long)
        h = "cfg+manifest" if h == "config+manifest" else h
        t.add_column(h, justify="left" if i in (0, _RESULT) else "right", no_wrap=True, min_width=len(h))
    for r in rows(report):
        style = {"ok": "green", "OVER": "bold red"}.get(r[_RESULT], "")
        t.add_row(*r[:_RESULT], Text(r[_RESULT], style=style), r[7])
    digests = [f"{p.platform:<14} {p.digest}" for p in report.platforms] if report.index_digest else []
    return Group(t, Text("\n".join([*digests, *_trailer(report)])))


__all__ = ["PlatformFigures", "BuildReport", "budget_message", "render_text", "render_rich"]
