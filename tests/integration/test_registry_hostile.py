"""A registry that misbehaves: every reply is outside data.

The scriptable server (tests/helpers/hostile_registry.py) sends what a real
registry would not; tests/integration/test_registry_storage.py corrupts a real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kilobox.errors import AuthError, DigestMismatch, ManifestError, NotFound, RegistryError
from kilobox.formats import Options
from kilobox.formats.registry import RegistrySink, RegistrySource, list_tags, resolve
from kilobox.formats.registry.client import MAX_TRIES
from kilobox.oci import Descriptor, Digest, ImageConfig, Manifest, Reference, mediatypes as mt
from tests.helpers.hostile_registry import HostileRegistry, Reply

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("private_store")]


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff delays are recorded, not slept (never assert timings)."""
    slept: list[float] = []
    from kilobox.formats.registry import client as c
    real_init = c.RegistryClient.__init__

    def init(self, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        real_init(self, *a, **kw)
        self.sleep = slept.append
    monkeypatch.setattr(c.RegistryClient, "__init__", init)
    return slept


def _image() -> tuple[Manifest, bytes, bytes]:
    layer = b"layer-bytes" * 100
    cfg = ImageConfig.build({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(layer))]}})
    m = Manifest.build(cfg.descriptor(), [Descriptor.for_bytes(mt.OCI_LAYER, layer)])
    return m, cfg.raw, layer


def _src(h: HostileRegistry, what: str = "r:t") -> RegistrySource:
    return RegistrySource(Reference.parse(f"{h.host}/{what}"), Options())


def _blob_files(store: Path) -> list[Path]:
    return [p for p in (store / "blobs").rglob("*") if p.is_file()] if (store / "blobs").exists() else []


def _tmp_files(store: Path) -> list[Path]:
    return [p for p in (store / "tmp").rglob("*") if p.is_file()] if (store / "tmp").exists() else []


# -- errors and retries ----------------------------------------------------------------------
def test_error_codes_reach_the_exception(hostile_registry: HostileRegistry) -> None:
    body = json.dumps({"errors": [{"code": "DENIED", "message": "requested access is denied"}]}).encode()
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(400, body))
    with pytest.raises(RegistryError) as ei:
        _src(hostile_registry).root()
    e = ei.value
    assert e.status == 400 and e.codes == ("DENIED",)
    assert "GET /v2/r/manifests/t" in str(e) and "requested access is denied" in str(e)
    assert hostile_registry.count("GET", "/v2/r/") == 1          # 4xx is never retried


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"\x00\xff" * 1000, b'{"errors": {"code": 1}}', b"x" * 300_000])
def test_garbage_error_bodies(hostile_registry: HostileRegistry, body: bytes) -> None:
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(418, body))
    with pytest.raises(RegistryError) as ei:
        _src(hostile_registry).root()
    assert ei.value.status == 418 and ei.value.codes == ()
    assert len(str(ei.value)) < 600


def test_404_is_not_found(hostile_registry: HostileRegistry) -> None:
    with pytest.raises(NotFound, match="MANIFEST_UNKNOWN|NOT_FOUND"):
        _src(hostile_registry).root()


def test_503_then_success(hostile_registry: HostileRegistry, no_sleep: list[float]) -> None:
    m, _, _ = _image()
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(503), Reply(502), Reply(200, m.raw))
    assert _src(hostile_registry).root().digest == m.digest
    assert hostile_registry.count("GET", "/v2/r/manifests") == 3
    assert len(no_sleep) == 2


def test_retry_after_is_honoured(hostile_registry: HostileRegistry, no_sleep: list[float]) -> None:
    m, _, _ = _image()
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(429, headers={"Retry-After": "7"}), Reply(200, m.raw))
    _src(hostile_registry).root()
    assert no_sleep == [7.0]


def test_retries_are_bounded(hostile_registry: HostileRegistry) -> None:
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(503, b'{"errors":[{"code":"UNAVAILABLE"}]}'))
    with pytest.raises(RegistryError) as ei:
        _src(hostile_registry).root()
    assert ei.value.status == 503 and ei.value.retryable and ei.value.codes == ("UNAVAILABLE",)
    assert hostile_registry.count("GET", "/v2/r/manifests") == MAX_TRIES


def test_connection_reset_is_retried(hostile_registry: HostileRegistry) -> None:
    m, _, _ = _image()
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(action="reset"), Reply(200, m.raw))
    assert _src(hostile_registry).root().digest == m.digest


def test_connection_refused_is_a_clear_error() -> None:
    from tests.helpers.tools import free_port
    with pytest.raises(RegistryError, match="cannot connect") as ei:
        RegistrySource(Reference.parse(f"127.0.0.1:{free_port()}/r:t"), Options()).root()
    assert "running" in (ei.value.hint or "")


