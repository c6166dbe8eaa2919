"""kilobox slim on Debian's redis-server, pulled from a real registry; redis-cli talks to the slim image."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.slim import (  # noqa: F401 - fixtures
    FatImage, slim_apps_rootfs, slim_redis_image, slim_cache, slim_store_dir,
)
from tests.helpers.tools import kilobox, need

pytestmark = pytest.mark.usefixtures("run_state", "slim_cache")


def _cli(port: int, *args: str) -> str:
    p = subprocess.run([need("redis-cli"), "-p", str(port), *args], capture_output=True, text=True, timeout=10)
    return (p.stdout + p.stderr).strip()


def _wait_pong(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _cli(port, "ping") == "PONG":
            return
        time.sleep(0.05)
    raise AssertionError(f"redis on {port} never answered PONG")


def test_slim_redis_from_a_registry_answers_ping_set_get(slim_redis_image: FatImage, registry, tmp_path: Path):
    need("strace")
    need("redis-cli")
    fat = slim_redis_image
    ref = registry.ref("team/redis:7")
    kilobox("copy", fat.location, f"docker://{ref}")
    slim_dir = tmp_path / "slim"
    # the command line, with the fixture's registry and port
    out = kilobox("slim", ref, "-o", f"oci:{slim_dir}:redis", "--probe-cmd", f"redis-cli -p {fat.port} ping",
                  "--network", "host", "--json")
    d = json.loads(out.stdout)
    assert d["ok"] and d["written"] and d["fat_probe"]["detail"].endswith("PONG")
    kept = {k["path"]: k for k in d["kept"]}
    assert any(p.endswith("libjemalloc.so.2") for p in kept)          # an ELF dependency of redis-server
    assert d["audit"]["after"]["shells"] == []
    assert d["ratio"] > 8

    name = kilobox("run", "-d", "--network", "host", f"oci:{slim_dir}:redis").stdout.strip()
    try:
        _wait_pong(fat.port)
        assert _cli(fat.port, "set", "greeting", "hello from a slim redis") == "OK"
        assert _cli(fat.port, "get", "greeting") == "hello from a slim redis"
        assert _cli(fat.port, "incr", "n") == "1"
    finally:
        kilobox("stop", name, check=False)
        kilobox("rm", "-f", name, check=False)
