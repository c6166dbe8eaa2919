"""Property tests: random entry sets round-trip and are deterministic; mangled input only ever raises LayerError."""

from __future__ import annotations

import io
import os
import random
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from kilobox.errors import LayerError
from kilobox.layers import Entry, extract_layer, iter_layer, write_layer
from kilobox.layers._paths import sort_key
from tests.helpers.hostile import M, raw_tar, snapshot

_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

component = st.one_of(
    st.text(alphabet="abcxyz-_.ü 0", min_size=1, max_size=12),
    st.text(alphabet="lmn", min_size=95, max_size=130),  # forces PAX / prefix splitting
).filter(lambda c: c not in (".", "..") and not c.startswith(".wh."))
paths = st.lists(component, min_size=1, max_size=4).map("/".join)


@st.composite
def entry_sets(draw) -> list[Entry]:
    raw = draw(st.lists(st.tuples(paths, st.sampled_from(["file", "file", "dir", "symlink", "fifo"])),
                        min_size=1, max_size=25, unique_by=lambda t: t[0]))
    kinds = dict(raw)
    entries: list[Entry] = []
    for path, kind in raw:
        parts = path.split("/")
        if any(kinds.get("/".join(parts[:i]), "dir") != "dir" for i in range(1, len(parts))):
            continue  # a non-directory cannot have children
        common = dict(mode=draw(st.integers(0, 0o7777)), uid=draw(st.sampled_from([0, 1, 1000, 65534, 1 << 22])),
                      gid=draw(st.integers(0, 70000)), mtime=draw(st.one_of(st.none(), st.integers(0, 1 << 34))))
        if kind == "file":
            entries.append(Entry(path, "file", data=draw(st.binary(max_size=1500)),
                                 xattrs=draw(st.dictionaries(st.sampled_from(["user.a", "user.bé", "security.capability"]),
                                                             st.binary(max_size=40), max_size=2)), **common))
        elif kind == "symlink":
            entries.append(Entry(path, "symlink", linkname=draw(st.one_of(paths, paths.map(lambda p: "/" + p),
                                                                          st.just("../" * 5 + "etc"))), **common))
        else:
            entries.append(Entry(path, kind, **common))
    files = [e.path for e in entries if e.kind == "file"]
    if files:
        for target in draw(st.lists(st.sampled_from(files), max_size=3)):
            link = target + ".lnk" + str(len(entries))
            if link not in kinds:
                entries.append(Entry(link, "hardlink", linkname=target))
    return entries


def _write(entries: list[Entry], **kw) -> bytes:
    buf = io.BytesIO()
    write_layer(entries, buf, **kw)
    return buf.getvalue()


def _groups(entries: list[Entry]) -> dict[str, bytes]:
    """path → content for every file and hardlink (hardlinks resolved to their group's data)."""
    by = {e.path: e for e in entries}
    out = {}
    for e in entries:
        t = e
        while t.kind == "hardlink":
            t = by[t.linkname]
        if t.kind == "file":
            out[e.path] = t.data or b""
    return out


@_SETTINGS
@given(entry_sets(), st.randoms(use_true_random=False), st.sampled_from(["gzip", "zstd", ""]))
def test_deterministic_whatever_the_input_order(entries, rnd, compression) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert _write(entries, compression=compression) == _write(shuffled, compression=compression)


@_SETTINGS
@given(entry_sets())
def test_round_trip(entries) -> None:
    blob = _write(entries, epoch=77)
    members = []
    contents: dict[str, bytes] = {}
    for m in iter_layer(io.BytesIO(blob)):
        members.append(m)
        if m.kind == "file":
            contents[m.name] = m.read()
    names = [m.name for m in members]
    assert names == sorted(names, key=sort_key) and len(set(names)) == len(names)
    seen: set[str] = set()
    for n in names:  # parents first
        assert "/" not in n or n.rsplit("/", 1)[0] in seen
        seen.add(n)
    by = {m.name: m for m in members}
    explicit = {e.path for e in entries}
    for e in entries:
        m = by[e.path]
        if e.kind == "hardlink":
            assert m.kind in ("hardlink", "file")
            continue
        if e.kind == "file" and m.kind == "hardlink":  # another path of its group carries the data
            continue
        assert (m.kind, m.mode, m.uid, m.gid, m.mtime) == (e.kind, e.mode, e.uid, e.gid,
                                                           77 if e.mtime is None else e.mtime)
        if e.kind == "symlink":
            assert m.linkname == e.linkname
        if e.kind == "file":
            assert m.xattrs == e.xattrs
    for name, m in by.items():
        if name not in explicit:
            assert (m.kind, m.mode, m.uid, m.gid) == ("dir", 0o755, 0, 0)
    # every path of a hardlink group reads as the same content
    want = _groups(entries)
    for path, data in want.items():
        m = by[path]
        assert contents[m.linkname if m.kind == "hardlink" else path] == data
    # and the stdlib agrees with our reader
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        assert [ti.name for ti in tf.getmembers()] == names


