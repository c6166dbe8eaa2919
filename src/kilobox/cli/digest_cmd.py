"""kilobox digest REF — print the digest of the manifest or index."""

from __future__ import annotations

import argparse

from ._common import add_platform_option, add_registry_options, options_from

HELP = "print the digest (sha256:…) of an image's manifest or index"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="REF", help="image, e.g. 127.0.0.1:5000/demo/hello:1 or oci:./lay:app")
    add_platform_option(p, help="print the digest of this platform's manifest instead of the index's")
    add_registry_options(p)


def run(args: argparse.Namespace) -> int:
    from ..api import digest
    print(digest(args.ref, options_from(args), platform=args.platform))
    return 0
