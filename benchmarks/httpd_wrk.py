"""httpd under wrk: the kilobox example server against nginx and busybox httpd, same file, same load.

    .venv/bin/python benchmarks/httpd_wrk.py [--rounds 5] [--duration 5] [--no-write]

Each server listens on its own free 127.0.0.1 port and serves examples/httpd/www/index.html;
every round runs ``wrk -t2 -c64 -d5s`` once against each server, in rotating order, after a
1-second warm-up. Load stays on loopback and is bounded by the duration. Reports req/s
min / median / max, the median of per-round ratios, and each server's peak RSS; writes its
section into docs/benchmarks.md (between ``<!-- bench:httpd_wrk -->`` markers).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, add_output_args, machine, pair_ratio, peak_rss_kib, publish, rounds, span, version
from tests.helpers.tools import free_port

NAME = "httpd_wrk"
WWW = ROOT / "examples" / "httpd" / "www"


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}: {proc.args}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise SystemExit(f"server did not listen on {port}: {proc.args}")


def kilobox_httpd() -> Path:
    from kilobox.build.toolchain import Target, compile_sources
    return compile_sources("c", [ROOT / "examples/httpd/httpd.c"], Target.from_platform("linux/amd64"),
                           cflags=["-Wall", "-Wextra"], freestanding=True)


def start_servers(work: Path) -> dict[str, tuple[subprocess.Popen, int, str]]:
    """name -> (process, port, note). nginx and busybox only when installed."""
    servers: dict[str, tuple[subprocess.Popen, int, str]] = {}
    binary = kilobox_httpd()
    port = free_port()
    p = subprocess.Popen([str(binary)], env={"PORT": str(port), "WWW_ROOT": str(WWW)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers["kilobox httpd"] = (p, port, f"{binary.stat().st_size} bytes, static, no libc; 1 process, epoll")
    nginx = shutil.which("nginx")
    if nginx:
        port = free_port()
        conf = work / "nginx.conf"
        conf.write_text(f"""daemon off; master_process off; worker_processes 1; pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
  uwsgi_temp_path {work}; scgi_temp_path {work};
  types {{ text/html html; }}
  server {{ listen 127.0.0.1:{port}; root {WWW}; index index.html; }} }}
""")
        p = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
        servers["nginx"] = (p, port, f"{version}; 1 worker, no master, access_log off, sendfile")
    busybox = shutil.which("busybox")
    if busybox and subprocess.run([busybox, "httpd", "--help"], capture_output=True).returncode in (0, 1):
        port = free_port()
        p = subprocess.Popen([busybox, "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(WWW)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = subprocess.run([busybox], capture_output=True, text=True).stdout.splitlines()
        servers["busybox httpd"] = (p, port, (first[0].split(" multi-call")[0] if first else "busybox")
                                    + "; a process per connection, no keep-alive")
    for p, port, _ in servers.values():
        wait_port(port, p)
    return servers


def wrk(port: int, duration: int) -> tuple[float, int]:
    """(requests per second, non-2xx/socket errors) of one wrk run."""
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{duration}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout)\s*:?\s+(\d+)", out))
    return rps, errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    add_output_args(ap)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    mach = machine([version(["wrk", "-v"], "wrk")])
    with tempfile.TemporaryDirectory(prefix="kb-wrk.") as tmp:
        servers = start_servers(Path(tmp))
        names = list(servers)
        results: dict[str, list[float]] = {n: [] for n in names}
        errors: dict[str, int] = {n: 0 for n in names}
        try:
            for r, n in rounds(names, args.rounds, warmup=1):
                if r < 0:                                     # warm-up: 1 s each
                    wrk(servers[n][1], 1)
                    continue
                rps, err = wrk(servers[n][1], args.duration)
                results[n].append(rps)
                errors[n] += err
                print(f"round {r + 1}: {n:14} {rps:10.0f} req/s", file=sys.stderr, flush=True)
            rss = {n: peak_rss_kib(servers[n][0].pid) for n in names}
        finally:
            for p, _, _ in servers.values():
                p.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=10)
                if p.poll() is None:
                    p.kill()
                    p.wait()
    base = results["kilobox httpd"]
    lines = [
        "## httpd under wrk (kilobox example vs nginx vs busybox httpd)",
        "",
        f"Machine: {mach}.",
        "",
        f"Reproduce: `.venv/bin/python benchmarks/httpd_wrk.py --rounds {args.rounds} --duration {args.duration}` — "
        f"{time.strftime('%Y-%m-%d')}. Load per run: `wrk -t2 -c64 -d{args.duration}s http://127.0.0.1:PORT/` "
        f"(examples/httpd/www/index.html, {(WWW / 'index.html').stat().st_size} bytes, keep-alive), servers in "
        "rotating order after a 1 s warm-up; wrk and the server share the machine's CPUs.",
        "",
        "| server | req/s min / median / max | median ratio kilobox ÷ server | peak RSS | errors | notes |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for n in names:
        v = results[n]
        ratio = pair_ratio(base, v) if v and all(v) else float("nan")
        lines.append(f"| {n} | {span(v, 1, ',.0f')} | "
                     f"{'1.00' if n == 'kilobox httpd' else f'{ratio:.2f}×'} | {rss[n]:,} KiB | {errors[n]} | "
                     f"{servers[n][2]} |")
    goal = statistics.median(base) >= 20000
    lines += ["", f"- Goal ≥ 20,000 req/s for the kilobox httpd: {'met' if goal else 'NOT met'} "
              f"(median {statistics.median(base):,.0f} req/s)."]
    publish(args, NAME, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
