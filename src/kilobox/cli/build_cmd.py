"""kilobox build — C/Zig sources or a static binary into a micro-image, with a size report."""

from __future__ import annotations

import argparse
import sys

from ._common import add_json_option, add_registry_options, options_from, print_json

HELP = "build a micro-image from kilobox.toml (C or Zig sources) or from a static binary"

EPILOG = """examples:
  kilobox build examples/httpd -o oci:out:httpd
  kilobox build examples/httpd --platform linux/amd64,linux/arm64 -o oci:out:httpd
  kilobox build examples/httpd --push 127.0.0.1:5000/me/httpd:1
  kilobox build --binary ./app --entrypoint /app -o docker-archive:app.tar
  kilobox build examples/hello --max-size 1KiB --json -o oci:out:hello
exit status: 0 built, 7 build error, 8 over the size budget, 2 bad arguments"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("project", nargs="?", metavar="DIR", help="project directory with kilobox.toml (or the file)")
    p.add_argument("-o", "--output", action="append", default=[], metavar="LOCATION",
                   help="where to write: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], "
                        "docker://REF (repeatable)")
    p.add_argument("--push", metavar="REF", help="push to a registry, e.g. 127.0.0.1:5000/me/httpd:1")
    p.add_argument("--platform", action="append", default=[], metavar="LIST",
                   help="platforms to build, comma-separated, e.g. linux/amd64,linux/arm64 (default: kilobox.toml)")
    p.add_argument("--max-size", metavar="SIZE", help="size budget per platform, e.g. 1KiB, 16KiB, 1000")
    p.add_argument("--tag", metavar="T", help="tag for outputs that name none (default: kilobox.toml's tag)")
    p.add_argument("--binary", action="append", default=[], metavar="[PLATFORM=]PATH",
                   help="package this static binary instead of compiling (repeatable: one per platform)")
    p.add_argument("--name", help="image name for --binary builds (default: the binary's file name)")
    p.add_argument("--entrypoint", metavar="PATH",
                   help="where the binary goes and what runs, e.g. /app (words split like a shell)")
    p.add_argument("--cmd", metavar="ARGS", help="default arguments (Cmd), split like a shell")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="add an environment variable")
    p.add_argument("--user", metavar="UID[:GID]", help="user to run as (default 65532:65532)")
    add_registry_options(p)
    add_json_option(p)


def run(args: argparse.Namespace) -> int:
    from ..build import build
    from ..errors import BudgetExceeded, UsageError

    if args.project is None and not args.binary:
        raise UsageError("kilobox build: give a project directory or --binary PATH",
                         hint="kilobox build examples/hello -o oci:out:hello, or see kilobox build --help")
    platforms = ",".join(args.platform) or None
    opts = options_from(args)

    def progress(msg: str) -> None:
        sys.stderr.write(f"kilobox: {msg}\n")
        sys.stderr.flush()

    try:
        result = build(args.project, output=args.output, push=args.push, platforms=platforms,
                       max_size=args.max_size, tag=args.tag, binaries=args.binary or None, name=args.name,
                       entrypoint=args.entrypoint, cmd=args.cmd, env=args.env or None, user=args.user,
                       options=opts, progress=progress)
    except BudgetExceeded as e:
        report = getattr(e, "report", None)
        if report is not None:
            show(report, args.json)
        raise
    show(result.report, args.json)
    return 0


def show(report, as_json: bool) -> None:  # noqa: ANN001 - a BuildReport
    """Print the report: JSON, a rich table on a terminal, or plain text."""
    if as_json:
        print_json(report.to_dict())
        return
    if sys.stdout.isatty():
        from rich.console import Console

        from ..build.report import render_rich
        Console().print(render_rich(report))
        return
    from ..build.report import render_text
    sys.stdout.write(render_text(report))
