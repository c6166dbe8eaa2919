"""kilobox sbom — SPDX 2.3 or CycloneDX 1.6 JSON of an image: files, packages, static binaries."""

from __future__ import annotations

import argparse
import sys

from ._common import add_platform_option, add_registry_options, options_from

HELP = "write the SBOM of an image (SPDX 2.3 JSON or CycloneDX 1.6 JSON)"

EPILOG = """examples:
  kilobox sbom --format spdx-json oci:out:httpd > sbom.spdx.json
  kilobox sbom --format cyclonedx-json oci:out:httpd -o sbom.cdx.json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("ref", metavar="REF", help="image: oci:DIR[:TAG], oci-archive:FILE, REGISTRY/REPO:TAG…")
    p.add_argument("--format", choices=("spdx-json", "cyclonedx-json"), default="spdx-json",
                   help="document format (default spdx-json)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    add_platform_option(p)
    add_registry_options(p)


def run(args: argparse.Namespace) -> int:
    import json

    from ..audit.sbom import sbom
    doc = sbom(args.ref, args.format, platform=args.platform, source_options=options_from(args))
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        from .._atomic import atomic_write
        atomic_write(args.output, text.encode())
    else:
        sys.stdout.write(text)
    return 0
