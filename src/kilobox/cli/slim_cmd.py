"""kilobox slim: turn a fat image into a micro-container that still passes its probe."""

from __future__ import annotations

import argparse
import sys

HELP = "slim an image to what it uses at run time (traced with strace), and prove the result still works"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ._common import add_json_option, add_platform_option
    p.add_argument("image", help="the fat image (oci:DIR[:TAG], oci-archive:, docker-archive:, REGISTRY/REPO:TAG)")
    p.add_argument("-o", "--output", required=True, metavar="LOCATION", help="where to write the slim image")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--probe", metavar="URL", help="HTTP probe: success is a 2xx/3xx answer")
    g.add_argument("--probe-cmd", metavar="CMD", help="command run on the host: success is exit status 0")
    p.add_argument("--probe-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long the probe retries while the service starts (default 30)")
    p.add_argument("--network", default="none", choices=["none", "host"], help="as kilobox run (default none)")
    p.add_argument("--tmpfs", action="append", default=[], metavar="PATH[:OPTS]", help="as kilobox run")
    p.add_argument("-u", "--user", help="as kilobox run: UID[:GID] or NAME[:GROUP]")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]", help="as kilobox run")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="also keep these image paths ('**' spans directories), e.g. '/usr/share/zoneinfo/**'")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="never keep these image paths")
    p.add_argument("--auto-fix", action="store_true",
                   help="when the slim image fails its probe, add what its traced run missed and retry")
    p.add_argument("--max-fixes", type=int, default=3, metavar="N", help="--auto-fix rounds (default 3)")
    p.add_argument("--runtime", help="crun, runc or a path (default: as kilobox run)")
    p.add_argument("--no-audit", action="store_true", help="skip the audit of both images")
    p.add_argument("--all", action="store_true", help="list every kept file in the text report")
    add_platform_option(p)
    p.add_argument("--insecure", action="append", default=[], metavar="HOST[:PORT]",
                   help="use plain http for this registry (localhost always is)")
    p.add_argument("--authfile", help="docker config.json with registry credentials")
    from ._common import add_tls_options
    add_tls_options(p)
    add_json_option(p)


def run(args: argparse.Namespace) -> int:
    from ..errors import PolicyViolation
    from ..slim import render_text, slim
    from ._common import options_from, print_json
    progress = None if args.json else (lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    report = slim(args.image, args.output, probe_url=args.probe, probe_cmd=args.probe_cmd, network=args.network,
                  tmpfs=args.tmpfs, user=args.user, env=args.env, include=args.include, exclude=args.exclude,
                  auto_fix=args.auto_fix, max_fixes=max(0, args.max_fixes), platform=args.platform,
                  options=options_from(args), probe_timeout=args.probe_timeout, runtime=args.runtime,
                  audit=not args.no_audit, progress=progress)
    if args.json:
        print_json(report.to_dict())
    else:
        print(render_text(report, limit=0 if args.all else 12))
    if not report.ok:
        missing = report.missing
        raise PolicyViolation(f"the slim image of {args.image} failed its probe: {report.attempts[-1].detail}"
                              + (f"; missing: {', '.join(missing[:5])}" if missing else "")
                              + f"; {args.output} was not written",
                              hint="rerun with --auto-fix, or --include the missing paths" if missing else
                              "see the container's output in the report (--json)")
    return 0

