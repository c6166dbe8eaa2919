"""kilobox copy SRC DST — copy an image or index between layouts, archives and registries."""

from __future__ import annotations

from ._common import add_json_option, add_platform_option, add_registry_options, options_from, parse_bool, print_json

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import argparse

HELP = "copy an image or index (oci:, oci-archive:, docker-archive:, docker:// or a registry REF)"

#: the flags :func:`fast_main` understands (name -> attribute); anything else goes to argparse
_BOOL_FLAGS = {"--json": "json", "--password-stdin": "password_stdin", "--debug": "debug"}
_VALUE_FLAGS = {"--platform": "platform", "--insecure": "insecure", "--username": "username", "-u": "username",
                "--authfile": "authfile", "--cert-dir": "cert_dir", "--tls-verify": "tls_verify"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="source, e.g. oci:./out:hello or 127.0.0.1:5000/demo/hello:1")
    p.add_argument("dst", metavar="DST", help="destination, e.g. docker://127.0.0.1:5000/demo/hello:1")
    add_platform_option(p, help="copy only this platform's image from an index, e.g. linux/arm64")
    add_registry_options(p)
    add_json_option(p)


class _Args:
    """What argparse would return for the spellings :func:`fast_main` accepts."""

    def __init__(self) -> None:
        self.src = self.dst = ""
        self.platform = self.username = self.authfile = self.cert_dir = None
        self.tls_verify: bool | None = None
        self.insecure: list[str] = []
        self.json = self.password_stdin = False


def parse_fast(argv: list[str]) -> _Args | None:
    """``copy [flags] SRC DST [flags]`` with the flags above; None for anything else (help,
    an unknown or repeated flag, a missing value, a positional starting with ``-``)."""
    if argv[:1] != ["copy"]:
        return None
    args = _Args()
    seen: set[str] = set()
    pos: list[str] = []
    i, n = 1, len(argv)
    while i < n:
        a = argv[i]
        i += 1
        if not a.startswith("-"):
            pos.append(a)
            continue
        key, eq, inline = a.partition("=")
        if key in _BOOL_FLAGS and not eq:
            setattr(args, _BOOL_FLAGS[key], True)
            continue
        name = _VALUE_FLAGS.get(key)
        if name is None or (key == "-u" and eq):
            return None
        if eq:
            value = inline
        elif name == "tls_verify":                  # `--tls-verify false`; a bare one: argparse decides
            if i >= n or parse_bool(argv[i]) is None:
                return None
            value = argv[i]
            i += 1
        elif i < n and not argv[i].startswith("-"):
            value = argv[i]
            i += 1
        else:
            return None
        if name == "tls_verify":
            verify = parse_bool(value)
            if verify is None or name in seen:
                return None
            seen.add(name)
            args.tls_verify = verify
        elif name == "insecure":
            args.insecure.append(value)
        elif name in seen:
            return None          # given twice: argparse decides
        else:
            seen.add(name)
            setattr(args, name, value)
    if len(pos) != 2:
        return None
    args.src, args.dst = pos
    return args


def fast_main(argv: list[str]) -> int | None:
    """Run ``kilobox copy`` without building the argparse parser; None: use the full parser."""
    args = parse_fast(argv)
    return None if args is None else run(args)  # type: ignore[arg-type]


def run(args: argparse.Namespace) -> int:
    import sys

    from ..copying import copy
    opts = options_from(args)
    if args.json or not sys.stderr.isatty():        # no bars: the progress module is not even loaded
        root = copy(args.src, args.dst, platform=args.platform, options=opts)
    else:
        from ..progress import progress_reporter
        with progress_reporter() as cb:
            opts.progress = cb
            root = copy(args.src, args.dst, platform=args.platform, options=opts)
    if args.json:
        print_json({"source": args.src, "destination": args.dst, "digest": str(root.digest),
                    "mediaType": root.media_type, "size": root.size})
    else:
        print(root.digest)
    return 0
