"""A static program shipped in a fat Debian image (the "Go app FROM golang:latest" pattern).

With no DT_NEEDED closure to keep, slimming leaves the program, its data and a few rule
files: far more than 50× fewer bytes, and the slim image still serves the same page.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.runtime import wait_http
from tests.fixtures.slim import FatImage, make_fat_image, slim_cache, slim_store_dir  # noqa: F401 - fixtures
from tests.helpers.tools import free_port, kilobox, need

pytestmark = pytest.mark.usefixtures("run_state", "slim_cache")

ROOT = Path(__file__).resolve().parents[2]
PAGE = b"<!doctype html><title>static</title><p>one static binary in a fat image</p>\n"


@pytest.fixture(scope="module")
def static_fat_image(tmp_path_factory: pytest.TempPathFactory, debian_rootfs: Path) -> FatImage:
    """Debian minbase + nginx-light (the audit fixture's rootfs) + examples/httpd as the entrypoint."""
    from kilobox.layers import Entry
    work = tmp_path_factory.mktemp("slim-static")
    kilobox("build", str(ROOT / "examples/httpd"), "--platform", "linux/amd64", "-o", f"oci:{work / 'built'}:httpd")
    kilobox("unpack", f"oci:{work / 'built'}:httpd", str(work / "rootfs"))
    binary = (work / "rootfs/httpd").read_bytes()
    port = free_port()
    entries = [Entry("usr/local/bin/httpd", data=binary, mode=0o755),
               Entry("srv/www/index.html", data=PAGE, mode=0o644)]
    config = {"Entrypoint": ["/usr/local/bin/httpd"], "User": "www-data",
              "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"PORT={port}",
                      "WWW_ROOT=/srv/www"]}
    loc = make_fat_image(work / "fat", "app", debian_rootfs, entries, config)
    return FatImage(loc, work / "fat", "app", port)


def test_static_program_slims_over_50x_and_still_serves(static_fat_image: FatImage, tmp_path: Path):
    need("strace")
    need("crun")
    fat = static_fat_image
    url = f"http://127.0.0.1:{fat.port}/"
    out = kilobox("slim", fat.location, "-o", f"oci:{tmp_path / 'slim'}:app", "--probe", url,
                  "--network", "host", "--json")
    d = json.loads(out.stdout)
    assert d["ok"] and d["written"] and d["fat_probe"]["ok"] and d["verification"][-1]["ok"]
    kept = {k["path"]: k for k in d["kept"]}
    assert kept["/usr/local/bin/httpd"]["category"] == "runtime"
    assert kept["/srv/www/index.html"]["category"] == "runtime"
    assert not any(k["category"] == "elf" for k in d["kept"])          # static: no closure to keep
    assert d["ratio"] >= 50 and d["compressed_ratio"] >= 50
    assert d["after"]["bytes"] < 64 << 10
    assert d["audit"]["after"]["shells"] == [] and d["audit"]["before"]["shells"]
    assert d["audit"]["after"]["executables"] == 1

    name = kilobox("run", "-d", "--network", "host", f"oci:{tmp_path / 'slim'}:app").stdout.strip()
    try:
        assert wait_http(url, timeout=15).encode() == PAGE
    finally:
        kilobox("stop", name, check=False)
        kilobox("rm", "-f", name, check=False)
