"""docker-archive: read both flavours, write the docker 25 flavour, select images, determinism."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kilobox.copying import copy
from kilobox.errors import LayoutError, NotFound, ReferenceError_, UsageError
from kilobox.formats import open_sink, open_source
from kilobox.formats.dockerarchive import (DockerArchiveSink, DockerArchiveSource, clean_path,
                                           list_images, list_tags, parse_manifest_json, repo_tag,
                                           select_image, sniff_compression)
from kilobox.oci import Digest, ImageConfig, Manifest
from kilobox.oci import mediatypes as mt
from kilobox.testing import gzip_bytes, random_image, random_index, tar_bytes, validate_image, write_image
from tests.helpers.schemas import validate_image_doc

# -- building archives by hand (as docker, podman and skopeo lay them out) -------------


def write_tar(path: Path, members: list[tuple[Any, ...]]) -> Path:
    """Members: ``(name, bytes)``, ``(name, None, "dir")``, ``(name, target, "sym")``, ``(name, target, "hard")``."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            ti = tarfile.TarInfo(m[0])
            ti.mtime = 0
            kind = m[2] if len(m) > 2 else "file"
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif kind in ("sym", "hard"):
                ti.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                ti.linkname = m[1]
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(m[1]), 0o644
                tf.addfile(ti, io.BytesIO(m[1]))
    return path


def image_parts(files: dict[str, bytes], *, compress: bool = False, arch: str = "amd64",
                layers: int = 1) -> tuple[bytes, list[bytes]]:
    """(config JSON, layer blobs) of a small image; config diff_ids always of the plain tars."""
    tars = [tar_bytes({f"l{i}/{k}": v for k, v in files.items()}) for i in range(layers)]
    cfg = json.dumps({"architecture": arch, "os": "linux", "config": {"Entrypoint": ["/x"]},
                      "rootfs": {"type": "layers",
                                 "diff_ids": [f"sha256:{hashlib.sha256(t).hexdigest()}" for t in tars]}}).encode()
    return cfg, [gzip_bytes(t) if compress else t for t in tars]


def legacy_members(cfg: bytes, blobs: list[bytes], tags: list[str], *, via_symlink: bool = False,
                   docker_style: bool = False) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """A manifest.json item and the members of one image in the legacy layout.

    skopeo/podman: ``<hex>.tar`` files plus ``<id>/layer.tar -> ../<hex>.tar`` symlinks;
    docker < 25 (*docker_style*): ``<id>/layer.tar`` regular files.
    """
    ch = hashlib.sha256(cfg).hexdigest()
    members: list[tuple[Any, ...]] = [(f"{ch}.json", cfg)]
    paths = []
    for i, blob in enumerate(blobs):
        h = hashlib.sha256(blob).hexdigest()
        lid = hashlib.sha256(f"{ch}{i}".encode()).hexdigest()
        if docker_style:
            members += [(lid, None, "dir"), (f"{lid}/layer.tar", blob), (f"{lid}/VERSION", b"1.0")]
            paths.append(f"{lid}/layer.tar")
        else:
            members += [(f"{h}.tar", blob), (lid, None, "dir"), (f"{lid}/layer.tar", f"../{h}.tar", "sym")]
            paths.append(f"{lid}/layer.tar" if via_symlink else f"{h}.tar")
    return {"Config": f"{ch}.json", "RepoTags": tags, "Layers": paths}, members


def legacy_archive(path: Path, images: list[tuple[bytes, list[bytes], list[str]]], **kw: Any) -> Path:
    items, members = [], []
    for cfg, blobs, tags in images:
        item, ms = legacy_members(cfg, blobs, tags, **kw)
        items.append(item)
        members += [m for m in ms if m[0] not in {x[0] for x in members}]
    members.append(("manifest.json", json.dumps(items).encode()))
    members.append(("repositories", b"{}"))
    return write_tar(path, members)


