"""kilobox run: run an image as a hardened micro-container."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import argparse

HELP = "run an image in a hardened container (crun/runc), or with --engine podman|docker"


def add_arguments(p: argparse.ArgumentParser) -> None:
    import argparse          # not at the top: the warm path (fast_main) never builds a parser
    p.add_argument("image", help="image location (oci:DIR[:TAG], oci-archive:, docker-archive:, REGISTRY/REPO:TAG)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="command arguments (replace the image's Cmd)")
    p.add_argument("--name", help="container name (default: generated)")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background; logs go to the state dir")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--restart", metavar="POLICY",
                   help="with -d only: no (default), on-failure[:MAX], always, unless-stopped (as always: "
                        "there is no daemon); kilobox stop/rm -f end it for good")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]", help="set an environment variable")
    p.add_argument("--entrypoint", help="override the image's entrypoint (\"\" clears it)")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="UID[:GID] or NAME[:GROUP]; uid 0 only if given explicitly")
    p.add_argument("--read-write", action="store_true", help="writable root filesystem (a private writable layer)")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP", help="add a capability (all are dropped)")
    p.add_argument("--network", default="none", choices=["none", "host"],
                   help="none: a private network namespace with only loopback (default); host: the host's")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:]HOSTPORT:PORT[/udp]",
                   help="forward a host port into the container: TCP, or UDP with /udp "
                        "(host address 127.0.0.1 unless given; repeatable)")
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
                   help="pull from this registry over plain http (localhost is, unless TLS is configured)")
    p.add_argument("--authfile", help="docker config.json with registry credentials")
    from ._common import add_tls_options
    add_tls_options(p)


def run(args: argparse.Namespace) -> int:
    from ..run import make_options, run as run_container
    rest = list(args.args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    opts = make_options(user=args.user, read_write=args.read_write, cap_add=args.cap_add, env=args.env,
                        entrypoint=args.entrypoint, args=rest or None, workdir=args.workdir,
                        network=args.network, tmpfs=args.tmpfs, memory=args.memory, pids_limit=args.pids_limit,
                        cpus=args.cpus, hostname=args.hostname, seccomp=args.seccomp, environ=dict(os.environ))
    reg = None
    if args.insecure or args.authfile or args.cert_dir or args.tls_verify is not None:
        from ..formats import Options
        reg = Options(insecure=tuple(args.insecure), docker_config=args.authfile, cert_dir=args.cert_dir,
                      tls_verify=args.tls_verify)
    sys.stdout.flush()
    r = run_container(args.image, options=opts, name=args.name, detach=args.detach, remove=args.rm,
                      runtime=args.runtime, engine=args.engine, platform=args.platform, registry_options=reg,
                      publish=args.publish, restart=args.restart)
    if args.detach:
        print(r.name)
        return 0
    code = int(r.exit_code or 0)
    if _is_cli():
        # the real CLI: the container is gone and nothing is left to clean up; skip the
        # interpreter's teardown (several ms of a ~50 ms run)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


# -- warm path ------------------------------------------------------------------------------
_VALUE_FLAGS = {"--name": "name", "--runtime": "runtime", "-e": "env", "--env": "env", "--network": "network",
                "-u": "user", "--user": "user", "--tmpfs": "tmpfs", "--cap-add": "cap_add", "-m": "memory",
                "--memory": "memory", "--pids-limit": "pids_limit", "--cpus": "cpus", "--hostname": "hostname",
                "-w": "workdir", "--workdir": "workdir", "--entrypoint": "entrypoint", "--seccomp": "seccomp"}
_BOOL_FLAGS = {"--rm": "rm", "-d": "detach", "--detach": "detach", "--read-write": "read_write"}
_LISTS = ("env", "tmpfs", "cap_add")


def fast_main(argv: list[str]) -> int | None:
    """``kilobox run …`` without argparse, when a cached bundle exists; None means "use the full parser".

    Handles the common flags; anything else (--engine, -p/--publish, --platform, --restart, -h, …),
    or an image without a warm bundle, falls back to the regular path.
    """
    if not argv or argv[0] != "run":
        return None
    vals: dict = {"env": [], "tmpfs": [], "cap_add": []}
    i, n = 1, len(argv)
    image = None
    while i < n:
        a = argv[i]
        if not a.startswith("-") or a == "-":
            image = a
            break
        key, eq, inline = a.partition("=")
        if key in _BOOL_FLAGS and not eq:
            vals[_BOOL_FLAGS[key]] = True
            i += 1
            continue
        if key not in _VALUE_FLAGS:
            return None
        if eq:
            v = inline
            i += 1
        elif i + 1 < n:
            v = argv[i + 1]
            i += 2
        else:
            return None
        field = _VALUE_FLAGS[key]
        if field in _LISTS:
            vals[field].append(v)
        elif field in vals:
            return None          # given twice: let argparse decide
        else:
            vals[field] = v
    if image is None:
        return None
    if vals.get("network", "none") not in ("none", "host") or vals.get("seccomp", "default") not in ("default", "unconfined"):
        return None              # argparse gives the proper error
    rest = argv[i + 1:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    if "pids_limit" in vals:
        if not vals["pids_limit"].isdigit():
            return None
        vals["pids_limit"] = int(vals["pids_limit"])
    from ..run import bundle, make_options
    opts = make_options(user=vals.get("user"), read_write=bool(vals.get("read_write")), cap_add=vals["cap_add"],
                        env=vals["env"], entrypoint=vals.get("entrypoint"), args=rest or None,
                        workdir=vals.get("workdir"), network=vals.get("network", "none"), tmpfs=vals["tmpfs"],
                        memory=vals.get("memory"), pids_limit=vals.get("pids_limit"), cpus=vals.get("cpus"),
                        hostname=vals.get("hostname"), seccomp=vals.get("seccomp", "default"),
                        environ=os.environ)
    if os.geteuid() != 0:
        return None
    meta = bundle.lookup(image, None, opts)
    if meta is None:
        return None
    if vals.get("detach"):
        from ..run import lifecycle
        print(lifecycle.start_detached(meta, name=vals.get("name"), remove=bool(vals.get("rm")),
                                       runtime=vals.get("runtime")))
        return 0
    sys.stdout.flush()
    if not _is_cli():
        from ..run import lifecycle
        return lifecycle.run_foreground(meta, name=vals.get("name"), remove=bool(vals.get("rm")),
                                        runtime=vals.get("runtime"))[1]
    # the kilobox command: the container's mount namespace is set up in this process, which
    # then only waits for the runtime and exits (no interpreter teardown: several ms)
    from ..run.warm import run_here
    _name, code = run_here(meta, name=vals.get("name"), remove=bool(vals.get("rm")), runtime=vals.get("runtime"))
    sys.stderr.flush()
    os._exit(code)


def _is_cli() -> bool:
    """True in the ``kilobox`` command (or ``python -m kilobox``), not in a library caller."""
    return os.path.basename(sys.argv[0]) in ("kilobox", "__main__.py")
