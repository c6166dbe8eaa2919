"""kilobox slim on Debian's nginx-light (non-root, high port, pid and temp files in /tmp)."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from tests.fixtures.runtime import wait_http
from tests.fixtures.slim import (  # noqa: F401 - fixtures
    INDEX_HTML, FatImage, slim_nginx_image, slim_cache, slim_store_dir,
)
from tests.helpers.tools import kilobox, need

pytestmark = pytest.mark.usefixtures("run_state", "slim_cache")


@pytest.fixture(scope="module")
def tools() -> None:
    need("strace")
    need("crun")


def _serve_and_get(location: str, port: int, *extra: str) -> str:
    name = kilobox("run", "-d", "--network", "host", "--tmpfs", "/tmp", *extra, location).stdout.strip()
    try:
        return wait_http(f"http://127.0.0.1:{port}/", timeout=15)
    finally:
        kilobox("stop", name, check=False)
        kilobox("rm", "-f", name, check=False)


def test_slim_nginx_serves_the_same_page_much_smaller_without_a_shell(tools, slim_nginx_image: FatImage,
                                                                     tmp_path: Path, monkeypatch):
    fat = slim_nginx_image
    monkeypatch.chdir(tmp_path)
    # the command line, with the fixture's port
    out = kilobox("slim", fat.location, "-o", "oci:slim:nginx", "--probe", f"http://127.0.0.1:{fat.port}/",
                  "--network", "host", "--tmpfs", "/tmp")
    text = out.stdout
    assert "slim image   attempt 1: probe ok: HTTP 200" in text
    assert "ELF dependency" in text and "seen at run time" in text and "rule" in text
    assert re.search(r"shells [1-9]\d* -> 0", text), text

    body = _serve_and_get("oci:slim:nginx", fat.port)
    assert body.encode() == INDEX_HTML
    assert _serve_and_get(fat.location, fat.port) == body

    rep = json.loads(kilobox("audit", "--json", "oci:slim:nginx", check=False).stdout)
    assert rep["summary"]["shells"] == [] and rep["summary"]["non_root"]

    names: set[str] = set()
    for blob in (tmp_path / "slim/blobs/sha256").iterdir():
        try:
            with tarfile.open(blob, "r:gz") as tf:
                names |= {m.name for m in tf.getmembers()}
        except tarfile.TarError:
            continue
    assert "usr/sbin/nginx" in names and "etc/nginx/mime.types" in names
    assert not {"usr/bin/bash", "usr/bin/dash", "usr/bin/sh", "bin/sh"} & names
    assert not any(n.startswith("usr/share/doc") for n in names)


def test_slim_nginx_json_include_exclude_and_size_ratio(tools, slim_nginx_image: FatImage, tmp_path: Path,
                                                        monkeypatch):
    fat = slim_nginx_image
    monkeypatch.chdir(tmp_path)
    out = kilobox("slim", fat.location, "-o", "oci:slim:app", "--include", "/usr/share/zoneinfo/**",
                  "--exclude", "/usr/share/doc/**", "--json", "--probe", f"http://127.0.0.1:{fat.port}/",
                  "--network", "host", "--tmpfs", "/tmp")
    d = json.loads(out.stdout)
    assert d["schema"] == "kilobox.slim/v1" and d["ok"] and d["written"]
    kept = {k["path"]: k for k in d["kept"]}
    assert kept["/usr/share/zoneinfo/Europe/Paris"]["category"] == "include"
    assert kept["/usr/sbin/nginx"]["category"] == "runtime"
    assert any(k["category"] == "elf" and "libc.so" in k["path"] for k in d["kept"])
    assert kept["/etc/passwd"]["category"] == "rule"
    assert not any(p.startswith("/usr/share/doc/") for p in kept)
    assert d["before"]["bytes"] > d["after"]["bytes"] > 0 and d["after"]["files"] < 2000
    assert d["audit"]["after"]["shells"] == [] and d["audit"]["before"]["shells"]
    assert d["verification"][-1]["ok"] and d["fat_probe"]["ok"]
    for key in ("trace", "assemble", "verify", "total"):
        assert d["timings"][key] >= 0


def test_slim_nginx_ratio_and_what_floors_it(tools, slim_nginx_image: FatImage, tmp_path: Path):
    """The measured ratio; nginx's own DT_NEEDED libraries (libcrypto alone is 4.5 MiB) set the floor."""
    from kilobox.slim import slim
    fat = slim_nginx_image
    r = slim(fat.location, f"oci:{tmp_path / 'slim'}:nginx", probe_url=f"http://127.0.0.1:{fat.port}/",
             network="host", tmpfs=["/tmp"], audit=False)
    assert r.ok and r.written
    floor = sum(k.size for k in r.kept if k.category == "elf")
    assert floor > 0.8 * r.after["bytes"]          # almost everything left is nginx's ELF closure
    assert r.ratio >= 15 and r.compressed_ratio >= 20
    assert r.after["bytes"] < 12 << 20


def test_missing_file_is_named_and_auto_fix_puts_it_back(tools, slim_nginx_image: FatImage, tmp_path: Path):
    fat = slim_nginx_image
    base = ["slim", fat.location, "--probe", f"http://127.0.0.1:{fat.port}/", "--network", "host", "--tmpfs", "/tmp",
            "--exclude", "/etc/nginx/mime.types", "--probe-timeout", "10"]
    out = kilobox(*base, "-o", f"oci:{tmp_path / 'broken'}:nginx", check=False)
    assert out.returncode == 1, out.stderr
    assert "missing: /etc/nginx/mime.types" in out.stderr and "was not written" in out.stderr
    assert "container said:" in out.stdout and "mime.types" in out.stdout
    assert not (tmp_path / "broken").exists()
    out = kilobox(*base, "-o", f"oci:{tmp_path / 'fixed'}:nginx", "--auto-fix", "--json")
    d = json.loads(out.stdout)
    assert d["ok"] and len(d["verification"]) == 2
    assert d["verification"][0]["missing"] == ["/etc/nginx/mime.types"]
    assert d["verification"][0]["added"] == ["/etc/nginx/mime.types"]
    assert any("put back" in w for w in d["warnings"])
