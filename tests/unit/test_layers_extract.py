"""Safe extraction: the hostile corpus, whiteouts across layers, flatten."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from kilobox.errors import LayerError
from kilobox.layers import Entry, extract_layer, flatten, write_layer
from kilobox.oci import Descriptor, Digest, mediatypes
from tests.helpers.hostile import M, gz, gzip_bomb, raw_tar, size_lie, snapshot, truncated_member, zst, zstd_bomb

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def box(tmp_path: Path):
    """A target dir with a sentinel dir next to it, and a check that nothing outside changed."""
    dest = tmp_path / "dest"
    dest.mkdir()
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_bytes(b"secret")

    class Box:
        def __init__(self) -> None:
            self.dest, self.sentinel, self.before = dest, sentinel, snapshot(tmp_path, skip=dest)

        def extract(self, blob: bytes, **kw) -> None:
            extract_layer(io.BytesIO(blob), dest, **kw)

        def assert_outside_untouched(self) -> None:
            assert snapshot(tmp_path, skip=dest) == self.before
            assert (sentinel / "secret").read_bytes() == b"secret"
            assert not [k for k in snapshot(dest) if k.rsplit("/", 1)[-1].startswith(".kbx-")], "temp file left behind"

        def rel(self, p: Path) -> str:
            return str(p.relative_to(dest))

    b = Box()
    yield b
    b.assert_outside_untouched()


def _files(dest: Path) -> dict[str, str]:
    out = {}
    for p in sorted(dest.rglob("*")):
        rel = str(p.relative_to(dest))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_bytes().decode(errors="replace")
    return out


# --------------------------------------------------------------------------- hostile corpus
@pytest.mark.parametrize("name", ["../../etc/kilobox-pwned", "usr/../../kilobox-pwned", "a/../../../x"])
def test_traversal_is_refused(box, name: str) -> None:
    with pytest.raises(LayerError, match=r"climbs out of the root"):
        box.extract(raw_tar(M(name, data=b"pwned")))


def test_absolute_path_is_placed_inside(box) -> None:
    box.extract(raw_tar(M("/etc/passwd", data=b"root::0:0::/:/bin/sh\n")))
    assert (box.dest / "etc/passwd").read_bytes().startswith(b"root::")


def test_relative_symlink_escape_is_contained(box) -> None:
    # evil -> ../../../../.. climbs nowhere: it resolves to the root of dest, like in a chroot
    box.extract(raw_tar(M("evil", "symlink", linkname="../../../../.."),
                        M(f"evil/{box.sentinel.name}/pwned", data=b"pwned")))
    assert (box.dest / box.sentinel.name / "pwned").read_bytes() == b"pwned"
    assert os.readlink(box.dest / "evil") == "../../../../.."


def test_absolute_symlink_escape_is_contained(box) -> None:
    box.extract(raw_tar(M("evil", "symlink", linkname=str(box.sentinel)), M("evil/pwned", data=b"pwned")))
    inside = box.dest / str(box.sentinel).lstrip("/") / "pwned"
    assert inside.read_bytes() == b"pwned"


def test_write_never_follows_final_symlink(box) -> None:
    box.extract(raw_tar(M("passwd", "symlink", linkname=str(box.sentinel / "secret")), M("passwd", data=b"pwned")))
    p = box.dest / "passwd"
    assert not p.is_symlink() and p.read_bytes() == b"pwned"


def test_symlink_across_layers_then_write(box) -> None:
    box.extract(raw_tar(M("etc", "symlink", linkname=str(box.sentinel))))
    box.extract(raw_tar(M("etc/secret", data=b"pwned"), M("etc/new", data=b"new")))
    inside = box.dest / str(box.sentinel).lstrip("/")
    assert (inside / "secret").read_bytes() == b"pwned" and (inside / "new").read_bytes() == b"new"


def test_dir_entry_does_not_chmod_through_symlink(box) -> None:
    before = box.sentinel.stat().st_mode
    box.extract(raw_tar(M("d", "symlink", linkname=str(box.sentinel))))
    box.extract(raw_tar(M("d", "dir", mode=0o777)))
    assert box.sentinel.stat().st_mode == before
    assert (box.dest / "d").is_dir() and not (box.dest / "d").is_symlink()


@pytest.mark.parametrize("link", ["/etc/shadow", "etc/shadow", "nope"])
def test_hardlink_to_missing_or_host_file_is_refused(box, link: str) -> None:
    with pytest.raises(LayerError, match=r"hardlink target .* does not exist"):
        box.extract(raw_tar(M("shadow", "hardlink", linkname=link)))
    assert not (box.dest / "shadow").exists()


def test_hardlink_escape_is_refused(box) -> None:
    with pytest.raises(LayerError, match=r"climbs out"):
        box.extract(raw_tar(M("shadow", "hardlink", linkname="../sentinel/secret")))


def test_hardlink_through_symlink_stays_inside(box) -> None:
    with pytest.raises(LayerError, match=r"does not exist"):
        box.extract(raw_tar(M("up", "symlink", linkname="../../../.."),
                            M("x", "hardlink", linkname=f"up/{box.sentinel.name}/secret")))
    assert box.sentinel.joinpath("secret").stat().st_nlink == 1


def test_hardlink_to_directory_is_refused(box) -> None:
    with pytest.raises(LayerError, match=r"is a directory"):
        box.extract(raw_tar(M("d", "dir", mode=0o755), M("x", "hardlink", linkname="d")))


def test_hardlink_to_symlink_links_the_symlink(box) -> None:
    box.extract(raw_tar(M("s", "symlink", linkname=str(box.sentinel / "secret")), M("h", "hardlink", linkname="s")))
    assert os.readlink(box.dest / "h") == str(box.sentinel / "secret")
    assert box.sentinel.joinpath("secret").stat().st_nlink == 1


def test_symlink_loop_is_an_error(box) -> None:
    with pytest.raises(LayerError, match=r"too many levels of symbolic links"):
        box.extract(raw_tar(M("a", "symlink", linkname="b"), M("b", "symlink", linkname="a"), M("a/x", data=b"x")))


def test_symlink_chain_resolves_inside(box) -> None:
    box.extract(raw_tar(M("real", "dir", mode=0o755), M("c", "symlink", linkname="/real"),
                        M("b", "symlink", linkname="c"), M("a", "symlink", linkname="./b"), M("a/f", data=b"ok")))
    assert (box.dest / "real/f").read_bytes() == b"ok"


def test_parent_that_is_a_file_is_an_error(box) -> None:
    with pytest.raises(LayerError, match=r"not a directory"):
        box.extract(raw_tar(M("f", data=b"x"), M("f/g", data=b"y")))


def test_device_nodes_need_permission(box) -> None:
    with pytest.raises(LayerError, match=r"device nodes are not allowed") as ei:
        box.extract(raw_tar(M("dev/mem", "char")))
    assert "allow_devices" in (ei.value.hint or "")
    assert not (box.dest / "dev/mem").exists()


@pytest.mark.skipif(not IS_ROOT, reason="mknod needs root")
def test_device_nodes_when_allowed(box) -> None:
    box.extract(raw_tar(M("dev/null", "char", mode=0o666), M("dev/fifo", "fifo")), allow_devices=True)
    st = os.lstat(box.dest / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_ISFIFO(os.lstat(box.dest / "dev/fifo").st_mode)


def test_fifo_is_always_allowed(box) -> None:
    box.extract(raw_tar(M("run/fifo", "fifo")))
    assert stat.S_ISFIFO(os.lstat(box.dest / "run/fifo").st_mode)


def test_size_lie_leaves_no_file(box) -> None:
    with pytest.raises(LayerError, match=r"header says 1048576 bytes but the stream ends early"):
        box.extract(size_lie())
    assert not (box.dest / "etc/motd").exists()


def test_truncated_member_leaves_no_half_file(box) -> None:
    box.extract(raw_tar(M("big", data=b"old")))
    with pytest.raises(LayerError, match=r"'big'.*ends early"):
        box.extract(truncated_member())
    assert (box.dest / "big").read_bytes() == b"old"  # previous content intact, not half-replaced


def test_truncated_gzip(box) -> None:
    blob = gz(raw_tar(M("a", data=os.urandom(20000))))
    with pytest.raises(LayerError, match=r"truncated gzip"):
        box.extract(blob[:-30])


def test_gzip_bomb_is_stopped(box, monkeypatch) -> None:
    monkeypatch.setenv("KILOBOX_MAX_LAYER_BYTES", str(1 << 20))
    tar = raw_tar(M("bomb", data=b"", size=64 << 20), end=False)
    blob = gz(tar[:512]) + gzip_bomb(64 << 20)
    with pytest.raises(LayerError, match=r"decompresses to more than 1048576 bytes \(gzip bomb\?\)"):
        box.extract(blob)
    assert not (box.dest / "bomb").exists()


def test_zstd_bomb_is_stopped(box, monkeypatch) -> None:
    monkeypatch.setenv("KILOBOX_MAX_LAYER_BYTES", str(1 << 20))
    with pytest.raises(LayerError, match=r"decompresses to more than"):
        box.extract(zst(raw_tar(M("z", data=b"", size=32 << 20), end=False)[:512]) + zstd_bomb(32 << 20))


def test_not_a_tar(box) -> None:
    with pytest.raises(LayerError, match=r"checksum"):
        box.extract(b"this is not a tar archive".ljust(1024, b"!"))


def test_setuid_dropped_without_same_owner(box) -> None:
    box.extract(raw_tar(M("bin/su", data=b"x", mode=0o4755), M("bin/sg", data=b"x", mode=0o2755)), same_owner=False)
    assert stat.S_IMODE(os.stat(box.dest / "bin/su").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(box.dest / "bin/sg").st_mode) == 0o755


@pytest.mark.skipif(not IS_ROOT, reason="chown needs root")
def test_setuid_and_owner_kept_with_same_owner(box) -> None:
    e = [Entry("bin/su", data=b"x", mode=0o4755, uid=0, gid=0), Entry("home/u/f", data=b"y", uid=1000, gid=1000)]
    buf = io.BytesIO()
    write_layer(e, buf)
    box.extract(buf.getvalue(), same_owner=True)
    assert stat.S_IMODE(os.stat(box.dest / "bin/su").st_mode) == 0o4755
    st = os.stat(box.dest / "home/u/f")
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_file_replaces_directory_and_dir_replaces_file(box) -> None:
    box.extract(raw_tar(M("x", "dir", mode=0o755), M("x/inner", data=b"i"), M("y", data=b"file")))
    box.extract(raw_tar(M("x", data=b"now a file"), M("y", "dir", mode=0o755)))
    assert (box.dest / "x").read_bytes() == b"now a file" and (box.dest / "y").is_dir()


def test_directory_modes_and_mtimes_applied_last(box) -> None:
    e = [Entry("ro", "dir", mode=0o555, mtime=1000), Entry("ro/sub", "dir", mode=0o500, mtime=2000),
         Entry("ro/sub/f", data=b"x", mtime=3000)]
    buf = io.BytesIO()
    write_layer(e, buf)
    box.extract(buf.getvalue())
    st = os.stat(box.dest / "ro")
    assert (stat.S_IMODE(st.st_mode), int(st.st_mtime)) == (0o555, 1000)
    assert int(os.stat(box.dest / "ro/sub").st_mtime) == 2000
    os.chmod(box.dest / "ro", 0o755), os.chmod(box.dest / "ro/sub", 0o755)  # let tmp_path cleanup work


def test_root_entry_metadata_is_ignored(box) -> None:
    before = os.stat(box.dest).st_mode
    box.extract(raw_tar(M("./", "dir", mode=0o700), M("./a", data=b"a")))
    assert os.stat(box.dest).st_mode == before and (box.dest / "a").read_bytes() == b"a"


def test_error_names_layer_and_entry(box) -> None:
    with pytest.raises(LayerError) as ei:
        extract_layer(io.BytesIO(raw_tar(M("dev/kmem", "char"))), box.dest, name="layer 3 (sha256:abc)")
    assert "layer 3 (sha256:abc)" in str(ei.value) and "dev/kmem" in str(ei.value)


# --------------------------------------------------------------------------- whiteouts
def _layers(box, *layers: list[M]) -> dict[str, str]:
    for members in layers:
        box.extract(raw_tar(*members))
    return _files(box.dest)


def test_whiteout_removes_lower_file_and_dir(box) -> None:
    got = _layers(box,
                  [M("etc/a", data=b"a"), M("etc/b", data=b"b"), M("var/cache", "dir", mode=0o755),
                   M("var/cache/x", data=b"x")],
                  [M("etc/.wh.a"), M("var/.wh.cache")])
    assert got == {"etc": "dir", "etc/b": "b", "var": "dir"}


def test_whiteout_never_touches_its_own_layer(box) -> None:
    # same layer, whiteout after the file (spec: applies only to lower layers)
    got = _layers(box, [M("f", data=b"lower")], [M("f", data=b"upper"), M(".wh.f")])
    assert got == {"f": "upper"}


def test_whiteout_before_replacement_in_same_layer(box) -> None:
    got = _layers(box, [M("d", "dir", mode=0o755), M("d/old", data=b"o")],
                  [M(".wh.d"), M("d", "dir", mode=0o755), M("d/new", data=b"n")])
    assert got == {"d": "dir", "d/new": "n"}


def test_whiteout_after_dir_of_same_layer_hides_lower_content(box) -> None:
    got = _layers(box, [M("d", "dir", mode=0o755), M("d/old", data=b"o")],
                  [M("d/new", data=b"n"), M(".wh.d")])
    assert got == {"d": "dir", "d/new": "n"}


def test_opaque_dir(box) -> None:
    got = _layers(box,
                  [M("d", "dir", mode=0o755), M("d/old", data=b"o"), M("d/sub", "dir", mode=0o755),
                   M("d/sub/deep", data=b"deep"), M("keep", data=b"k")],
                  [M("d", "dir", mode=0o755), M("d/.wh..wh..opq"), M("d/new", data=b"n")])
    assert got == {"d": "dir", "d/new": "n", "keep": "k"}


def test_opaque_after_siblings_keeps_this_layers_entries(box) -> None:
    got = _layers(box,
                  [M("d/old", data=b"o"), M("d/sub/lower", data=b"l")],
                  [M("d/new", data=b"n"), M("d/sub/upper", data=b"u"), M("d/.wh..wh..opq")])
    assert got == {"d": "dir", "d/new": "n", "d/sub": "dir", "d/sub/upper": "u"}


def test_whiteout_of_missing_entry_is_fine(box) -> None:
    assert _layers(box, [M("nothing/.wh.here"), M(".wh.ghost")]) == {}


def test_whiteout_through_symlinked_parent(box) -> None:
    got = _layers(box, [M("usr/lib/x", data=b"x"), M("lib", "symlink", linkname="usr/lib")], [M("lib/.wh.x")])
    assert got == {"lib": "-> usr/lib", "usr": "dir", "usr/lib": "dir"}


def test_whiteout_cannot_delete_outside(box) -> None:
    with pytest.raises(LayerError, match=r"climbs out"):
        box.extract(raw_tar(M("../sentinel/.wh.secret")))
    # through a symlink: resolved inside dest, so the sentinel survives
    box.extract(raw_tar(M("s", "symlink", linkname=str(box.sentinel))))
    box.extract(raw_tar(M("s/.wh.secret")))


def test_whiteouts_off_keeps_markers(box) -> None:
    box.extract(raw_tar(M("a", data=b"a")))
    box.extract(raw_tar(M(".wh.a")), whiteouts=False)
    assert sorted(_files(box.dest)) == [".wh.a", "a"]


def test_aufs_metadata_ignored(box) -> None:
    assert _layers(box, [M(".wh..wh.plnk", "dir", mode=0o700), M(".wh..wh.aufs")]) == {}


# --------------------------------------------------------------------------- flatten
class _FakeImage:
    """The two members of kilobox.image.Image that flatten uses, over in-memory blobs."""

    def __init__(self, blobs: list[tuple[str, bytes]]) -> None:
        self.blobs = {}
        self.layers = []
        for mt, blob in blobs:
            d = Descriptor(media_type=mt, digest=Digest.of(blob), size=len(blob))
            self.blobs[d.digest] = blob
            self.layers.append(d)

    def open_layer_tar(self, desc: Descriptor):
        from kilobox.layers import open_decompressed
        return open_decompressed(io.BytesIO(self.blobs[desc.digest]), desc.media_type)


def test_flatten_applies_layers_in_order(box) -> None:
    l1 = io.BytesIO()
    write_layer([Entry("etc/os-release", data=b"v1"), Entry("bin/sh", data=b"sh", mode=0o755),
                 Entry("tmp/junk", data=b"j")], l1)
    l2 = io.BytesIO()
    write_layer([Entry("etc/os-release", data=b"v2"), Entry("tmp/.wh.junk", data=b"")], l2, compression="zstd")
    l3 = raw_tar(M("usr/bin/awk", "symlink", linkname="/etc/alternatives/awk"))
    img = _FakeImage([(mediatypes.OCI_LAYER_GZIP, l1.getvalue()), (mediatypes.OCI_LAYER_ZSTD, l2.getvalue()),
                      (mediatypes.DOCKER_LAYER_GZIP, l3)])  # media type lies: plain tar
    flatten(img, box.dest)
    assert _files(box.dest) == {"bin": "dir", "bin/sh": "sh", "etc": "dir", "etc/os-release": "v2", "tmp": "dir",
                                "usr": "dir", "usr/bin": "dir", "usr/bin/awk": "-> /etc/alternatives/awk"}


def test_flatten_skips_devices_unless_asked(box) -> None:
    img = _FakeImage([(mediatypes.OCI_LAYER, raw_tar(M("dev/null", "char"), M("etc/x", data=b"x")))])
    assert flatten(img, box.dest) == ["dev/null"]
    assert not (box.dest / "dev/null").exists()
    with pytest.raises(LayerError, match="device nodes are not allowed"):
        flatten(img, box.dest, skip_devices=False)


def test_flatten_error_names_the_layer(box) -> None:
    img = _FakeImage([(mediatypes.OCI_LAYER, raw_tar(M("../x", data=b"")))])
    with pytest.raises(LayerError, match=r"layer 0 \(sha256:[0-9a-f]{64}\)"):
        flatten(img, box.dest)


def test_skip_devices(box) -> None:
    skipped = extract_layer(io.BytesIO(raw_tar(M("dev/null", "char"), M("dev/sda", "block"), M("etc/x", data=b"x"))),
                            box.dest, skip_devices=True)
    assert skipped == ["dev/null", "dev/sda"]
    assert _files(box.dest) == {"etc": "dir", "etc/x": "x"}


_UNPRIVILEGED_CHILD = """
import io, os, stat, sys
from pathlib import Path
from kilobox.layers import Entry, extract_layer, write_layer
dest = Path(sys.argv[1])
buf = io.BytesIO()
write_layer([Entry("bin/su", data=b"su", mode=0o4755), Entry("ro", "dir", mode=0o555), Entry("ro/sub", "dir", mode=0o500),
             Entry("ro/sub/f", data=b"deep"), Entry("home/u/f", data=b"u", uid=1000, gid=1000),
             Entry("bin/ping", data=b"p", xattrs={"security.capability": bytes.fromhex("0100000200200000" + "00" * 12)}),
             Entry("dev/null", "char", devmajor=1, devminor=3)], buf)
