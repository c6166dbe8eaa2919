#!/usr/bin/env python3
"""Benchmark: pulling a big layer through a link that drops every N MiB (resume with Range).

One registry (``docker-registry`` on 127.0.0.1) holds a one-layer image of *--mb* MiB of
random bytes. Two proxies (:class:`tests.helpers.flaky_proxy.FlakyProxy`) stand in front
of it: one forwards everything, the other cuts every blob response after *--cut-mb* MiB
of body. Each round pulls the image into a new OCI layout with a cold store, through
both proxies, with kilobox and with skopeo (the order rotates every round). A run that
fails is reported with its error, not timed.

    .venv/bin/python benchmarks/pull_resume.py [--rounds 5] [--mb 64] [--cut-mb 8] [--no-write]

Results replace the ``pull_resume`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401 - puts src/ and the project root on sys.path
from _common import KILOBOX, add_output_args, machine, pair_ratio, publish, python, rounds, span, version

SKOPEO = shutil.which("skopeo") or "skopeo"
NAME = "pull_resume"


def attempt(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, exit code, last stderr line) of one process."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    lines = p.stderr.strip().splitlines()
    return wall, p.returncode, lines[-1] if lines else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mb", type=int, default=64, help="layer size in MiB (random bytes)")
    ap.add_argument("--cut-mb", type=int, default=8, help="the flaky proxy cuts every response after this many MiB")
    add_output_args(ap)
    args = ap.parse_args()

    from kilobox.formats.registry.client import BACKOFF_BASE
    from kilobox.testing import random_image, write_image
    from tests.fixtures.registry import start_registry
    from tests.helpers.flaky_proxy import FlakyProxy

    started = machine([python(), version([SKOPEO, "--version"], ""), version(["docker-registry", "--version"], "")])
    work = Path(tempfile.mkdtemp(prefix="kb-bench-resume-"))
    env = dict(os.environ, DOCKER_CONFIG=str(work / "no-docker"))
    srv = start_registry(work / "registry")
    plain = flaky = None
    samples: dict[str, list[tuple[float, int, str]]] = {}
    resumes: list[int] = []
    exact: list[bool] = []              # every resume asked for the byte the cut happened at
    try:
        write_image(random_image(1, args.mb << 20, seed=3, compression="none"), f"oci:{work / 'src'}:t")
        subprocess.run([KILOBOX, "copy", f"oci:{work / 'src'}:t", f"docker://{srv.host}/bench/big:1"],
                       env=dict(env, KILOBOX_CACHE=str(work / "push-store")), check=True, capture_output=True)
        plain = FlakyProxy(srv.host).start()
        flaky = FlakyProxy(srv.host, cut_after=args.cut_mb << 20, cuts=None).start()
        contenders = [(tool, link) for tool in ("kilobox", "skopeo") for link in ("no cuts", "cuts")]
        for r, (tool, link) in rounds(contenders, args.rounds, warmup=1):
            proxy = flaky if link == "cuts" else plain
            out = work / f"out-{r}-{tool}-{link.replace(' ', '')}"
            store = Path(tempfile.mkdtemp(dir=work, prefix="store."))
            src = f"docker://{proxy.host}/bench/big:1"
            cmd = ([KILOBOX, "copy", src, f"oci:{out}:t"] if tool == "kilobox" else
                   [SKOPEO, "copy", "-q", "--retry-times", "3", "--src-tls-verify=false", src, f"oci:{out}:t"])
            before = len(proxy.ranges())
            sample = attempt(cmd, dict(env, KILOBOX_CACHE=str(store)))
            if r >= 0:
                samples.setdefault(f"{tool}, {link}", []).append(sample)
                if tool == "kilobox" and link == "cuts":
                    at = [int(x[len("bytes="):-1]) for x in proxy.ranges()[before:] if x]
                    resumes.append(len(at))
                    exact.append(all(n % (args.cut_mb << 20) == 0 for n in at))
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(store, ignore_errors=True)
            print(f"round {r}: {tool}, {link}: {sample[0]:.2f} s, exit {sample[1]}", file=sys.stderr)
    finally:
        for p in (plain, flaky):
            if p is not None:
                p.stop()
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)

    def row(key: str) -> str:
        s = samples[key]
        ok = [w for w, code, _ in s if code == 0]
        failed = [(code, err) for _, code, err in s if code != 0]
        times = span(ok, 1000, ".0f") if ok else "—"
        note = f"{len(ok)}/{len(s)} succeeded"
        if failed:
            code, err = failed[0]
            note += f"; exit {code}: `{err[-160:].replace('|', '/')}`"
        return f"| {key} | {times} | {note} |"

    lines = [
        "## Pull through a link that drops (resume with Range)",
        "",
        f"`.venv/bin/python benchmarks/pull_resume.py --rounds {args.rounds} --mb {args.mb} --cut-mb {args.cut_mb}` "
        f"— {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {started}.",
        "",
        f"A one-layer image of {args.mb} MiB of random bytes in `docker-registry` on 127.0.0.1, pulled into a new "
        f"OCI layout (kilobox: cold store) through a local proxy (`tests/helpers/flaky_proxy.py`) that either "
        f"forwards everything or cuts every blob response after {args.cut_mb} MiB of body. Fresh processes, "
        f"order rotating every round, one warm-up round not counted. Times in ms: min / median / max.",
        "",
        "| pull | ms | result |",
        "|---|---|---|",
        *(row(k) for k in samples),
    ]
    k_ok = [w for w, c, _ in samples.get("kilobox, cuts", []) if c == 0]
    k_plain = [w for w, c, _ in samples.get("kilobox, no cuts", []) if c == 0]
    if k_ok and len(k_ok) == len(k_plain):
        extra = statistics.median(k_ok) - statistics.median(k_plain)
        n = statistics.median(resumes)
        where = "each at the byte where the cut happened" if all(exact) else "NOT all at the byte of the cut"
        lines += ["", f"kilobox: {statistics.median(k_ok) * 1000:.0f} ms with a cut every {args.cut_mb} MiB vs "
                  f"{statistics.median(k_plain) * 1000:.0f} ms without (median ratio "
                  f"{pair_ratio(k_ok, k_plain):.2f}×), {n:.0f} `Range` resumes per pull ({where}); about "
                  f"{extra / max(n, 1) * 1000:.0f} ms per resume (a break right after ≥ 1 MiB of progress is "
                  f"resumed at once; only breaks in a row wait the client's backoff, from "
                  f"0–{BACKOFF_BASE * 1000:.0f} ms up)."]
    sk = samples.get("skopeo, cuts", [])
    if sk and all(c != 0 for _, c, _ in sk):
        lines += ["", "skopeo (`--retry-times 3`) fails at the first cut: its version here neither resumes a "
                  "blob nor retries the copy after this error."]
    publish(args, NAME, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
