"""kilobox bench: benchmarks (``start``: cold starts vs podman/docker/crun/runc/bare exec)."""

from __future__ import annotations

import argparse
import sys

HELP = "benchmarks: 'bench start IMAGE' times cold starts against podman, runc, crun, bare exec"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", metavar="BENCH", parser_class=type(p))
    s = sub.add_parser("start", help="cold-start time of an image, alternating contenders",
                       description="Time N cold starts per contender: command issued -> exit, or -> first "
                                   "HTTP 200 on --ready. Contenders alternate within each round.")
    s.add_argument("image", help="image location (as for kilobox run)")
    s.add_argument("--vs", default="podman,crun,exec",
                   help="comma-separated: podman, docker, runc, crun, exec (default: podman,crun,exec)")
    s.add_argument("--runs", type=int, default=20, help="samples per contender (default 20)")
    s.add_argument("--ready", metavar="URL", help="a service: time until this URL answers 200 (implies --network host)")
    s.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE", help="environment for the container")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per sample")
    s.add_argument("--json", action="store_true", help="print the samples and statistics as JSON")
    s.add_argument("--plot", metavar="FILE", help="draw the distributions to FILE (.svg/.png; needs matplotlib)")


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    if getattr(args, "bench", None) != "start":
        raise UsageError("kilobox bench: choose a benchmark", hint="kilobox bench start IMAGE")
    from ..run.bench import bench_start, format_table, plot
    from ..run.options import make_options
    vs = [v.strip() for v in args.vs.split(",") if v.strip()]
    opts = make_options(env=args.env, network="host" if args.ready else "none")
    res = bench_start(args.image, vs=vs, runs=args.runs, ready=args.ready, options=opts, timeout=args.timeout,
                      progress=None if args.json else (lambda m: print(m, file=sys.stderr, end="\r")))
    if args.plot:
        plot(res, args.plot)
    if args.json:
        from ._common import print_json
        print_json(res)
    else:
        print(file=sys.stderr)
        print(f"{res['image']}: command issued -> {'HTTP 200 on ' + res['ready'] if res['ready'] else 'exit'}, "
              f"{res['runs']} runs each, alternating")
        print(format_table(res))
    return 0
