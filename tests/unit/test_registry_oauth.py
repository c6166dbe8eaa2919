"""OAuth2 refresh-token flow: the form body, token and error replies (hostile cases), identity tokens
in auth files and from credential helpers."""

from __future__ import annotations

import base64
import json
import os
import pickle
import stat
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl

import pytest
from hypothesis import given, settings, strategies as st

from kilobox.errors import AuthError
from kilobox.formats import Options
from kilobox.formats.registry.auth import (MAX_OAUTH_ERROR, OAUTH_CLIENT_ID, oauth_form, parse_oauth_error,
                                           parse_token_response)
from kilobox.formats.registry.credentials import Credentials, lookup

OAUTH_KEYS = ("access_token", "token")


# -- the form body -------------------------------------------------------------------------------
def test_form_fields_and_space_separated_scopes() -> None:
    body = oauth_form("rt", "svc", ["repository:a/b:pull,push", "repository:c:pull"])
    assert parse_qsl(body.decode(), strict_parsing=True) == [
        ("grant_type", "refresh_token"), ("refresh_token", "rt"), ("service", "svc"),
        ("scope", "repository:a/b:pull,push repository:c:pull"), ("client_id", OAUTH_CLIENT_ID)]
    assert OAUTH_CLIENT_ID == "kilobox"


def test_form_escapes_special_characters() -> None:
    token = "a+b/c=d&scope=registry:catalog:* é\n%41"
    body = oauth_form(token, "my service&x=1", ["repository:a/b:pull,push"])
    text = body.decode("ascii")
    assert "+" not in text and " " not in text and "\n" not in text and "é" not in text
    assert text.count("&") == 4 and text.count("=") == 5        # five pairs: only the separators are bare
    form = parse_qs(text, strict_parsing=True)
    assert form["refresh_token"] == [token]
    assert form["service"] == ["my service&x=1"]
    assert form["scope"] == ["repository:a/b:pull,push"]        # the injected scope stayed inside the token


def test_form_without_service_or_scopes() -> None:
    assert parse_qs(oauth_form("rt", "", []).decode()) == {
        "grant_type": ["refresh_token"], "refresh_token": ["rt"], "client_id": ["kilobox"]}


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=80), st.text(max_size=40), st.lists(st.text(min_size=1, max_size=40), max_size=4))
def test_form_round_trips(token: str, service: str, scopes: list[str]) -> None:
    token, service = token.replace("\x00", ""), service.replace("\x00", "")
    scopes = [s.replace("\x00", "") for s in scopes]
    body = oauth_form(token, service, scopes)
    assert body.isascii()
    pairs = parse_qsl(body.decode(), keep_blank_values=True)
    assert ("refresh_token", token) in pairs
    joined = " ".join(s for s in scopes if s)
    assert [v for k, v in pairs if k == "scope"] == ([joined] if joined else [])
    assert [v for k, v in pairs if k == "service"] == ([service] if service else [])


# -- token replies -------------------------------------------------------------------------------
def test_access_token_preferred_then_token() -> None:
    body = json.dumps({"access_token": "acc", "token": "tok", "expires_in": 900}).encode()
    assert parse_token_response(body, "t", OAUTH_KEYS) == ("acc", 900.0)
    assert parse_token_response(body, "t") == ("tok", 900.0)                     # the GET flow's order
    assert parse_token_response(b'{"token": "tok"}', "t", OAUTH_KEYS) == ("tok", 60.0)
    assert parse_token_response(b'{"access_token": "", "token": "tok"}', "t", OAUTH_KEYS)[0] == "tok"


@pytest.mark.parametrize("body", [
    b"", b"<html>502</html>", b"[]", b'"token"', b"null", b"{}", b'{"refresh_token": "r"}',
    b'{"access_token": 5}', b'{"access_token": ["a"]}', b'{"access_token": {"a": 1}}', b'{"access_token": true}',
    b'{"access_token": "a b"}', b'{"access_token": "a\\r\\nX-Evil: 1"}', b'{"access_token": "\\u00e9"}',
    json.dumps({"access_token": "a" * 70_000}).encode(), b'{"access_token": "' + b"\xff" * 10 + b'"}',
    b"{" * 50_000, b'{"access_token": 1e999}'])
def test_token_reply_hostile(body: bytes) -> None:
    with pytest.raises(AuthError) as ei:
        parse_token_response(body, "token for x from h", OAUTH_KEYS)
    assert "\n" not in str(ei.value) and len(str(ei.value)) < 200


@pytest.mark.parametrize("ttl,want", [(900, 900.0), (1.5, 1.5), (-5, 60.0), ("900", 60.0), (None, 60.0),
                                      (False, 60.0), (10 ** 12, 60.0), (float("nan"), 60.0)])
def test_expires_in(ttl: object, want: float) -> None:
    body = json.dumps({"access_token": "a", "expires_in": ttl}).encode()
    assert parse_token_response(body, "t", OAUTH_KEYS)[1] == want


# -- error replies -------------------------------------------------------------------------------
def test_rfc6749_error() -> None:
    body = b'{"error": "invalid_grant", "error_description": "refresh token expired"}'
    assert parse_oauth_error(body) == ("invalid_grant", "refresh token expired")


