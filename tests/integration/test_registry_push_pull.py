"""Push and pull against Debian's real docker-registry (no auth)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kilobox.copying import copy_root
from kilobox.errors import NotFound
from kilobox.formats import Options
from kilobox.formats.registry import RegistrySink, RegistrySource, list_tags, resolve
from kilobox.oci import Index, Manifest, Reference, mediatypes as mt
from tests.helpers.memimage import MemImage, MemSink

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("private_store")]


def push(img: MemImage, ref: str, **extra: object) -> RegistrySink:
    """Push *img*; ``sink.requests`` lists this push's (method, path, status) only."""
    with RegistrySink(Reference.parse(ref), Options(extra=dict(extra))) as sink:
        before = len(sink.client.log)
        copy_root(img, sink)
    sink.requests = sink.client.log[before:]  # type: ignore[attr-defined]
    return sink


def pull(ref: str) -> tuple[MemSink, RegistrySource]:
    sink = MemSink()
    with RegistrySource(Reference.parse(ref), Options()) as src:
        copy_root(src, sink)
    return sink, src


def test_round_trip_keeps_every_byte(registry) -> None:
    img = MemImage()
    root = img.add_image(layers=2, size=3000)
    sink = push(img, registry.ref("demo/hello:1"))
    assert sink.stats["uploaded"] == 3            # 2 layers and the config
    got, _ = pull(registry.ref("demo/hello:1"))
    assert got.root == root
    assert got.blobs == img.blobs
    # by digest too, and resolve agrees
    got2, _ = pull(registry.ref(f"demo/hello@{root.digest}"))
    assert got2.root == root
    d = resolve(Reference.parse(registry.ref("demo/hello:1")))
    assert (d.digest, d.size, d.media_type) == (root.digest, root.size, mt.OCI_MANIFEST)


def test_existing_blobs_are_skipped_by_head(registry) -> None:
    img = MemImage()
    img.add_image(layers=3, size=1000)
    push(img, registry.ref("demo/skip:1"))
    img.opened.clear()
    sink = push(img, registry.ref("demo/skip:2"), blob_cache=False)
    methods = [m for m, _, _ in sink.requests]
    assert sink.stats == {"skipped": 4, "mounted": 0, "uploaded": 0, "chunked": 0}
    assert "POST" not in methods and "PATCH" not in methods
    assert methods.count("HEAD") == 4 and methods.count("PUT") == 1   # only the manifest
    assert img.opened == []                                          # nothing was even read
    assert sorted(list_tags(Reference.parse(registry.ref("demo/skip")))) == ["1", "2"]


def test_blobs_known_from_a_recent_push_need_no_head(registry) -> None:
    img = MemImage()
    img.add_image(layers=3, size=1000)
    push(img, registry.ref("demo/known:1"))
    img.opened.clear()
    sink = push(img, registry.ref("demo/known:2"))
    assert [m for m, _, _ in sink.requests] == ["PUT"]                   # the manifest, nothing else
    assert sink.stats == {"skipped": 4, "mounted": 0, "uploaded": 0, "chunked": 0}
    assert img.opened == []
    other = push(img, registry.ref("demo/elsewhere:1"))                 # another repository: asked
    assert [m for m, _, _ in other.requests].count("HEAD") == 4


def test_stale_known_blobs_are_sent_again(registry) -> None:
    """The repository lost the blobs (deleted, garbage-collected): the manifest is refused
    (MANIFEST_BLOB_UNKNOWN), the cache is dropped and the copy runs again, asking this time."""
    import shutil
    img = MemImage()
    root = img.add_image(layers=2, size=1500)
    push(img, registry.ref("demo/stale:1"))
    shutil.rmtree(registry.storage / "docker/registry/v2/repositories/demo/stale/_layers")
    sink = push(img, registry.ref("demo/stale:2"))
    methods = [m for m, _, _ in sink.requests]
    assert [s for m, p, s in sink.requests if m == "PUT" and "/manifests/" in p] == [400, 201]
    assert methods.count("HEAD") == 3 and sink.stats["uploaded"] == 3
    got, _ = pull(registry.ref("demo/stale:2"))
    assert got.root == root and got.blobs == img.blobs
    again = push(img, registry.ref("demo/stale:3"))                    # the new push was recorded
    assert [m for m, _, _ in again.requests] == ["PUT"]


