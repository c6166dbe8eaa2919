"""kilobox rm: remove stopped containers."""

from __future__ import annotations

import argparse

HELP = "remove containers (-f: stop running ones first)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="NAME", help="container names")
    p.add_argument("-f", "--force", action="store_true", help="kill and remove running containers")


def run(args: argparse.Namespace) -> int:
    from ..run import remove
    for name in args.names:
        remove(name, force=args.force)
        print(name)
    return 0
