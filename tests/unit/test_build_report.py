"""Budget math and the size report (text, JSON)."""

from __future__ import annotations

import json

from kilobox.build.report import BuildReport, PlatformFigures, budget_message, render_text


def fig(platform="linux/amd64", layer=300, config=200, manifest=400, index=0, budget=None) -> PlatformFigures:
    return PlatformFigures(platform=platform, digest="sha256:" + "a" * 64, binary_bytes=500, layer_bytes=layer,
                           layer_uncompressed_bytes=2048, config_bytes=config, manifest_bytes=manifest,
                           index_bytes=index, budget_bytes=budget)


def report(*figs: PlatformFigures, index: int = 0) -> BuildReport:
    return BuildReport(name="hello", tag="latest", root_digest="sha256:" + "b" * 64,
                       root_media_type="application/vnd.oci.image.index.v1+json" if index else
                       "application/vnd.oci.image.manifest.v1+json", created="1970-01-01T00:00:00Z",
                       platforms=list(figs), index_digest=("sha256:" + "c" * 64) if index else None,
                       index_bytes=index, budget_bytes=figs[0].budget_bytes)


def test_totals_and_budget_edges() -> None:
    f = fig(budget=900)
    assert f.total_bytes == 900 and f.total_with_index_bytes == 900 and f.ok
    assert not fig(budget=899).ok
    assert fig(budget=None).ok
    # the index is reported, not counted: a shared index does not push a platform over
    g = fig(index=1000, budget=900)
    assert g.ok and g.total_with_index_bytes == 1900


def test_budget_message_lists_only_failures() -> None:
    r = report(fig(budget=1024), fig("linux/arm64", layer=600, budget=1024), index=700)
    assert not r.ok and [p.platform for p in r.over_budget] == ["linux/arm64"]
    msg = budget_message(r)
    assert "linux/arm64: 1200 bytes (manifest 400 + config 200 + layer 600) > budget 1024" in msg
    assert "linux/amd64" not in msg


def test_render_text_and_json() -> None:
    r = report(fig(budget=1024, index=700), fig("linux/arm64", layer=600, budget=1024, index=700), index=700)
    r.notes.append("CA bundle from certifi")
    r.warnings.append("linux/amd64: app is not stripped")
    text = render_text(r)
    lines = text.splitlines()
    assert lines[1].split() == ["platform", "binary", "layer", "config+manifest", "total", "budget", "result",
                                "+index", "digest"]
    assert lines[2].split()[:8] == ["linux/amd64", "500", "300", "200+400", "900", "1024", "ok", "1600"]
    assert lines[3].split()[6] == "OVER"
    assert "index   sha256:" + "c" * 64 + " (700 bytes)" in text
    assert "note    CA bundle" in text and "warning linux/amd64" in text
    d = json.loads(json.dumps(r.to_dict()))
    assert d["ok"] is False and d["index"] == {"digest": "sha256:" + "c" * 64, "size": 700}
    p = d["platforms"][1]
    assert (p["total_bytes"], p["total_with_index_bytes"], p["ok"], p["layer_bytes"]) == (1200, 1900, False, 600)


def test_render_rich_builds() -> None:
    from rich.console import Console

    from kilobox.build.report import render_rich
    con = Console(width=80, record=True, color_system=None)
    con.print(render_rich(report(fig(budget=1024, index=700), fig("linux/riscv64", budget=1024, index=700), index=700)))
    out = con.export_text()
    assert "linux/riscv64" in out and "OVER" not in out and "1600" in out
