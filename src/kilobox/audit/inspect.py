"""The ``kilobox inspect --files`` entry point (the inspect command delegates here)."""

from __future__ import annotations

import argparse


def run_inspect(args: argparse.Namespace) -> int:
    """Print the size breakdown of ``args.ref`` (text, or JSON with ``--json``)."""
    from ..cli._common import options_from, print_json
    from .sizes import inspect_files, render_files
    report = inspect_files(args.ref, sort=getattr(args, "sort", "size") or "size",
                           depth=getattr(args, "depth", 3) or 3, top=getattr(args, "top", 20) or 20,
                           platform=getattr(args, "platform", None), source_options=options_from(args))
    if getattr(args, "json", False):
        print_json(report.to_dict())
    else:
        print(render_files(report, min_share=0.001))
    return 0


__all__ = ["run_inspect"]
