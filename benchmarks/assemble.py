#!/usr/bin/env python3
"""Benchmark: image assembly from a prebuilt static binary.

Three pipelines produce the same thing, a one-layer image of one binary with
an entrypoint and a user, in a fresh OCI layout:

- kilobox: ``kilobox build --binary BIN --entrypoint /app -o oci:DIR:app``   (one process)
- umoci:   ``init``, ``new``, ``unpack``, copy the binary in, ``repack``, ``config``
- buildah: ``from scratch``, ``copy``, ``config``, ``commit --rm`` to ``oci:DIR:app``
           (vfs storage and chroot isolation, in a private storage root)

Each round runs the three in rotating order (A B C, B C A, …) after a warm-up;
the report gives min / median / max wall time of each pipeline, the median of
the per-round ratios, and the peak RSS of the largest process.

kilobox runs as an installed package would: with byte-code caching on (a
private ``PYTHONPYCACHEPREFIX``), even when the environment sets
``PYTHONDONTWRITEBYTECODE``.

    .venv/bin/python benchmarks/assemble.py [--rounds 15] [--binary PATH] [--no-write]

Results replace the ``assemble`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import KILOBOX, add_output_args, machine, pair_ratio, publish, python, rounds, run, span, version

NAME = "assemble"
SOURCE = '#include <unistd.h>\nint main(void) { write(1, "hello\\n", 6); return 0; }\n'


def pipeline(tool: str, binary: Path, work: Path, env: dict[str, str],
             rss: bool = False, prefix: list[str] | None = None) -> tuple[float, float, int]:
    """Run one tool's pipeline into a fresh layout: (wall s, CPU s, max peak RSS KiB when *rss*).

    *prefix* runs every step under a wrapper (strace, to count syncs; untimed use only).
    """
    out = work / f"out-{tool}"
    shutil.rmtree(out, ignore_errors=True)
    if tool == "kilobox":
        steps = [([KILOBOX, "build", "--binary", str(binary), "--entrypoint", "/app", "-o", f"oci:{out}:app"], None)]
    elif tool == "umoci":
        bundle = work / "umoci-bundle"
        shutil.rmtree(bundle, ignore_errors=True)
        img = f"{out}:app"
        steps = [(["umoci", "init", "--layout", str(out)], None),
                 (["umoci", "new", "--image", img], None),
                 (["umoci", "unpack", "--image", img, str(bundle)], None),
                 (["cp", str(binary), str(bundle / "rootfs" / "app")], None),
                 (["umoci", "repack", "--image", img, str(bundle)], None),
                 (["umoci", "config", "--image", img, "--config.entrypoint", "/app",
                   "--config.user", "65532:65532"], None)]
    else:
        ba = ["buildah", "--root", str(work / "buildah" / "root"), "--runroot", str(work / "buildah" / "run"),
              "--storage-driver", "vfs"]
        steps = [(ba + ["from", "scratch"], "ctr"),
                 (ba + ["copy", "{ctr}", str(binary), "/app"], None),
                 (ba + ["config", "--entrypoint", '["/app"]', "--user", "65532:65532", "{ctr}"], None),
                 (ba + ["commit", "-q", "--rm", "{ctr}", f"oci:{out}:app"], None)]
    total, cpu, peak, vars_ = 0.0, 0.0, 0, {}  # type: ignore[var-annotated]
    for cmd, capture in steps:
        cmd = [c.format(**vars_) if "{" in c and not c.startswith("[") else c for c in cmd]
        # peak RSS needs GNU time: wait4's ru_maxrss would count the benchmark's own inherited pages
        s = run([*(prefix or []), *cmd], env, gnu_time=rss, capture=True)
        total += s.wall
        cpu += s.cpu
        peak = max(peak, s.rss_kib if rss else 0)
        if capture:
            vars_[capture] = s.stdout.strip().splitlines()[-1]
    if not (out / "index.json").is_file():
        raise SystemExit(f"{tool} produced no layout at {out}")
    return total, cpu, peak


LIBRARY_SNIPPET = """
import json, shutil, statistics, sys, time
from kilobox.build import build
binary, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
build(binaries=[binary], entrypoint="/app", output=f"oci:{out}-warm:app")
ts, mem = [], []
for i in range(n):
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    build(binaries=[binary], entrypoint="/app", output=f"oci:{out}:app")
    ts.append(time.perf_counter() - t)
    t = time.perf_counter()
    build(binaries=[binary], entrypoint="/app")
    mem.append(time.perf_counter() - t)
