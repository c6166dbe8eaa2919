"""https registries with a private CA: Debian's docker-registry with ``http.tls`` (and ``clientcas``),
driven by the kilobox CLI as a user would, and cross-checked with skopeo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers.tools import kilobox, need

pytestmark = pytest.mark.integration


@pytest.fixture
def out_layout(tmp_path: Path) -> Path:
    pytest.importorskip("kilobox.formats.layout")
    from kilobox.testing import random_image, write_image
    write_image(random_image(2, 2048, seed=11), f"oci:{tmp_path / 'out'}:hello")
    return tmp_path / "out"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A private store, no user credentials, and no certs.d of the machine (an empty override)."""
    return {"KILOBOX_CACHE": str(tmp_path / "store"), "DOCKER_CONFIG": str(tmp_path / "no-docker"),
            "XDG_RUNTIME_DIR": str(tmp_path / "no-run"), "XDG_CONFIG_HOME": str(tmp_path / "no-config"),
            "KILOBOX_CERTS_D": str(tmp_path / "no-certs.d")}


def failed(p: subprocess.CompletedProcess, code: int) -> str:
    """The one error line of a failed command."""
    assert p.returncode == code, f"exit {p.returncode}, want {code}: {p.stderr}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kilobox: error: ") and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def skopeo(*args: str) -> str:
    p = subprocess.run([need("skopeo"), *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"skopeo {' '.join(args)}: {p.stderr}"
    return p.stdout


def test_push_pull_inspect_with_cert_dir(registry_tls, out_layout: Path, tmp_path: Path,
                                         env: dict[str, str]) -> None:
    certs = str(registry_tls.pki.cert_dir(tmp_path / "certs"))
    ref = registry_tls.ref("demo/hello:1")
    pushed = kilobox("copy", "--cert-dir", certs, "oci:./out:hello", f"docker://{ref}", cwd=tmp_path,
                     env=env).stdout.strip()
    assert pushed.startswith("sha256:")
    pulled = kilobox("copy", f"{ref}", "oci-archive:hello.tar", "--cert-dir", certs, cwd=tmp_path, env=env)
    assert pulled.stdout.strip() == pushed and (tmp_path / "hello.tar").stat().st_size > 0
    assert kilobox("digest", "--cert-dir", certs, ref, env=env).stdout.strip() == pushed
    assert kilobox("tags", "--cert-dir", certs, registry_tls.ref("demo/hello"), env=env).stdout.split() == ["1"]
    info = json.loads(kilobox("inspect", "--json", "--cert-dir", certs, ref, env=env).stdout)
    assert pushed in json.dumps(info)
    # the argparse path (a bare --tls-verify: the fast path leaves it to argparse) speaks TLS the same way
    again = kilobox("copy", "--json", "--cert-dir", certs, f"docker://{ref}", f"oci:{tmp_path / 'back'}:t",
                    "--tls-verify", env=env)
    assert json.loads(again.stdout)["digest"] == pushed


def test_certs_d_tree_from_the_environment(registry_tls, out_layout: Path, tmp_path: Path,
                                           env: dict[str, str]) -> None:
    """containers-certs.d(5): BASE/HOST:PORT/ca.crt, the first base that has the host wins."""
    empty, tree = tmp_path / "empty-base", tmp_path / "certs.d"
    empty.mkdir()
    registry_tls.pki.cert_dir(tree / registry_tls.host)
    env = {**env, "KILOBOX_CERTS_D": f"{empty}:{tree}"}
    ref = registry_tls.ref("demo/tree:1")
    pushed = kilobox("copy", "oci:./out:hello", f"docker://{ref}", cwd=tmp_path, env=env).stdout.strip()
    assert kilobox("digest", ref, env=env).stdout.strip() == pushed
    # a directory for the host in an earlier base, without the CA, hides the later one (first match wins)
    (empty / registry_tls.host).mkdir()
    line = failed(kilobox("digest", ref, env=env, check=False), 5)
    assert "certificate verify failed" in line


def test_skopeo_reads_what_kilobox_pushed_and_back(registry_tls, out_layout: Path, tmp_path: Path,
                                                   env: dict[str, str]) -> None:
    certs = str(registry_tls.pki.cert_dir(tmp_path / "certs"))
    ref = registry_tls.ref("demo/cross:1")
    pushed = kilobox("copy", "--cert-dir", certs, "oci:./out:hello", f"docker://{ref}", cwd=tmp_path,
                     env=env).stdout.strip()
    info = json.loads(skopeo("inspect", "--cert-dir", certs, f"docker://{ref}"))
    assert info["Digest"] == pushed
    # skopeo pushes (over the same TLS) what kilobox then pulls, digest unchanged
    skopeo("copy", "-q", f"--src-cert-dir={certs}", f"--dest-cert-dir={certs}", f"docker://{ref}",
           f"docker://{registry_tls.ref('demo/byskopeo:2')}")
    skopeo("copy", "-q", f"oci:{out_layout}:hello", f"docker://{registry_tls.ref('demo/fromlayout:3')}",
           f"--dest-cert-dir={certs}")
    for name in ("demo/byskopeo:2", "demo/fromlayout:3"):
        back = kilobox("copy", "--cert-dir", certs, registry_tls.ref(name), f"oci:{tmp_path / 'pulled'}:{name[5:9]}",
                       env=env)
        assert back.stdout.strip() == pushed


def test_without_the_ca(registry_tls, tmp_path: Path, env: dict[str, str]) -> None:
    ref = registry_tls.ref("demo/x:1")
    # TLS asked for, CA unknown: exit 5, one line naming the host, what failed, where the CA goes
    line = failed(kilobox("digest", "--tls-verify=true", ref, env=env, check=False), 5)
    assert registry_tls.host in line and "certificate verify failed" in line
    assert f"/etc/containers/certs.d/{registry_tls.host}/ca.crt" in line and "--cert-dir" in line
    # a cert dir without ca.crt changes nothing
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "certificate verify failed" in failed(kilobox("tags", "--cert-dir", str(empty),
                                                         registry_tls.ref("demo/x"), env=env, check=False), 5)
    # loopback without any TLS configuration is plain http: the registry answers 400, with a hint
    line = failed(kilobox("digest", ref, env=env, check=False), 5)
    assert "400" in line and "--cert-dir" in line


def test_tls_verify_false_skips_the_check(registry_tls, out_layout: Path, tmp_path: Path,
                                          env: dict[str, str]) -> None:
    ref = registry_tls.ref("demo/unverified:1")
    pushed = kilobox("copy", "--tls-verify=false", "oci:./out:hello", f"docker://{ref}", cwd=tmp_path,
                     env=env).stdout.strip()
    assert kilobox("digest", "--tls-verify", "false", ref, env=env).stdout.strip() == pushed
    pulled = kilobox("copy", "--tls-verify", "false", ref, f"oci:{tmp_path / 'p'}:t", env=env)
    assert pulled.stdout.strip() == pushed


def test_wrong_hostname(make_registry, tmp_path: Path, env: dict[str, str]) -> None:
    srv = make_registry(tls="wronghost")
    certs = str(srv.pki.cert_dir(tmp_path / "certs"))
    line = failed(kilobox("tags", "--cert-dir", certs, srv.ref("demo/x"), env=env, check=False), 5)
    assert "mismatch" in line and "127.0.0.1" in line and srv.host in line
    # --tls-verify=false does not check the name either (as skopeo)
    p = kilobox("tags", "--cert-dir", certs, "--tls-verify=false", srv.ref("demo/x"), env=env, check=False)
    assert p.returncode == 3 and "404" in p.stderr           # reached the registry: the repository is unknown


def test_plain_http_registry_is_never_used_for_https(registry, env: dict[str, str]) -> None:
    """Asked for TLS, a plain-http registry is an error, not a silent fall-back."""
    line = failed(kilobox("tags", "--tls-verify=false", registry.ref("demo/x"), env=env, check=False), 5)
    assert "TLS" in line and registry.host in line and "--insecure" in line


def test_mutual_tls(registry_mtls, out_layout: Path, tmp_path: Path, env: dict[str, str]) -> None:
    pki = registry_mtls.pki
    ref = registry_mtls.ref("demo/mtls:1")
    only_ca = str(pki.cert_dir(tmp_path / "only-ca"))
    line = failed(kilobox("copy", "--cert-dir", only_ca, "oci:./out:hello", f"docker://{ref}", cwd=tmp_path,
                          env=env, check=False), 5)
    assert "client certificate" in line and registry_mtls.host in line and "client.key" in line
    stranger = str(pki.cert_dir(tmp_path / "stranger", stranger=True))
    line = failed(kilobox("tags", "--cert-dir", stranger, registry_mtls.ref("demo/mtls"), env=env, check=False), 5)
    assert "refused the client certificate" in line
    with_client = str(pki.cert_dir(tmp_path / "client", client=True))
    pushed = kilobox("copy", "--cert-dir", with_client, "oci:./out:hello", f"docker://{ref}", cwd=tmp_path,
                     env=env).stdout.strip()
    # the same from a certs.d tree
    tree = tmp_path / "certs.d"
    pki.cert_dir(tree / registry_mtls.host, client=True)
    tree_env = {**env, "KILOBOX_CERTS_D": str(tree)}
    assert kilobox("digest", ref, env=tree_env).stdout.strip() == pushed
    assert kilobox("copy", ref, f"oci:{tmp_path / 'back'}:t", env=tree_env).stdout.strip() == pushed
    info = json.loads(skopeo("inspect", "--cert-dir", with_client, f"docker://{ref}"))
    assert info["Digest"] == pushed


def test_missing_key_and_garbage_ca_are_one_line(registry_tls, tmp_path: Path, env: dict[str, str]) -> None:
    d = registry_tls.pki.cert_dir(tmp_path / "d")
    (d / "client.cert").write_bytes(registry_tls.pki.client_crt.read_bytes())
    line = failed(kilobox("tags", "--cert-dir", str(d), registry_tls.ref("demo/x"), env=env, check=False), 5)
    assert str(d / "client.cert") in line and str(d / "client.key") in line
    g = tmp_path / "g"
    g.mkdir()
    (g / "ca.crt").write_bytes(b"\x00\x01 not a certificate")
    line = failed(kilobox("tags", "--cert-dir", str(g), registry_tls.ref("demo/x"), env=env, check=False), 5)
    assert str(g / "ca.crt") in line and "PEM" in line
    line = failed(kilobox("tags", "--cert-dir", str(tmp_path / "nope"), registry_tls.ref("demo/x"), env=env,
                          check=False), 2)
    assert "--cert-dir" in line and "not a directory" in line


def test_basic_auth_over_tls(make_registry, out_layout: Path, tmp_path: Path, env: dict[str, str]) -> None:
    """htpasswd Basic auth over https: the usual production setup."""
    srv = make_registry(auth="basic", tls="server")
    certs = str(srv.pki.cert_dir(tmp_path / "certs"))
    ref = srv.ref("sec/hello:1")
    secret = f"{srv.password}\n".encode()
    pushed = kilobox("copy", "--cert-dir", certs, "-u", srv.username, "--password-stdin", "oci:./out:hello",
                     f"docker://{ref}", cwd=tmp_path, env=env, input=secret).stdout.strip()
    line = failed(kilobox("tags", "--cert-dir", certs, srv.ref("sec/hello"), env=env, check=False), 6)
    assert "401" in line
    # login over TLS (its CA found through certs.d), then the stored credentials are used
    tree = tmp_path / "certs.d"
    srv.pki.cert_dir(tree / srv.host)
    tree_env = {**env, "KILOBOX_CERTS_D": str(tree)}
    auth = tmp_path / "auth.json"
    kilobox("login", "--authfile", str(auth), "-u", srv.username, "--password-stdin", srv.host, env=tree_env,
            input=secret)
    assert kilobox("digest", "--authfile", str(auth), ref, env=tree_env).stdout.strip() == pushed
    wrong = kilobox("digest", "--cert-dir", certs, "-u", srv.username, "--password-stdin", ref, env=env,
                    input=b"wrong\n", check=False)
    assert "401" in failed(wrong, 6)