# -- manifests -----------------------------------------------------------------------------------
def _ten_mb_manifest() -> bytes:
    m, _, _ = _image()
    obj = json.loads(m.raw)
    obj["annotations"] = {"pad": "x" * (10 << 20)}
    return json.dumps(obj).encode()


@pytest.mark.parametrize("action", ["", "chunked"])
def test_ten_megabyte_manifest(hostile_registry: HostileRegistry, action: str) -> None:
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(200, _ten_mb_manifest(), action=action))
    with pytest.raises(ManifestError, match="limit|more than"):
        _src(hostile_registry).root()


def test_lying_docker_content_digest(hostile_registry: HostileRegistry) -> None:
    m, _, _ = _image()
    lie = "sha256:" + "0" * 64
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(200, m.raw, {"Docker-Content-Digest": lie}))
    with pytest.raises(DigestMismatch, match="registry says"):
        _src(hostile_registry).root()


def test_garbage_docker_content_digest_is_only_a_hint(hostile_registry: HostileRegistry) -> None:
    m, _, _ = _image()
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(200, m.raw, {"Docker-Content-Digest": "garbage"}))
    assert _src(hostile_registry).root().digest == m.digest


def test_pull_by_digest_gets_other_bytes(hostile_registry: HostileRegistry) -> None:
    m, _, _ = _image()
    other = m.raw.replace(b"amd64", b"arm64") + b" "
    hostile_registry.route("GET", f"/v2/r/manifests/{m.digest}", Reply(200, other))
    with pytest.raises(DigestMismatch):
        _src(hostile_registry, f"r@{m.digest}").root()


def test_manifest_not_json(hostile_registry: HostileRegistry) -> None:
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(200, b"<html>login page</html>"))
    with pytest.raises(ManifestError):
        _src(hostile_registry).root()


def test_config_with_wrong_content_length(hostile_registry: HostileRegistry, private_store: Path) -> None:
    m, cfg, _ = _image()
    hostile_registry.route("GET", f"/v2/r/blobs/{m.config.digest}", Reply(200, cfg + b"xx"))
    with pytest.raises(DigestMismatch, match="announces"):
        _src(hostile_registry).manifest_bytes(m.config)
    assert _blob_files(private_store) == []


def test_config_descriptor_over_limit_is_refused_before_asking(hostile_registry: HostileRegistry) -> None:
    m, _, _ = _image()
    big = m.config.with_(size=10 << 20)
    with pytest.raises(ManifestError, match="4 MiB"):
        _src(hostile_registry).manifest_bytes(big)
    assert hostile_registry.count("GET", "/v2/r/blobs") == 0


# -- blobs --------------------------------------------------------------------------------------------
def test_blob_wrong_content_length(hostile_registry: HostileRegistry, private_store: Path) -> None:
    m, _, layer = _image()
    d = m.layers[0]
    hostile_registry.route("GET", f"/v2/r/blobs/{d.digest}", Reply(200, layer[:-1]))
    with pytest.raises(DigestMismatch, match="announces"):
        _src(hostile_registry).open_blob(d)
    assert _blob_files(private_store) == [] and _tmp_files(private_store) == []


def test_blob_wrong_bytes(hostile_registry: HostileRegistry, private_store: Path) -> None:
    m, _, layer = _image()
    d = m.layers[0]
    hostile_registry.route("GET", f"/v2/r/blobs/{d.digest}", Reply(200, b"X" + layer[1:]))
    with pytest.raises(DigestMismatch, match="digest mismatch"):
        _src(hostile_registry).open_blob(d)
    assert _blob_files(private_store) == [] and _tmp_files(private_store) == []


def test_truncated_blob_is_retried_then_fails(hostile_registry: HostileRegistry, private_store: Path) -> None:
    m, _, layer = _image()
    d = m.layers[0]
    hostile_registry.route("GET", f"/v2/r/blobs/{d.digest}", Reply(200, layer, action="truncate"))
    with pytest.raises(RegistryError, match="connection"):
        _src(hostile_registry).open_blob(d)
    assert hostile_registry.count("GET", "/v2/r/blobs") == MAX_TRIES
    assert _blob_files(private_store) == [] and _tmp_files(private_store) == []


def test_truncated_once_then_whole(hostile_registry: HostileRegistry, private_store: Path) -> None:
    m, _, layer = _image()
    d = m.layers[0]
    hostile_registry.route("GET", f"/v2/r/blobs/{d.digest}", Reply(200, layer, action="truncate"), Reply(200, layer))
    with _src(hostile_registry).open_blob(d) as f:
        assert f.read() == layer


