"""kilobox.build() on prebuilt (synthetic) ELF binaries: outputs, platforms, budget, refusals.

Fast: no compiler — the ELF files come from tests.fixtures.toolchain.make_elf.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from kilobox.build import _strip_credentials, build, git_annotations, source_date_epoch
from kilobox.errors import BudgetExceeded, BuildError, UsageError
from tests.fixtures.toolchain import make_elf
from tests.helpers.schemas import validate_layout_dir


@pytest.fixture
def elf(tmp_path: Path):
    def make(name: str = "app", **kw) -> Path:
        p = tmp_path / "bins" / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(make_elf(**kw))
        return p
    return make


def test_binary_to_layout(elf, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = build(binaries=[str(elf())], entrypoint="/app", output=f"oci:{out}:app")
    assert validate_layout_dir(out) >= 4
    r = res.report
    assert r.name == "app" and [p.platform for p in r.platforms] == ["linux/amd64"]
    assert r.index_digest is None and r.root_digest == res.digest
    assert r.destinations == [f"oci:{out}:app"]
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == res.digest
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "app"
    cfg = json.loads((out / "blobs" / "sha256" / json.loads(
        (out / "blobs" / "sha256" / res.digest.split(":")[1]).read_bytes())["config"]["digest"].split(":")[1]).read_bytes())
    assert cfg["config"] == {"Entrypoint": ["/app"], "User": "65532:65532"}
    assert cfg["created"] == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize("machine,bits,want", [(183, 64, "linux/arm64"), (40, 32, "linux/arm/v7"),
                                               (243, 64, "linux/riscv64"), (62, 64, "linux/amd64")])
def test_platform_sniffed_from_elf(elf, machine: int, bits: int, want: str) -> None:
    res = build(binaries=[str(elf(machine=machine, bits=bits))])
    assert [p.platform for p in res.report.platforms] == [want]


def test_several_binaries_make_an_index(elf, tmp_path: Path) -> None:
    a, b = elf("a"), elf("b", machine=183)
    out = tmp_path / "out"
    res = build(binaries=[f"linux/amd64={a}", f"linux/arm64={b}"], name="multi", output=f"oci:{out}:m")
    validate_layout_dir(out)
    assert res.report.index_digest == res.digest and res.report.index_bytes > 0
    assert all(p.index_bytes == res.report.index_bytes for p in res.report.platforms)
    idx = json.loads((out / "blobs" / "sha256" / res.digest.split(":")[1]).read_bytes())
    assert [m["platform"]["architecture"] for m in idx["manifests"]] == ["amd64", "arm64"]


def test_reproducible_across_dirs_umask_time_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    digests = []
    for i, umask in enumerate((0o022, 0o077)):
        d = tmp_path / f"copy{i}" / "proj"
        (d / "www").mkdir(parents=True)
        (d / "app").write_bytes(make_elf())
        (d / "www" / "index.html").write_text("<p>hi</p>")
        (d / "kilobox.toml").write_text('name = "web"\nbinary = "app"\npasswd = true\n'
                                        '[[files]]\nsource = "www"\ntarget = "/www"\n')
        for p in d.rglob("*"):
            os.utime(p, (1e9 + i * 1e6, 1e9 + i * 1e6))
        old = os.umask(umask)
        try:
            monkeypatch.chdir(tmp_path / f"copy{i}")
            digests.append(build("proj", platforms="linux/amd64").digest)
        finally:
            os.umask(old)
        time.sleep(1.1)
    assert digests[0] == digests[1]


def test_budget_exceeded_writes_nothing(elf, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(BudgetExceeded) as ei:
        build(binaries=[str(elf())], output=f"oci:{out}:x", max_size="100B")
    rep = ei.value.report
    assert not rep.ok and rep.platforms[0].total_bytes > 100 and rep.platforms[0].budget_bytes == 100
    assert "> budget 100" in ei.value.message
    assert not out.exists()


def test_refusals_write_nothing(elf, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(BuildError, match="dynamically linked.*libc.so.6"):
        build(binaries=[str(elf(interp="/lib64/ld-linux-x86-64.so.2", needed=("libc.so.6",)))],
              output=f"oci:{out}")
    with pytest.raises(BuildError, match="x86-64.*linux/arm64 needs aarch64"):
        build(binaries=[str(elf())], platforms="linux/arm64", output=f"oci:{out}")
    with pytest.raises(BuildError, match="no OCI platform known for e_machine 999"):
        build(binaries=[str(elf("odd", machine=999))], output=f"oci:{out}")
    bad = tmp_path / "script.sh"
    bad.write_text("#!/bin/sh\n")
    with pytest.raises(BuildError, match="not an ELF"):
        build(binaries=[str(bad)], output=f"oci:{out}")
    with pytest.raises(UsageError, match="unknown platform"):
        build(binaries=[str(elf())], platforms="linux/foo", output=f"oci:{out}")
    with pytest.raises(UsageError, match="docker-archive holds a single platform"):
        build(binaries=[f"linux/amd64={elf('a')}", f"linux/arm64={elf('b', machine=183)}"],
              output=f"docker-archive:{tmp_path / 'x.tar'}")
    with pytest.raises(UsageError, match="one binary cannot serve 2 platforms"):
        build(binaries=[str(elf())], platforms="linux/amd64,linux/arm64", output=f"oci:{out}")
    with pytest.raises(UsageError, match="does not exist"):
        build(binaries=[str(tmp_path / "missing")], output=f"oci:{out}")
    with pytest.raises(UsageError, match="nothing to build"):
        build(output=f"oci:{out}")
    assert not out.exists() and not (tmp_path / "x.tar").exists()


def test_overrides(elf) -> None:
    res = build(binaries=[str(elf())], entrypoint="/usr/bin/app --serve", cmd="-p 80", env=["A=1"],
                user="1000", tag="v1", name="svc")
    cfg = json.loads(res.blobs[next(d for d, b in res.blobs.items() if b"rootfs" in b)])
    assert cfg["config"] == {"Entrypoint": ["/usr/bin/app", "--serve"], "Cmd": ["-p", "80"], "Env": ["A=1"],
                             "User": "1000"}
    assert res.report.tag == "v1" and res.report.name == "svc"
    with pytest.raises(UsageError, match="--env"):
        build(binaries=[str(elf())], env=["no-equals"])
    with pytest.raises(UsageError, match="--max-size"):
        build(binaries=[str(elf())], max_size="lots")


def test_source_date_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert source_date_epoch(tmp_path) == 1700000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BuildError, match="SOURCE_DATE_EPOCH"):
        source_date_epoch(tmp_path)
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert source_date_epoch(tmp_path) == 0 and source_date_epoch(None) == 0


def test_git_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    repo = tmp_path / "repo"
    (repo / "proj").mkdir(parents=True)
    (repo / "proj" / "f").write_text("x")
    env = dict(os.environ, GIT_AUTHOR_DATE="@1600000000 +0000", GIT_COMMITTER_DATE="@1600000000 +0000",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e")
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "c"], ["tag", "v1.2.3"],
                ["remote", "add", "origin", "https://user:s3cret@example.com/me/proj.git"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, env=env, capture_output=True)
    assert source_date_epoch(repo / "proj") == 1600000000
    ann = git_annotations(repo / "proj", 1600000000)
    pre = "org.opencontainers.image."
    assert ann[pre + "source"] == "https://example.com/me/proj.git"
    assert ann[pre + "version"] == "v1.2.3" and len(ann[pre + "revision"]) == 40
    assert ann[pre + "created"] == "2020-09-13T12:26:40Z"
    assert git_annotations(tmp_path, 0) == {}


def test_strip_credentials() -> None:
    assert _strip_credentials("https://u:p@h/x") == "https://h/x"
    assert _strip_credentials("git@github.com:me/x.git") == "git@github.com:me/x.git"
    assert _strip_credentials("https://h/a@b") == "https://h/a@b"


def test_workdir_exists_in_the_image(elf, tmp_path: Path) -> None:
    import gzip
    import io
    import tarfile
    d = tmp_path / "p"
    d.mkdir()
    (d / "app").write_bytes(make_elf())
    (d / "kilobox.toml").write_text('name = "w"\nbinary = "app"\nworkdir = "/data/work"\n')
    res = build(d)
    layer = max(res.blobs.values(), key=lambda b: b[:2] == b"\x1f\x8b")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tf:
        assert {m.name: m.isdir() for m in tf.getmembers()} == {"data": True, "data/work": True, "w": False}


def test_kilobox_build_is_callable_whatever_the_import_order(elf) -> None:
    """`import kilobox.build.config` binds the package to kilobox.build: it must still be callable."""
    import kilobox
    import kilobox.build.config  # noqa: F401
    assert kilobox.build(binaries=[str(elf())]).report.platforms[0].platform == "linux/amd64"
