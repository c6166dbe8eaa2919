"""Interrupted blob downloads resume with ``Range`` (real docker-registry behind a flaky proxy).

Each test pushes a 4 MiB one-layer image straight to the registry, then pulls it
back with ``kilobox copy`` through :class:`~tests.helpers.flaky_proxy.FlakyProxy`,
which cuts blob responses mid-body or mishandles the resumes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kilobox.formats.registry.client import MAX_TRIES
from tests.helpers.flaky_proxy import FlakyProxy
from tests.helpers.tools import kilobox

pytestmark = pytest.mark.integration

LAYER = 4 << 20
CUT = 1_234_567             # not a multiple of any buffer size


@pytest.fixture
def pushed(registry, tmp_path: Path) -> dict[str, object]:
    """The image in the registry: its manifest digest, its layer's digest and bytes."""
    from kilobox.testing import random_image, write_image
    write_image(random_image(1, LAYER, seed=7, compression="none"), f"oci:{tmp_path / 'src'}:t")
    digest = kilobox("copy", f"oci:{tmp_path / 'src'}:t", f"docker://{registry.host}/demo/big:1",
                     env=_env(tmp_path, "push-store")).stdout.strip()
    manifest = json.loads((tmp_path / "src/blobs/sha256" / digest.split(":")[1]).read_bytes())
    layer = manifest["layers"][0]["digest"]
    data = (tmp_path / "src/blobs/sha256" / layer.split(":")[1]).read_bytes()
    assert len(data) > LAYER
    return {"digest": digest, "layer": layer, "data": data}


def _env(tmp_path: Path, store: str = "store") -> dict[str, str]:
    return {"KILOBOX_CACHE": str(tmp_path / store), "DOCKER_CONFIG": str(tmp_path / "no-docker"),
            "XDG_RUNTIME_DIR": str(tmp_path / "no-run"), "XDG_CONFIG_HOME": str(tmp_path / "no-config")}


def _pull(proxy: FlakyProxy, tmp_path: Path, check: bool = True):  # noqa: ANN202 - CompletedProcess
    return kilobox("copy", f"docker://{proxy.host}/demo/big:1", f"oci:{tmp_path / 'out'}:t",
                   env=_env(tmp_path), check=check, timeout=120)


def _store_is_sound(tmp_path: Path) -> set[str]:
    """Every blob in the store hashes to its name, no temp file is left; the digests there."""
    store = tmp_path / "store"
    names = set()
    for f in (store / "blobs/sha256").glob("*") if (store / "blobs/sha256").is_dir() else ():
        assert hashlib.sha256(f.read_bytes()).hexdigest() == f.name, f"corrupt blob {f.name} in the store"
        names.add(f"sha256:{f.name}")
    if (store / "tmp").exists():
        assert [p.name for p in (store / "tmp").iterdir()] == []
    return names


def _pulled_ok(tmp_path: Path, pushed: dict[str, object], out: str) -> None:
    assert out.strip() == pushed["digest"]
    layer = str(pushed["layer"]).split(":")[1]
    assert (tmp_path / "out/blobs/sha256" / layer).read_bytes() == pushed["data"]
    assert pushed["layer"] in _store_is_sound(tmp_path)


@pytest.mark.parametrize("reset", [False, True], ids=["eof", "rst"])
def test_cut_twice_resumes_where_it_stopped(registry, pushed, tmp_path: Path, reset: bool) -> None:
    with FlakyProxy(registry.host, cut_after=CUT, cuts=2, reset=reset) as proxy:
        p = _pull(proxy, tmp_path)
    _pulled_ok(tmp_path, pushed, p.stdout)
    # resumed from the bytes already hashed and written, not from 0
    layer = [(r, s) for m, path, r, s in proxy.log if str(pushed["layer"]) in path]
    if not reset:
        assert layer == [("", 200), (f"bytes={CUT}-", 206), (f"bytes={2 * CUT}-", 206)]
    else:       # a reset drops what the client had not read yet: it resumes from what it had
        resumes = [int(r[len("bytes="):-1]) for r, _ in layer if r]
        assert resumes and resumes[0] > 0 and resumes == sorted(resumes) and resumes[-1] <= 2 * CUT
        assert layer[-1][1] == 206

