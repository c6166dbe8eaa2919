"""An isolated podman for tests: private storage, run and tmp dirs; nothing touches the host's images.

The incantation that works on this machine (podman 4.3, root, no systemd)::

    podman --root D/root --runroot D/run --tmpdir D/tmp \\
           --storage-driver vfs --cgroup-manager cgroupfs --events-backend none \\
           load -i IMAGE.tar
    podman … run --rm --runtime runc --network none \\
           --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 IMAGE

- ``--root/--runroot/--tmpdir`` keep images, containers and libpod state under D
  (D is short, under /tmp: conmon's socket paths must stay under 108 bytes).
- ``vfs`` works everywhere (no overlay-on-overlay in CI containers); ``cgroupfs``
  because there is no systemd; ``--events-backend none`` writes no journal/event file.
- ``--network none`` needs no CNI/netavark set-up; the ``--ulimit`` pair is required
  on this machine (the default nofile/nproc limits fail in the sandbox).

Use it as a context manager::

    with isolated_podman() as podman:
        podman.load(archive)                      # -> the loaded name
        podman.run("docker.io/library/app:1").stdout
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.helpers.tools import need

GLOBAL_FLAGS = ["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
RUN_FLAGS = ["--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@dataclass
class Podman:
    """A podman with its own storage under *base*."""

    exe: str
    base: Path

    def argv(self, *args: str) -> list[str]:
        return [self.exe, "--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
                "--tmpdir", str(self.base / "tmp"), *GLOBAL_FLAGS, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {p.returncode}\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def load(self, archive: str | Path) -> list[str]:
        """``podman load -i archive``; returns the names it reports as loaded."""
        out = self("load", "-q", "-i", str(archive)).stdout
        return [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Loaded image")]

    def run(self, image: str, *args: str, runtime: str = "runc", check: bool = True) -> subprocess.CompletedProcess:
        """``podman run --rm --runtime RUNTIME …`` with the flags this machine needs."""
        return self("run", "--runtime", runtime, *RUN_FLAGS, image, *args, check=check)

    def image_ids(self) -> dict[str, str]:
        """name -> image id (the config digest's hex) of every image in this storage."""
        import json
        out = {}
        for img in json.loads(self("images", "--format", "json").stdout or "[]"):
            for name in img.get("Names") or []:
                out[name] = img["Id"]
        return out


@contextlib.contextmanager
def isolated_podman() -> Iterator[Podman]:
    """A :class:`Podman` in a fresh temp dir, removed afterwards (skips/fails without podman or runc)."""
    exe = need("podman")
    need("runc")
    base = Path(tempfile.mkdtemp(prefix="kbp-", dir="/tmp"))
    try:
        yield Podman(exe, base)
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(Podman(exe, base).argv("rm", "-af"), capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
