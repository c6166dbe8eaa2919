"""kilobox compare — a side-by-side table of several images: size, files, shells, setuid, findings, grade."""

from __future__ import annotations

import argparse
import sys

from ._common import add_json_option, add_platform_option, add_registry_options, options_from, print_json

HELP = "compare several images side by side (size, files, executables, shells, setuid, packages, findings)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = "example:\n  kilobox compare oci:fat:nginx oci:slim:nginx oci:out:httpd --plot compare.svg"
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("images", nargs="+", metavar="REF", help="images to compare")
    p.add_argument("--plot", metavar="FILE.svg", help="also draw a bar chart (needs matplotlib)")
    add_json_option(p)
    add_platform_option(p)
    add_registry_options(p)


def run(args: argparse.Namespace) -> int:
    from ..audit.compare import compare, plot, render_table
    rows = compare(args.images, platform=args.platform, source_options=options_from(args))
    if args.json:
        print_json({"schema": "kilobox.compare/v1", "images": rows})
    else:
        print(render_table(rows))
    if args.plot:
        out = plot(rows, args.plot)
        print(f"kilobox: wrote {out}", file=sys.stderr)
    return 0