print(json.dumps([ts, mem]))
"""


def library_calls(binary: Path, work: Path, env: dict[str, str], n: int) -> tuple[list[float], list[float]]:
    """Seconds per ``kilobox.build()`` call in one warm process (imports already done): into a fresh
    OCI layout, and without an output (the assembly in memory)."""
    p = subprocess.run([sys.executable, "-c", LIBRARY_SNIPPET, str(binary), str(work / "lib-out"), str(n)],
                       env=env, capture_output=True, text=True, check=True)
    import json
    ts, mem = json.loads(p.stdout)
    return ts, mem


BREAKDOWN_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
import re, argparse, pathlib     # the console script imports re, the CLI argparse, most modules pathlib
t1 = time.perf_counter()
from kilobox.cli import build_parser
args = build_parser("build").parse_args(["build", "--binary", "x", "-o", "oci:o:t"])
t2 = time.perf_counter()
import kilobox.oci, kilobox.transports, kilobox.formats
t3 = time.perf_counter()
import kilobox.build, kilobox.build.config, kilobox.build.assemble, kilobox.build.report, kilobox.build.elf
t4 = time.perf_counter()
import kilobox.layers, kilobox.copying, kilobox.formats.layout, kilobox.formats.memory
t5 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]))
"""

#: rows of the breakdown, in the order BREAKDOWN_SNIPPET measures them
PARTS = ["imports: re, argparse, pathlib (the CLI and most modules)",
         "CLI: kilobox.cli, build_cmd, _common; the `build` parser built and parsed",
         "imports: the model (kilobox.oci), transports, formats",
         "imports: kilobox.build (config, assemble, report, elf)",
         "imports: the write path (layers, copy engine, OCI layout sink, memory source)"]


def breakdown(env: dict[str, str], n: int) -> dict[str, float]:
    """Median seconds of each part of a build process (fresh processes; imports in the order a build does them)."""
    import json
    starts, versions, parts = [], [], []
    for _ in range(n):
        starts.append(run([sys.executable, "-c", "pass"], env, capture=True).wall)
        versions.append(run([KILOBOX, "--version"], env, capture=True).wall)
        parts.append(json.loads(subprocess.run([sys.executable, "-c", BREAKDOWN_SNIPPET], env=env, check=True,
                                               capture_output=True, text=True).stdout))
    out = {"python -c pass (whole process)": statistics.median(starts)}
    out.update({name: statistics.median(p[i] for p in parts) for i, name in enumerate(PARTS)})
    out["`kilobox --version` (whole process: interpreter, console script, CLI entry)"] = statistics.median(versions)
    return out


SYNCS = "trace=fsync,fdatasync,sync_file_range,syncfs,sync"


def count_syncs(tool: str, binary: Path, work: Path, env: dict[str, str]) -> int | None:
    """fsync-family calls of one run of *tool*'s pipeline (all its processes, strace), or None without strace."""
    strace = shutil.which("strace")
    if not strace:
        return None
    log = work / f"strace-{tool}"
    shutil.rmtree(log, ignore_errors=True)
    log.mkdir()
    pipeline(tool, binary, work, env, prefix=[strace, "-ff", "-qq", "-e", SYNCS, "-o", str(log / "step")])
    n = 0
    for f in log.iterdir():
        n += sum(1 for line in f.read_text().splitlines() if "sync" in line.split("(")[0] and "resumed" not in line)
    return n


def make_binary(work: Path) -> Path:
    """A small static C binary, compiled with kilobox's toolchain (cached)."""
    from kilobox.build.toolchain import Target, compile_sources
    from kilobox.oci import Platform
    src = work / "app.c"
    src.write_text(SOURCE)
    return compile_sources("c", [src], Target.from_platform(Platform.host()))


