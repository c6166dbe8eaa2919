"""Round trips between every pair of formats: OCI layout, oci-archive, docker-archive, registry.

What each hop must keep:
- layer diff_ids, everywhere (the filesystem never changes);
- the manifest (and index) digest wherever the format stores manifests: layout,
  oci-archive, registry — and kilobox's docker-archive too, which carries an OCI
  layout beside manifest.json (docker 25 style). A docker-archive written by other
  tools has no manifest: kilobox synthesises one, and that one then travels unchanged.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from kilobox.copying import copy
from kilobox.formats import open_source
from kilobox.image import open_image
from kilobox.oci import Index, Manifest, parse_manifest_or_index
from kilobox.testing import random_image, random_index, validate_image, write_image
from tests.helpers.tools import need

FORMATS = ["oci", "oci-archive", "docker-archive", "registry"]
#: formats that hold an index as such (docker-archive holds one platform's image)
HOLDS_INDEX = {"oci", "oci-archive", "registry"}


@pytest.fixture
def place(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str, str], str]:
    """``place(fmt, name)`` -> a fresh location of format *fmt* (the registry starts on first use)."""
    def make(fmt: str, name: str) -> str:
        if fmt == "oci":
            return f"oci:{tmp_path / name}-layout:t"
        if fmt == "oci-archive":
            return f"oci-archive:{tmp_path / name}.oci.tar:t"
        if fmt == "docker-archive":
            return f"docker-archive:{tmp_path / name}.docker.tar:kb/matrix:t"
        registry = request.getfixturevalue("registry")
        return f"{registry.host}/matrix/{name}:t"
    return make


def root_digest(location: str) -> str:
    with open_source(location) as src:
        return str(src.root().digest)


def diff_ids(location: str, platform: str | None = None) -> list[str]:
    with open_image(location, platform) as img:
        return [str(d) for d in img.config.diff_ids]


@pytest.mark.parametrize("a, b", list(itertools.permutations(FORMATS, 2)))
def test_pair_round_trip(place: Callable[[str, str], str], a: str, b: str) -> None:
    src = random_image(layers=2, size=1500, seed=10 * FORMATS.index(a) + FORMATS.index(b))
    start, mid, back = place(a, "start"), place(b, "mid"), place(a, "back")
    orig = write_image(src, start)
    want = diff_ids(start)
    assert copy(start, mid).digest == orig.digest
    assert copy(mid, back).digest == orig.digest
    for loc in (start, mid, back):
        assert root_digest(loc) == str(orig.digest), loc
        assert diff_ids(loc) == want, loc
        validate_image(loc)


@pytest.mark.parametrize("compression", ["gzip", "", "zstd"])
def test_chain_through_every_format(place: Callable[[str, str], str], compression: str) -> None:
    src = random_image(layers=3, size=1000, seed=7, compression=compression)
    chain = [place(f, f"hop{i}") for i, f in enumerate([*FORMATS, "oci"])]
    orig = write_image(src, chain[0])
    want = diff_ids(chain[0])
    for x, y in zip(chain, chain[1:]):
        assert copy(x, y).digest == orig.digest, f"{x} -> {y}"
        assert diff_ids(y) == want
        validate_image(y)


@pytest.mark.parametrize("b", ["oci", "oci-archive", "registry"])
def test_foreign_docker_archive_travels(tmp_path: Path, place: Callable[[str, str], str], b: str) -> None:
    """A skopeo-written (legacy) docker-archive: its synthesised manifest is what every format keeps."""
    src = random_image(layers=2, size=900, seed=3)
    write_image(src, f"oci:{tmp_path / 'seed'}:t")
    foreign = tmp_path / "skopeo.tar"
    subprocess.run([need("skopeo"), "copy", "-q", f"oci:{tmp_path / 'seed'}:t",
                    f"docker-archive:{foreign}:kb/foreign:1"], check=True, capture_output=True, timeout=300)
    start = f"docker-archive:{foreign}"
    synth = root_digest(start)
    want = diff_ids(f"oci:{tmp_path / 'seed'}:t")
    assert diff_ids(start) == want
    mid, back = place(b, "mid"), place("docker-archive", "back")
    assert str(copy(start, mid).digest) == synth
    assert str(copy(mid, back).digest) == synth
    for loc in (mid, back):
        assert root_digest(loc) == synth and diff_ids(loc) == want
        validate_image(loc)


@pytest.mark.parametrize("a, b", [(x, y) for x, y in itertools.permutations(FORMATS, 2) if x in HOLDS_INDEX])
def test_index_round_trip(place: Callable[[str, str], str], a: str, b: str) -> None:
    """An index keeps its digest between formats that hold indexes; a docker-archive gets one platform."""
    src = random_index(["linux/amd64", "linux/arm64"], layers=1, size=700, seed=5)
    start, mid = place(a, "start"), place(b, "mid")
    orig = write_image(src, start)
    index = parse_manifest_or_index(src.manifest_bytes(src.root()))
    assert isinstance(index, Index)
    arm = next(d for d in index.manifests if d.platform and d.platform.architecture == "arm64")
    got = copy(start, mid, platform="linux/arm64" if b == "docker-archive" else None)
    if b in HOLDS_INDEX:
        assert got.digest == orig.digest and root_digest(mid) == str(orig.digest)
        assert validate_image(mid)["manifests"] == 3
    else:
        assert got.digest == arm.digest and root_digest(mid) == str(arm.digest)
        assert isinstance(parse_manifest_or_index(src.manifest_bytes(arm)), Manifest)
        validate_image(mid)
    assert diff_ids(mid, "linux/arm64") == diff_ids(start, "linux/arm64")


def test_registry_to_docker_archive_keeps_the_name(tmp_path: Path, place: Callable[[str, str], str]) -> None:
    """Without a name on the archive, RepoTags take the full source reference (not just its tag)."""
    ref = place("registry", "named")
    write_image(random_image(seed=8), ref)
    out = tmp_path / "named.tar"
    copy(ref, f"docker-archive:{out}")
    from kilobox.formats.dockerarchive import list_tags
    assert list_tags(out) == [ref]
    assert root_digest(f"docker-archive:{out}:{ref}") == root_digest(ref)
