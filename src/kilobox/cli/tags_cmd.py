"""kilobox tags REPO — list the tags of a registry repository (or of a layout / archive)."""

from __future__ import annotations

import argparse

from ._common import add_json_option, add_registry_options, options_from, print_json

HELP = "list the tags of a repository (registry REPO, oci:DIR or oci-archive:FILE)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("repo", metavar="REPO", help="e.g. 127.0.0.1:5000/demo/hello or oci:./lay")
    add_registry_options(p)
    add_json_option(p)


def run(args: argparse.Namespace) -> int:
    from ..api import tags
    found = tags(args.repo, options_from(args))
    if args.json:
        print_json(found)
    else:
        for t in found:
            print(t)
    return 0