def fmt(v: list[float]) -> str:
    return span(v, 1000, ".1f")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--binary", type=Path, help="a static binary to package (default: a small C hello)")
    ap.add_argument("--tools", default="kilobox,umoci,buildah")
    add_output_args(ap)
    args = ap.parse_args()
    tools = args.tools.split(",")
    for t in tools[1:]:
        if not shutil.which(t):
            raise SystemExit(f"{t} is not installed (apt-get install -y {t})")
    started = machine([python(), version(["umoci", "--version"]), version(["buildah", "--version"])])
    with tempfile.TemporaryDirectory(prefix="kb-bench-asm-") as tmp:
        work = Path(tmp)
        binary = (args.binary or make_binary(work)).resolve()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPYCACHEPREFIX=str(work / "pycache"), BUILDAH_ISOLATION="chroot",
                   KILOBOX_CACHE=str(work / "store"))
        samples: dict[str, list[float]] = {t: [] for t in tools}
        cpus: dict[str, list[float]] = {t: [] for t in tools}
        rss: dict[str, int] = {t: 0 for t in tools}
        for r, t in rounds(tools, args.rounds, args.warmup):
            wall, cpu, _ = pipeline(t, binary, work, env)
            if r >= 0:
                samples[t].append(wall)
                cpus[t].append(cpu)
        for t in tools:  # memory: one more, untimed run under GNU time
            rss[t] = pipeline(t, binary, work, env, rss=True)[2]
        lib, lib_mem = library_calls(binary, work, env, args.rounds)
        parts = breakdown(env, args.rounds)
        syncs = {t: count_syncs(t, binary, work, env) for t in tools}
        size = binary.stat().st_size
    base = samples[tools[0]]
    lines = [f"## Image assembly from a prebuilt binary ({NAME})", "",
             f"Machine: {started}.", "",
             f"Reproduce: `.venv/bin/python benchmarks/assemble.py --rounds {args.rounds}`"
             + (f" --binary {args.binary}" if args.binary else "") + ". "
             f"One static binary ({size} bytes) into a fresh OCI layout with entrypoint `/app` and user "
             "`65532:65532`; umoci: init, new, unpack, cp, repack, config; buildah (vfs, chroot isolation): "
             "from scratch, copy, config, commit --rm. Whole processes, as a user runs them; "
             f"{args.warmup} warm-up rounds, then {args.rounds} rounds in rotating order.", "",
             "| pipeline | processes | wall ms min / median / max | CPU ms (user+sys) median | "
             "peak RSS (largest process) | median wall ratio vs kilobox | median CPU ratio |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    nproc = {"kilobox": 1, "umoci": 6, "buildah": 4}
    for t in tools:
        ratio = pair_ratio(samples[t], base)
        cratio = pair_ratio(cpus[t], cpus[tools[0]])
        lines.append(f"| {t} | {nproc.get(t, '?')} | {fmt(samples[t])} | {statistics.median(cpus[t]) * 1000:.1f} | "
                     f"{rss[t] / 1024:.1f} MiB | {'1.00' if t == tools[0] else f'{ratio:.2f}×'} | "
                     f"{'1.00' if t == tools[0] else f'{cratio:.2f}×'} |")
    lines.append(f"| kilobox.build() in a warm process (library call, for reference) | 0 | {fmt(lib)} | - | - | - | - |")
    goals = {"umoci": 2.0, "buildah": 10.0}
    lines.append("")
    for t, goal in goals.items():
        if t in samples:
            ratio = pair_ratio(samples[t], base)
            speed = f"{ratio:.2f}× faster" if ratio >= 1 else f"{1 / ratio:.2f}× slower"
            lines.append(f"- vs {t}: kilobox is {speed} (median of per-round wall-time ratios); goal ≥ {goal:g}× "
                         f"faster: {'met' if ratio >= goal else 'NOT met'}.")
    lines += ["", "Where a `kilobox build --binary` process spends its time (medians over fresh processes; "
              "imports measured in the order a build does them, each row without what earlier rows loaded):", "",
              "| part | ms |", "| --- | ---: |"]
    lines += [f"| {k} | {v * 1000:.1f} |" for k, v in parts.items()]
    lines.append(f"| the build itself, imports done (library call above) | {statistics.median(lib) * 1000:.1f} |")
    lines.append(f"| … of which assembly in memory (kilobox.build() without an output) | "
                 f"{statistics.median(lib_mem) * 1000:.1f} |")
    need = [statistics.median(samples[t]) / g for t, g in (("umoci", 2), ("buildah", 10)) if t in samples]
    if need:
        fixed = sum(v for k, v in parts.items() if not k.startswith("`kilobox --version`"))
        floor = parts[next(k for k in parts if k.startswith("`kilobox --version`"))]
        sync_note = ("fsync-family calls per pipeline (strace): "
                     + ", ".join(f"{t} {n}" for t, n in syncs.items())
                     if None not in syncs.values() else "syncs not counted: no strace")
        lines += ["", f"Reading: the goals need a whole `kilobox build` process in ≤ {min(need) * 1000:.0f} ms here. "
                  f"Starting Python and importing what a build needs takes {fixed * 1000:.0f} ms before any work; "
                  f"a `kilobox --version` process alone takes {floor * 1000:.0f} ms; the assembly itself "
                  f"{statistics.median(lib) * 1000:.0f} ms, of which {statistics.median(lib_mem) * 1000:.1f} ms "
                  f"assemble the image in memory and the rest is the layout sink's writes ({sync_note}).",
                  "",
                  "- The ELF checks read the headers with `struct` (kilobox.build.elf); pyelftools (~20 ms of "
                  "imports) is no longer on this path.",
                  f"- The floor of any CPython CLI here: `python -c pass` takes "
                  f"{parts['python -c pass (whole process)'] * 1000:.0f} ms and `kilobox --version` "
                  f"{floor * 1000:.0f} ms, against a budget of {min(need) * 1000:.0f} ms for the whole build. "
                  "What a build imports beyond that (argparse's parser, pathlib, hashlib, json, tempfile, zlib, the "
                  "model and the write path) and the layout sink's syncs come on top, so the goals are out of reach "
                  "for a one-shot CPython process; as a library call (the reference rows) assembly is far below both."]
    publish(args, NAME, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
