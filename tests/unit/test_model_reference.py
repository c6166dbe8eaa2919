"""Registry references with Docker's rules, including hostile and odd spellings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kilobox.errors import ReferenceError_
from kilobox.oci import Digest, Reference, is_local_host

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,registry,repo,tag,digest", [
    ("alpine", "docker.io", "library/alpine", "latest", None),
    ("alpine:3.19", "docker.io", "library/alpine", "3.19", None),
    ("docker.io/alpine", "docker.io", "library/alpine", "latest", None),
    ("index.docker.io/user/app", "docker.io", "user/app", "latest", None),
    ("user/app:v1", "docker.io", "user/app", "v1", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("127.0.0.1:5000/demo/hello:1", "127.0.0.1:5000", "demo/hello", "1", None),
    (f"host:5000/repo:tag@{D}", "host:5000", "repo", "tag", D),
    (f"host:5000/repo@{D}", "host:5000", "repo", "", D),
    ("[::1]:5000/r:t", "[::1]:5000", "r", "t", None),
    ("ghcr.io/a/b/c/d:x_y.z-1", "ghcr.io", "a/b/c/d", "x_y.z-1", None),
    ("host:5000", "docker.io", "library/host", "5000", None),       # Docker reads this as repo:tag
    ("a__b", "docker.io", "library/a__b", "latest", None),
])
def test_parse(text: str, registry: str, repo: str, tag: str, digest: str | None) -> None:
    r = Reference.parse(text)
    assert (r.registry, r.repository, r.tag) == (registry, repo, tag)
    assert r.digest == (Digest.parse(digest) if digest else None)
    assert r.identifier == (digest or tag)
    assert Reference.parse(str(r)) == r


@pytest.mark.parametrize("text", [
    "", " ", "alpine ", "Alpine", "user/App", "UPPER/x", "a..b", "a___b", "-a", "a-", "x//y", "/x", "x/",
    ":tag", f"@{D}", "r:", "r:t:t", "r@sha256:abc", f"r@md5:{'a' * 32}", "r:" + "t" * 129, "r:-t",
    "foo.com:99999999/x", "ho_st.com/x", "a" * 300, "a/" * 200 + "b", "r\n", "r\x00", "ré", "r:t\u200b",
])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ReferenceError_):
        Reference.parse(text)


@given(st.text(max_size=120))
def test_parse_never_crashes(text: str) -> None:
    try:
        r = Reference.parse(text)
    except ReferenceError_ as e:
        assert "\n" not in e.message.replace(repr(text), "")
        return
    assert r.repository and (r.tag or r.digest)


def test_api_host_and_helpers() -> None:
    assert Reference.parse("alpine").api_host == "registry-1.docker.io"
    r = Reference.parse("localhost:5000/x:1")
    assert r.api_host == "localhost:5000" and r.repo_ref == "localhost:5000/x"
    assert str(r.with_tag("2")) == "localhost:5000/x:2"
    assert str(r.with_digest(Digest.parse(D))) == f"localhost:5000/x:1@{D}"


@pytest.mark.parametrize("host,local", [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.1.2.3", True),
    ("[::1]:5000", True), ("[::1]", True), ("a.localhost:1", True), ("docker.io", False),
    ("10.0.0.1:5000", False), ("localhost.example.com", False), ("[::2]:5000", False),
])
def test_is_local_host(host: str, local: bool) -> None:
    assert is_local_host(host) is local


def test_errors_stay_short() -> None:
    with pytest.raises(ReferenceError_) as e:
        Reference.parse("a" * 1000)
    assert len(e.value.message) < 300


# -- the hand-written grammar checks agree with the grammar's regular expressions ------------------
import re as _re  # noqa: E402

from hypothesis import given as _given, settings as _settings, strategies as _st  # noqa: E402

from kilobox.oci import reference as _ref  # noqa: E402

_ALPHABET = "abcz09AZ_.-/:[]@ \n\u00e9\u0660"


@_settings(max_examples=2000)
@_given(_st.text(alphabet=_ALPHABET, max_size=12) | _st.text(max_size=8))
def test_grammar_checks_match_the_patterns(text: str) -> None:
    assert _ref.valid_tag(text) == bool(_re.fullmatch(_ref.TAG_PATTERN, text))
    assert _ref.valid_repository(text) == bool(_re.fullmatch(_ref.REPO_PATTERN, text))
    assert _ref.valid_host(text) == bool(_re.fullmatch(_ref.HOST_PATTERN, text))


@pytest.mark.parametrize("text", ["a", "a-b", "a--b", "a__b", "a._b", "a___b", "-a", "a-", "a/b", "a//b", "A",
                                  "x" * 129, "_x", ".x", "h:5000", "h:", "h:123456", "[::1]:5000", "[]", "[::1",
                                  "a.b.c", "a..b", "1.2.3.4:80", "-h", "h-", "h_x"])
def test_grammar_checks_on_edges(text: str) -> None:
    assert _ref.valid_tag(text) == bool(_re.fullmatch(_ref.TAG_PATTERN, text))
    assert _ref.valid_repository(text) == bool(_re.fullmatch(_ref.REPO_PATTERN, text))
    assert _ref.valid_host(text) == bool(_re.fullmatch(_ref.HOST_PATTERN, text))
