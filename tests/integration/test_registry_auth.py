"""Basic and Bearer auth against the real registry; credentials from options, config.json and helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from kilobox.copying import copy_root
from kilobox.errors import AuthError
from kilobox.formats import Options
from kilobox.formats.registry import RegistrySink, RegistrySource, list_tags
from kilobox.formats.registry.client import reset_clients
from kilobox.oci import Reference
from tests.helpers.memimage import pull, push

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("private_store")]


# -- Basic ------------------------------------------------------------------------------------------
def test_basic_auth_push_pull(registry_basic) -> None:
    opts = Options(username=registry_basic.username, password=registry_basic.password)
    push(registry_basic.ref("sec/app:1"), opts)
    assert pull(registry_basic.ref("sec/app:1"), opts).root is not None
    assert list_tags(Reference.parse(registry_basic.ref("sec/app")), opts) == ["1"]


def test_basic_auth_wrong_password(registry_basic) -> None:
    with pytest.raises(AuthError, match="HEAD /v2/sec/app/blobs/") as ei:
        push(registry_basic.ref("sec/app:1"), Options(username=registry_basic.username, password="wrong"))
    assert ei.value.status == 401 and ei.value.hint
    with pytest.raises(AuthError, match="GET /v2/sec/app/manifests/1") as ei:
        pull(registry_basic.ref("sec/app:1"), Options(username=registry_basic.username, password="wrong"))
    assert "UNAUTHORIZED" in ei.value.codes


def test_basic_auth_without_credentials(registry_basic) -> None:
    with pytest.raises(AuthError, match="401"):
        pull(registry_basic.ref("sec/app:1"), Options())


def test_basic_auth_from_docker_config(registry_basic, tmp_path: Path) -> None:
    auth = base64.b64encode(f"{registry_basic.username}:{registry_basic.password}".encode()).decode()
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {f"https://{registry_basic.host}/v1/": {"auth": auth}}}))
    opts = Options(docker_config=str(cfg))
    push(registry_basic.ref("sec/cfg:1"), opts)
    assert pull(registry_basic.ref("sec/cfg:1"), opts).root is not None


def test_basic_auth_from_creds_store_helper(registry_basic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-test"
    answer = json.dumps({"ServerURL": registry_basic.host, "Username": registry_basic.username,
                         "Secret": registry_basic.password})
    helper.write_text(f"#!/bin/sh\nread server\necho \"$1 $server\" >> {bindir}/calls\n"
                      f"[ \"$server\" = \"{registry_basic.host}\" ] || {{ echo 'credentials not found'; exit 1; }}\n"
                      f"echo '{answer}'\n")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "dc").mkdir()
    (tmp_path / "dc" / "config.json").write_text(json.dumps({"credsStore": "test", "auths": {registry_basic.host: {}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    push(registry_basic.ref("sec/helper:1"), Options())
    assert (bindir / "calls").read_text().split() == ["get", registry_basic.host]   # asked once, lazily
    reset_clients()
    assert pull(registry_basic.ref("sec/helper:1"), Options()).root is not None


# -- Bearer -----------------------------------------------------------------------------------------
def test_bearer_flow_and_token_cache(registry_token) -> None:
    issuer = registry_token.issuer
    opts = Options(username=registry_token.username, password=registry_token.password)
    sink = push(registry_token.ref("tok/app:1"), opts)
    assert issuer.requests == 1                       # one token (pull,push) for every request of the push
    assert issuer.scopes_seen == [["repository:tok/app:pull,push"]]
    assert all(s != 401 for m, p, s in sink.client.log if p != "/v2/")
    push(registry_token.ref("tok/app:2"), opts, seed=1)
    pull(registry_token.ref("tok/app:1"), opts)      # pull needs a subset of the cached scopes
    list_tags(Reference.parse(registry_token.ref("tok/app")), opts)
    assert issuer.requests == 1
    push(registry_token.ref("tok/other:1"), opts)     # another repository: another scope, another token
    assert issuer.requests == 2


def test_bearer_wider_scope_after_401(registry_token) -> None:
    """A cross-repository mount needs pull on the source too: the 401's scope is added, once."""
    issuer = registry_token.issuer
    opts = Options(username=registry_token.username, password=registry_token.password)
    push(registry_token.ref("tok/base:1"), opts)
    with RegistrySource(Reference.parse(registry_token.ref("tok/base:1")), opts) as src, \
            RegistrySink(Reference.parse(registry_token.ref("tok/app:1")), opts) as sink:
        copy_root(src, sink)
    assert sink.stats["mounted"] == 1
    assert ["repository:tok/app:pull,push", "repository:tok/base:pull"] in issuer.scopes_seen


def test_bearer_wrong_password(registry_token) -> None:
    with pytest.raises(AuthError) as ei:
        push(registry_token.ref("tok/app:1"), Options(username=registry_token.username, password="nope"))
    assert "token" in str(ei.value) and ei.value.status == 401


def test_bearer_read_only_user_cannot_push(registry_token) -> None:
    opts = Options(username=registry_token.username, password=registry_token.password)
    push(registry_token.ref("tok/ro:1"), opts)
    reader = Options(username="reader", password="read-pass")
    assert pull(registry_token.ref("tok/ro:1"), reader).root is not None
    with pytest.raises(AuthError) as ei:
        push(registry_token.ref("tok/ro:2"), reader, seed=3)
    assert ei.value.status == 401 and ei.value.codes          # the registry's own error codes


def test_bearer_from_docker_config(registry_token, tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {registry_token.host: {"username": registry_token.username,
                                                               "password": registry_token.password}}}))
    push(registry_token.ref("tok/cfg:1"), Options(docker_config=str(cfg)))
    assert registry_token.issuer.requests == 1


def test_mount_without_access_to_the_source_falls_back(registry_token) -> None:
    """A user who may not read the source repository: the refused mount is no error, the blob goes up."""
    registry_token.issuer.users["limited"] = ("l", ("pull", "push"), ("tok/public",))
    opts = Options(username=registry_token.username, password=registry_token.password)
    push(registry_token.ref("tok/secret:1"), opts)
    limited = Options(username="limited", password="l", extra={"mount_from": "tok/secret"})
    sink = push(registry_token.ref("tok/public:1"), limited)          # the same blobs as tok/secret
    assert sink.stats["mounted"] == 0 and sink.stats["uploaded"] == 2
    assert pull(registry_token.ref("tok/public:1"), limited).root is not None
