"""kilobox run REGISTRY/REPO:TAG pulls once into the store, then runs from it."""

from __future__ import annotations

import pytest

from tests.helpers.tools import kilobox

pytestmark = pytest.mark.integration


def test_run_pulls_if_needed(run_state, registry, example_images, tmp_path, monkeypatch):
    monkeypatch.setenv("KILOBOX_CACHE", str(tmp_path / "store"))
    ref = registry.ref("me/hello:1")
    kilobox("copy", example_images("hello"), f"docker://{ref}")
    r = kilobox("run", "--rm", ref)
    assert r.stdout == "ok\n"
    assert (tmp_path / "store" / "images" / "index.json").is_file()
    registry.stop()                       # now only the local copy can serve it
    assert kilobox("run", "--rm", ref).stdout == "ok\n"
    assert kilobox("run", "--rm", "-e", "A=1", ref).stdout == "ok\n"   # cold bundle, warm image


def test_unknown_repository(run_state, registry, tmp_path, monkeypatch):
    monkeypatch.setenv("KILOBOX_CACHE", str(tmp_path / "store"))
    r = kilobox("run", "--rm", registry.ref("me/nothing:1"), check=False)
    assert r.returncode in (3, 5) and r.stderr.count("\n") == 1, r.stderr
