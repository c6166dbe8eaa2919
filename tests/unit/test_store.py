"""The local store: verified, atomic, concurrent-safe blob writes; prune."""

from __future__ import annotations

import io
import multiprocessing
import os
import time

import pytest

from kilobox.errors import DigestMismatch
from kilobox.oci import Descriptor, Digest
from kilobox.store import Store, default_root


def test_default_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KILOBOX_CACHE", str(tmp_path / "a"))
    assert default_root() == tmp_path / "a"
    monkeypatch.delenv("KILOBOX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_root() == tmp_path / "x" / "kilobox"


def test_put_blob_verifies_before_visible(tmp_path):
    store = Store(tmp_path)
    data = b"hello" * 1000
    desc = Descriptor.for_bytes("application/octet-stream", data)
    path = store.put_blob(desc, io.BytesIO(data))
    assert path.read_bytes() == data
    assert store.has_blob(desc.digest, desc.size)

    bad = Descriptor("application/octet-stream", Digest.of(b"other"), len(data))
    with pytest.raises(DigestMismatch):
        store.put_blob(bad, io.BytesIO(data))
    assert not store.has_blob(bad.digest)
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing half-written left behind


def test_put_blob_refuses_more_bytes_than_announced(tmp_path):
    store = Store(tmp_path)
    data = b"x" * 100
    desc = Descriptor("application/octet-stream", Digest.of(data), 10)
    with pytest.raises(DigestMismatch):
        store.put_blob(desc, io.BytesIO(data))
    assert not store.blob_path(desc.digest).exists()


def _writer(root: str, n: int) -> None:
    store = Store(root)
    for i in range(n):
        data = f"blob-{i % 7}".encode() * 5000
        store.put_blob(Descriptor.for_bytes("x/y", data), io.BytesIO(data))


def test_two_processes_fill_the_store_at_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 40)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(tmp_path)
    for i in range(7):
        data = f"blob-{i}".encode() * 5000
        assert store.read_blob(Digest.of(data)) == data


def test_prune_removes_old_entries_only(tmp_path):
    store = Store(tmp_path)
    old = store.put_bytes(b"old")
    new = store.put_bytes(b"new")
    past = time.time() - 3600
    os.utime(store.blob_path(old.digest), (past, past))
    removed, freed = store.prune(older_than=60)
    assert (removed, freed) == (1, 3)
    assert not store.has_blob(old.digest)
    assert store.has_blob(new.digest)
