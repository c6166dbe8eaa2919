"""kilobox inspect REF [--json] [--platform P] [--raw] [--config] [--files [--sort size]].

``--files`` (and ``--sort``) belong to the audit area: they are declared here,
so start-up never imports the audit code, and the command delegates to
``kilobox.audit.inspect.run_inspect(args) -> int`` when ``--files`` is given.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from ._common import (add_json_option, add_platform_option, add_registry_options, human_bytes,
                      options_from, print_json)

HELP = "show an image's digest, platform, config and layers (or its raw manifest)"
_EXTENSION = "kilobox.audit.inspect"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="REF", help="image, e.g. docker-archive:app.tar or oci:./lay:app")
    add_json_option(p)
    add_platform_option(p)
    p.add_argument("--raw", action="store_true", help="print the raw manifest or index bytes")
    p.add_argument("--config", action="store_true", help="print the image config (raw with --raw)")
    p.add_argument("--files", action="store_true", help="list the files of the flattened image (audit)")
    p.add_argument("--sort", choices=("name", "size"), default="name", help="order of --files")
    add_registry_options(p)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "files", False):
        from ..errors import UsageError
        try:
            ext = importlib.import_module(_EXTENSION)
        except ModuleNotFoundError as e:
            if e.name != _EXTENSION:
                raise
            raise UsageError("inspect --files needs the audit module, which is not installed") from None
        return int(ext.run_inspect(args))
    from .. import api
    opts = options_from(args)
    if args.raw or args.config:
        import sys
        raw = api.inspect_raw(args.ref, opts, platform=args.platform, config=args.config)
        if args.raw:
            sys.stdout.buffer.write(raw)
            sys.stdout.buffer.flush()
        else:
            import json
            print_json(json.loads(raw))
        return 0
    info = api.inspect(args.ref, opts, platform=args.platform)
    if args.json:
        print_json(info)
    else:
        print(format_inspect(info), end="")
    return 0


def _line(key: str, value: Any) -> str:
    return f"{key + ':':<14}{value}\n"


def format_inspect(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`kilobox.api.inspect`'s result (pure)."""
    out = _line("Name", info.get("Name"))
    if info.get("Tag"):
        out += _line("Tag", info["Tag"])
    if info.get("RepoTags"):
        out += _line("Tags", ", ".join(info["RepoTags"]))
    out += _line("Digest", info.get("Digest"))
    out += _line("MediaType", info.get("MediaType"))
    for m in info.get("Manifests", ()):
        out += f"  {m.get('Platform') or '-':<16}{m['Digest']}  {human_bytes(m['Size'])}\n"
    if "ImageDigest" not in info:
        return out
    plat = "/".join(x for x in (info.get("Os"), info.get("Architecture"), info.get("Variant")) if x)
    if info.get("ImageDigest") != info.get("Digest"):
        out += _line("Image", info["ImageDigest"])
    out += _line("Platform", plat)
    if info.get("Created"):
        out += _line("Created", info["Created"])
    for key in ("Entrypoint", "Cmd"):
        if info.get(key):
            out += _line(key, " ".join(info[key]))
    for key in ("User", "WorkingDir"):
        if info.get(key):
            out += _line(key, info[key])
    if info.get("Env"):
        out += "Env:\n" + "".join(f"  {e}\n" for e in info["Env"])
    if info.get("Labels"):
        out += "Labels:\n" + "".join(f"  {k}={v}\n" for k, v in sorted(info["Labels"].items()))
    if info.get("ExposedPorts"):
        out += _line("Ports", ", ".join(info["ExposedPorts"]))
    layers = info.get("LayersData") or []
    out += f"Layers:       {len(layers)}, {human_bytes(sum(l['Size'] for l in layers))} " \
           f"(image {human_bytes(info.get('Size', 0))})\n"
    for l in layers:
        out += f"  {l['Digest']}  {human_bytes(l['Size']):>10}  {l['MIMEType']}\n"
    return out
