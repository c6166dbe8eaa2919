"""kilobox stop: stop running containers (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import argparse

HELP = "stop containers: SIGTERM, then SIGKILL after --time seconds"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="NAME", help="container names")
    p.add_argument("-t", "--time", type=float, default=10.0, help="seconds to wait before SIGKILL (default 10)")


def run(args: argparse.Namespace) -> int:
    from ..run import stop
    for name in args.names:
        stop(name, timeout=max(0.0, args.time))
        print(name)
    return 0
