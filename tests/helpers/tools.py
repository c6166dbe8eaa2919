"""Real external tools: find them, or skip (on a user's machine) / fail (in CI)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: tool → Debian package that provides it (what the README's test command installs)
PACKAGES = {
    "docker-registry": "docker-registry", "skopeo": "skopeo", "umoci": "umoci", "runc": "runc",
    "crun": "crun", "podman": "podman", "buildah": "buildah", "htpasswd": "apache2-utils",
    "mosquitto": "mosquitto", "mosquitto_sub": "mosquitto-clients", "qemu-aarch64-static": "qemu-user-static",
    "qemu-arm-static": "qemu-user-static", "qemu-riscv64-static": "qemu-user-static", "strace": "strace",
    "wrk": "wrk", "debootstrap": "debootstrap", "redis-server": "redis-server", "redis-cli": "redis-tools",
    "qemu-i386-static": "qemu-user-static", "qemu-ppc64le-static": "qemu-user-static",
    "qemu-s390x-static": "qemu-user-static", "gcc": "gcc", "cargo": "cargo", "curl": "curl",
}


def need(tool: str) -> str:
    """The path of *tool*; skip the test when missing, but fail in CI (where nothing may skip)."""
    path = shutil.which(tool)
    if path:
        return path
    pkg = PACKAGES.get(tool, tool)
    msg = f"{tool} is not installed (apt-get install -y {pkg}, or run scripts/test which installs it)"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kilobox(*args: str, check: bool = True, input: bytes | None = None, env: dict | None = None,
            cwd: str | Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed CLI as a user would; returns the completed process (text mode)."""
    exe = Path(sys.executable).with_name("kilobox")
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "kilobox"]), *args]
    full_env = dict(os.environ, **(env or {}))
    p = subprocess.run(cmd, input=input, capture_output=True, env=full_env, cwd=cwd, timeout=timeout)
    out = subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(errors="replace"),
                                      p.stderr.decode(errors="replace"))
    if check and p.returncode != 0:
        raise AssertionError(f"kilobox {' '.join(args)} exited {p.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}")
    return out
