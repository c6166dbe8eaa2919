"""Helpers shared by the benchmark scripts in this folder (not part of the kilobox package).

Importing this module puts the project root and ``src/`` on ``sys.path`` so a script run as
``.venv/bin/python benchmarks/NAME.py`` can import ``kilobox`` and ``tests.*``.

- :func:`machine`: the "Machine: …" line (kernel, CPUs, tool versions, load average);
- :func:`span`, :func:`pair_ratio`: min / median / max and the median of per-pair ratios;
- :func:`run`, :func:`peak_rss_kib`: one timed process (wall, CPU, peak RSS);
- :func:`rotated`, :func:`rounds`: the alternating (A B C, B C A, …) order of contenders;
- :func:`add_output_args`, :func:`publish`: ``--no-write`` / ``--docs`` and the section of
  docs/benchmarks.md between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "src"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

DOC = ROOT / "docs" / "benchmarks.md"
KILOBOX = str(Path(sys.executable).with_name("kilobox"))
TIME = shutil.which("time") or "/usr/bin/time"      # GNU time (Debian package "time")

T = TypeVar("T")


# -- machine info -----------------------------------------------------------------------------------------

def version(cmd: list[str], default: str = "?") -> str:
    """First line of *cmd*'s stdout (a ``--version``), or *default* when it cannot run or prints nothing."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return default


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or ``?``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def python() -> str:
    return f"Python {platform.python_version()}"


def machine(*groups: Sequence[str]) -> str:
    """``PLATFORM, N CPUs (MODEL)[, first group…][; next group…]; load average at start X``.

    The first group continues the platform clause (comma-separated); each further non-empty group
    is its own ``;`` clause, e.g. ``machine([python()], [version(["crun", "--version"])])``.
    """
    head = ", ".join([f"{platform.platform()}, {os.cpu_count()} CPUs ({cpu_model()})", *(groups[0] if groups else ())])
    clauses = [head, *(", ".join(g) for g in groups[1:] if g)]
    return "; ".join([*clauses, f"load average at start {os.getloadavg()[0]:.1f}"])


# -- statistics -------------------------------------------------------------------------------------------

def span(v: Sequence[float], scale: float = 1.0, spec: str = ".2f") -> str:
    """``min / median / max`` of *v*, each times *scale*, formatted with *spec* (e.g. ``".1f"``, ``",.0f"``)."""
    return " / ".join(f"{x * scale:{spec}}" for x in (min(v), statistics.median(v), max(v)))


def pair_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median of the per-pair ratios ``a[i] / b[i]`` (samples taken in the same round)."""
    return statistics.median(x / y for x, y in zip(a, b))


# -- processes --------------------------------------------------------------------------------------------

class Sample(NamedTuple):
    """One finished process: wall and CPU (user+sys) seconds, peak RSS in KiB, its stdout when captured."""
    wall: float
    cpu: float
    rss_kib: int
    stdout: str


def run(cmd: list[str], env: dict[str, str] | None = None, *, gnu_time: bool = False,
        capture: bool = False) -> Sample:
    """Run *cmd* to the end and measure it; exits the benchmark when it fails.

    CPU time and, by default, peak RSS come from ``wait4`` of the process. With *gnu_time* it runs
    under ``/usr/bin/time -f %M`` and the peak RSS is time's: ``ru_maxrss`` of a child forked from this
    (possibly large) process also counts pages it inherited before ``exec``. stdout is discarded
    unless *capture*; stderr goes to a temporary file and is quoted when the process fails.
    """
    with tempfile.TemporaryDirectory(prefix="kb-bench-run-") as tmp:
        rss_file, err_file, out_file = Path(tmp, "rss"), Path(tmp, "err"), Path(tmp, "out")
        argv = [TIME, "-f", "%M", "-o", str(rss_file), *cmd] if gnu_time else cmd
        with open(err_file, "wb") as err, (open(out_file, "wb") if capture else contextlib.nullcontext()) as out:
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, env=env, stdout=out if capture else subprocess.DEVNULL, stderr=err)
            _pid, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
        p.returncode = code = os.waitstatus_to_exitcode(status)     # reaped here, not by Popen
        if code != 0:
            msg = err_file.read_bytes().decode(errors="replace")[-2000:]
            raise SystemExit(f"{' '.join(cmd)} failed ({code}): {msg}")
        rss = int(rss_file.read_text().split()[-1]) if gnu_time else ru.ru_maxrss
        stdout = out_file.read_bytes().decode(errors="replace") if capture else ""
    return Sample(wall, ru.ru_utime + ru.ru_stime, rss, stdout)


def peak_rss_kib(pid: int) -> int:
    """Peak RSS (``VmHWM``) of a running process in KiB, or 0 when it cannot be read."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# -- alternating rounds -----------------------------------------------------------------------------------

def rotated(items: Sequence[T], r: int) -> list[T]:
    """*items* in round *r*'s order: A B C, B C A, C A B, … (for two: A B, B A, …)."""
    k = r % len(items) if items else 0
    return [*items[k:], *items[:k]]


def rounds(items: Sequence[T], n: int, warmup: int = 0) -> Iterator[tuple[int, T]]:
    """``(round, item)`` for *warmup* rounds in the given order (round < 0: discard the sample),
    then *n* rounds in rotating order (round 0 … n-1)."""
    for w in range(warmup):
        for item in items:
            yield w - warmup, item
    for r in range(n):
        for item in rotated(items, r):
            yield r, item


# -- docs/benchmarks.md -----------------------------------------------------------------------------------

def add_output_args(ap: argparse.ArgumentParser) -> None:
    """``--no-write`` and ``--docs PATH`` (where the section goes; default docs/benchmarks.md)."""
    ap.add_argument("--no-write", action="store_true", help="print only; leave the docs file alone")
    ap.add_argument("--docs", type=Path, default=DOC, metavar="PATH",
                    help=f"the Markdown file whose section is replaced (default: {DOC.relative_to(ROOT)})")


def write_section(name: str, text: str, doc: Path = DOC) -> None:
    """Replace the ``bench:NAME`` section of *doc* with *text* (appended when the markers are missing)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    old = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in old and end in old:
        new = old[:old.index(start)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new)


def publish(args: argparse.Namespace, name: str, text: str, *, echo: bool = True) -> None:
    """Print *text* (when *echo*) and, unless ``--no-write``, write it as the *name* section of ``--docs``."""
    if echo:
        print(text)
    if not args.no_write:
        write_section(name, text, args.docs)
        print(f"wrote the {name} section of {args.docs}", file=sys.stderr)
