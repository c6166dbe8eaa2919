"""The challenge parser, scope atoms and token replies (outside data: hostile cases included)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from kilobox.errors import AuthError
from kilobox.formats.registry.auth import _atoms, basic_header, parse_challenges, parse_token_response


def test_bearer_challenge_with_comma_in_scope() -> None:
    chs = parse_challenges('Bearer realm="https://auth.example/token",service="registry.example",'
                           'scope="repository:a/b:pull,push"')
    assert len(chs) == 1
    ch = chs[0]
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.example/token", "service": "registry.example",
                         "scope": "repository:a/b:pull,push"}
    assert ch.scopes == ("repository:a/b:pull,push",)


def test_basic_and_several_challenges() -> None:
    chs = parse_challenges('Basic realm="Registry Realm", Bearer realm=https://x/t, error="insufficient_scope"')
    assert [c.scheme for c in chs] == ["basic", "bearer"]
    assert chs[0].params == {"realm": "Registry Realm"}
    assert chs[1].params == {"realm": "https://x/t", "error": "insufficient_scope"}


def test_quoted_escapes_and_case() -> None:
    ch, = parse_challenges('BEARER Realm="a\\"b",  SCOPE="x y"')
    assert ch.scheme == "bearer"
    assert ch.params["realm"] == 'a"b'
    assert ch.scopes == ("x", "y")


def test_token68_is_skipped() -> None:
    chs = parse_challenges("Basic dXNlcjpwYXNz==, Bearer realm=\"r\"")
    assert [c.scheme for c in chs] == ["basic", "bearer"]
    assert chs[1].params == {"realm": "r"}


@pytest.mark.parametrize("header", ["", ",,,", "=", '"', 'Bearer realm="unterminated', "Bearer ===",
                                    "\x00\xff Bearer", "realm=x", 'Bearer realm="a", realm="b"', "x" * 100_000])
def test_garbage_never_crashes(header: str) -> None:
    for ch in parse_challenges(header):
        assert isinstance(ch.scheme, str) and isinstance(ch.params, dict)


def test_duplicate_param_keeps_first() -> None:
    ch, = parse_challenges('Bearer realm="a", realm="b"')
    assert ch.params["realm"] == "a"


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_parser_total_on_any_text(header: str) -> None:
    chs = parse_challenges(header)
    assert all(len(c.params) <= 32 for c in chs)


def test_scope_atoms_cover() -> None:
    push = _atoms(["repository:a/b:pull,push"])
    assert _atoms(["repository:a/b:pull"]) <= push
    assert not _atoms(["repository:a/c:pull"]) <= push
    assert _atoms([]) <= push


def test_basic_header() -> None:
    assert basic_header("u", "p:w") == "Basic dTpwOnc="


@pytest.mark.parametrize("key", ["token", "access_token"])
def test_token_reply_either_field(key: str) -> None:
    tok, ttl = parse_token_response(json.dumps({key: "abc.def-ghi", "expires_in": 300}).encode(), "t")
    assert (tok, ttl) == ("abc.def-ghi", 300.0)


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"token": 5}', b'{"token": ""}',
                                  b'{"token": "a\\r\\nX-Evil: 1"}', json.dumps({"token": "a" * 70000}).encode(),
                                  b'{"token": "sp ace"}', b"[" * 100000])
def test_token_reply_hostile(body: bytes) -> None:
    with pytest.raises(AuthError):
        parse_token_response(body, "token")


@pytest.mark.parametrize("ttl", [-1, 0, "60", True, 10 ** 9, None])
def test_token_ttl_fallback(ttl: object) -> None:
    _, got = parse_token_response(json.dumps({"token": "t", "expires_in": ttl}).encode(), "t")
    assert got == 60.0