def test_distribution_errors() -> None:
    body = b'{"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}'
    assert parse_oauth_error(body) == ("UNAUTHORIZED", "authentication required")


@pytest.mark.parametrize("body", [
    b"", b"\x00\xff" * 5000, b"<html>" + b"x" * 300_000, b"[" * 100_000, b'{"error": 5, "error_description": []}',
    b'{"error": {"a": 1}}', b'{"errors": "x"}', b"null", b'"str"', json.dumps({"error": "e" * 10_000}).encode(),
    json.dumps({"error": "a\nb\rc\x1b[31m\u202e", "error_description": "line1\nline2\t\x00" + "d" * 5000}).encode()])
def test_error_hostile(body: bytes) -> None:
    code, msg = parse_oauth_error(body)
    assert len(code) <= 64 and len(msg) <= 200
    for text in (code, msg):
        assert all(c.isprintable() for c in text) and "\n" not in text and "\x1b" not in text


def test_error_echoing_the_token_is_masked() -> None:
    secret = "rt.SECRET-refresh-token-0123456789"
    body = json.dumps({"error": secret, "error_description": f"token {secret} is unknown"}).encode()
    code, msg = parse_oauth_error(body, secret)
    assert secret not in code + msg and "SECRET" not in code + msg
    cut = json.dumps({"error": "x", "error_description": "d" * 180 + " " + secret}).encode()   # truncated echo
    _, msg = parse_oauth_error(cut, secret)
    assert "rt.SECRE" not in msg and msg.endswith("***")


def test_error_body_is_bounded() -> None:
    body = b'{"error": "x", "error_description": "' + b"y" * (MAX_OAUTH_ERROR * 2) + b'"}'
    assert parse_oauth_error(body)[0] == ""            # cut at the cap: not JSON any more, no crash


# -- credentials ---------------------------------------------------------------------------------
def _cfg(tmp_path: Path, obj: object) -> Options:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(obj))
    return Options(docker_config=str(p))


def _helper(tmp_path: Path, name: str, answer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    exe = d / f"docker-credential-{name}"
    exe.write_text(f"#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread server\necho '{answer}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")


def test_credentials_identity_token_field() -> None:
    c = Credentials("", "", "rt-secret")
    assert c.identity_token == "rt-secret" and not c.has_password
    assert "rt-secret" not in repr(c) and "identity_token=***" in repr(c)
    assert c != Credentials("", "") and hash(c) == hash(Credentials("", "", "rt-secret"))
    assert pickle.loads(pickle.dumps(c)) == c
    assert Credentials("u", "p") == Credentials("u", "p", "") and Credentials("u", "p").has_password
    assert repr(Credentials("u", "p")) == "Credentials(username='u', password=***)"
    with pytest.raises(AttributeError):
        c.identity_token = "x"  # type: ignore[misc]


def test_identitytoken_alone(tmp_path: Path) -> None:
    opts = _cfg(tmp_path, {"auths": {"https://r.io": {"identitytoken": "rt"}}})
    assert lookup("r.io", opts) == Credentials("", "", "rt")


def test_identitytoken_with_auth_as_az_acr_login_writes(tmp_path: Path) -> None:
    user = "00000000-0000-0000-0000-000000000000"
    auth = base64.b64encode(f"{user}:".encode()).decode()
    opts = _cfg(tmp_path, {"auths": {"r.azurecr.io": {"auth": auth, "identitytoken": "rt"}}})
    creds = lookup("r.azurecr.io", opts)
    assert creds == Credentials(user, "", "rt") and not creds.has_password


def test_identitytoken_with_username_password(tmp_path: Path) -> None:
    opts = _cfg(tmp_path, {"auths": {"r.io": {"username": "u", "password": "p", "identitytoken": "rt"}}})
    assert lookup("r.io", opts) == Credentials("u", "p", "rt")


def test_empty_identitytoken_is_nothing(tmp_path: Path) -> None:
    assert lookup("r.io", _cfg(tmp_path, {"auths": {"r.io": {"identitytoken": ""}}})) is None


@pytest.mark.parametrize("value", [5, ["rt"], {"a": 1}, True])
def test_identitytoken_wrong_type_is_a_broken_file(tmp_path: Path, value: object) -> None:
    with pytest.raises(AuthError, match=r"identitytoken must be a string"):
        lookup("r.io", _cfg(tmp_path, {"auths": {"r.io": {"identitytoken": value}}}))


def test_helper_token_username_means_identity_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _helper(tmp_path, "kbtok", '{"ServerURL": "r.io", "Username": "<token>", "Secret": "rt-from-helper"}', monkeypatch)
    creds = lookup("r.io", _cfg(tmp_path, {"credHelpers": {"r.io": "kbtok"}}))
    assert creds == Credentials("", "", "rt-from-helper")
    assert "rt-from-helper" not in repr(creds)


def test_helper_token_username_without_secret_is_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _helper(tmp_path, "kbtok", '{"Username": "<token>", "Secret": ""}', monkeypatch)
    assert lookup("r.io", _cfg(tmp_path, {"credsStore": "kbtok"})) is None


def test_helper_plain_username_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _helper(tmp_path, "kbuser", '{"Username": "token", "Secret": "s"}', monkeypatch)
    assert lookup("r.io", _cfg(tmp_path, {"credsStore": "kbuser"})) == Credentials("token", "s")
