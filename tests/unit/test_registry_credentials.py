"""Credentials: options, Docker's config.json and the credential-helper protocol."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from kilobox.errors import AuthError
from kilobox.formats import Options
from kilobox.formats.registry.credentials import Credentials, config_path, lookup, normalize_host


def _cfg(tmp_path: Path, obj: object) -> Options:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return Options(docker_config=str(p))


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def helper(tmp_path: Path, name: str, body: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put ``docker-credential-NAME`` (a shell script) first on PATH; it logs the server it was asked for."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    exe = d / f"docker-credential-{name}"
    exe.write_text(f"#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread server\necho \"$server\" >> {d}/asked\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")
    return d / "asked"


@pytest.mark.parametrize("key,host", [("https://index.docker.io/v1/", "docker.io"), ("registry-1.docker.io", "docker.io"),
                                      ("http://H:5000/x", "h:5000"), ("127.0.0.1:5000", "127.0.0.1:5000")])
def test_normalize_host(key: str, host: str) -> None:
    assert normalize_host(key) == host


def test_options_win(tmp_path: Path) -> None:
    opts = _cfg(tmp_path, {"auths": {"r.io": {"auth": _b64("cfg:pw")}}})
    opts.username, opts.password = "me", "pw"
    assert lookup("r.io", opts) == Credentials("me", "pw")


def test_auths_base64_and_plain(tmp_path: Path) -> None:
    opts = _cfg(tmp_path, {"auths": {"https://r.io/v1/": {"auth": _b64("u:p:with:colons")},
                                     "other.io": {"username": "o", "password": "q"}}})
    assert lookup("r.io", opts) == Credentials("u", "p:with:colons")
    assert lookup("other.io", opts) == Credentials("o", "q")
    assert lookup("none.io", opts) is None


def test_docker_hub_legacy_key(tmp_path: Path) -> None:
    opts = _cfg(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": _b64("hub:pw")}}})
    assert lookup("docker.io", opts) == Credentials("hub", "pw")


def test_docker_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"e.io": {"auth": _b64("e:v")}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert config_path() == tmp_path / "config.json"
    assert lookup("e.io", Options()) == Credentials("e", "v")


def test_missing_config_is_anonymous(tmp_path: Path) -> None:
    assert lookup("r.io", Options(docker_config=str(tmp_path / "nope.json"))) is None


@pytest.mark.parametrize("content", ["{not json", "[]", '"x"', "[" * 10000])
def test_broken_config(tmp_path: Path, content: str) -> None:
    with pytest.raises(AuthError):
        lookup("r.io", _cfg(tmp_path, content))


@pytest.mark.parametrize("auth", ["%%%", _b64("no-colon"), base64.b64encode(b"\xff\xfe:x").decode()])
def test_bad_auth_field(tmp_path: Path, auth: str) -> None:
    with pytest.raises(AuthError):
        lookup("r.io", _cfg(tmp_path, {"auths": {"r.io": {"auth": auth}}}))


@pytest.mark.parametrize("obj", [{"auths": {"r.io": "x"}}, {"auths": {"s.io": {"auth": 5}}}, {"credHelpers": []},
                                 {"credsStore": 7}])
def test_odd_types_are_errors(tmp_path: Path, obj: dict) -> None:
    """Wrong types are a broken file (as for skopeo and docker), not silently anonymous."""
    with pytest.raises(AuthError, match="config.json"):
        lookup("r.io", _cfg(tmp_path, obj))


def test_creds_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = helper(tmp_path, "test", 'echo \'{"ServerURL":"x","Username":"hu","Secret":"hs"}\'', monkeypatch)
    opts = _cfg(tmp_path, {"credsStore": "test", "auths": {"r.io": {}}})
    assert lookup("r.io", opts) == Credentials("hu", "hs")
    assert lookup("docker.io", opts) == Credentials("hu", "hs")
    assert asked.read_text().split() == ["r.io", "https://index.docker.io/v1/"]


def test_cred_helpers_per_host_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper(tmp_path, "one", 'echo \'{"Username":"one","Secret":"1"}\'', monkeypatch)
    helper(tmp_path, "store", 'echo \'{"Username":"store","Secret":"s"}\'', monkeypatch)
    opts = _cfg(tmp_path, {"credHelpers": {"a.io": "one"}, "credsStore": "store"})
    assert lookup("a.io", opts) == Credentials("one", "1")
    assert lookup("b.io", opts) == Credentials("store", "s")


def test_store_not_found_falls_back_to_auths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper(tmp_path, "test", "echo 'credentials not found in native keychain'; exit 1", monkeypatch)
    opts = _cfg(tmp_path, {"credsStore": "test", "auths": {"r.io": {"auth": _b64("f:b")}}})
    assert lookup("r.io", opts) == Credentials("f", "b")


@pytest.mark.parametrize("body", ["echo 'boom'; exit 2", "echo not-json", "echo '[1]'", "echo '{\"Username\": 1}'"])
def test_helper_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    helper(tmp_path, "bad", body, monkeypatch)
    with pytest.raises(AuthError):
        lookup("r.io", _cfg(tmp_path, {"credsStore": "bad"}))


def test_helper_missing(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="not on PATH"):
        lookup("r.io", _cfg(tmp_path, {"credsStore": "kilobox-no-such-helper"}))


@pytest.mark.parametrize("name", ["../evil", "/bin/sh", ".x"])
def test_helper_name_is_a_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(AuthError, match="invalid credential helper"):
        lookup("r.io", _cfg(tmp_path, {"credsStore": name}))


def test_repr_hides_secret() -> None:
    assert "pw" not in repr(Credentials("u", "pw"))
