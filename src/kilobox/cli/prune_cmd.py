"""kilobox prune [--all] [--older-than 7d] — clean the local store."""

from __future__ import annotations

import argparse

from ._common import add_json_option, human_bytes, print_json

HELP = "remove cached blobs and temp files not used recently (the local store)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--older-than", metavar="AGE", default=None,
                   help="only entries unused for AGE (30m, 12h, 7d, 2w; default 7d, or 0 with --all)")
    p.add_argument("--all", action="store_true", help="every cache area, not only blobs and temp files")
    add_json_option(p)


def run(args: argparse.Namespace) -> int:
    from ..api import prune
    info = prune(older_than=args.older_than, all=args.all)
    if args.json:
        print_json(info)
    else:
        print(f"removed {info['removed']} entries, freed {human_bytes(info['freed'])} from {info['root']}")
    return 0
