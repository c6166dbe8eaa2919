"""Probes: how slim knows an image still does its job.

``--probe URL`` succeeds on an HTTP 2xx/3xx answer; ``--probe-cmd CMD`` runs
CMD on the host and succeeds on exit status 0. Both retry until a deadline,
since a service needs a moment to start.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass


@dataclass
class ProbeResult:
    ok: bool
    detail: str
    seconds: float
    body: bytes = b""


@dataclass
class Probe:
    url: str | None = None
    cmd: str | None = None
    timeout: float = 20.0

    def describe(self) -> str:
        return f"GET {self.url}" if self.url else f"$ {self.cmd}" if self.cmd else "exit status 0"

    def run(self, alive=lambda: True) -> ProbeResult:
        """Try until success or the deadline; stop early when ``alive()`` turns False."""
        start = time.monotonic()
        deadline = start + self.timeout
        last = "not tried"
        while True:
            ok, last, body = self._once()
            if ok:
                return ProbeResult(True, last, time.monotonic() - start, body)
            if time.monotonic() > deadline or not alive():
                return ProbeResult(False, last, time.monotonic() - start, body)
            time.sleep(0.1)

    def _once(self) -> tuple[bool, str, bytes]:
        if self.url:
            import urllib.error
            import urllib.request
            try:
                with urllib.request.urlopen(self.url, timeout=3) as r:  # noqa: S310 - user-given probe URL
                    body = r.read(1 << 20)
                    return 200 <= r.status < 400, f"HTTP {r.status}", body
            except urllib.error.HTTPError as e:
                return False, f"HTTP {e.code}", b""
            except (OSError, ValueError) as e:
                return False, f"{type(e).__name__}: {e}", b""
        if self.cmd:
            try:
                p = subprocess.run(shlex.split(self.cmd), capture_output=True, timeout=10)
            except FileNotFoundError:
                return False, f"{shlex.split(self.cmd)[0]}: command not found on the host", b""
            except subprocess.TimeoutExpired:
                return False, "probe command timed out", b""
            out = (p.stdout + p.stderr).decode(errors="replace").strip()
            return p.returncode == 0, f"exit {p.returncode}: {out[:200]}", p.stdout
        return True, "no probe", b""
