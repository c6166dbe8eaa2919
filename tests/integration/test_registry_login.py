"""kilobox login/logout and the containers auth files, against the real registry and skopeo.

Every test has a private HOME, XDG_RUNTIME_DIR and store, and no REGISTRY_AUTH_FILE,
XDG_CONFIG_HOME or DOCKER_CONFIG: nothing here reads or writes the user's files.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers.tools import kilobox, need

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("private_store")]


@pytest.fixture
def iso(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate the auth environment (os.environ: the CLI subprocesses and skopeo inherit it)."""
    home = tmp_path / "home"
    run = tmp_path / "run"
    home.mkdir()
    run.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    for name in ("REGISTRY_AUTH_FILE", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def layout(tmp_path: Path) -> str:
    from kilobox.testing import random_image, write_image
    write_image(random_image(1, 1024, seed=11), f"oci:{tmp_path / 'lay'}:t")
    return f"oci:{tmp_path / 'lay'}:t"


def skopeo(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([need("skopeo"), *args], input=input, capture_output=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p


def skopeo_login(srv, *extra: str, password: str | None = None) -> None:
    skopeo("login", *extra, "--tls-verify=false", "-u", srv.username, "--password-stdin", srv.host,
           input=(password or srv.password).encode())


def login(srv, *extra: str, password: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return kilobox("login", *extra, "-u", srv.username, "--password-stdin", srv.host,
                   input=f"{password or srv.password}\n".encode(), check=check)


def push_pull(srv, layout: str, repo: str, *flags: str, tmp: Path) -> str:
    pushed = kilobox("copy", *flags, layout, f"docker://{srv.host}/{repo}:1").stdout.strip()
    pulled = kilobox("copy", *flags, f"{srv.host}/{repo}:1", f"oci:{tmp / repo.replace('/', '_')}:x").stdout.strip()
    assert pushed.startswith("sha256:") and pulled == pushed
    return pushed


def entry(path: Path, key: str) -> dict:
    return json.loads(path.read_text())["auths"][key]


# -- skopeo writes, kilobox reads -----------------------------------------------------------------
def test_skopeo_login_file_with_authfile_and_env(iso: Path, registry_basic, layout: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    f = iso / "skopeo-auth.json"
    skopeo_login(registry_basic, "--authfile", str(f))
    assert "auth" in entry(f, registry_basic.host)
    denied = kilobox("copy", layout, f"docker://{registry_basic.host}/sk/app:1", check=False)
    assert denied.returncode == 6                                   # no credentials anywhere else
    push_pull(registry_basic, layout, "sk/app", "--authfile", str(f), tmp=iso)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(f))                # no flag: the environment
    push_pull(registry_basic, layout, "sk/env", tmp=iso)
    assert kilobox("tags", f"{registry_basic.host}/sk/env").stdout.split() == ["1"]


def test_skopeo_login_xdg_runtime_dir(iso: Path, registry_basic, layout: str) -> None:
    skopeo_login(registry_basic)                                    # no flags: $XDG_RUNTIME_DIR/containers
    assert "auth" in entry(iso / "run/containers/auth.json", registry_basic.host)
    push_pull(registry_basic, layout, "sk/xdg", tmp=iso)           # no flags here either


def test_token_registry_skopeo_login(iso: Path, registry_token, layout: str) -> None:
    skopeo_login(registry_token)
    push_pull(registry_token, layout, "tok/sk", tmp=iso)


# -- kilobox writes, skopeo and kilobox read ---------------------------------------------------------
def test_kilobox_login_skopeo_reads_it(iso: Path, registry_basic, layout: str) -> None:
    f = iso / "auth" / "kb.json"
    out = login(registry_basic, "--authfile", str(f))
    assert str(f) in out.stdout and registry_basic.password not in out.stdout + out.stderr
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert set(entry(f, registry_basic.host)) == {"auth"}
    push_pull(registry_basic, layout, "kb/app", "--authfile", str(f), tmp=iso)
    p = skopeo("inspect", "--authfile", str(f), "--tls-verify=false", f"docker://{registry_basic.host}/kb/app:1")
    assert json.loads(p.stdout)["Digest"].startswith("sha256:")

    before = f.read_bytes()
    wrong = login(registry_basic, "--authfile", str(f), password="wrong-password", check=False)
    assert wrong.returncode == 6 and "401" in wrong.stderr and "wrong-password" not in wrong.stderr
    assert f.read_bytes() == before                                 # nothing written

    gone = kilobox("logout", "--authfile", str(f), registry_basic.host)
    assert registry_basic.host in gone.stdout
    assert json.loads(f.read_text()) == {"auths": {}}
    again = kilobox("logout", "--authfile", str(f), registry_basic.host, check=False)
    assert again.returncode == 3 and "not logged in" in again.stderr
    denied = skopeo("inspect", "--authfile", str(f), "--tls-verify=false",
                    f"docker://{registry_basic.host}/kb/app:1", check=False)
    assert denied.returncode != 0


def test_kilobox_login_default_files(iso: Path, registry_basic, layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    login(registry_basic)                                           # ~/.docker/config.json, as docker login
    docker = iso / "home/.docker/config.json"
    assert "auth" in entry(docker, registry_basic.host)
    push_pull(registry_basic, layout, "kb/default", tmp=iso)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(iso / "env-auth.json"))
    login(registry_basic)                                           # $REGISTRY_AUTH_FILE when set
    assert "auth" in entry(iso / "env-auth.json", registry_basic.host)
    kilobox("logout", registry_basic.host)
    assert json.loads((iso / "env-auth.json").read_text()) == {"auths": {}}
    assert "auth" in entry(docker, registry_basic.host)             # the other file is not touched
    p = skopeo("inspect", "--tls-verify=false", f"docker://{registry_basic.host}/kb/default:1")  # reads docker's
    assert json.loads(p.stdout)["Digest"].startswith("sha256:")


def test_kilobox_login_keeps_other_keys(iso: Path, registry_basic) -> None:
    f = iso / "config.json"
    f.write_text(json.dumps({"credHelpers": {"gcr.io": "gcloud"}, "psFormat": "x",
                             "auths": {"other.io": {"auth": "b3RoZXI6cHc="}}}))
    assert "warning" not in login(registry_basic, "--authfile", str(f)).stderr
    obj = json.loads(f.read_text())
    assert obj["credHelpers"] == {"gcr.io": "gcloud"} and obj["psFormat"] == "x"
    assert set(obj["auths"]) == {"other.io", registry_basic.host}
    g = iso / "helper.json"
    g.write_text(json.dumps({"credHelpers": {registry_basic.host: "kbnone"}}))
    warned = login(registry_basic, "--authfile", str(g)).stderr        # stored, but the helper is asked first
    assert "credHelpers" in warned and "auth" in entry(g, registry_basic.host)


def test_kilobox_login_token_registry(iso: Path, registry_token, layout: str) -> None:
    f = iso / "auth.json"
    login(registry_token, "--authfile", str(f))
    assert registry_token.issuer.requests >= 1                      # the password went to the token server
    wrong = login(registry_token, "--authfile", str(f), password="nope", check=False)
    assert wrong.returncode == 6
    push_pull(registry_token, layout, "tok/kb", "--authfile", str(f), tmp=iso)
    p = skopeo("inspect", "--authfile", str(f), "--tls-verify=false", f"docker://{registry_token.host}/tok/kb:1")
    assert json.loads(p.stdout)["Digest"].startswith("sha256:")


def test_namespaced_keys(iso: Path, registry_token, layout: str) -> None:
    """``host`` holds a read-only user, ``host/tok/app`` the writer: pushes go where the key allows."""
    f = iso / "auth.json"
    kilobox("login", "--authfile", str(f), "-u", "reader", "--password-stdin", registry_token.host, input=b"read-pass")
    kilobox("login", "--authfile", str(f), "-u", registry_token.username, "--password-stdin",
            f"{registry_token.host}/tok/app", input=registry_token.password.encode())
    assert set(json.loads(f.read_text())["auths"]) == {registry_token.host, f"{registry_token.host}/tok/app"}
    push_pull(registry_token, layout, "tok/app", "--authfile", str(f), tmp=iso)
    ro = kilobox("copy", "--authfile", str(f), layout, f"docker://{registry_token.host}/tok/other:1", check=False)
    assert ro.returncode == 6                                       # the reader may not push there
    kilobox("logout", "--authfile", str(f), f"{registry_token.host}/tok/app")
    assert set(json.loads(f.read_text())["auths"]) == {registry_token.host}


def test_login_input_errors(iso: Path, registry_basic) -> None:
    f = iso / "auth.json"
    nopw = kilobox("login", "--authfile", str(f), "-u", "kilo", registry_basic.host, input=b"", check=False)
    assert nopw.returncode == 2 and "--password-stdin" in nopw.stderr
    nouser = kilobox("login", "--authfile", str(f), "--password-stdin", registry_basic.host, input=b"x", check=False)
    assert nouser.returncode == 2
    argv = kilobox("login", "--authfile", str(f), "-u", registry_basic.username, "-p", registry_basic.password,
                   registry_basic.host)
    assert "visible to other users" in argv.stderr and registry_basic.password not in argv.stdout + argv.stderr
    assert not [p for p in f.parent.iterdir() if p.name.startswith(".auth.json")]   # no temp file left
    assert os.access(f, os.R_OK)
