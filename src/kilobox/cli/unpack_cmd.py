"""kilobox unpack [--platform P] REF DIR — write the flattened root filesystem."""

from __future__ import annotations

import argparse

from ._common import add_json_option, add_platform_option, add_registry_options, options_from, print_json

HELP = "unpack an image's flattened root filesystem into an empty directory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="REF", help="image, e.g. oci:./lay:app")
    p.add_argument("dir", metavar="DIR", help="target directory (created; must be empty if it exists)")
    add_platform_option(p, help="platform to unpack from an index (default: this machine's)")
    add_registry_options(p)
    add_json_option(p)


def run(args: argparse.Namespace) -> int:
    from ..api import unpack
    info = unpack(args.ref, args.dir, platform=args.platform, options=options_from(args))
    if args.json:
        print_json(info)
    else:
        print(f"unpacked {args.ref} ({info['digest']}, {info['layers']} layers) into {info['path']}")
    return 0
