"""kilobox copy SRC DST — copy an image or index between layouts, archives and registries."""

from __future__ import annotations

import argparse

from ._common import add_json_option, add_platform_option, add_registry_options, options_from, print_json

HELP = "copy an image or index (oci:, oci-archive:, docker-archive:, docker:// or a registry REF)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="source, e.g. oci:./out:hello or 127.0.0.1:5000/demo/hello:1")
    p.add_argument("dst", metavar="DST", help="destination, e.g. docker://127.0.0.1:5000/demo/hello:1")
    add_platform_option(p, help="copy only this platform's image from an index, e.g. linux/arm64")
    add_registry_options(p)
    add_json_option(p)


def run(args: argparse.Namespace) -> int:
    from ..copying import copy
    from ..progress import progress_reporter
    opts = options_from(args)
    with progress_reporter(enabled=False if args.json else None) as cb:
        opts.progress = cb
        root = copy(args.src, args.dst, platform=args.platform, options=opts)
    if args.json:
        print_json({"source": args.src, "destination": args.dst, "digest": str(root.digest),
                    "mediaType": root.media_type, "size": root.size})
    else:
        print(root.digest)
    return 0
