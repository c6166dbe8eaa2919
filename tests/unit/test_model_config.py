"""Image configs: fields, Docker and OCI, hostile configs."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kilobox.errors import KiloboxError, ManifestError
from kilobox.oci import Digest, ImageConfig, Platform
from kilobox.oci import mediatypes as mt
from tests.helpers.schemas import validate_image_doc

D1 = "sha256:" + "1" * 64


def _cfg(**over: object) -> dict:
    base = {"architecture": "arm", "os": "linux", "variant": "v7", "created": "1970-01-01T00:00:00Z",
            "config": {"Entrypoint": ["/hello"], "Cmd": ["--x"], "Env": ["A=1"], "User": "65534",
                       "WorkingDir": "/w", "Labels": {"k": "v"}},
            "rootfs": {"type": "layers", "diff_ids": [D1]},
            "history": [{"created_by": "x"}]}
    base.update(over)
    return base


def test_fields() -> None:
    c = ImageConfig.build(_cfg())
    assert c.platform == Platform("linux", "arm", "v7")
    assert (c.entrypoint, c.cmd, c.env, c.user, c.workdir) == (["/hello"], ["--x"], ["A=1"], "65534", "/w")
    assert c.diff_ids == [Digest.parse(D1)] and c.history == [{"created_by": "x"}]
    assert c.digest == Digest.of(c.raw) and c.descriptor().media_type == mt.OCI_CONFIG
    validate_image_doc("config", c.raw)


def test_minimal_and_docker_config() -> None:
    c = ImageConfig.parse(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
                          mt.DOCKER_CONFIG)
    assert c.entrypoint == [] and c.env == [] and c.user == "" and c.media_type == mt.DOCKER_CONFIG
    assert c.config == {} and c.history == []


def test_raw_kept() -> None:
    raw = json.dumps(_cfg(), indent=3).encode()
    assert ImageConfig.parse(raw).raw == raw


@pytest.mark.parametrize("doc", [
    _cfg(rootfs=[]), _cfg(rootfs={"diff_ids": "x"}), _cfg(rootfs={"diff_ids": ["sha256:bad"]}),
    _cfg(config=[]), _cfg(config={"Entrypoint": "/bin/sh"}), _cfg(config={"Cmd": [1]}),
    _cfg(config={"Env": {"A": "1"}}), [], "x",
])
def test_hostile_configs(doc: object) -> None:
    with pytest.raises(ManifestError):
        ImageConfig.parse(json.dumps(doc).encode())


def test_oversized_config() -> None:
    with pytest.raises(ManifestError, match="4 MiB"):
        ImageConfig.parse(b'{"a":"' + b"x" * (5 << 20) + b'"}')


_vals = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.just(D1),
                     lambda k: st.lists(k, max_size=3) | st.dictionaries(st.text(max_size=5), k, max_size=3),
                     max_leaves=15)


@settings(max_examples=300)
@given(st.fixed_dictionaries({}, optional={
    "architecture": _vals, "os": _vals, "variant": _vals, "history": _vals,
    "config": st.fixed_dictionaries({}, optional={k: _vals for k in ("Entrypoint", "Cmd", "Env", "User", "WorkingDir", "Labels")}) | _vals,
    "rootfs": st.fixed_dictionaries({}, optional={"diff_ids": st.lists(_vals, max_size=3) | _vals}) | _vals}))
def test_hostile_config_properties_never_crash(doc: dict) -> None:
    try:
        c = ImageConfig.parse(json.dumps(doc).encode())
    except KiloboxError:
        return
    # every accessor works on an accepted config
    c.platform, c.entrypoint, c.cmd, c.env, c.user, c.workdir, c.diff_ids, c.history, c.config
