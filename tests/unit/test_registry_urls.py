"""URL helpers of the registry client (formats/registry/urls.py) against urllib.parse."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given, strategies as st

from kilobox.formats.registry import urls

BASE = "http://127.0.0.1:5000/v2/r/blobs/uploads/"


@pytest.mark.parametrize("url", ["http://h:5000/v2/?a=b#f", "https://h/v2", "HTTP://H", "/v2/x?y", "//h/p",
                                 "http://[::1]:5000/v2/", "http://h?q", "https://user@h:1/p", "", "?q"])
def test_split_matches_urlsplit(url: str) -> None:
    u = urllib.parse.urlsplit(url)
    assert urls.split(url) == (u.scheme, u.netloc, u.path, u.query)


@pytest.mark.parametrize("ref", ["/v2/r/blobs/uploads/abc?_state=x", "http://cdn.example/blob?sig=1",
                                 "https://other:8443/x", "//cdn/x", "abc?x=1", "../up/x", "./y", "?q=1", "",
                                 "  /padded  ", "/a/../b", "c/d"])
def test_join_matches_urljoin(ref: str) -> None:
    assert urls.join(BASE, ref) == urllib.parse.urljoin(BASE, ref.strip())


@given(st.text(max_size=40))
def test_quote_matches_urllib(text: str) -> None:
    assert urls.quote(text) == urllib.parse.quote(text, safe="")


def test_target_and_urlencode() -> None:
    assert urls.target("http://h:1") == "/"
    assert urls.target("http://h:1/v2/x?a=b#frag") == "/v2/x?a=b"
    q = [("service", "registry docker"), ("scope", "repository:a/b:pull,push")]
    assert urllib.parse.parse_qsl(urls.urlencode(q)) == q