@_SETTINGS
@given(entry_sets())
def test_extract_round_trip(entries) -> None:
    blob = _write(entries)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        dest = Path(tmp) / "dest"
        extract_layer(io.BytesIO(blob), dest, same_owner=False)
        for path, data in _groups(entries).items():
            assert (dest / path).read_bytes() == data
        for e in entries:
            if e.kind == "symlink":
                assert os.readlink(dest / e.path) == e.linkname
        for root, dirs, _ in os.walk(dest):  # let the temp dir be removed whatever the modes
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)


def _mangle(blob: bytes, rnd: random.Random) -> bytes:
    b = bytearray(blob)
    op = rnd.randrange(4)
    if op == 0 and b:  # flip bytes
        for _ in range(rnd.randint(1, 8)):
            b[rnd.randrange(len(b))] ^= rnd.randrange(1, 256)
    elif op == 1:  # truncate
        del b[rnd.randrange(len(b) + 1):]
    elif op == 2:  # splice a chunk elsewhere
        i, j = sorted(rnd.randrange(len(b) + 1) for _ in range(2))
        k = rnd.randrange(len(b) + 1)
        b[k:k] = b[i:j]
    else:  # rewrite a header field of a plain tar, then re-seal the checksum so parsing goes deeper
        off = rnd.randrange(0, max(1, len(b) // 512)) * 512
        start, width = rnd.choice([(0, 100), (100, 8), (108, 8), (124, 12), (136, 12), (156, 1), (157, 100),
                                   (329, 8), (345, 155)])
        value = rnd.choice([bytes(rnd.randrange(256) for _ in range(width)),
                            b"../" * (width // 3), b"%0*o\0" % (width - 1, rnd.randrange(8 ** (width - 1))),
                            b"/" + b"a" * (width - 1), bytes([rnd.choice(b"0123456xgLKS5V")]) * width,
                            b"\xff" * width, b"\x80" + bytes(rnd.randrange(256) for _ in range(width - 1))])  # base-256
        b[off + start:off + start + width] = value[:width].ljust(width, b"\0")
        if len(b) >= off + 512:
            b[off + 148:off + 156] = b"        "
            b[off + 148:off + 156] = b"%06o\0 " % sum(b[off:off + 512])
    return bytes(b)


def _read_and_extract_touch_nothing_outside(blob: bytes) -> None:
    """Read and extract *blob*: a LayerError or success, and nothing outside the target changes."""
    with tempfile.TemporaryDirectory() as tmp:
        outside = Path(tmp) / "outside"
        outside.mkdir()
        (outside / "keep").write_bytes(b"keep")
        before = snapshot(Path(tmp), skip=Path(tmp) / "dest")
        try:
            for m in iter_layer(io.BytesIO(blob), limit=1 << 24):
                m.read()
        except LayerError:
            pass
        try:
            extract_layer(io.BytesIO(blob), Path(tmp) / "dest", same_owner=False)
        except LayerError:
            pass
        assert snapshot(Path(tmp), skip=Path(tmp) / "dest") == before
        for root, dirs, _ in os.walk(Path(tmp) / "dest"):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)      # so the temp dir can be removed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry_sets(), st.randoms(use_true_random=False), st.sampled_from(["gzip", "zstd", ""]))
def test_mangled_layers_only_raise_layer_error(entries, rnd, compression) -> None:
    _read_and_extract_touch_nothing_outside(_mangle(_write(entries, compression=compression), rnd))


_PAX_KEYS = ["path", "linkpath", "size", "uid", "gid", "mtime", "atime", "uname", "comment", "GNU.sparse.size",
             "SCHILY.xattr.security.capability", "SCHILY.xattr.user.x", "hdrcharset"]
_PAX_VALUES = st.one_of(st.text(max_size=40), st.sampled_from(
    ["-1", "-512", "9" * 400, "1e3", " 5", "0x10", "\u0661\u0662", "../../etc/passwd", "/abs", "a\x00b", "", "."]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_PAX_KEYS), _PAX_VALUES, min_size=1, max_size=4),
       st.sampled_from(["file", "dir", "symlink", "hardlink"]))
def test_any_pax_record_is_read_or_a_layer_error(pax, kind) -> None:
    """Whatever a PAX header says (sizes, ids, paths, xattrs), only LayerError, and nothing outside the target."""
    first = M("a", kind, data=b"x" * 10 if kind == "file" else b"", pax=pax,
              linkname={"symlink": "t", "hardlink": "b"}.get(kind, ""))
    _read_and_extract_touch_nothing_outside(raw_tar(M("b", data=b"y"), first, M("c", data=b"z")))
