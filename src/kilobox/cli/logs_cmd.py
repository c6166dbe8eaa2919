"""kilobox logs: print a detached container's output."""

from __future__ import annotations

import argparse

HELP = "print the output of a detached container (-f: follow until it exits)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="container name")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the container exits")


def run(args: argparse.Namespace) -> int:
    from ..run import logs
    logs(args.name, follow=args.follow)
    return 0
