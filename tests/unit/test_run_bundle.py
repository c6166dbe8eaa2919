"""The warm-path bundle index: anything odd in it means "cold path", never a crash or a wrong bundle."""

from __future__ import annotations

import json
import marshal
import os

import pytest

from kilobox.run import bundle
from kilobox.run.options import make_options


def _setup(tmp_path):
    store = tmp_path / "store"
    layout = tmp_path / "lay"
    layout.mkdir()
    (layout / "index.json").write_text("{}")
    bdir = store / "bundles" / "b1"
    bdir.mkdir(parents=True)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    meta = {"v": bundle.META_VERSION, "dir": str(bdir), "rootfs": str(rootfs)}
    (bdir / "meta.json").write_text(json.dumps(meta))
    loc = f"oci:{layout}:t"
    opts = make_options()
    bundle.remember(loc, None, opts, meta, str(layout / "index.json"), store)
    return store, layout, loc, opts, meta


def test_hit_and_invalidation(tmp_path):
    store, layout, loc, opts, meta = _setup(tmp_path)
    assert bundle.lookup(loc, None, opts, store) == meta
    assert bundle.lookup(loc, "linux/arm64", opts, store) is None          # other platform: other key
    assert bundle.lookup(loc, None, make_options(env=["A=1"]), store) is None
    (layout / "index.json").write_text('{"changed": true}')                 # re-tagged: cold again
    assert bundle.lookup(loc, None, opts, store) is None


def test_relative_locations_are_keyed_by_absolute_path(tmp_path, monkeypatch):
    store, layout, loc, opts, meta = _setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert bundle.lookup("oci:lay:t", None, opts, store) == meta
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert bundle.lookup("oci:lay:t", None, opts, store) is None            # another ./lay


def _garbage_refs(ref, key: str) -> list[bytes]:
    m = bundle.REF_MAGIC
    good = ref.read_bytes()
    real = marshal.loads(good[len(m):])
    meta = {"v": bundle.META_VERSION, "dir": "/", "rootfs": "/"}
    ok = (key, real[1], real[2], real[3], meta)
    return [b"", b"{", b"[]", b"\x00\xff", m, m + b"\x00\xff", m + b"{}", m + marshal.dumps(None)[:-1],
            m + marshal.dumps([1, 2]), m + marshal.dumps((1, 2, 3, 4, 5)), m + marshal.dumps((key, "/x", None, None, {})),
            m + marshal.dumps(ok[:4] + ({"v": 999, "dir": "/", "rootfs": "/"},)),
            m + marshal.dumps(ok[:4] + ({"v": bundle.META_VERSION, "dir": 5, "rootfs": "/"},)),
            m + marshal.dumps(ok[:4] + ("meta",)), m + marshal.dumps(ok),           # meta.json's stamp differs
            m + marshal.dumps(("another key",) + real[1:]),                          # a hash collision
            m + marshal.dumps(real[:1] + (real[1], (1, 2, 3)) + real[3:]),          # index.json's stamp differs
            good[:-3], b"kilobox-ref 1\n" + good[len(m):], good[len(m):]]


def test_garbage_index_means_cold(tmp_path):
    store, layout, loc, opts, meta = _setup(tmp_path)
    ref = store / "bundles" / "refs" / (bundle.ref_key(loc, None, opts) + ".ref")
    good = ref.read_bytes()
    for garbage in _garbage_refs(ref, bundle._key_text(loc, None, opts)):
        ref.write_bytes(garbage)
        assert bundle.lookup(loc, None, opts, store) is None, garbage
    ref.write_bytes(good)
    assert bundle.lookup(loc, None, opts, store) == meta


def test_old_json_index_is_replaced(tmp_path):
    store, layout, loc, opts, meta = _setup(tmp_path)
    old = store / "bundles" / "refs" / (bundle._sha(bundle._key_text(loc, None, opts))[:40] + ".json")
    old.write_text("{}")
    bundle.remember(loc, None, opts, meta, str(layout / "index.json"), store)
    assert not old.exists() and bundle.lookup(loc, None, opts, store) == meta


@pytest.mark.parametrize("meta", ["{", "[]", '{"v": 999}', '{"v": 1, "rootfs": "/nonexistent"}'])
def test_garbage_meta_means_cold(tmp_path, meta):
    store, layout, loc, opts, _ = _setup(tmp_path)
    (store / "bundles" / "b1" / "meta.json").write_text(meta)
    assert bundle.lookup(loc, None, opts, store) is None
    os.unlink(store / "bundles" / "b1" / "meta.json")
    assert bundle.lookup(loc, None, opts, store) is None