def test_redirect_to_another_host_drops_credentials(hostile_registry: HostileRegistry) -> None:
    m, _, layer = _image()
    d = m.layers[0]
    cdn = HostileRegistry().start()
    try:
        cdn.route("GET", "/cdn/blob", Reply(200, layer))
        hostile_registry.route("GET", "/v2/", Reply(401, headers={"WWW-Authenticate": 'Basic realm="x"'}))
        hostile_registry.route("GET", f"/v2/r/blobs/{d.digest}",
                               Reply(307, headers={"Location": f"http://{cdn.host}/cdn/blob"}))
        src = RegistrySource(Reference.parse(f"{hostile_registry.host}/r:t"), Options(username="u", password="p"))
        with src.open_blob(d) as f:
            assert f.read() == layer
        sent = [h for m_, p, h in hostile_registry.requests if p.startswith("/v2/r/blobs")]
        assert sent and "Authorization" in sent[0]
        assert all("Authorization" not in h for _, _, h in cdn.requests)
    finally:
        cdn.stop()


# -- auth ---------------------------------------------------------------------------------------------
def test_401_without_challenge(hostile_registry: HostileRegistry) -> None:
    hostile_registry.route("GET", "/v2/", Reply(401, b"{}"))
    with pytest.raises(AuthError, match="challenge"):
        _src(hostile_registry).root()


@pytest.mark.parametrize("token_reply", [Reply(200, b"not json"), Reply(200, b'{"token": "a\\r\\nb"}'),
                                         Reply(200, b"{}"), Reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')])
def test_hostile_token_server(hostile_registry: HostileRegistry, token_reply: Reply) -> None:
    realm = f"http://{hostile_registry.host}/token"
    hostile_registry.route("GET", "/v2/", Reply(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}))
    hostile_registry.route("GET", "/token", token_reply)
    with pytest.raises(AuthError):
        _src(hostile_registry).root()


def test_token_realm_must_be_http(hostile_registry: HostileRegistry) -> None:
    hostile_registry.route("GET", "/v2/", Reply(401, headers={"WWW-Authenticate": 'Bearer realm="file:///etc/passwd"'}))
    with pytest.raises(AuthError, match="realm"):
        _src(hostile_registry).root()


# -- tags and resolve ------------------------------------------------------------------------------------
def test_tags_pagination(hostile_registry: HostileRegistry) -> None:
    h = hostile_registry
    h.route("GET", "/v2/r/tags/list?n=2", Reply(200, b'{"name":"r","tags":["a","b"]}',
                                               {"Link": '</v2/r/tags/list?last=b&n=2>; rel="next"'}))
    h.route("GET", "/v2/r/tags/list?last=b&n=2", Reply(200, b'{"name":"r","tags":["c","d"]}',
                                                      {"Link": f'<http://{h.host}/v2/r/tags/list?last=d&n=2>; rel="next"'}))
    h.route("GET", "/v2/r/tags/list?last=d&n=2", Reply(200, b'{"name":"r","tags":["e"]}'))
    assert list_tags(Reference.parse(f"{h.host}/r"), page_size=2) == ["a", "b", "c", "d", "e"]
    assert h.count("GET", "/v2/r/tags/list") == 3


def test_tags_link_loop(hostile_registry: HostileRegistry) -> None:
    hostile_registry.route("GET", "/v2/r/tags/list", Reply(200, b'{"name":"r","tags":["a"]}',
                                                           {"Link": '</v2/r/tags/list>; rel="next"'}))
    with pytest.raises(RegistryError, match="repeats"):
        list_tags(Reference.parse(f"{hostile_registry.host}/r"))


def test_tags_garbage(hostile_registry: HostileRegistry) -> None:
    hostile_registry.route("GET", "/v2/r/tags/list", Reply(200, b'{"tags": {"a": 1}}'))
    with pytest.raises(ManifestError):
        list_tags(Reference.parse(f"{hostile_registry.host}/r"))


def test_resolve_falls_back_to_get(hostile_registry: HostileRegistry) -> None:
    m, _, _ = _image()
    hostile_registry.route("HEAD", "/v2/r/manifests/t", Reply(200, m.raw, {"Content-Type": mt.OCI_MANIFEST}))
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(200, m.raw, {"Content-Type": mt.OCI_MANIFEST}))
    d = resolve(Reference.parse(f"{hostile_registry.host}/r:t"))
    assert d.digest == m.digest and d.size == len(m.raw)
    assert hostile_registry.count("GET", "/v2/r/manifests") == 1


# -- push -------------------------------------------------------------------------------------------------
def test_upload_without_location(hostile_registry: HostileRegistry) -> None:
    m, _, layer = _image()
    hostile_registry.route("POST", "/v2/r/blobs/uploads/", Reply(202))
    sink = RegistrySink(Reference.parse(f"{hostile_registry.host}/r:t"), Options())
    import io
    with pytest.raises(RegistryError, match="Location"):
        sink.write_blob(m.layers[0], io.BytesIO(layer))


