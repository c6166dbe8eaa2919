"""docker-archive against the real tools: skopeo writes/reads, podman loads/runs/saves, the CLI.

podman runs isolated (own storage under /tmp/kbp-*): see tests/helpers/podman.py for the incantation.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from kilobox.copying import copy
from kilobox.formats.dockerarchive import DockerArchiveSource, list_images
from kilobox.layers import Entry, write_layer
from kilobox.oci import ImageConfig, Manifest
from kilobox.oci import mediatypes as mt
from kilobox.testing import MemorySource, random_image, validate_image, write_image
from tests.helpers.podman import Podman, isolated_podman
from tests.helpers.tools import IN_CI, kilobox, need

HELLO_C = b'#include <unistd.h>\nint main(void){ write(1, "hello from kilobox\\n", 19); return 0; }\n'


# -- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hello_binary(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A static x86_64 musl hello world, built with zig (a few KiB)."""
    try:
        import ziglang  # noqa: F401
    except ImportError:
        (pytest.fail if IN_CI else pytest.skip)("ziglang is not installed (pip install ziglang)")
    d = tmp_path_factory.mktemp("hello")
    (d / "hello.c").write_bytes(HELLO_C)
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-linux-musl", "-Os", "-static",
                    "-s", "hello.c", "-o", "hello"], cwd=d, check=True, capture_output=True, timeout=600)
    return (d / "hello").read_bytes()


def hello_image(binary: bytes, compression: str = "gzip") -> MemorySource:
    """An image of one layer (``/hello``, 0755) with ``Entrypoint ["/hello"]``."""
    src = MemorySource(random_image().root(), name="hello")
    buf = io.BytesIO()
    info = write_layer([Entry("hello", data=binary, mode=0o755)], buf, compression=compression)
    layer = src.add(info.media_type, buf.getvalue())
    cfg = ImageConfig.build({"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
                             "config": {"Entrypoint": ["/hello"]},
                             "rootfs": {"type": "layers", "diff_ids": [str(info.diff_id)]}})
    man = Manifest.build(src.add(mt.OCI_CONFIG, cfg.raw), [layer])
    src.root_desc = src.add(mt.OCI_MANIFEST, man.raw)
    return src


@pytest.fixture
def podman() -> Iterator[Podman]:
    with isolated_podman() as p:
        yield p


def _diff_ids(location: str) -> list[str]:
    from kilobox.image import open_image
    with open_image(location) as img:
        return [str(d) for d in img.config.diff_ids]