def test_chunked_upload(registry) -> None:
    img = MemImage()
    root = img.add_image(layers=1, size=300_000, raw_layers=True)
    sink = push(img, registry.ref("demo/chunky:1"), chunked_threshold=64 * 1024, chunk_size=100_000)
    patches = [p for m, p, _ in sink.requests if m == "PATCH"]
    assert len(patches) == 3 and sink.stats["chunked"] == 1
    got, _ = pull(registry.ref("demo/chunky:1"))
    assert got.blobs == img.blobs and got.root == root


def test_cross_repository_mount(registry) -> None:
    img = MemImage()
    root = img.add_image(layers=2, size=2000)
    push(img, registry.ref("team/base:1"))
    src_ref, dst_ref = Reference.parse(registry.ref("team/base:1")), Reference.parse(registry.ref("team/app:1"))
    with RegistrySource(src_ref, Options()) as src, RegistrySink(dst_ref, Options()) as sink:
        assert copy_root(src, sink) == root
    assert sink.stats["mounted"] == 2                       # layers mounted; the config goes up as JSON
    log = sink.client.log
    assert sum(1 for m, p, s in log if m == "POST" and "mount=" in p and "from=team%2Fbase" in p and s == 201) == 2
    layers = {str(d.digest) for d in Manifest.parse(img.blobs[root.digest]).layers}
    pulled = {p.rsplit("/", 1)[1] for m, p, _ in log if m == "GET" and p.startswith("/v2/team/base/blobs/")}
    assert not pulled & layers                              # no layer was downloaded
    got, _ = pull(registry.ref("team/app:1"))
    assert got.root == root


def test_mount_from_named_in_options(registry) -> None:
    img = MemImage()
    img.add_image(layers=1, size=1500)
    push(img, registry.ref("team/one:1"))
    sink = push(img, registry.ref("team/two:1"), mount_from="team/one")
    assert sink.stats["mounted"] >= 1


def test_mount_refused_falls_back_to_upload(registry) -> None:
    img = MemImage()
    root = img.add_image(layers=1, size=1500)
    sink = push(img, registry.ref("team/three:1"), mount_from="team/does-not-exist")
    assert sink.stats["mounted"] == 0 and sink.stats["uploaded"] == 2
    got, _ = pull(registry.ref("team/three:1"))
    assert got.root == root


def test_tags_with_page_size(registry) -> None:
    """distribution 2.8 ignores ``n`` on tag lists (it pages only the catalog): all tags in one reply.
    Paging itself (``Link: rel=next``) is proven in test_registry_hostile.py::test_tags_pagination."""
    img = MemImage()
    img.add_image(layers=1, size=100)
    tags = [f"v{i}" for i in range(5)]
    for t in tags:
        push(img, registry.ref(f"demo/many:{t}"))
    from kilobox.formats.registry.source import client_for
    ref = Reference.parse(registry.ref("demo/many"))
    client = client_for(ref, Options())
    before = len(client.log)
    assert sorted(list_tags(ref, Options(), page_size=2)) == tags
    assert [p for m, p, _ in client.log[before:]] == ["/v2/demo/many/tags/list?n=2"]


def test_tags_of_unknown_repository(registry) -> None:
    with pytest.raises(NotFound):
        list_tags(Reference.parse(registry.ref("nobody/here")))


def test_pull_reads_through_the_store(registry, private_store: Path) -> None:
    img = MemImage()
    img.add_image(layers=2, size=2000)
    push(img, registry.ref("demo/cache:1"))
    _, src = pull(registry.ref("demo/cache:1"))
    first = [p for m, p, _ in src.client.log if m == "GET" and "/blobs/" in p]
    assert len(first) == 3
    before = len(src.client.log)
    _, src2 = pull(registry.ref("demo/cache:1"))
    again = [p for m, p, _ in src2.client.log[before:] if m == "GET" and "/blobs/" in p]
    assert again == []                     # layers and config came from the store
    assert len(list((private_store / "blobs/sha256").iterdir())) == 3   # 2 layers and the config

def test_index_push_and_pull(registry) -> None:
    img = MemImage()
    root = img.add_index(["linux/amd64", "linux/arm64", "linux/arm/v7"])
    push(img, registry.ref("demo/multi:1"))
    got, _ = pull(registry.ref("demo/multi:1"))
    assert got.root == root and got.root.media_type == mt.OCI_INDEX
    assert got.blobs == img.blobs
    idx = Index.parse(got.blobs[root.digest])
    assert [str(d.platform) for d in idx.manifests] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    # one platform only
    sink = MemSink()
    with RegistrySource(Reference.parse(registry.ref("demo/multi:1")), Options()) as src:
        copy_root(src, sink, platform="linux/arm64")
    assert sink.root == idx.manifests[1].with_(platform=None) or sink.root.digest == idx.manifests[1].digest


