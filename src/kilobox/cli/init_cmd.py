"""kilobox init — scaffold a micro-container project (kilobox.toml + main.c or main.zig)."""

from __future__ import annotations

import argparse

HELP = "create a new project: NAME/kilobox.toml, main.c or main.zig, README.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="directory to create; its name is the image name")
    p.add_argument("--lang", choices=("c", "zig"), default="c", help="language of the scaffold (default: c)")


def run(args: argparse.Namespace) -> int:
    from ..build import init
    files = init(args.name, args.lang)
    for f in files:
        print(f"created {f}")
    print(f"next: kilobox build {args.name} -o oci:out:{files[0].parent.name}")
    return 0
