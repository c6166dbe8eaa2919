"""kilobox login REGISTRY — check credentials against a registry, then store them."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import argparse

HELP = "log in to a registry: check the user name and password, then store them in an auth file"

MAX_PASSWORD = 64 * 1024


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("registry", metavar="REGISTRY",
                   help="HOST[:PORT], e.g. 127.0.0.1:5000 or quay.io; HOST/NAMESPACE[/REPO] stores credentials "
                        "used only for that part of the registry")
    p.add_argument("--authfile", metavar="FILE",
                   help="file to store the credentials in (default: $REGISTRY_AUTH_FILE if set, else "
                        "$DOCKER_CONFIG/config.json or ~/.docker/config.json, as docker login and crane do)")
    p.add_argument("--username", "-u", metavar="USER", help="registry user name (asked for on a terminal)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    g.add_argument("--password", "-p", metavar="PASS",
                   help="the password (other users may see it in the process list: prefer --password-stdin)")
    p.add_argument("--insecure", action="append", default=[], metavar="HOST[:PORT]",
                   help="use plain http for this registry (localhost is plain http unless TLS is configured)")
    from ._common import add_tls_options
    add_tls_options(p)


def read_secret(args: argparse.Namespace) -> tuple[str, str]:
    """(user, password) from the flags, stdin, or a prompt on a terminal."""
    import sys

    from ..errors import UsageError
    user, password = args.username or "", args.password
    tty = sys.stdin is not None and sys.stdin.isatty()
    if args.password_stdin:
        if not user:
            raise UsageError("--password-stdin needs --username", hint="kilobox login -u USER --password-stdin REGISTRY")
        data = sys.stdin.read(MAX_PASSWORD + 1)
        if len(data) > MAX_PASSWORD:
            raise UsageError(f"the password on stdin is longer than {MAX_PASSWORD} characters")
        password = data[:-1] if data.endswith("\n") else data
        password = password[:-1] if password.endswith("\r") else password
    elif password is not None:
        print("kilobox: warning: a password on the command line is visible to other users; "
              "use --password-stdin", file=sys.stderr)
    elif not tty:
        raise UsageError("no password given and stdin is not a terminal",
                         hint="pipe it in: kilobox login -u USER --password-stdin REGISTRY")
    try:
        if not user and tty:
            user = input("Username: ").strip()
        if password is None:
            import getpass
            password = getpass.getpass("Password: ")
    except EOFError:
        raise UsageError("no user name or password given") from None
    return user, password


def run(args: argparse.Namespace) -> int:
    from ..formats import Options
    from ..formats.registry.credentials import load_config, login, normalize_host, normalize_key
    user, password = read_secret(args)
    key, path = login(args.registry, user, password,
                      Options(insecure=tuple(args.insecure), docker_config=args.authfile, cert_dir=args.cert_dir,
                              tls_verify=args.tls_verify))
    print(f"Login Succeeded: credentials for {key} stored in {path}")
    helpers = load_config(path).get("credHelpers") or {}
    host = normalize_key(key).split("/", 1)[0]
    if any(normalize_host(k) == host for k in helpers):
        import sys
        print(f"kilobox: warning: credHelpers in {path} names a helper for {host}; it is asked first",
              file=sys.stderr)
    return 0