skipped = extract_layer(io.BytesIO(buf.getvalue()), dest, skip_devices=True)
assert skipped == ["dev/null"], skipped
assert stat.S_IMODE(os.stat(dest / "bin/su").st_mode) == 0o755          # setuid dropped
assert os.stat(dest / "home/u/f").st_uid == os.getuid()                # owner not kept
assert stat.S_IMODE(os.stat(dest / "ro").st_mode) == 0o555             # read-only dir still filled
assert (dest / "ro/sub/f").read_bytes() == b"deep"
try:
    extract_layer(io.BytesIO(buf.getvalue()), dest / "again")
except Exception as e:
    print(type(e).__name__, e)
print("ok")
"""


@pytest.mark.skipif(not IS_ROOT, reason="needs root to switch to an unprivileged user")
def test_unprivileged_extraction(tmp_path: Path) -> None:
    """As nobody: no chown, no setuid, devices skipped or refused, read-only dirs still filled."""
    import shutil
    import subprocess
    import sys
    import tempfile
    work = Path(tempfile.mkdtemp(prefix="kbx-layers-nobody-"))
    try:
        os.chown(work, 65534, 65534)
        src = str(Path(__file__).resolve().parents[2] / "src")
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                              _UNPRIVILEGED_CHILD, str(work / "dest")],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": src}, cwd="/")
        assert out.returncode == 0, out.stderr
        assert "LayerError" in out.stdout and "device nodes are not allowed" in out.stdout
        assert out.stdout.strip().endswith("ok")
    finally:
        for root, dirs, _ in os.walk(work):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(work)


def test_overwriting_a_hardlink_does_not_touch_its_twin(box) -> None:
    box.extract(raw_tar(M("a", data=b"original"), M("b", "hardlink", linkname="a")))
    box.extract(raw_tar(M("b", data=b"replaced")))
    assert (box.dest / "a").read_bytes() == b"original" and (box.dest / "b").read_bytes() == b"replaced"


def test_deep_tree_then_whiteout_and_opaque(box) -> None:
    depth = 1200  # beyond Python's recursion limit
    deep = ["d"] * depth
    members = [M("/".join(deep[:i]), "dir", mode=0o755) for i in range(1, depth + 1)]
    try:
        box.extract(raw_tar(*members, M("/".join(deep) + "/f", data=b"deep"), M("other/x", data=b"x")))
        box.extract(raw_tar(M("other/.wh..wh..opq"), M("other/keep", data=b"k")))
        box.extract(raw_tar(M(".wh.d")))
        assert sorted(snapshot(box.dest)) == ["other", "other/keep"]
    finally:  # pytest's own cleanup (shutil.rmtree) recurses and would choke on a leftover
        from kilobox.layers.extract import _rmtree
        fd = os.open(box.dest, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if (box.dest / "d").is_dir():
                _rmtree("d", fd)
        finally:
            os.close(fd)


def test_overlong_names_refused(box) -> None:
    with pytest.raises(LayerError, match="longer than 4096 bytes"):
        box.extract(raw_tar(M("a/" * 2049, data=b"x")))
