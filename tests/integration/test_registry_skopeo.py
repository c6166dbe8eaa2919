"""Round trips with skopeo: it reads what kilobox pushes, kilobox reads what it pushes, digests unchanged."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kilobox.copying import copy, copy_root
from kilobox.formats import Options
from kilobox.formats.registry import RegistrySink, RegistrySource
from kilobox.oci import Reference
from tests.helpers.memimage import MemImage, MemSink
from tests.helpers.tools import need

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("private_store")]


def skopeo(*args: str) -> str:
    p = subprocess.run([need("skopeo"), *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"skopeo {' '.join(args)}: {p.stderr}"
    return p.stdout


def push(img: MemImage, ref: str) -> None:
    with RegistrySink(Reference.parse(ref), Options()) as sink:
        copy_root(img, sink)


def pull(ref: str) -> MemSink:
    out = MemSink()
    with RegistrySource(Reference.parse(ref), Options()) as src:
        copy_root(src, out)
    return out


def test_skopeo_reads_what_kilobox_pushed(registry) -> None:
    img = MemImage()
    root = img.add_image(layers=2, size=3000)
    push(img, registry.ref("demo/hello:1"))
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.ref('demo/hello:1')}")
    assert raw.encode() == img.blobs[root.digest]
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.ref('demo/hello:1')}"))
    assert info["Digest"] == str(root.digest) and info["Architecture"] == "amd64"
    cfg = skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{registry.ref('demo/hello:1')}")
    assert cfg.encode() in img.blobs.values()
    # skopeo copies it to another repository; kilobox reads that back unchanged
    skopeo("copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{registry.ref('demo/hello:1')}", f"docker://{registry.ref('other/copy:2')}")
    back = pull(registry.ref("other/copy:2"))
    assert back.root == root and back.blobs == img.blobs


def test_kilobox_reads_what_skopeo_pushed_from_its_own_layout(registry, tmp_path: Path) -> None:
    img = MemImage()
    img.add_image(layers=1, size=2000, seed=7)
    push(img, registry.ref("demo/src:1"))
    lay = tmp_path / "skopeo-layout"
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{registry.ref('demo/src:1')}", f"oci:{lay}:t")
    index = json.loads((lay / "index.json").read_text())
    want = index["manifests"][0]["digest"]
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{lay}:t", f"docker://{registry.ref('demo/bysk:1')}")
    back = pull(registry.ref("demo/bysk:1"))
    assert str(back.root.digest) == want
    for digest, data in back.blobs.items():
        assert (lay / "blobs" / digest.algorithm / digest.hex).read_bytes() == data


def test_layout_push_by_kilobox_pull_by_skopeo(registry, tmp_path: Path) -> None:
    """Through the layout format too (the issue's command lines, in the API)."""
    pytest.importorskip("kilobox.formats.layout")
    img = MemImage()
    img.add_image(layers=2, size=1000, seed=9)
    src_ref = registry.ref("demo/viaskopeo:1")
    push(img, src_ref)
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{src_ref}", f"oci:{tmp_path / 'sk'}:t")
    root = copy(f"oci:{tmp_path / 'sk'}:t", f"docker://{registry.ref('demo/fromlayout:1')}")
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{registry.ref('demo/fromlayout:1')}",
           f"oci:{tmp_path / 'back'}:t")
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == str(root.digest)
    back = copy(f"docker://{registry.ref('demo/fromlayout:1')}", f"oci:{tmp_path / 'kb'}:t")
    assert back.digest == root.digest


def test_index_with_skopeo_all(registry, tmp_path: Path) -> None:
    img = MemImage()
    root = img.add_index(["linux/amd64", "linux/arm64"])
    push(img, registry.ref("demo/multi:1"))
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.ref('demo/multi:1')}")
    assert raw.encode() == img.blobs[root.digest]
    skopeo("copy", "-q", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{registry.ref('demo/multi:1')}", f"docker://{registry.ref('demo/multi2:1')}")
    back = pull(registry.ref("demo/multi2:1"))
    assert back.root == root and back.blobs == img.blobs


def test_skopeo_with_basic_auth(registry_basic) -> None:
    img = MemImage()
    root = img.add_image(layers=1, size=500)
    opts = Options(username=registry_basic.username, password=registry_basic.password)
    with RegistrySink(Reference.parse(registry_basic.ref("sec/x:1")), opts) as sink:
        copy_root(img, sink)
    info = json.loads(skopeo("inspect", "--tls-verify=false",
                             f"--creds={registry_basic.username}:{registry_basic.password}",
                             f"docker://{registry_basic.ref('sec/x:1')}"))
    assert info["Digest"] == str(root.digest)


def test_docker_schema2_written_by_skopeo(registry, tmp_path: Path) -> None:
    """skopeo converts to Docker schema 2 on the way; kilobox reads the Docker types unchanged."""
    import hashlib
    from kilobox.oci import mediatypes as mt
    img = MemImage()
    img.add_image(layers=1, size=1000, seed=11)
    push(img, registry.ref("demo/oci:1"))
    skopeo("copy", "-q", "--format", "v2s2", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{registry.ref('demo/oci:1')}", f"docker://{registry.ref('demo/v2s2:1')}")
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.ref('demo/v2s2:1')}").encode()
    back = pull(registry.ref("demo/v2s2:1"))
    assert back.root.media_type == mt.DOCKER_MANIFEST
    assert str(back.root.digest) == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert back.blobs[back.root.digest] == raw