def members_of(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        return {m.name: (tf.extractfile(m).read() if m.isfile() else b"") for m in tf}  # type: ignore[union-attr]


# -- pure helpers ---------------------------------------------------------------------

def test_clean_path() -> None:
    assert clean_path("./a//b/./c", "x") == "a/b/c"
    assert clean_path("manifest.json", "x") == "manifest.json"
    for bad in ("../x", "a/../../x", "/etc/passwd", "", ".", "a/..", "a\x00b"):
        with pytest.raises(LayoutError):
            clean_path(bad, "x")


def test_parse_manifest_json() -> None:
    raw = b'[{"Config":"c.json","RepoTags":null,"Layers":["./a/layer.tar","b.tar"]}]'
    (e,) = parse_manifest_json(raw, "m")
    assert e.config == "c.json" and e.repo_tags == () and e.layers == ("a/layer.tar", "b.tar")


@pytest.mark.parametrize("text, want", [
    ("app", "docker.io/library/app:latest"),
    ("app:1", "docker.io/library/app:1"),
    ("localhost/app", "localhost/app:latest"),
    ("127.0.0.1:5000/demo/hello:1", "127.0.0.1:5000/demo/hello:1"),
    ("docker.io/library/alpine:3", "docker.io/library/alpine:3"),
    ("quay.io/a/b:v1.0-RC", "quay.io/a/b:v1.0-RC"),
])
def test_repo_tag_normalises_like_docker(text: str, want: str) -> None:
    assert repo_tag(text) == want


@pytest.mark.parametrize("bad", ["App", "app@sha256:" + "0" * 64, "a b", "app:"])
def test_repo_tag_refuses(bad: str) -> None:
    with pytest.raises(ReferenceError_):
        repo_tag(bad)


def test_select_image() -> None:
    from kilobox.formats.dockerarchive import ArchiveEntry
    es = [ArchiveEntry("a", ("docker.io/library/app:1",), ()),
          ArchiveEntry("b", ("localhost/web:latest", "example.com/x/web:2"), ()),
          ArchiveEntry("c", (), ())]
    assert select_image(es[:1], "", "w") == 0
    with pytest.raises(UsageError, match="3 images"):
        select_image(es, "", "w")
    assert select_image(es, "@2", "w") == 2
    assert select_image(es, "app:1", "w") == 0
    assert select_image(es, "docker.io/library/app:1", "w") == 0
    assert select_image(es, "localhost/web", "w") == 1       # exact
    assert select_image(es, "web", "w") == 1                 # short name (podman's localhost/)
    assert select_image(es, "example.com/x/web:2", "w") == 1
    for bad in ("@3", "@x", "app:2", "example.com/web"):
        with pytest.raises(NotFound):
            select_image(es, bad, "w")
    with pytest.raises(ReferenceError_):
        select_image(es, "app@sha256:" + "0" * 64, "w")


def test_select_image_ambiguous_short_name() -> None:
    from kilobox.formats.dockerarchive import ArchiveEntry
    es = [ArchiveEntry("a", ("localhost/app:1",), ()), ArchiveEntry("b", ("quay.io/app:1",), ())]
    with pytest.raises(UsageError, match="2 images"):
        select_image(es, "app:1", "w")
    assert select_image(es, "quay.io/app:1", "w") == 1


def test_sniff_compression() -> None:
    assert sniff_compression(b"\x1f\x8b\x08") == "gzip"
    assert sniff_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert sniff_compression(b"BZh9") == "bzip2"
    assert sniff_compression(b"\xfd7zXZ\x00") == "xz"
    assert sniff_compression(b"hello") == ""


# -- write, then read -------------------------------------------------------------------

def test_roundtrip_keeps_manifest_digest(tmp_path: Path) -> None:
    src = random_image(layers=3, size=700, seed=11)
    out = tmp_path / "app.tar"
    root = write_image(src, f"docker-archive:{out}:app:1")
    assert root.digest == src.root().digest
    m = members_of(out)
    items = json.loads(m["manifest.json"])
    man = Manifest.parse(src.manifest_bytes(src.root()))
    assert items == [{"Config": f"blobs/sha256/{man.config.digest.hex}", "RepoTags": ["docker.io/library/app:1"],
                      "Layers": [f"blobs/sha256/{l.digest.hex}" for l in man.layers]}]
    idx = json.loads(m["index.json"])
    validate_image_doc("index", idx)
    assert idx["manifests"][0]["digest"] == str(root.digest)
    assert idx["manifests"][0]["annotations"] == {"io.containerd.image.name": "docker.io/library/app:1",
                                                  "org.opencontainers.image.ref.name": "1"}
    assert json.loads(m["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    validate_image_doc("layout", json.loads(m["oci-layout"]))
    with DockerArchiveSource(out, "app:1") as s:
        assert s.root().digest == root.digest and s.tags() == ["docker.io/library/app:1"]
    assert validate_image(f"docker-archive:{out}") == {"manifests": 1, "configs": 1, "layers": 3,
                                                       "bytes": sum(l.size for l in man.layers)}
    assert list_tags(out) == ["docker.io/library/app:1"]
    assert not [p for p in tmp_path.iterdir() if p.name != "app.tar"]   # no temp files left


def test_written_tar_is_deterministic_and_tidy(tmp_path: Path) -> None:
    src = random_image(layers=2, size=300, seed=5, compression="")
    a, b = tmp_path / "a.tar", tmp_path / "sub" / "b.tar"
    b.parent.mkdir()
    write_image(src, f"docker-archive:{a}:x")
    old = os.umask(0o077)
    try:
        write_image(src, f"docker-archive:{b}:x")
    finally:
        os.umask(old)
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size % 10240 == 0
    assert (a.stat().st_mode & 0o777) == 0o644
    with tarfile.open(a) as tf:
        ms = tf.getmembers()
    assert [m.name for m in ms][:2] == ["blobs", "blobs/sha256"]
    assert [m.name for m in ms][-3:] == ["index.json", "oci-layout", "manifest.json"]
    for m in ms:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
        assert m.mode == (0o755 if m.isdir() else 0o644)


def test_uncompressed_layers_are_their_diff_ids(tmp_path: Path) -> None:
    src = random_image(layers=2, size=100, seed=2, compression="")
    out = tmp_path / "p.tar"
    write_image(src, f"docker-archive:{out}")
    items = json.loads(members_of(out)["manifest.json"])
    assert items[0]["RepoTags"] == []
    with DockerArchiveSource(out) as s:
        cfg = ImageConfig.parse(s.manifest_bytes(Manifest.parse(s.manifest_bytes(s.root())).config))
        assert [f"blobs/sha256/{d.hex}" for d in cfg.diff_ids] == items[0]["Layers"]


def test_index_source_needs_a_platform(tmp_path: Path) -> None:
    src = random_index(["linux/amd64", "linux/arm64"])
    out = tmp_path / "i.tar"
    root = write_image(src, f"docker-archive:{out}:multi", platform="linux/arm64")
    with DockerArchiveSource(out) as s:
        assert s.root().digest == root.digest
        man = Manifest.parse(s.manifest_bytes(s.root()))
        assert ImageConfig.parse(s.manifest_bytes(man.config)).platform.architecture == "arm64"
    # without --platform the engine picks the host's
    write_image(src, f"docker-archive:{tmp_path / 'h.tar'}")
    validate_image(f"docker-archive:{tmp_path / 'h.tar'}")


def test_sink_refuses_an_index_root(tmp_path: Path) -> None:
    src = random_index(["linux/amd64"])
    with DockerArchiveSink(tmp_path / "x.tar") as sink:
        with pytest.raises(LayoutError, match="single images"):
            sink.commit(src.root(), src.manifest_bytes(src.root()))
    assert list(tmp_path.iterdir()) == []


def test_close_without_commit_leaves_nothing(tmp_path: Path) -> None:
    src = random_image(seed=1)
    man = Manifest.parse(src.manifest_bytes(src.root()))
    with open_sink(f"docker-archive:{tmp_path / 'x.tar'}") as sink:
        sink.write_manifest(man.config, src.manifest_bytes(man.config))
        sink.write_blob(man.layers[0], src.open_blob(man.layers[0]))
        assert sink.has_blob(man.layers[0])
        assert len(list(tmp_path.iterdir())) == 1            # the temp file
    assert list(tmp_path.iterdir()) == []


def test_failed_copy_keeps_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "x.tar"
    out.write_bytes(b"old")
    src = random_image(seed=1)
    man = Manifest.parse(src.manifest_bytes(src.root()))
    src.blobs[str(man.layers[0].digest)] = b"tampered"
    from kilobox.copying import copy_root
    from kilobox.errors import DigestMismatch
    with pytest.raises(DigestMismatch):
        with open_sink(f"docker-archive:{out}:x") as sink:
            copy_root(src, sink)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.tar"]


def test_sink_target_checks(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="directory"):
        DockerArchiveSink(tmp_path)
    with pytest.raises(ReferenceError_):
        DockerArchiveSink(tmp_path / "a.tar", "Bad Name")
    with pytest.raises(NotFound):
        write_image(random_image(), f"docker-archive:{tmp_path / 'missing' / 'a.tar'}")


# -- reading what others write ----------------------------------------------------------

@pytest.mark.parametrize("style", ["skopeo", "skopeo-symlink", "docker"])
def test_read_legacy_flavours(tmp_path: Path, style: str) -> None:
    cfg, blobs = image_parts({"x": b"hello"}, layers=2)
    out = legacy_archive(tmp_path / "l.tar", [(cfg, blobs, ["example.com/foo/bar:v1"])],
                         via_symlink=style == "skopeo-symlink", docker_style=style == "docker")
    with DockerArchiveSource(out, "example.com/foo/bar:v1") as s:
        raw = s.manifest_bytes(s.root())
        validate_image_doc("manifest", json.loads(raw))
        man = Manifest.parse(raw)
        assert man.media_type == mt.OCI_MANIFEST and man.config.media_type == mt.OCI_CONFIG
        assert [l.media_type for l in man.layers] == [mt.OCI_LAYER] * 2
        assert [l.digest for l in man.layers] == ImageConfig.parse(cfg).diff_ids
        assert s.manifest_bytes(man.config) == cfg
        validate_image_doc("config", json.loads(cfg))
    validate_image(f"docker-archive:{out}")


def test_read_gzip_layers_under_legacy_names(tmp_path: Path) -> None:
    cfg, blobs = image_parts({"x": b"zipped"}, compress=True)
    out = legacy_archive(tmp_path / "g.tar", [(cfg, blobs, [])], docker_style=True)
    with DockerArchiveSource(out) as s:
        man = Manifest.parse(s.manifest_bytes(s.root()))
        assert man.layers[0].media_type == mt.OCI_LAYER_GZIP
        assert man.layers[0].digest == Digest.of(blobs[0])
    validate_image(f"docker-archive:{out}")   # checks the gzip layer against its diff_id


def test_read_zstd_layer(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    cfg, blobs = image_parts({"x": b"z"})
    z = zstandard.ZstdCompressor().compress(blobs[0])
    out = legacy_archive(tmp_path / "z.tar", [(cfg, [z], [])])
    with DockerArchiveSource(out) as s:
        assert Manifest.parse(s.manifest_bytes(s.root())).layers[0].media_type == mt.OCI_LAYER_ZSTD
    validate_image(f"docker-archive:{out}")


def test_multi_image_archive(tmp_path: Path) -> None:
    a = image_parts({"a": b"1"}, arch="amd64")
    b = image_parts({"b": b"2"}, arch="arm64")
    out = legacy_archive(tmp_path / "m.tar", [(*a, ["localhost/a:1"]), (*b, ["docker.io/library/b:2", "b:3"])])
    assert [e.repo_tags for e in list_images(out)] == [("localhost/a:1",), ("docker.io/library/b:2", "b:3")]
    assert list_tags(out) == ["b:3", "docker.io/library/b:2", "localhost/a:1"]
    with pytest.raises(UsageError, match="2 images"):
        DockerArchiveSource(out)
    for tag, arch in (("a:1", "amd64"), ("localhost/a:1", "amd64"), ("b:2", "arm64"), ("b:3", "arm64"),
                      ("@0", "amd64"), ("@1", "arm64")):
        with open_source(f"docker-archive:{out}:{tag}") as s:
            man = Manifest.parse(s.manifest_bytes(s.root()))
            assert ImageConfig.parse(s.manifest_bytes(man.config)).platform.architecture == arch
    with pytest.raises(NotFound):
        DockerArchiveSource(out, "c:1")


def test_copy_legacy_to_layout_and_back(tmp_path: Path) -> None:
    cfg, blobs = image_parts({"x": b"hi"}, layers=2)
    out = legacy_archive(tmp_path / "l.tar", [(cfg, blobs, ["app:latest"])])
    root = copy(f"docker-archive:{out}", f"oci:{tmp_path / 'lay'}:app")
    with DockerArchiveSource(out) as s:
        assert s.root().digest == root.digest          # synthesised manifest kept as is
    back = copy(f"oci:{tmp_path / 'lay'}:app", f"docker-archive:{tmp_path / 'again.tar'}")
    assert back.digest == root.digest
    assert json.loads(members_of(tmp_path / "again.tar")["manifest.json"])[0]["RepoTags"] == \
        ["docker.io/library/app:latest"]
    with DockerArchiveSource(tmp_path / "again.tar", "app") as s:
        assert s.root().digest == root.digest


def test_docker25_archive_uses_its_manifest(tmp_path: Path) -> None:
    """A docker 25+ archive (manifest.json + OCI layout) is read through its real manifest."""
    src = random_image(layers=1, seed=3)
    write_image(src, f"oci:{tmp_path / 'lay'}:t")
    lay = tmp_path / "lay"
    man = Manifest.parse(src.manifest_bytes(src.root()))
    members: list[tuple[Any, ...]] = [("blobs", None, "dir"), ("blobs/sha256", None, "dir")]
    members += [(f"blobs/sha256/{p.name}", p.read_bytes()) for p in sorted((lay / "blobs/sha256").iterdir())]
    members += [("index.json", (lay / "index.json").read_bytes()), ("oci-layout", (lay / "oci-layout").read_bytes()),
                ("manifest.json", json.dumps([{"Config": f"blobs/sha256/{man.config.digest.hex}",
                                               "RepoTags": ["t:latest"],
                                               "Layers": [f"blobs/sha256/{l.digest.hex}" for l in man.layers]}]).encode())]
    out = write_tar(tmp_path / "d25.tar", members)
    with DockerArchiveSource(out) as s:
        assert s.root().digest == src.root().digest
    # the index.json manifest does not match manifest.json: synthesise instead
    members[-1] = ("manifest.json", json.dumps([{"Config": f"blobs/sha256/{man.config.digest.hex}",
                                                 "Layers": [f"blobs/sha256/{man.layers[0].digest.hex}"],
                                                 "RepoTags": None}]).encode())
    members[-3] = ("index.json", b'{"schemaVersion": 2, "manifests": "nonsense"}')
    out2 = write_tar(tmp_path / "d25b.tar", members)
    with DockerArchiveSource(out2) as s:
        synth = Manifest.parse(s.manifest_bytes(s.root()))
        assert [l.digest for l in synth.layers] == [l.digest for l in man.layers]
        assert synth.layers[0].media_type == mt.OCI_LAYER_GZIP
    validate_image(f"docker-archive:{out2}")
