"""kilobox logout REGISTRY — remove stored credentials for a registry."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import argparse

HELP = "log out of a registry: remove its credentials from the auth file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("registry", metavar="REGISTRY", help="HOST[:PORT] or HOST/NAMESPACE[/REPO], as given to login")
    p.add_argument("--authfile", metavar="FILE",
                   help="file to remove them from (default: $REGISTRY_AUTH_FILE if set, else "
                        "$DOCKER_CONFIG/config.json or ~/.docker/config.json, where kilobox login writes)")


def run(args: argparse.Namespace) -> int:
    from ..formats import Options
    from ..formats.registry.credentials import logout
    key, path = logout(args.registry, Options(docker_config=args.authfile))
    print(f"Removed the credentials for {key} from {path}")
    return 0
