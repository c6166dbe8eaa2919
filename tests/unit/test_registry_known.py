"""The known-blobs cache (formats/registry/known.py): it only ever saves a HEAD; its file is outside data."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kilobox.formats.registry.known import TTL, KnownBlobs
from kilobox.oci import Digest

D1, D2 = Digest.of(b"one"), Digest.of(b"two")


def test_record_and_lookup(tmp_path: Path) -> None:
    k = KnownBlobs("127.0.0.1:5000", "a/b", str(tmp_path))
    assert D1 not in k
    k.record({D1})
    again = KnownBlobs("127.0.0.1:5000", "a/b", str(tmp_path))
    assert D1 in again and D2 not in again
    assert D1 not in KnownBlobs("127.0.0.1:5000", "a/c", str(tmp_path))        # per repository
    assert D1 not in KnownBlobs("127.0.0.1:5001", "a/b", str(tmp_path))        # per registry
    again.record([D2])
    third = KnownBlobs("127.0.0.1:5000", "a/b", str(tmp_path))
    assert D1 in third and D2 in third
    third.forget()
    assert D1 not in third and D1 not in KnownBlobs("127.0.0.1:5000", "a/b", str(tmp_path))


def test_entries_expire(tmp_path: Path) -> None:
    k = KnownBlobs("h", "r", str(tmp_path))
    k.record({D1})
    old = time.time() - TTL - 60
    os.utime(k.path, (old, old))
    assert D1 not in KnownBlobs("h", "r", str(tmp_path))


def test_hostile_file(tmp_path: Path) -> None:
    k = KnownBlobs("h", "r", str(tmp_path))
    os.makedirs(os.path.dirname(k.path))
    junk = b"\xff\xfe garbage\nsha256:" + b"z" * 64 + b"\n../../etc/passwd\n" + str(D1).encode() + b"\n"
    Path(k.path).write_bytes(junk + b"x" * (2 << 20))
    assert D1 in KnownBlobs("h", "r", str(tmp_path))                        # good lines count, the rest is ignored
    os.unlink(k.path)
    os.mkdir(k.path)                                                         # a directory where the file goes
    k2 = KnownBlobs("h", "r", str(tmp_path))
    assert D1 not in k2
    k2.record({D1})                                                          # cannot write: no error, no cache


def test_unwritable_store(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    k = KnownBlobs("h", "r", str(tmp_path / "file"))
    k.record({D1})
    assert D1 not in KnownBlobs("h", "r", str(tmp_path / "file"))


def test_confirming_known_entries_refreshes_their_age(tmp_path: Path) -> None:
    k = KnownBlobs("h", "r", str(tmp_path))
    k.record({D1, D2})
    old = time.time() - TTL + 60                      # about to expire
    os.utime(k.path, (old, old))
    again = KnownBlobs("h", "r", str(tmp_path))
    assert D1 in again
    again.record({D1})                                # nothing new: the file is kept, its age reset
    assert time.time() - os.stat(k.path).st_mtime < 60
    assert D2 in KnownBlobs("h", "r", str(tmp_path))
