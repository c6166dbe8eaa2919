"""Layouts and oci-archives against the tools users trust: skopeo and umoci (real binaries, no mocks)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kilobox.copying import copy
from kilobox.formats.layout import LayoutSource, list_tags
from kilobox.testing import random_image, random_index, validate_image, write_image
from tests.helpers.schemas import validate_layout_dir
from tests.helpers.tools import kilobox, need

pytestmark = pytest.mark.integration


def run(*cmd: str, cwd: Path | None = None) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    assert p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}: {p.stderr}"
    return p.stdout


def blobs(layout: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def root_digest(location: str) -> str:
    return kilobox("digest", location).stdout.strip()


# -- skopeo ----------------------------------------------------------------------------

def test_skopeo_inspects_our_layout(tmp_path: Path) -> None:
    skopeo = need("skopeo")
    lay = tmp_path / "lay"
    img = random_image(layers=2, config={"Entrypoint": ["/hello"], "Labels": {"a": "b"}})
    root = write_image(img, f"oci:{lay}:hello")
    write_image(random_image(seed=2), f"oci:{lay}:other")
    validate_layout_dir(lay)
    info = json.loads(run(skopeo, "inspect", f"oci:{lay}:hello"))
    assert info["Digest"] == str(root.digest)
    assert info["Labels"] == {"a": "b"} and len(info["Layers"]) == 2
    raw = run(skopeo, "inspect", "--raw", f"oci:{lay}:other").encode()
    with LayoutSource(lay, "other") as s:
        assert raw == s.manifest_bytes(s.root())
    ours = json.loads(kilobox("inspect", "--json", f"oci:{lay}:hello").stdout)
    assert ours["Layers"] == info["Layers"] and ours["Digest"] == info["Digest"]
    assert ours["Env"] == info["Env"] and ours["Created"] == info["Created"]


@pytest.mark.parametrize("multi", [False, True])
def test_skopeo_copy_then_kilobox_copy_keeps_every_digest(tmp_path: Path, multi: bool) -> None:
    skopeo = need("skopeo")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    src = random_index(["linux/amd64", "linux/arm64"], layers=2) if multi else random_image(layers=3)
    root = write_image(src, f"oci:{a}:t")
    run(skopeo, "copy", *(["--all"] if multi else []), f"oci:{a}:t", f"oci:{b}:t")
    assert root_digest(f"oci:{b}:t") == str(root.digest)
    kilobox("copy", f"oci:{b}:t", f"oci:{c}:t")
    assert root_digest(f"oci:{c}:t") == str(root.digest)
    assert blobs(c) == blobs(b) == blobs(a)
    validate_layout_dir(c)
    validate_image(f"oci:{c}:t")


def test_kilobox_adds_a_tag_to_a_skopeo_layout_and_skopeo_still_reads_both(tmp_path: Path) -> None:
    skopeo = need("skopeo")
    a, b = tmp_path / "a", tmp_path / "b"
    first = write_image(random_image(seed=1), f"oci:{a}:first")
    run(skopeo, "copy", f"oci:{a}:first", f"oci:{b}:first")
    second = write_image(random_image(seed=2), f"oci:{b}:second")
    assert list_tags(b) == ["first", "second"]
    assert json.loads(run(skopeo, "inspect", f"oci:{b}:first"))["Digest"] == str(first.digest)
    assert json.loads(run(skopeo, "inspect", f"oci:{b}:second"))["Digest"] == str(second.digest)


def test_skopeo_reads_our_oci_archive_and_back(tmp_path: Path) -> None:
    skopeo = need("skopeo")
    arc = tmp_path / "ours.tar"
    one = write_image(random_image(layers=2, seed=1), f"oci-archive:{arc}:one")
    two = write_image(random_image(layers=1, seed=2), f"oci-archive:{arc}:two")   # two tags in one file
    assert json.loads(run(skopeo, "inspect", f"oci-archive:{arc}:one"))["Digest"] == str(one.digest)
    assert json.loads(run(skopeo, "inspect", f"oci-archive:{arc}:two"))["Digest"] == str(two.digest)
    run(skopeo, "copy", f"oci-archive:{arc}:one", f"oci:{tmp_path / 'lay'}:one")
    validate_image(f"oci:{tmp_path / 'lay'}:one")
    run(skopeo, "copy", f"oci:{tmp_path / 'lay'}:one", f"oci-archive:{tmp_path / 'theirs.tar'}:one")
    assert root_digest(f"oci-archive:{tmp_path / 'theirs.tar'}:one") == str(one.digest)
    kilobox("copy", f"oci-archive:{tmp_path / 'theirs.tar'}:one", f"oci-archive:{tmp_path / 'again.tar'}:one")
    # what kilobox writes from skopeo's archive is byte-identical to what it wrote itself
    kilobox("copy", f"oci-archive:{arc}:one", f"oci-archive:{tmp_path / 'direct.tar'}:one")
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "direct.tar").read_bytes()


def test_skopeo_copies_our_index_archive_with_all(tmp_path: Path) -> None:
    skopeo = need("skopeo")
    arc = tmp_path / "multi.tar"
    root = write_image(random_index(["linux/amd64", "linux/arm64", "linux/arm/v7"]), f"oci-archive:{arc}:m")
    run(skopeo, "copy", "--all", f"oci-archive:{arc}:m", f"oci:{tmp_path / 'lay'}:m")
    assert root_digest(f"oci:{tmp_path / 'lay'}:m") == str(root.digest)
    raw = run(skopeo, "inspect", "--raw", f"oci-archive:{arc}:m")
    assert [m["platform"]["architecture"] for m in json.loads(raw)["manifests"]] == ["amd64", "arm64", "arm"]


# -- umoci -----------------------------------------------------------------------------

@pytest.fixture
def umoci_layout(tmp_path: Path) -> Path:
    """A layout written by umoci alone: init, new, unpack + add a file + repack, config, a second tag."""
    umoci = need("umoci")
    lay = tmp_path / "umoci"
    run(umoci, "init", "--layout", str(lay))
    run(umoci, "new", "--image", f"{lay}:t")
    bundle = tmp_path / "umoci-bundle"
    run(umoci, "unpack", "--image", f"{lay}:t", str(bundle))
    (bundle / "rootfs" / "etc").mkdir(exist_ok=True)
    (bundle / "rootfs" / "etc" / "hello.txt").write_text("hello from umoci\n")
    run(umoci, "repack", "--image", f"{lay}:t", str(bundle))
    run(umoci, "config", "--image", f"{lay}:t", "--config.cmd", "/bin/hello", "--config.env", "A=1",
        "--config.label", "made.by=umoci")
    run(umoci, "tag", "--image", f"{lay}:t", "t2")
    return lay


def test_umoci_layout_read_and_copied_unchanged(umoci_layout: Path, tmp_path: Path) -> None:
    info = json.loads(kilobox("inspect", "--json", f"oci:{umoci_layout}:t").stdout)
    assert info["Cmd"] == ["/bin/hello"] and "A=1" in info["Env"] and info["Labels"] == {"made.by": "umoci"}
    assert info["RepoTags"] == ["t", "t2"]
    validate_image(f"oci:{umoci_layout}:t")
    out = tmp_path / "copy"
    kilobox("copy", f"oci:{umoci_layout}:t", f"oci:{out}:t")
    kilobox("copy", f"oci:{umoci_layout}:t2", f"oci-archive:{tmp_path / 'u.tar'}:t2")
    d = root_digest(f"oci:{umoci_layout}:t")
    assert root_digest(f"oci:{out}:t") == d == root_digest(f"oci-archive:{tmp_path / 'u.tar'}:t2")
    theirs = blobs(umoci_layout)
    assert all(theirs[k] == v for k, v in blobs(out).items())
    validate_layout_dir(out)
    kilobox("unpack", f"oci:{out}:t", str(tmp_path / "rootfs"))
    assert (tmp_path / "rootfs" / "etc" / "hello.txt").read_text() == "hello from umoci\n"


def test_unpack_layer_written_by_umoci_insert(tmp_path: Path) -> None:
    """umoci<0.4.8 `insert` writes tars without end-of-archive blocks (umoci#436); we read them as Go does."""
    umoci = need("umoci")
    lay = tmp_path / "umoci"
    run(umoci, "init", "--layout", str(lay))
    run(umoci, "new", "--image", f"{lay}:t")
    (tmp_path / "f").write_text("hi\n")
    run(umoci, "insert", "--image", f"{lay}:t", str(tmp_path / "f"), "/etc/f")
    kilobox("copy", f"oci:{lay}:t", f"oci:{tmp_path / 'copy'}:t")     # copying never looks inside
    kilobox("unpack", f"oci:{lay}:t", str(tmp_path / "rootfs"))
    assert (tmp_path / "rootfs" / "etc" / "f").read_text() == "hi\n"


def test_kilobox_tags_into_umoci_layout_umoci_lists_them(umoci_layout: Path) -> None:
    umoci = need("umoci")
    write_image(random_image(seed=4), f"oci:{umoci_layout}:ours")
    assert sorted(run(umoci, "ls", "--layout", str(umoci_layout)).split()) == ["ours", "t", "t2"]
    run(umoci, "stat", "--image", f"{umoci_layout}:ours")


def test_umoci_unpacks_our_layouts(tmp_path: Path) -> None:
    umoci = need("umoci")
    lay = tmp_path / "lay"
    write_image(random_image(layer_files=[
        {"etc/a": b"A", "usr/bin/tool": b"#!/bin/sh\n", "old/x": b"x"},
        {"etc/b": b"B", "old/.wh.x": b""},
    ], config={"Entrypoint": ["/usr/bin/tool"], "Cmd": []}), f"oci:{lay}:app")
    write_image(random_index(["linux/amd64", "linux/arm64"]), f"oci:{lay}:idx")
    bundle = tmp_path / "bundle"
    run(umoci, "unpack", "--image", f"{lay}:app", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc" / "a").read_bytes() == b"A" and (rootfs / "etc" / "b").read_bytes() == b"B"
    assert not (rootfs / "old" / "x").exists()
    assert json.loads((bundle / "config.json").read_text())["process"]["args"] == ["/usr/bin/tool"]
    # kilobox's own unpack gives the same tree
    kilobox("unpack", f"oci:{lay}:app", str(tmp_path / "ours"))
    def tree(p: Path) -> dict[str, bytes]:
        return {str(f.relative_to(p)): f.read_bytes() for f in p.rglob("*") if f.is_file()}
    assert tree(tmp_path / "ours") == tree(rootfs)


def test_copy_api_between_all_local_formats_keeps_digest(tmp_path: Path) -> None:
    """layout → oci-archive → layout → archive: one digest throughout (no tools needed)."""
    root = write_image(random_index(["linux/amd64", "linux/arm64"]), f"oci:{tmp_path / 'a'}:x")
    copy(f"oci:{tmp_path / 'a'}:x", f"oci-archive:{tmp_path / 'b.tar'}:x")
    copy(f"oci-archive:{tmp_path / 'b.tar'}:x", f"oci:{tmp_path / 'c'}:y")
    copy(f"oci:{tmp_path / 'c'}:y", f"oci-archive:{tmp_path / 'd.tar'}")
    assert root_digest(f"oci-archive:{tmp_path / 'd.tar'}:y") == str(root.digest)


# -- the issue's command lines, against a real registry ----------------------------------

def test_issue_command_lines(registry, tmp_path: Path) -> None:  # noqa: ANN001
    write_image(random_index(["linux/amd64", "linux/arm64"], layers=2), f"oci:{tmp_path / 'out'}:hello")
    host = registry.host
    pushed = kilobox("copy", "oci:./out:hello", f"docker://{host}/demo/hello:1", cwd=tmp_path).stdout.strip()
    kilobox("copy", "oci:./out:hello", f"docker://{host}/demo/hello:2", cwd=tmp_path)
    kilobox("copy", f"{host}/demo/hello:1", "oci-archive:hello.tar", cwd=tmp_path)
    assert kilobox("digest", f"{host}/demo/hello:1").stdout.strip() == pushed
    assert root_digest(f"oci-archive:{tmp_path / 'hello.tar'}:1") == pushed       # the source's tag
    assert sorted(kilobox("tags", f"{host}/demo/hello").stdout.split()) == ["1", "2"]
    info = json.loads(kilobox("inspect", "--json", "--platform", "linux/arm64", f"{host}/demo/hello:1").stdout)
    assert info["Digest"] == pushed and info["Architecture"] == "arm64" and sorted(info["RepoTags"]) == ["1", "2"]
    arm = kilobox("digest", "--platform", "linux/arm64", f"{host}/demo/hello:1").stdout.strip()
    assert arm == info["ImageDigest"] != pushed
    kilobox("copy", f"{host}/demo/hello:1", "oci:./lay:app", cwd=tmp_path)
    kilobox("unpack", "--platform", "linux/arm64", "oci:./lay:app", "./rootfs", cwd=tmp_path)
    assert any((tmp_path / "rootfs").rglob("*.bin"))
    p = kilobox("digest", f"{host}/demo/absent:1", check=False)
    assert p.returncode == 3 and len(p.stderr.strip().splitlines()) == 1


def test_basic_auth_flags(registry_basic, tmp_path: Path) -> None:  # noqa: ANN001
    write_image(random_image(), f"oci:{tmp_path / 'out'}:hello")
    ref = f"{registry_basic.host}/demo/hello:1"
    creds = ["--username", registry_basic.username, "--password-stdin"]
    pw = (registry_basic.password + "\n").encode()
    p = kilobox("copy", f"oci:{tmp_path / 'out'}:hello", f"docker://{ref}", check=False)
    assert p.returncode == 6 and "Traceback" not in p.stderr                  # AuthError
    d = kilobox("copy", *creds, f"oci:{tmp_path / 'out'}:hello", f"docker://{ref}", input=pw).stdout.strip()
    assert kilobox("digest", *creds, ref, input=pw).stdout.strip() == d
    assert kilobox("tags", *creds, f"{registry_basic.host}/demo/hello", input=pw).stdout.split() == ["1"]