def test_docker_media_types_round_trip(registry) -> None:
    img = MemImage()
    layer = img.add(mt.DOCKER_LAYER_GZIP, b"\x1f\x8b" + b"z" * 500)
    cfg = img.add(mt.DOCKER_CONFIG, json.dumps({"architecture": "amd64", "os": "linux",
                                                 "rootfs": {"type": "layers", "diff_ids": []}}).encode())
    m = Manifest.build(cfg, [layer], media_type=mt.DOCKER_MANIFEST)
    img._root = img.add(mt.DOCKER_MANIFEST, m.raw)
    push(img, registry.ref("demo/docker:1"))
    got, _ = pull(registry.ref("demo/docker:1"))
    assert got.root.media_type == mt.DOCKER_MANIFEST and got.root.digest == m.digest


def test_push_by_digest_only(registry) -> None:
    img = MemImage()
    root = img.add_image(layers=1, size=100)
    push(img, registry.ref(f"demo/bydigest@{root.digest}"))
    got, _ = pull(registry.ref(f"demo/bydigest@{root.digest}"))
    assert got.root == root


def test_unknown_tag_is_not_found(registry) -> None:
    with pytest.raises(NotFound, match="MANIFEST_UNKNOWN|NAME_UNKNOWN"):
        pull(registry.ref("demo/none:1"))


def test_download_progress(registry) -> None:
    img = MemImage()
    root = img.add_image(layers=1, size=3 << 20, raw_layers=True)
    push(img, registry.ref("demo/prog:1"))
    calls: list[tuple[str, int, int]] = []
    layer = Manifest.parse(img.blobs[root.digest]).layers[0]
    with RegistrySource(Reference.parse(registry.ref("demo/prog:1")), Options(progress=lambda *a: calls.append(a))) as src:
        copy_root(src, MemSink())
    mine = [c for c in calls if c[0] == layer.digest.hex[:12]]
    assert mine[0][1] == 0 and mine[-1][1] == layer.size and all(c[2] == layer.size for c in mine)
    assert [c[1] for c in mine] == sorted(c[1] for c in mine) and len(mine) >= 3


def test_prefetch_downloads_later_layers_only_when_layers_are_read(registry, private_store: Path) -> None:
    from kilobox.image import load_image
    img = MemImage()
    root = img.add_image(layers=4, size=200_000, raw_layers=True)
    push(img, registry.ref("demo/pre:1"))
    layers = Manifest.parse(img.blobs[root.digest]).layers
    src = RegistrySource(Reference.parse(registry.ref("demo/pre:1")), Options())
    before = len(src.client.log)
    image = load_image(src)                           # manifest + config: what inspect reads
    assert image.config.platform.architecture == "amd64"
    assert not [p for m, p, _ in src.client.log[before:] if m == "GET" and "/blobs/" in p
                and any(str(l.digest) in p for l in layers)]
    with src.open_blob(layers[1]) as f:                # reading one layer prefetches the later ones
        assert f.read() == img.blobs[layers[1].digest]
    for later in layers[2:]:
        with src.open_blob(later) as f:
            assert f.read() == img.blobs[later.digest]
    src.close()
    got = {p.name for p in (private_store / "blobs/sha256").iterdir()}
    assert {l.digest.hex for l in layers[1:]} <= got and layers[0].digest.hex not in got
    gets = [p for m, p, _ in src.client.log[before:] if m == "GET" and "/blobs/" in p]
    assert len(gets) == len(set(gets))                 # no blob was fetched twice


def test_close_cancels_prefetch(registry, private_store: Path) -> None:
    img = MemImage()
    root = img.add_image(layers=3, size=3_000_000, raw_layers=True)
    push(img, registry.ref("demo/cancel:1"))
    layers = Manifest.parse(img.blobs[root.digest]).layers
    with RegistrySource(Reference.parse(registry.ref("demo/cancel:1")), Options()) as src:
        src.manifest_bytes(src.root())
        src.open_blob(layers[0]).close()
    tmp = private_store / "tmp"
    assert not tmp.exists() or not [p for p in tmp.iterdir() if p.name.startswith("blob.")]
