"""The build's value classes (no dataclasses), the shell-split fast path, and untagged outputs."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kilobox.build import BuildResult, _split, build
from kilobox.build.assemble import Item
from kilobox.build.config import FileSpec, ProjectConfig
from kilobox.build.elf import ElfInfo
from kilobox.build.report import BuildReport, PlatformFigures
from kilobox.formats import Options
from kilobox.oci import Platform
from tests.fixtures.toolchain import make_elf


def test_frozen_records_compare_hash_and_refuse_assignment():
    a, b = Item("/x", "file", 0o640, data=b"hi"), Item("/x", "file", 0o640, data=b"hi")
    assert a == b and hash(a) == hash(b) and a != Item("/x") and len({a, b}) == 1
    assert repr(a) == "Item(path='/x', kind='file', mode=416, uid=0, gid=0, data=b'hi', linkname='')"
    with pytest.raises(AttributeError):
        a.path = "/y"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.mode
    spec = FileSpec(Path("/src"), "/dst", None)
    assert (spec.uid, spec.gid) == (0, 0) and spec == FileSpec(Path("/src"), "/dst", None)


def test_project_config_defaults_and_with():
    cfg = ProjectConfig(name="app")
    assert cfg.binary == {} and cfg.env == {} and cfg.labels == {} and cfg.annotations == {}
    assert cfg.user == "65532:65532" and cfg.tag == "latest" and cfg.git_annotations and cfg.cmd is None
    assert ProjectConfig(name="app").binary is not cfg.binary           # no shared mutable default
    two = cfg.with_(tag="v1", platforms=(Platform("linux", "arm64"),))
    assert (two.tag, cfg.tag) == ("v1", "latest") and two.name == "app" and two != cfg
    assert two == ProjectConfig(name="app", tag="v1", platforms=(Platform("linux", "arm64"),))
    with pytest.raises(TypeError, match="nope"):
        cfg.with_(nope=1)
    with pytest.raises(AttributeError):
        cfg.name = "x"  # type: ignore[misc]


def test_mutable_records():
    info = ElfInfo("a", "EM_X86_64", 64, "little", "ET_EXEC", True, True, 10)
    assert info.needed == [] and info.warnings == [] and info.interp is None
    info.warnings.append("w")
    assert ElfInfo("a", "EM_X86_64", 64, "little", "ET_EXEC", True, True, 10).warnings == []
    fig = PlatformFigures("linux/amd64", "sha256:x", 1, 2, 3, 4, 5)
    assert fig.to_dict() == {"platform": "linux/amd64", "digest": "sha256:x", "binary_bytes": 1, "layer_bytes": 2,
                             "layer_uncompressed_bytes": 3, "config_bytes": 4, "manifest_bytes": 5, "index_bytes": 0,
                             "budget_bytes": None, "total_bytes": 11, "total_with_index_bytes": 11, "ok": True}
    rep = BuildReport("n", "t", "sha256:r", "m", "c", [fig])
    assert rep.destinations == [] and rep == BuildReport("n", "t", "sha256:r", "m", "c", [fig])
    with pytest.raises(TypeError):
        hash(rep)
    assert "blobs" not in repr(BuildResult(rep, None, {"k": b"x" * 100}))  # type: ignore[arg-type]


@given(st.text(alphabet=st.sampled_from(list("ab/ -_.'\"\\\t\n#=$")), max_size=20))
def test_split_is_shlex_split(text):
    try:
        want = tuple(shlex.split(text))
    except ValueError:
        with pytest.raises(ValueError):
            _split(text)
        return
    assert _split(text) == want


def test_untagged_layout_gets_the_config_tag_and_options_stay_untouched(tmp_path):
    binary = tmp_path / "app"
    binary.write_bytes(make_elf())
    opts = Options()
    res = build(binaries=[str(binary)], entrypoint="/app", tag="v2", output=f"oci:{tmp_path / 'out'}", options=opts)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v2"
    assert index["manifests"][0]["digest"] == res.digest
    assert opts.tag == ""


def test_records_copy_and_pickle():
    import copy
    import pickle
    cfg = ProjectConfig(name="app", env={"A": "1"}, platforms=(Platform("linux", "amd64"),))
    item = Item("/x", data=b"1")
    for obj in (cfg, item, FileSpec(Path("/a"), "/b", 0o644),
                PlatformFigures("linux/amd64", "sha256:x", 1, 2, 3, 4, 5)):
        assert copy.copy(obj) == obj and copy.deepcopy(obj) == obj and pickle.loads(pickle.dumps(obj)) == obj
    assert copy.deepcopy(cfg).env is not cfg.env
