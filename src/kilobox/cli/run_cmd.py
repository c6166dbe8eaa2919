"""kilobox run: run an image as a hardened micro-container."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "run an image in a hardened container (crun/runc), or with --engine podman|docker"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="image location (oci:DIR[:TAG], oci-archive:, docker-archive:, REGISTRY/REPO:TAG)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="command arguments (replace the image's Cmd)")
    p.add_argument("--name", help="container name (default: generated)")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background; logs go to the state dir")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]", help="set an environment variable")
    p.add_argument("--entrypoint", help="override the image's entrypoint (\"\" clears it)")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="UID[:GID] or NAME[:GROUP]; uid 0 only if given explicitly")
    p.add_argument("--read-write", action="store_true", help="writable root filesystem (a private writable layer)")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP", help="add a capability (all are dropped)")
    p.add_argument("--network", default="none", choices=["none", "host"],
                   help="none: a private network namespace with only loopback (default); host: the host's")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:]HOST:CONTAINER",
                   help="publish a port (not supported: use --network host)")
    p.add_argument("--tmpfs", action="append", default=[], metavar="PATH[:OPTS]", help="mount a tmpfs at PATH")
    p.add_argument("-m", "--memory", help="memory limit, e.g. 64m")
    p.add_argument("--pids-limit", type=int, help="maximum number of processes")
    p.add_argument("--cpus", help="CPU quota, e.g. 0.5")
    p.add_argument("--hostname", help="host name inside the container (default: kilobox)")
    p.add_argument("--seccomp", default="default", choices=["default", "unconfined"],
                   help="seccomp profile (default: kilobox's allow-list)")
    p.add_argument("--runtime", help="crun, runc, youki or a path (default: the first installed)")
    p.add_argument("--engine", choices=["podman", "docker"], help="delegate to a container engine instead")
    from ._common import add_platform_option
    add_platform_option(p)
    p.add_argument("--insecure", action="append", default=[], metavar="HOST[:PORT]",
                   help="pull from this registry over plain http (localhost always is)")
    p.add_argument("--authfile", help="docker config.json with registry credentials")


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..run import make_options, run as run_container
    if args.publish:
        raise UsageError("--publish is not supported: the container's network namespace has only loopback",
                         hint="use --network host (the service then listens on the host directly)")
    rest = list(args.args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    opts = make_options(user=args.user, read_write=args.read_write, cap_add=args.cap_add, env=args.env,
                        entrypoint=args.entrypoint, args=rest or None, workdir=args.workdir,
                        network=args.network, tmpfs=args.tmpfs, memory=args.memory, pids_limit=args.pids_limit,
                        cpus=args.cpus, hostname=args.hostname, seccomp=args.seccomp, environ=dict(os.environ))
    reg = None
    if args.insecure or args.authfile:
        from ..formats import Options
        reg = Options(insecure=tuple(args.insecure), docker_config=args.authfile)
    sys.stdout.flush()
    r = run_container(args.image, options=opts, name=args.name, detach=args.detach, remove=args.rm,
                      runtime=args.runtime, engine=args.engine, platform=args.platform, registry_options=reg)
    if args.detach:
        print(r.name)
        return 0
    code = int(r.exit_code or 0)
    if os.path.basename(sys.argv[0]) in ("kilobox", "__main__.py"):
        # the real CLI: the container is gone and nothing is left to clean up; skip the
        # interpreter's teardown (several ms of a ~50 ms run)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
