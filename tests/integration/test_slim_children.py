"""Children and grandchildren are traced: busybox httpd forks, execs a #!/bin/sh CGI, which execs tr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.runtime import wait_http
from tests.fixtures.slim import (  # noqa: F401 - fixtures
    FatImage, slim_apps_rootfs, slim_cgi_image, slim_cache, slim_store_dir,
)
from tests.helpers.tools import kilobox, need

pytestmark = pytest.mark.usefixtures("run_state", "slim_cache")


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_cgi_children_are_traced(slim_cgi_image: FatImage, tmp_path: Path, runtime: str):
    need("strace")
    need(runtime)
    fat = slim_cgi_image
    url = f"http://127.0.0.1:{fat.port}/cgi-bin/hello"
    out = kilobox("slim", fat.location, "-o", f"oci:{tmp_path / 'slim'}:cgi", "--probe", url, "--network", "host",
                  "--runtime", runtime, "--json")
    d = json.loads(out.stdout)
    assert d["ok"] and d["runtime"] == runtime
    kept = {k["path"]: k for k in d["kept"]}
    assert kept["/srv/www/cgi-bin/hello"]["reason"] == "executed at run time"   # the child
    assert kept["/usr/bin/tr"]["reason"] == "executed at run time"              # the grandchild
    assert kept["/srv/greeting.txt"]["category"] == "runtime"                   # read by the grandchild only
    assert kept["/usr/bin/dash"]["reason"].startswith("script interpreter of /srv/www/cgi-bin/hello")
    assert "/usr/bin/redis-server" not in kept and "/usr/bin/bash" not in kept
    assert d["ratio"] > 30

    name = kilobox("run", "-d", "--network", "host", f"oci:{tmp_path / 'slim'}:cgi").stdout.strip()
    try:
        assert wait_http(url, timeout=15) == "HELLO FROM A GRANDCHILD\n"
    finally:
        kilobox("stop", name, check=False)
        kilobox("rm", "-f", name, check=False)


def test_run_options_reach_the_trace_and_the_rules(slim_cgi_image: FatImage, tmp_path: Path):
    """--user and -e are applied to the traced run as kilobox run applies them; $TZ brings its zone file."""
    need("strace")
    fat = slim_cgi_image
    url = f"http://127.0.0.1:{fat.port}/cgi-bin/hello"
    out = kilobox("slim", fat.location, "-o", f"oci:{tmp_path / 'slim'}:cgi", "--probe", url, "--network", "host",
                  "--user", "65534:65534", "-e", "TZ=Europe/Paris", "--no-audit", "--json")
    d = json.loads(out.stdout)
    assert d["ok"] and d["audit"] == {}
    kept = {k["path"]: k for k in d["kept"]}
    assert kept["/usr/share/zoneinfo/Europe/Paris"]["reason"] == "rule: zoneinfo for $TZ"
    assert kept["/etc/passwd"]["category"] == "rule"
