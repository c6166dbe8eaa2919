"""The OAuth2 refresh-token flow (``identitytoken``) against the real registry in token mode, and
hostile token endpoints (the scriptable server).

The real ``docker-registry`` checks the JWTs; the test issuer (:mod:`tests.helpers.token_issuer`)
answers the ``POST`` with the spec's form and remembers what it was sent.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from kilobox.errors import AuthError
from kilobox.formats import Options
from kilobox.formats.registry import list_tags
from kilobox.oci import Reference
from tests.helpers.hostile_registry import HostileRegistry, Reply
from tests.helpers.memimage import pull, push
from tests.helpers.token_issuer import SERVICE
from tests.helpers.tools import kilobox

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("private_store")]


def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, obj: dict) -> Path:
    """``$DOCKER_CONFIG/config.json`` holding *obj* (where ``docker login`` and ``az acr login`` write)."""
    d = tmp_path / "docker"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(obj))
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d / "config.json"


@pytest.fixture
def layout(tmp_path: Path) -> str:
    from kilobox.testing import random_image, write_image
    write_image(random_image(1, 1024, seed=21), f"oci:{tmp_path / 'lay'}:t")
    return f"oci:{tmp_path / 'lay'}:t"


def cli_push_pull(srv, layout: str, repo: str, tmp_path: Path) -> tuple[str, str]:
    pushed = kilobox("copy", layout, f"docker://{srv.host}/{repo}:1")
    pulled = kilobox("copy", f"{srv.host}/{repo}:1", f"oci:{tmp_path / 'out'}:x")
    assert pushed.stdout.strip().startswith("sha256:") and pulled.stdout.strip() == pushed.stdout.strip()
    return pushed.stdout + pushed.stderr, pulled.stdout + pulled.stderr


def assert_oauth_forms(issuer, token: str) -> None:
    assert issuer.forms, "no OAuth2 POST reached the issuer"
    for form in issuer.forms:
        assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == [token]
        assert form["client_id"] == ["kilobox"] and form["service"] == [SERVICE]


def one_line_error(p) -> str:
    assert p.returncode == 6, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kilobox: error: "), p.stderr
    return lines[0]


# -- identitytoken in config.json -----------------------------------------------------------------
def test_identitytoken_only_push_pull_cli(registry_token, layout: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = registry_token.issuer
    rt = issuer.new_refresh_token("kilo")
    docker_config(tmp_path, monkeypatch, {"auths": {registry_token.host: {"identitytoken": rt}}})
    outputs = cli_push_pull(registry_token, layout, "oauth/app", tmp_path)
    assert all(rt not in text for text in outputs)
    assert_oauth_forms(issuer, rt)
    assert issuer.requests == issuer.posts                      # never the GET flow
    assert ["repository:oauth/app:pull,push"] in issuer.scopes_seen
    assert ["repository:oauth/app:pull"] in issuer.scopes_seen


def test_identity_token_cached_per_scope(registry_token, tmp_path: Path) -> None:
    issuer = registry_token.issuer
    rt = issuer.new_refresh_token("kilo")
    cfg = tmp_path / "auth.json"
    cfg.write_text(json.dumps({"auths": {f"https://{registry_token.host}/v1/": {"identitytoken": rt}}}))
    opts = Options(docker_config=str(cfg))
    push(registry_token.ref("oauth/app:1"), opts)
    assert issuer.posts == 1 and issuer.scopes_seen == [["repository:oauth/app:pull,push"]]
    push(registry_token.ref("oauth/app:2"), opts, seed=1)
    assert pull(registry_token.ref("oauth/app:1"), opts).root is not None      # a subset: the cached token
    assert sorted(list_tags(Reference.parse(registry_token.ref("oauth/app")), opts)) == ["1", "2"]
    assert issuer.posts == 1
    push(registry_token.ref("oauth/other:1"), opts)                            # another scope: one more POST
    assert issuer.posts == 2 and issuer.requests == 2


def test_identitytoken_beside_auth_as_az_acr_login_writes(registry_token, tmp_path: Path) -> None:
    rt = registry_token.issuer.new_refresh_token("kilo")
    auth = base64.b64encode(b"00000000-0000-0000-0000-000000000000:").decode()
    cfg = tmp_path / "auth.json"
    cfg.write_text(json.dumps({"auths": {registry_token.host: {"auth": auth, "identitytoken": rt}}}))
    opts = Options(docker_config=str(cfg))
    push(registry_token.ref("oauth/acr:1"), opts)
    assert pull(registry_token.ref("oauth/acr:1"), opts).root is not None
    assert registry_token.issuer.requests == registry_token.issuer.posts == 1


def test_read_only_identity(registry_token, tmp_path: Path) -> None:
    issuer = registry_token.issuer
    push(registry_token.ref("oauth/ro:1"), Options(username=registry_token.username, password=registry_token.password))
    cfg = tmp_path / "auth.json"
    cfg.write_text(json.dumps({"auths": {registry_token.host: {"identitytoken": issuer.new_refresh_token("reader")}}}))
    opts = Options(docker_config=str(cfg))
    assert pull(registry_token.ref("oauth/ro:1"), opts).root is not None
    with pytest.raises(AuthError) as ei:
        push(registry_token.ref("oauth/ro:2"), opts, seed=2)
    assert ei.value.status == 401


# -- a credential helper answering Username "<token>" ---------------------------------------------
def test_credential_helper_token_username(registry_token, layout: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = registry_token.issuer
    rt = issuer.new_refresh_token("kilo")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-test"
    answer = json.dumps({"ServerURL": registry_token.host, "Username": "<token>", "Secret": rt})
    helper.write_text(f"#!/bin/sh\nread server\necho \"$1 $server\" >> {bindir}/calls\n"
                      f"[ \"$server\" = \"{registry_token.host}\" ] || {{ echo 'credentials not found'; exit 1; }}\n"
                      f"echo '{answer}'\n")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    docker_config(tmp_path, monkeypatch, {"credHelpers": {registry_token.host: "test"}})
    outputs = cli_push_pull(registry_token, layout, "oauth/helper", tmp_path)
    assert all(rt not in text for text in outputs)
    assert_oauth_forms(issuer, rt)
    assert issuer.requests == issuer.posts
    assert (bindir / "calls").read_text().split() == ["get", registry_token.host] * 2     # once per process


# -- refusals ---------------------------------------------------------------------------------------
def test_unknown_refresh_token_is_exit_6(registry_token, layout: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rt = "rt.revoked-or-expired-" + "x" * 20
    docker_config(tmp_path, monkeypatch, {"auths": {registry_token.host: {"identitytoken": rt}}})
    p = kilobox("copy", layout, f"docker://{registry_token.host}/oauth/app:1", check=False)
    line = one_line_error(p)
    assert "401" in line and "invalid_grant" in line and "expired" in line and "POST /token" in line
    assert rt not in p.stdout + p.stderr
    assert registry_token.issuer.posts == 1                     # not retried with the same token


def test_realm_without_post_and_no_password_is_exit_6(registry_token, layout: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = registry_token.issuer
    issuer.post_status = 405
    rt = issuer.new_refresh_token("kilo")
    docker_config(tmp_path, monkeypatch, {"auths": {registry_token.host: {"identitytoken": rt}}})
    p = kilobox("copy", layout, f"docker://{registry_token.host}/oauth/app:1", check=False)
    line = one_line_error(p)
    assert "405" in line and issuer.realm in line and "no OAuth2 POST" in line
    assert rt not in p.stdout + p.stderr
    assert issuer.posts == 1 and issuer.requests == 1             # no GET without a password


def test_realm_without_post_falls_back_to_get_with_password(registry_token, tmp_path: Path) -> None:
    issuer = registry_token.issuer
    issuer.post_status = 404
    auth = base64.b64encode(f"{registry_token.username}:{registry_token.password}".encode()).decode()
    cfg = tmp_path / "auth.json"
    cfg.write_text(json.dumps({"auths": {registry_token.host: {"auth": auth,
                                                               "identitytoken": issuer.new_refresh_token("kilo")}}}))
    opts = Options(docker_config=str(cfg))
    push(registry_token.ref("oauth/fallback:1"), opts)
    assert pull(registry_token.ref("oauth/fallback:1"), opts).root is not None
    assert issuer.posts == 1 and issuer.requests == 2           # one POST (404), then the GET; then cached


def test_no_identity_token_over_http_from_an_https_registry(make_registry, tmp_path: Path) -> None:
    srv = make_registry("token", tls="server")                   # the test issuer's realm is plain http
    cfg = tmp_path / "auth.json"
    rt = srv.issuer.new_refresh_token("kilo")
    cfg.write_text(json.dumps({"auths": {srv.host: {"identitytoken": rt}}}))
    opts = Options(docker_config=str(cfg), cert_dir=str(srv.pki.cert_dir(tmp_path / "certs")))
    with pytest.raises(AuthError, match="plain-http token realm") as ei:
        pull(srv.ref("oauth/app:1"), opts)
    assert rt not in str(ei.value) and srv.issuer.posts == 0


# -- hostile token endpoints ------------------------------------------------------------------------
def _hostile(srv: HostileRegistry, tmp_path: Path, *post: Reply, password: bool = False) -> Options:
    srv.route("GET", "/v2/", Reply(401, headers={
        "WWW-Authenticate": f'Bearer realm="http://{srv.host}/token",service="svc"'}))
    srv.route("POST", "/token", *post)
    srv.route("GET", "/v2/r/tags/list", Reply(200, b'{"name": "r", "tags": ["a"]}'))
    entry: dict[str, str] = {"identitytoken": "rt-HOSTILE-secret-0123456789"}
    if password:
        entry["auth"] = base64.b64encode(b"u:p").decode()
    cfg = tmp_path / "auth.json"
    cfg.write_text(json.dumps({"auths": {srv.host: entry}}))
    return Options(docker_config=str(cfg))


def _tags(srv: HostileRegistry, opts: Options) -> list[str]:
    return list_tags(Reference.parse(f"{srv.host}/r"), opts)


def test_hostile_success_sends_form_and_uses_access_token(hostile_registry: HostileRegistry, tmp_path: Path) -> None:
    opts = _hostile(hostile_registry, tmp_path, Reply(200, b'{"access_token": "acc.tok", "token": "other"}'))
    assert _tags(hostile_registry, opts) == ["a"]
    (_, _, post_headers), = [r for r in hostile_registry.requests if r[0] == "POST"]
    assert post_headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in post_headers                    # the refresh token goes in the body only
    tags_headers = [h for m, p, h in hostile_registry.requests if p.startswith("/v2/r/tags/list")]
    assert tags_headers[-1]["Authorization"] == "Bearer acc.tok"


@pytest.mark.parametrize("reply,match", [
    (Reply(200, b"<html>not json</html>"), "not JSON"),
    (Reply(200, b'["access_token"]'), "not a JSON object"),
    (Reply(200, b'{"access_token": 5}'), "no token"),
    (Reply(200, b'{"refresh_token": "r", "expires_in": 60}'), "no token"),
    (Reply(200, b'{"access_token": "a\\r\\nX-Evil: 1"}'), "malformed"),
    (Reply(200, b"{" * 100_000), "not JSON"),
    (Reply(200, b'{"access_token": "' + b"a" * (2 << 20) + b'"}'), "over 1048576 bytes"),
    (Reply(200, b'{"access_token": "' + b"a" * (2 << 20) + b'"}', action="chunked"), "over 1048576 bytes"),
    (Reply(302, headers={"Location": "https://evil.example/steal"}), "redirects are not followed"),
    (Reply(307, headers={"Location": "/token2"}), "redirects are not followed"),
    (Reply(400, b'{"error": "invalid_request", "error_description": "bad\\nform\\u001b[31m"}'), "invalid_request"),
    (Reply(401, b'{"errors": [{"code": "UNAUTHORIZED", "message": "expired"}]}'), "UNAUTHORIZED"),
    (Reply(401, b'{"error": "rt-HOSTILE-secret-0123456789"}'), "401"),
    (Reply(401, b"\x00\xff" * 40_000), "401"),
    (Reply(418, b"teapot"), "418"),
    (Reply(404), "no OAuth2 POST"),
    (Reply(405), "no OAuth2 POST"),
])
def test_hostile_token_endpoint(hostile_registry: HostileRegistry, tmp_path: Path, reply: Reply, match: str) -> None:
    opts = _hostile(hostile_registry, tmp_path, reply)
    with pytest.raises(AuthError, match=match) as ei:
        _tags(hostile_registry, opts)
    text = str(ei.value)
    assert "\n" not in text and "\x1b" not in text and len(text) < 500
    assert "rt-HOSTILE" not in text and "rt-HOSTILE" not in (ei.value.hint or "")
    assert hostile_registry.count("POST", "/token") == 1          # never replayed, never redirected
    assert hostile_registry.count("GET", "/token") == 0 and hostile_registry.count("GET", "/steal") == 0
    if reply.status in (400, 401):
        assert "expired" in (ei.value.hint or "")


def test_hostile_404_with_password_falls_back_to_get(hostile_registry: HostileRegistry, tmp_path: Path) -> None:
    opts = _hostile(hostile_registry, tmp_path, Reply(404), password=True)
    hostile_registry.route("GET", "/token", Reply(200, b'{"token": "from.get"}'))
    assert _tags(hostile_registry, opts) == ["a"]
    gets = [h for m, p, h in hostile_registry.requests if m == "GET" and p.startswith("/token?")]
    assert len(gets) == 1 and gets[0]["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    tags_headers = [h for m, p, h in hostile_registry.requests if p.startswith("/v2/r/tags/list")]
    assert tags_headers[-1]["Authorization"] == "Bearer from.get"
