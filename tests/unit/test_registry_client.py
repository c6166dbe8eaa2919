"""Pure parts of the registry client: error bodies, backoff, Link headers, tag pages, media types."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from kilobox.errors import ManifestError
from kilobox.formats import Options
from kilobox.formats.registry import next_link, parse_tags_page
from kilobox.formats.registry.client import BACKOFF_CAP, RETRY_AFTER_CAP, RegistryClient, backoff_delay, parse_error_body
from kilobox.formats.registry.source import media_type_of
from kilobox.oci import mediatypes as mt


def test_error_body_codes_and_messages() -> None:
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {}},
                                  {"code": "DENIED", "message": "no\nway"}]}).encode()
    assert parse_error_body(body) == (("MANIFEST_UNKNOWN", "DENIED"), "manifest unknown; no way")


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>", b"\xff\xfe", b"[]", b"null",
                                  b'{"errors": "x"}', b'{"errors": [1, null, {"code": 5}]}',
                                  b"[" * 50000, b"x" * 1_000_000])
def test_error_body_hostile(body: bytes) -> None:
    codes, msg = parse_error_body(body)
    assert codes == () and len(msg) <= 300


@settings(max_examples=200)
@given(st.binary(max_size=2000))
def test_error_body_total(body: bytes) -> None:
    codes, msg = parse_error_body(body)
    assert isinstance(codes, tuple) and len(msg) <= 300


def test_backoff_bounds() -> None:
    for attempt in range(10):
        assert 0 <= backoff_delay(attempt) <= BACKOFF_CAP
    assert backoff_delay(0, "3") == 3.0
    assert backoff_delay(0, "100000") == RETRY_AFTER_CAP
    assert backoff_delay(0, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.0       # in the past
    assert 0 <= backoff_delay(0, "garbage") <= BACKOFF_CAP


def test_next_link() -> None:
    assert next_link(['</v2/r/tags/list?last=b&n=2>; rel="next"']) == "/v2/r/tags/list?last=b&n=2"
    assert next_link(["<https://x/a>; rel=next"]) == "https://x/a"
    assert next_link(['</p>; rel="prev"']) == ""
    assert next_link([]) == ""
    assert next_link(["<" * 100000]) == ""


def test_tags_page() -> None:
    assert parse_tags_page(b'{"name":"r","tags":["a","b"]}', "t") == ["a", "b"]
    assert parse_tags_page(b'{"name":"r","tags":null}', "t") == []


@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"tags": "a"}', b'{"tags": [1]}'])
def test_tags_page_hostile(body: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_tags_page(body, "t")


def test_media_type_of() -> None:
    assert media_type_of(b'{"mediaType": "%s"}' % mt.OCI_INDEX.encode(), "application/json") == mt.OCI_INDEX
    assert media_type_of(b'{"schemaVersion":2,"config":{},"layers":[]}',
                         mt.DOCKER_MANIFEST + "; charset=utf-8") == mt.DOCKER_MANIFEST
    assert media_type_of(b'{"schemaVersion":2,"manifests":[]}', "text/plain") == mt.OCI_INDEX
    with pytest.raises(ManifestError):
        media_type_of(b"<html>", "text/html")


@pytest.mark.parametrize("host,insecure,scheme", [("127.0.0.1:5000", (), "http"), ("localhost", (), "http"),
                                                  ("[::1]:5000", (), "http"), ("reg.example:5000", (), "https"),
                                                  ("reg.example:5000", ("reg.example:5000",), "http"),
                                                  ("reg.example", ("reg.example",), "http")])
def test_scheme(host: str, insecure: tuple[str, ...], scheme: str) -> None:
    assert RegistryClient(host, host, Options(insecure=insecure)).endpoint.scheme == scheme
