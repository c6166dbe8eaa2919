"""kilobox diff — files added, removed and changed between two images; findings and score deltas."""

from __future__ import annotations

import argparse

from ._common import add_json_option, add_platform_option, add_registry_options, options_from, print_json

HELP = "compare two images file by file: added, removed, changed; findings that appear or disappear"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = "example:\n  kilobox diff oci:fat:nginx oci:slim:nginx"
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("a", metavar="BEFORE", help="first image (the base)")
    p.add_argument("b", metavar="AFTER", help="second image")
    p.add_argument("--all", action="store_true", help="list every path (text output)")
    add_json_option(p)
    add_platform_option(p)
    add_registry_options(p)


def run(args: argparse.Namespace) -> int:
    from ..audit.diff import diff, render_diff
    d = diff(args.a, args.b, platform=args.platform, source_options=options_from(args))
    if args.json:
        print_json(d.to_dict())
    else:
        print(render_diff(d, limit=0 if args.all else 10))
    return 0
