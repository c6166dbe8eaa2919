"""Assembly: the file tree, config, manifest, index, MemorySource — pure and deterministic."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from kilobox.build.assemble import (Item, assemble_image, assemble_index, ca_items, host_items, image_config,
                                    passwd_items, rfc3339, rootfs_items, timezone_items)
from kilobox.build.config import ProjectConfig
from kilobox.errors import BuildError, NotFound
from kilobox.formats.memory import MemorySource
from kilobox.oci import Digest, Platform, mediatypes as mt
from tests.helpers.schemas import validate_image_doc

AMD64 = Platform("linux", "amd64")


def members(layer: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tf:
        return tf.getmembers()


def test_rootfs_items_adds_parents_sorted() -> None:
    items = rootfs_items([Item("/usr/local/bin/app", mode=0o755, data=b"x"), Item("/etc/ssl/certs/ca.crt"),
                          Item("/a-b/c"), Item("/a/b")])
    assert [i.path for i in items] == ["/a", "/a/b", "/a-b", "/a-b/c", "/etc", "/etc/ssl", "/etc/ssl/certs",
                                       "/etc/ssl/certs/ca.crt", "/usr", "/usr/local", "/usr/local/bin",
                                       "/usr/local/bin/app"]
    assert all(i.mode == 0o755 and i.uid == 0 for i in items if i.kind == "dir")


def test_rootfs_items_conflicts() -> None:
    with pytest.raises(BuildError, match="twice"):
        rootfs_items([Item("/app"), Item("/app/")])
    with pytest.raises(BuildError, match="needs it to be a directory"):
        rootfs_items([Item("/app"), Item("/app/x")])
    with pytest.raises(BuildError, match="invalid path"):
        rootfs_items([Item("relative")])
    # a dir given twice (e.g. by two [[files]] trees) is fine
    assert len(rootfs_items([Item("/d", "dir", 0o755), Item("/d", "dir", 0o755)])) == 1


def test_passwd_items() -> None:
    p, g = passwd_items("65532:65532", 65532, 65532)
    assert p.path == "/etc/passwd" and p.data.decode().splitlines() == [
        "root:x:0:0:root:/root:/sbin/nologin", "nonroot:x:65532:65532:nonroot:/:/sbin/nologin"]
    assert g.data.decode().splitlines() == ["root:x:0:", "nonroot:x:65532:"]
    p, g = passwd_items("0", 0, 0)
    assert p.data == b"root:x:0:0:root:/root:/sbin/nologin\n" and g.data == b"root:x:0:\n"


def test_ca_and_timezone_items() -> None:
    ca, note = ca_items()
    assert ca[0].path == "/etc/ssl/certs/ca-certificates.crt" and b"BEGIN CERTIFICATE" in ca[0].data
    assert "certifi" in note
    tz, note = timezone_items(("UTC", "Europe/Berlin"))
    assert [i.path for i in tz] == ["/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Europe/Berlin"]
    assert all(i.data.startswith(b"TZif") for i in tz)
    assert "tzdata" in note or "/usr/share/zoneinfo" in note
    with pytest.raises(BuildError, match=r"timezone\[0\].*unknown time zone"):
        timezone_items(("Mars/Olympus",))


def test_timezone_all() -> None:
    tz, _ = timezone_items(True)
    paths = {i.path for i in tz}
    assert "/usr/share/zoneinfo/Europe/Berlin" in paths and len(paths) > 300
    assert not any("__" in p or p.endswith(".py") for p in paths)


def test_host_items_modes_ignore_host_metadata(tmp_path: Path) -> None:
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "index.html").write_text("hi")
    (www / "index.html").chmod(0o600)
    (www / "run.sh").write_text("#!")
    (www / "run.sh").chmod(0o700)
    (www / "sub" / "a.txt").write_text("a")
    (www / "link").symlink_to("index.html")
    items = host_items(www, "/srv/www", None, 1, 2, "files[0]")
    got = {i.path: (i.kind, oct(i.mode), i.uid, i.gid) for i in items}
    assert got == {"/srv/www": ("dir", "0o755", 1, 2), "/srv/www/sub": ("dir", "0o755", 1, 2),
                   "/srv/www/index.html": ("file", "0o644", 1, 2), "/srv/www/run.sh": ("file", "0o755", 1, 2),
                   "/srv/www/link": ("symlink", "0o777", 1, 2), "/srv/www/sub/a.txt": ("file", "0o644", 1, 2)}
    one = host_items(www / "index.html", "/x", 0o640, 0, 0, "files[1]")
    assert one == [Item("/x", "file", 0o640, data=b"hi")]


def cfg(**kw) -> ProjectConfig:
    base = dict(name="app", entrypoint=("/app",), platforms=(AMD64,))
    base.update(kw)
    return ProjectConfig(**base)


def test_image_config_minimal_and_full() -> None:
    d = Digest.of(b"x")
    c = image_config(cfg(), AMD64, d, 0)
    assert json.loads(c.raw) == {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
                                 "config": {"Entrypoint": ["/app"], "User": "65532:65532"},
                                 "rootfs": {"type": "layers", "diff_ids": [str(d)]}}
    full = cfg(cmd=("-v",), env={"A": "1"}, workdir="/w", ports=("8080/tcp",), labels={"l": "v"})
    c = image_config(full, Platform("linux", "arm", "v7"), d, 1700000000)
    obj = json.loads(c.raw)
    assert obj["variant"] == "v7" and obj["created"] == "2023-11-14T22:13:20Z"
    assert obj["config"] == {"Entrypoint": ["/app"], "Cmd": ["-v"], "Env": ["A=1"], "User": "65532:65532",
                             "WorkingDir": "/w", "ExposedPorts": {"8080/tcp": {}}, "Labels": {"l": "v"}}
    validate_image_doc("config", c.raw)
    assert c.raw == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"


def test_assemble_image_layer_contents_and_determinism() -> None:
    extra = [*passwd_items("65532:65532", 65532, 65532), Item("/www/index.html", data=b"<p>hi</p>")]
    c = cfg(entrypoint=("/usr/bin/app",))
    a = assemble_image(c, AMD64, b"\x7fELF-binary", extra, created=5, annotations={"k": "v"})
    b = assemble_image(c, AMD64, b"\x7fELF-binary", list(extra), created=5, annotations={"k": "v"})
    assert a.manifest.raw == b.manifest.raw and a.layer == b.layer
    m = members(a.layer)
    assert [x.name for x in m] == ["etc", "etc/group", "etc/passwd", "usr", "usr/bin", "usr/bin/app", "www",
                                   "www/index.html"]
    by = {x.name: x for x in m}
    assert by["usr/bin/app"].mode == 0o755 and by["etc/passwd"].mode == 0o644 and by["usr"].mode == 0o755
    assert all(x.mtime == 5 and x.uid == 0 and x.gid == 0 and x.uname == "" for x in m)
    assert a.layer_descriptor.media_type == mt.OCI_LAYER_GZIP
    assert Digest.of(gzip.decompress(a.layer)) == a.diff_id == a.config.diff_ids[0]
    man = json.loads(a.manifest.raw)
    assert man["mediaType"] == mt.OCI_MANIFEST and man["annotations"] == {"k": "v"}
    validate_image_doc("manifest", a.manifest.raw)
    # a different time or binary changes the digest
    assert assemble_image(c, AMD64, b"\x7fELF-binary", extra, created=6).manifest.digest != a.manifest.digest


def test_assemble_index_and_memory_source() -> None:
    c = cfg()
    ims = [assemble_image(c, p, b"bin-" + str(p).encode(), [], created=0)
           for p in (AMD64, Platform("linux", "arm64"))]
    idx = assemble_index(ims, {"org.opencontainers.image.revision": "abc"})
    obj = json.loads(idx.raw)
    validate_image_doc("index", idx.raw)
    assert [m["platform"] for m in obj["manifests"]] == [{"architecture": "amd64", "os": "linux"},
                                                         {"architecture": "arm64", "os": "linux"}]
    blobs = {idx.digest: idx.raw}
    for im in ims:
        blobs.update(im.blobs)
    src = MemorySource(idx.descriptor(), blobs)
    assert src.manifest_bytes(idx.descriptor()) == idx.raw
    assert src.open_blob(ims[0].layer_descriptor).read() == ims[0].layer
    with pytest.raises(NotFound):
        src.open_blob(ims[0].layer_descriptor.with_(digest=Digest.of(b"nope")))
    with pytest.raises(NotFound):
        MemorySource(idx.descriptor(), {})


def test_compression_level_is_a_function_of_size() -> None:
    from kilobox.build.assemble import BEST_COMPRESSION_MAX, compression_level
    assert compression_level(500) == 9 and compression_level(BEST_COMPRESSION_MAX) == 9
    assert compression_level(BEST_COMPRESSION_MAX + 1) == 6
    big = bytes(range(256)) * 8192  # 2 MiB: level 6, still deterministic
    a = assemble_image(cfg(), AMD64, big, [], created=0)
    b = assemble_image(cfg(), AMD64, big, [], created=0)
    assert a.layer == b.layer and gzip.decompress(a.layer)[512:512 + len(big)] == big