def test_registry_storing_another_digest(hostile_registry: HostileRegistry) -> None:
    m, _, _ = _image()
    hostile_registry.route("PUT", "/v2/r/manifests/t",
                           Reply(201, headers={"Docker-Content-Digest": "sha256:" + "1" * 64}))
    sink = RegistrySink(Reference.parse(f"{hostile_registry.host}/r:t"), Options())
    with pytest.raises(DigestMismatch, match="stored"):
        sink.commit(m.descriptor(), m.raw)


def test_chunk_resumes_after_lost_connection(hostile_registry: HostileRegistry) -> None:
    """A PATCH dies; the registry says it holds 150 bytes; only the rest of that chunk is resent."""
    import io
    from kilobox.oci import Descriptor
    h = hostile_registry
    data = bytes(range(250))
    desc = Descriptor.for_bytes(mt.OCI_LAYER, data)
    h.route("POST", "/v2/r/blobs/uploads/", Reply(202, headers={"Location": "/up/a"}))
    h.route("PATCH", "/up/a", Reply(202, headers={"Location": "/up/b"}))
    h.route("PATCH", "/up/b", Reply(action="reset"))
    h.route("GET", "/up/b", Reply(204, headers={"Range": "0-149", "Location": "/up/c"}))
    h.route("PATCH", "/up/c", Reply(202, headers={"Location": "/up/d"}))
    h.route("PATCH", "/up/d", Reply(202, headers={"Location": "/up/e"}))
    h.route("PUT", "/up/e", Reply(201))
    sink = RegistrySink(Reference.parse(f"{h.host}/r:t"), Options(extra={"chunked_threshold": 50, "chunk_size": 100}))
    sink.write_blob(desc, io.BytesIO(data))
    patches = [(p, hd["Content-Range"], hd["Content-Length"]) for m, p, hd in h.requests if m == "PATCH"]
    assert patches == [("/up/a", "0-99", "100"), ("/up/b", "100-199", "100"), ("/up/c", "150-199", "50"),
                       ("/up/d", "200-249", "50")]
    assert any(m == "PUT" and p == f"/up/e?digest={desc.digest}".replace(":", "%3A") for m, p, _ in h.requests)


def test_failed_upload_is_cancelled(hostile_registry: HostileRegistry) -> None:
    """The stream does not match its digest: no closing PUT, the session is DELETEd."""
    import io
    from kilobox.oci import Descriptor
    h = hostile_registry
    desc = Descriptor.for_bytes(mt.OCI_LAYER, b"a" * 100)
    h.route("POST", "/v2/r/blobs/uploads/", Reply(202, headers={"Location": "/up/a"}))
    h.route("DELETE", "/up/a", Reply(204))
    sink = RegistrySink(Reference.parse(f"{h.host}/r:t"), Options())
    with pytest.raises(DigestMismatch):
        sink.write_blob(desc, io.BytesIO(b"b" * 100))
    assert h.count("PUT") == 0 and h.count("DELETE", "/up/a") == 1


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH_9.2\r\n", b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
                                     b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100_000 + b"\r\n\r\n", b"\x00" * 10])
def test_not_http_at_all(hostile_registry: HostileRegistry, garbage: bytes) -> None:
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(body=garbage, action="garbage"))
    with pytest.raises(RegistryError, match="/v2/r/manifests/t"):
        _src(hostile_registry).root()


def test_broken_chunked_encoding(hostile_registry: HostileRegistry) -> None:
    bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(body=bad, action="garbage"))
    with pytest.raises(RegistryError):
        _src(hostile_registry).root()


def test_schema1_is_refused_clearly(hostile_registry: HostileRegistry) -> None:
    body = json.dumps({"schemaVersion": 1, "name": "r", "tag": "t", "fsLayers": []}).encode()
    hostile_registry.route("GET", "/v2/r/manifests/t", Reply(200, body))
    with pytest.raises(ManifestError, match="schema 1"):
        _src(hostile_registry).root()


def test_closing_put_retried_after_503(hostile_registry: HostileRegistry, no_sleep: list[float]) -> None:
    import io
    from kilobox.oci import Descriptor
    h = hostile_registry
    data = b"x" * 100
    desc = Descriptor.for_bytes(mt.OCI_LAYER, data)
    h.route("POST", "/v2/r/blobs/uploads/", Reply(202, headers={"Location": "/up/a"}))
    h.route("PUT", "/up/a", Reply(503), Reply(201))
    RegistrySink(Reference.parse(f"{h.host}/r:t"), Options()).write_blob(desc, io.BytesIO(data))
    assert h.count("PUT", "/up/a") == 2 and len(no_sleep) == 1