def _skopeo(*args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([need("skopeo"), *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"skopeo {' '.join(args)}: {p.stderr}"
    return p


# -- skopeo ------------------------------------------------------------------------------

def test_skopeo_written_archive_is_read(tmp_path: Path) -> None:
    src = random_image(layers=3, size=2000, seed=21)
    write_image(src, f"oci:{tmp_path / 'lay'}:t")
    arch = tmp_path / "sk.tar"
    _skopeo("copy", "-q", f"oci:{tmp_path / 'lay'}:t", f"docker-archive:{arch}:example.com/foo/bar:v1")
    with tarfile.open(arch) as tf:
        assert any(m.issym() for m in tf)          # skopeo's <id>/layer.tar -> ../<hex>.tar links
    (entry,) = list_images(arch)
    assert entry.repo_tags == ("example.com/foo/bar:v1",)
    want = _diff_ids(f"oci:{tmp_path / 'lay'}:t")
    for loc in (f"docker-archive:{arch}", f"docker-archive:{arch}:example.com/foo/bar:v1", f"docker-archive:{arch}:@0"):
        assert _diff_ids(loc) == want
        validate_image(loc)
    with DockerArchiveSource(arch) as s:
        man = Manifest.parse(s.manifest_bytes(s.root()))
        assert [str(l.digest) for l in man.layers] == want          # skopeo stores plain tars
        assert {l.media_type for l in man.layers} == {mt.OCI_LAYER}
    # and on to a layout: the synthesised manifest travels unchanged
    root = copy(f"docker-archive:{arch}", f"oci:{tmp_path / 'lay2'}:x")
    with DockerArchiveSource(arch) as s:
        assert root.digest == s.root().digest
    _skopeo("inspect", f"oci:{tmp_path / 'lay2'}:x")


def test_ours_is_read_by_skopeo(tmp_path: Path) -> None:
    src = random_image(layers=2, size=3000, seed=22)
    arch = tmp_path / "ours.tar"
    root = write_image(src, f"docker-archive:{arch}:app:1")
    diff_ids = _diff_ids(f"docker-archive:{arch}")
    info = json.loads(_skopeo("inspect", f"docker-archive:{arch}").stdout)
    assert info["Layers"] == diff_ids and info["Os"] == "linux" and info["Architecture"] == "amd64"
    sel = json.loads(_skopeo("inspect", f"docker-archive:{arch}:docker.io/library/app:1").stdout)
    assert sel["Layers"] == diff_ids
    cfg = _skopeo("inspect", "--config", "--raw", f"docker-archive:{arch}").stdout.encode()
    man = Manifest.parse(src.manifest_bytes(src.root()))
    assert cfg == src.manifest_bytes(man.config)
    # the archive is an OCI archive too: skopeo sees our manifest, digest unchanged
    assert json.loads(_skopeo("inspect", f"oci-archive:{arch}").stdout)["Digest"] == str(root.digest)
    _skopeo("copy", "-q", f"docker-archive:{arch}", f"oci:{tmp_path / 'back'}:b")
    assert _diff_ids(f"oci:{tmp_path / 'back'}:b") == diff_ids
    validate_image(f"oci:{tmp_path / 'back'}:b")


# -- podman ------------------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["gzip", "", "zstd"])
def test_podman_loads_and_runs_ours(tmp_path: Path, hello_binary: bytes, podman: Podman, compression: str) -> None:
    src = hello_image(hello_binary, compression)
    arch = tmp_path / "hello.tar"
    write_image(src, f"docker-archive:{arch}:kbhello:{compression or 'plain'}")
    name = f"docker.io/library/kbhello:{compression or 'plain'}"
    assert podman.load(arch) == [name]
    cfg_digest = Manifest.parse(src.manifest_bytes(src.root())).config.digest
    assert podman.image_ids()[name] == cfg_digest.hex
    assert podman.run(name).stdout == "hello from kilobox\n"


def test_podman_pull_docker_archive_transport(tmp_path: Path, hello_binary: bytes, podman: Podman) -> None:
    """``podman load`` prefers the OCI view of our tar; ``pull docker-archive:`` forces manifest.json."""
    arch = tmp_path / "hello.tar"
    write_image(hello_image(hello_binary), f"docker-archive:{arch}:localhost/kbhello:2")
    podman("pull", "-q", f"docker-archive:{arch}")
    assert "localhost/kbhello:2" in podman.image_ids()
    assert podman.run("localhost/kbhello:2").stdout == "hello from kilobox\n"


def test_podman_save_is_read(tmp_path: Path, hello_binary: bytes, podman: Podman) -> None:
    a = random_image(layers=2, size=500, seed=31)
    write_image(a, f"docker-archive:{tmp_path / 'a.tar'}:kb/a:1")
    write_image(hello_image(hello_binary), f"docker-archive:{tmp_path / 'h.tar'}:kb/hello:1")
    podman.load(tmp_path / "a.tar")
    podman.load(tmp_path / "h.tar")
    one = tmp_path / "one.tar"
    podman("save", "--format", "docker-archive", "-o", str(one), "docker.io/kb/hello:1")
    assert _diff_ids(f"docker-archive:{one}") == _diff_ids(f"docker-archive:{tmp_path / 'h.tar'}")
    validate_image(f"docker-archive:{one}")
    both = tmp_path / "both.tar"
    podman("save", "-m", "--format", "docker-archive", "-o", str(both), "docker.io/kb/a:1", "docker.io/kb/hello:1")
    assert len(list_images(both)) == 2
    for tag, orig in (("kb/a:1", "a.tar"), ("docker.io/kb/hello:1", "h.tar"), ("@1", "h.tar")):
        assert _diff_ids(f"docker-archive:{both}:{tag}") == _diff_ids(f"docker-archive:{tmp_path / orig}")
        validate_image(f"docker-archive:{both}:{tag}")
    # what podman saved, kilobox re-archives, podman loads and runs again
    copy(f"docker-archive:{both}:kb/hello:1", f"docker-archive:{tmp_path / 'again.tar'}:kb/again:1")
    assert podman.load(tmp_path / "again.tar") == ["docker.io/kb/again:1"]
    assert podman.run("docker.io/kb/again:1").stdout == "hello from kilobox\n"


# -- CLI ---------------------------------------------------------------------------------

def test_cli_copy_and_inspect(tmp_path: Path) -> None:
    src = random_image(layers=2, size=800, seed=41, config={"Entrypoint": ["/app"]})
    write_image(src, f"docker-archive:{tmp_path / 'app.tar'}:app")
    kilobox("copy", "docker-archive:app.tar", "oci:./lay:app", cwd=tmp_path)
    assert validate_image(f"oci:{tmp_path / 'lay'}:app")["layers"] == 2
    assert _diff_ids(f"oci:{tmp_path / 'lay'}:app") == _diff_ids(f"docker-archive:{tmp_path / 'app.tar'}")
    out = kilobox("inspect", "docker-archive:app.tar", "--json", cwd=tmp_path)
    info = json.loads(out.stdout)
    assert info["Digest"] == str(src.root().digest)
    assert info["RepoTags"] == ["docker.io/library/app:latest"]
    assert info["Entrypoint"] == ["/app"] and len(info["LayersData"]) == 2
    bad = kilobox("inspect", "docker-archive:nothere.tar", check=False, cwd=tmp_path)
    assert bad.returncode == 3 and "nothere.tar" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    bad = kilobox("copy", "docker-archive:junk.tar", "oci:./lay2:x", check=False, cwd=tmp_path)
    assert bad.returncode == 4 and "Traceback" not in bad.stderr
    assert not (tmp_path / "lay2").exists()
