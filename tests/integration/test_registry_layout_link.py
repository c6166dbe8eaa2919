"""A pull into a layout writes each layer once: the store's verified, fsynced file is hard-linked.

Also the start-up budget of ``kilobox copy``: what a copy imports (no http.client,
email, dataclasses, typing, argparse, pathlib).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kilobox.copying import copy
from kilobox.errors import DigestMismatch
from kilobox.oci import Manifest
from kilobox.store import Store
from kilobox.testing import random_image, validate_image, write_image
from tests.helpers.tools import kilobox

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("private_store")]


@pytest.fixture
def pushed(registry, tmp_path: Path) -> str:
    write_image(random_image(2, 4096, seed=11), f"oci:{tmp_path / 'src'}:t")
    ref = registry.ref("link/img:1")
    copy(f"oci:{tmp_path / 'src'}:t", f"docker://{ref}")
    return ref


def _layers(layout: Path, tag: str = "t") -> list[Path]:
    from kilobox.formats.layout import LayoutSource
    with LayoutSource(layout, tag) as src:
        m = Manifest.parse(src.manifest_bytes(src.root()))
        return [layout / "blobs" / d.digest.algorithm / d.digest.hex for d in m.layers] + \
            [layout / "blobs" / m.config.digest.algorithm / m.config.digest.hex]


def test_pull_links_store_files(pushed: str, tmp_path: Path, private_store: Path) -> None:
    copy(pushed, f"oci:{tmp_path / 'a'}:t")
    validate_image(f"oci:{tmp_path / 'a'}:t")
    *layers, config = _layers(tmp_path / "a")
    store = Store(private_store)
    for p in layers:
        st, cached = p.stat(), store.blob_path(f"sha256:{p.name}").stat()
        assert (st.st_ino, st.st_dev) == (cached.st_ino, cached.st_dev) and st.st_nlink == 2
    assert config.stat().st_nlink == 1                     # small JSON is written, not linked
    # a second pull re-verifies the cached files before linking them again
    copy(pushed, f"oci:{tmp_path / 'b'}:t")
    assert all(p.stat().st_nlink == 3 for p in _layers(tmp_path / "b")[:-1])


def test_damaged_cache_entry_is_not_linked(pushed: str, tmp_path: Path, private_store: Path) -> None:
    copy(pushed, f"oci:{tmp_path / 'a'}:t")
    layer = _layers(tmp_path / "a")[0]
    os.chmod(layer, 0o644)
    data = bytearray(layer.read_bytes())
    data[100] ^= 0xFF                                        # same size, other bytes (store and layout: one inode)
    layer.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        copy(pushed, f"oci:{tmp_path / 'b'}:t")
    assert not (tmp_path / "b").exists()                     # nothing committed, the new layout removed


def test_link_falls_back_to_a_copy_across_filesystems(pushed: str, tmp_path: Path, private_store: Path) -> None:
    """The store on another filesystem than the layout (when this machine has one): a plain copy."""
    shm = Path("/dev/shm")
    other = shm if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev else None
    dest = (Path(os.path.realpath(other)) / f"kilobox-test-{os.getpid()}") if other else tmp_path / "same-fs"
    try:
        copy(pushed, f"oci:{dest}:t")
        validate_image(f"oci:{dest}:t")
        if other is not None:
            assert all(p.stat().st_nlink == 1 for p in _layers(dest))
    finally:
        import shutil
        shutil.rmtree(dest, ignore_errors=True)


FORBIDDEN = ("email", "http", "dataclasses", "inspect", "typing", "argparse", "pathlib", "tempfile", "shutil",
             "urllib", "ipaddress", "ssl", "socket", "concurrent", "logging", "threading", "subprocess", "hashlib")


def _imported(args: list[str], env: dict[str, str]) -> set[str]:
    code = ("import sys\nfrom kilobox.cli import main\nrc = main(sys.argv[1:])\n"
            "print(' '.join(sorted(sys.modules)))\nsys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    return set(p.stdout.split()[1:])        # the first word is the digest


@pytest.mark.parametrize("direction", ["layout-to-layout", "push", "pull"])
def test_copy_imports_stay_lean(pushed: str, tmp_path: Path, registry, direction: str) -> None:
    env = dict(os.environ)
    write_image(random_image(1, 512, seed=3), f"oci:{tmp_path / 'l'}:t")
    args = {"layout-to-layout": ["copy", f"oci:{tmp_path / 'l'}:t", f"oci:{tmp_path / 'l2'}:t"],
            "push": ["copy", f"oci:{tmp_path / 'l'}:t", f"docker://{registry.ref('lean/x:1')}"],
            "pull": ["copy", pushed, f"oci:{tmp_path / 'l3'}:t"]}[direction]
    mods = _imported(args, env)
    heavy = sorted(m for m in mods if m.split(".")[0] in FORBIDDEN)
    assert not heavy, heavy


def test_cli_copy_fast_path_and_flags(pushed: str, tmp_path: Path, private_store: Path) -> None:
    env = {"KILOBOX_CACHE": str(private_store), "DOCKER_CONFIG": str(tmp_path / "no-docker")}
    out = kilobox("copy", "--json", pushed, f"oci:{tmp_path / 'c'}:t", env=env)
    assert '"digest": "sha256:' in out.stdout
    bad = kilobox("copy", "--bogus", pushed, f"oci:{tmp_path / 'd'}:t", env=env, check=False)   # argparse's turn
    assert bad.returncode == 2 and "unrecognized arguments: --bogus" in bad.stderr and "Traceback" not in bad.stderr
    usage = kilobox("copy", pushed, env=env, check=False)                # argparse takes over: a usage error
    assert usage.returncode == 2 and "required" in usage.stderr
