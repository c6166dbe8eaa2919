"""kilobox ps: list containers."""

from __future__ import annotations

import argparse
import time

HELP = "list containers (running and exited)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="names only")
    p.add_argument("--running", action="store_true", help="only running containers")
    from ._common import add_json_option
    add_json_option(p)


def _ago(t: float | None) -> str:
    if not t:
        return "-"
    s = max(0, int(time.time() - t))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit} ago"
    return f"{s}s ago"


def run(args: argparse.Namespace) -> int:
    from ..run import ps
    rows = [r for r in ps() if not args.running or r["status"] == "running"]
    if args.json:
        from ._common import print_json
        print_json(rows)
        return 0
    if args.quiet:
        for r in rows:
            print(r["name"])
        return 0
    table = [("NAME", "STATUS", "IMAGE", "COMMAND", "RUNTIME", "CREATED", "PORTS")]
    for r in rows:
        status = r["status"] + (f" ({r['exit_code']})" if r["exit_code"] is not None else "")
        if r["status"] == "running" and r.get("restart_count"):
            status += f" (restarts {r['restart_count']})"
        cmd = " ".join(r["command"])
        table.append((r["name"], status, r["image"], cmd if len(cmd) <= 40 else cmd[:37] + "...",
                      r["runtime"], _ago(r["created"]), ", ".join(r.get("ports") or ())))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0
