"""Every example, built for every platform its kilobox.toml lists: valid OCI, readable by
skopeo, the right ELF at the entrypoint, and the amd64 variant runs under `podman --runtime runc`."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from kilobox.build.config import load_config
from kilobox.build.elf import check_binary
from tests.fixtures.toolchain import run_binary, runner
from tests.helpers.podman import GLOBAL_FLAGS, isolated_podman
from tests.helpers.tools import kilobox
from tests.helpers.schemas import validate_image_doc, validate_layout_dir
from tests.helpers.tools import kilobox, need

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/kilobox.toml"))
#: what the amd64 image prints when run with no arguments; None = a service (runs until SIGTERM)
OUTPUT = {"hello": b"ok\n"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """example name -> (layout dir, JSON report); each built once per module."""
    cache: dict[str, tuple[Path, dict]] = {}

    def get(name: str) -> tuple[Path, dict]:
        if name not in cache:
            out = tmp_path_factory.mktemp(name) / "out"
            # the budget is checked by its own test; interop checks run whatever the size
            p = kilobox("build", f"examples/{name}", "--json", "--max-size", "1GiB", "-o", f"oci:{out}:{name}",
                        cwd=ROOT)
            cache[name] = (out, json.loads(p.stdout))
        return cache[name]
    return get


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_builds_for_all_platforms(built, name: str) -> None:
    out, rep = built(name)
    cfg = load_config(ROOT / "examples" / name)
    assert [p["platform"] for p in rep["platforms"]] == [str(p) for p in cfg.platforms]
    assert validate_layout_dir(out) >= 2 + 2 * len(cfg.platforms)
    for fig in rep["platforms"]:
        assert fig["total_bytes"] == fig["manifest_bytes"] + fig["config_bytes"] + fig["layer_bytes"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_within_its_budget(name: str, tmp_path: Path) -> None:
    p = kilobox("build", f"examples/{name}", "--json", "-o", f"oci:{tmp_path}/out:{name}", cwd=ROOT, check=False)
    rep = json.loads(p.stdout)
    over = [(f["platform"], f["total_bytes"], f["budget_bytes"]) for f in rep["platforms"] if not f["ok"]]
    assert p.returncode == 0 and rep["ok"], f"over budget: {over}"


@pytest.mark.parametrize("name", EXAMPLES)
def test_skopeo_reads_every_platform(built, name: str) -> None:
    skopeo = need("skopeo")
    out, rep = built(name)
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{out}:{name}"], check=True, capture_output=True).stdout
    root = json.loads(raw)
    validate_image_doc("index" if "manifests" in root else "manifest", root)
    for fig in rep["platforms"]:
        os_, arch, *variant = fig["platform"].split("/")
        args = ["--override-os", os_, "--override-arch", arch] + (["--override-variant", variant[0]] if variant else [])
        info = json.loads(subprocess.run([skopeo, *args, "inspect", f"oci:{out}:{name}"], check=True,
                                         capture_output=True).stdout)
        assert info["Architecture"] == arch and info["Digest"] == rep["root"]["digest"]
        cfg = json.loads(subprocess.run([skopeo, *args, "inspect", "--config", f"oci:{out}:{name}"], check=True,
                                        capture_output=True).stdout)
        assert cfg["architecture"] == arch and cfg.get("variant", "") == (variant[0] if variant else "")
        assert cfg["config"]["User"] and cfg["config"]["Entrypoint"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_entrypoint_binary_matches_each_platform(built, name: str, tmp_path: Path) -> None:
    out, rep = built(name)
    cfg = load_config(ROOT / "examples" / name)
    for fig in rep["platforms"]:
        rootfs = tmp_path / fig["platform"].replace("/", "-")
        kilobox("unpack", "--platform", fig["platform"], f"oci:{out}:{name}", str(rootfs))
        binary = rootfs / cfg.binary_path.lstrip("/")
        info = check_binary(binary, fig["platform"])
        assert info.static and info.size == fig["binary_bytes"]
        if name in OUTPUT:
            runner(fig["platform"])
            p = run_binary(binary, fig["platform"])
            assert (p.returncode, p.stdout) == (0, OUTPUT[name]), fig["platform"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_podman_runs_amd64_variant(built, name: str, tmp_path) -> None:
    out, _ = built(name)
    # podman names an `oci:PATH` image after PATH, which breaks on upper-case temp dirs:
    # hand it the amd64 image as a docker-archive with a name of our choosing instead
    archive = tmp_path / "img.tar"
    kilobox("copy", "--platform", "linux/amd64", f"oci:{out}:{name}", f"docker-archive:{archive}:kb-{name}:test")
    with isolated_podman() as podman:
        image = podman.load(archive)[0]
        if name in OUTPUT:
            p = podman.run(image)
            assert p.stdout.encode() == OUTPUT[name]
            return
        # a service: it must start, keep running, and stop cleanly on SIGTERM
        cid = podman("run", "-d", "--runtime", "runc", "--network", "none", "--ulimit", "nofile=1024:1024",
                     "--ulimit", "nproc=1024:1024", image).stdout.strip()
        time.sleep(1.5)
        state = json.loads(podman("inspect", cid).stdout)[0]["State"]
        assert state["Running"], (state, podman("logs", cid, check=False).stderr)
        podman("stop", "-t", "10", cid)
        state = json.loads(podman("inspect", cid).stdout)[0]["State"]
        assert state["ExitCode"] in (0, 143), state


def test_podman_flags_are_shared() -> None:
    assert "vfs" in GLOBAL_FLAGS  # the helper this file relies on