def test_resume_follows_the_redirect(registry, pushed, tmp_path: Path) -> None:
    """The Range request goes to the storage URL the registry redirected to."""
    with FlakyProxy(registry.host, cut_after=CUT, cuts=1, redirect=True) as proxy:
        p = _pull(proxy, tmp_path)
    _pulled_ok(tmp_path, pushed, p.stdout)
    layer = [(path, r, s) for m, path, r, s in proxy.log if str(pushed["layer"]) in path]
    assert [(r, s) for _, r, s in layer] == [("", 307), ("", 200), (f"bytes={CUT}-", 206)]
    assert layer[1][0] == layer[2][0] and layer[2][0].startswith("/storage/")


def test_expired_storage_url_asks_the_registry_again(registry, pushed, tmp_path: Path) -> None:
    with FlakyProxy(registry.host, cut_after=CUT, cuts=1, redirect=True, expire=True) as proxy:
        p = _pull(proxy, tmp_path)
    _pulled_ok(tmp_path, pushed, p.stdout)
    layer = [(path.split("?")[0].split("/")[1], r, s) for m, path, r, s in proxy.log if str(pushed["layer"]) in path]
    rng = f"bytes={CUT}-"
    assert layer == [("v2", "", 307), ("storage", "", 200), ("storage", rng, 403), ("v2", rng, 307),
                     ("storage", rng, 206)]


def test_range_ignored_restarts_from_zero(registry, pushed, tmp_path: Path) -> None:
    with FlakyProxy(registry.host, cut_after=CUT, cuts=1, ignore_range=True) as proxy:
        p = _pull(proxy, tmp_path)
    _pulled_ok(tmp_path, pushed, p.stdout)
    layer = [(r, s) for m, path, r, s in proxy.log if str(pushed["layer"]) in path]
    assert layer == [("", 200), (f"bytes={CUT}-", 200)]      # the 200 body was used, from byte 0


def test_wrong_content_range_restarts_once(registry, pushed, tmp_path: Path) -> None:
    with FlakyProxy(registry.host, cut_after=CUT, cuts=1, bad_range=True) as proxy:
        p = _pull(proxy, tmp_path)
    _pulled_ok(tmp_path, pushed, p.stdout)
    layer = [(r, s) for m, path, r, s in proxy.log if str(pushed["layer"]) in path]
    assert layer == [("", 200), (f"bytes={CUT}-", 206), ("", 200)]


def test_wrong_content_range_again_is_a_one_line_error(registry, pushed, tmp_path: Path) -> None:
    with FlakyProxy(registry.host, cut_after=CUT, cuts=None, bad_range=True) as proxy:
        p = _pull(proxy, tmp_path, check=False)
    assert p.returncode == 5, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert str(pushed["layer"]) in lines[0] and "Content-Range" in lines[0] and f"bytes {CUT + 1}-" in lines[0]
    assert [r for r in proxy.ranges()[-4:]] == ["", f"bytes={CUT}-", "", f"bytes={CUT}-"]
    assert pushed["layer"] not in _store_is_sound(tmp_path)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_cut_forever_gives_up(registry, pushed, tmp_path: Path) -> None:
    """Every response is cut after 64 KiB: MAX_TRIES tries without 1 MiB of progress, then exit 5."""
    with FlakyProxy(registry.host, cut_after=64 << 10, cuts=None) as proxy:
        p = _pull(proxy, tmp_path, check=False)
    assert p.returncode == 5, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "connection lost" in lines[0] and str(pushed["layer"]) in lines[0]
    layer = [r for m, path, r, s in proxy.log if str(pushed["layer"]) in path]
    assert layer == ["", *(f"bytes={i * (64 << 10)}-" for i in range(1, MAX_TRIES))]
    assert pushed["layer"] not in _store_is_sound(tmp_path)
    out = tmp_path / "out"
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


def test_slow_progress_keeps_going(registry, pushed, tmp_path: Path) -> None:
    """Cut every 512 KiB, forever: each break still moves data, so the pull finishes."""
    with FlakyProxy(registry.host, cut_after=512 << 10, cuts=None) as proxy:
        p = _pull(proxy, tmp_path)
    _pulled_ok(tmp_path, pushed, p.stdout)
    assert len(proxy.ranges()) > MAX_TRIES


