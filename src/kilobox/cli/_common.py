"""Options shared by several commands, and output helpers (the CLI's edge)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import Any


def add_registry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="append", default=[], metavar="HOST[:PORT]",
                   help="use plain http for this registry (repeatable; localhost is plain http unless TLS is "
                        "configured for it: a certs.d directory, --cert-dir or --tls-verify)")
    p.add_argument("--username", "-u", help="registry user name")
    p.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    p.add_argument("--authfile", metavar="FILE",
                   help="credentials file, containers auth.json or Docker config.json (default: the first that has "
                        "them of $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, "
                        "~/.config/containers/auth.json, ~/.docker/config.json)")
    add_tls_options(p)


def add_tls_options(p: argparse.ArgumentParser) -> None:
    """``--cert-dir DIR`` and ``--tls-verify[=BOOL]``, as skopeo spells them."""
    p.add_argument("--cert-dir", metavar="DIR",
                   help="use the certificates in DIR (*.crt: CA, NAME.cert + NAME.key: client) for the registry, "
                        "instead of /etc/containers/certs.d/HOST[:PORT]/ and the like")
    p.add_argument("--tls-verify", nargs="?", const=True, type=_bool_arg, metavar="BOOL",
                   help="false: https without checking the registry's certificate; given at all, a loopback "
                        "registry is reached over https too (write --tls-verify=BOOL before positional arguments)")


BOOL_WORDS = {"true": True, "t": True, "1": True, "yes": True, "false": False, "f": False, "0": False, "no": False}


def parse_bool(text: str) -> bool | None:
    """``true``/``false`` (also t/f, 1/0, yes/no; any case) -> bool; None for anything else."""
    return BOOL_WORDS.get(text.strip().lower())


def _bool_arg(text: str) -> bool:
    value = parse_bool(text)
    if value is None:
        import argparse
        raise argparse.ArgumentTypeError(f"expected true or false, got {text[:60]!r} "
                                         "(write --tls-verify=BOOL, or put --tls-verify after the arguments)")
    return value


def add_platform_option(p: argparse.ArgumentParser, help: str = "platform to select from an index, e.g. linux/arm64") -> None:
    p.add_argument("--platform", help=help)


def add_json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")


def options_from(args: argparse.Namespace):
    """A :class:`kilobox.formats.Options` from the shared registry flags."""
    from ..formats import Options
    password = None
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\r\n")
    return Options(insecure=tuple(getattr(args, "insecure", []) or ()),
                   username=getattr(args, "username", None), password=password,
                   docker_config=getattr(args, "authfile", None), cert_dir=getattr(args, "cert_dir", None),
                   tls_verify=getattr(args, "tls_verify", None))


def print_json(obj: Any) -> None:
    import json
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def human_bytes(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