# -- what a real registry never sends (the scripted server) -------------------------------------------
def test_resumed_bytes_that_do_not_join_up_restart_once(hostile_registry, private_store: Path) -> None:
    """A 206 with the right Content-Range but other bytes: the digest fails, one restart from 0."""
    from kilobox.formats import Options
    from kilobox.formats.registry import RegistrySource
    from kilobox.oci import Descriptor, Reference, mediatypes as mt
    from tests.helpers.hostile_registry import Reply

    layer = bytes(range(256)) * 4096
    d = Descriptor.for_bytes(mt.OCI_LAYER, layer)
    half = len(layer) // 2
    rest = len(layer) - half
    other = Reply(206, b"X" * rest, headers={"Content-Range": f"bytes {half}-{len(layer) - 1}/{len(layer)}"})
    hostile_registry.route("GET", f"/v2/r/blobs/{d.digest}", Reply(200, layer, action="truncate"), other,
                           Reply(200, layer))
    src = RegistrySource(Reference.parse(f"{hostile_registry.host}/r:t"), Options())
    src.client.sleep = lambda s: None
    with src.open_blob(d) as f:
        assert f.read() == layer
    sent = [h.get("Range", "") for m, p, h in hostile_registry.requests if p.startswith("/v2/r/blobs")]
    assert sent == ["", f"bytes={half}-", ""]
    assert [p.name for p in (private_store / "tmp").iterdir()] == []


def test_416_then_again_is_an_error(hostile_registry, private_store: Path) -> None:
    from kilobox.errors import RegistryError
    from kilobox.formats import Options
    from kilobox.formats.registry import RegistrySource
    from kilobox.oci import Descriptor, Reference, mediatypes as mt
    from tests.helpers.hostile_registry import Reply

    layer = bytes(range(256)) * 1024
    d = Descriptor.for_bytes(mt.OCI_LAYER, layer)
    cut, refuse = Reply(200, layer, action="truncate"), Reply(416, headers={"Content-Range": "bytes */1"})
    hostile_registry.route("GET", f"/v2/r/blobs/{d.digest}", cut, refuse, cut, refuse)
    src = RegistrySource(Reference.parse(f"{hostile_registry.host}/r:t"), Options())
    src.client.sleep = lambda s: None
    with pytest.raises(RegistryError, match=r"resuming at byte \d+ of 262144, the server answered 416") as e:
        src.open_blob(d)
    assert "\n" not in str(e.value) and str(d.digest) in str(e.value)
    sent = [h.get("Range", "") for m, p, h in hostile_registry.requests if p.startswith("/v2/r/blobs")]
    assert sent == ["", f"bytes={len(layer) // 2}-", "", f"bytes={len(layer) // 2}-"]
    assert not (private_store / "blobs").exists() or not list((private_store / "blobs").rglob("*"))
    assert [p.name for p in (private_store / "tmp").iterdir()] == []


def test_no_connection_while_resuming_counts_as_a_break(hostile_registry, private_store: Path) -> None:
    """The client's own tries to connect run out during a resume: one break, then the resume succeeds."""
    from kilobox.formats import Options
    from kilobox.formats.registry import RegistrySource
    from kilobox.oci import Descriptor, Reference, mediatypes as mt
    from tests.helpers.hostile_registry import Reply

    layer = bytes(range(256)) * 1024
    d = Descriptor.for_bytes(mt.OCI_LAYER, layer)
    half = len(layer) // 2
    rest = Reply(206, layer[half:], headers={"Content-Range": f"bytes {half}-{len(layer) - 1}/{len(layer)}"})
    hostile_registry.route("GET", f"/v2/r/blobs/{d.digest}", Reply(200, layer, action="truncate"),
                           *[Reply(action="reset")] * MAX_TRIES, rest)
    src = RegistrySource(Reference.parse(f"{hostile_registry.host}/r:t"), Options())
    slept: list[float] = []
    src.client.sleep = slept.append
    with src.open_blob(d) as f:
        assert f.read() == layer
    sent = [h.get("Range", "") for m, p, h in hostile_registry.requests if p.startswith("/v2/r/blobs")]
    assert sent == ["", *[f"bytes={half}-"] * (MAX_TRIES + 1)]
