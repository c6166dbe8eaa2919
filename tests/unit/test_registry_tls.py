"""TLS configuration: certs.d discovery, cert-dir scanning and loading (hostile files), the scheme rule,
the CLI flags, and that nothing imports :mod:`ssl` before an https request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kilobox.errors import RegistryError, UsageError
from kilobox.formats import Options
from kilobox.formats.registry import tls
from kilobox.formats.registry.client import RegistryClient, get_client, reset_clients


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No certs.d of the machine or the user: an empty override list unless a test sets one."""
    monkeypatch.setenv(tls.ENV_CERTS_D, str(tmp_path / "no-certs.d"))
    reset_clients()
    yield
    reset_clients()


def one_line(e: BaseException) -> str:
    text = str(e)
    assert "\n" not in text and "Traceback" not in text and len(text) < 400, text
    return text


# -- where -----------------------------------------------------------------------------------------
def test_bases_default_and_override() -> None:
    env = {"HOME": "/home/u"}
    assert tls.certs_d_bases(env) == ("/home/u/.config/containers/certs.d", "/etc/containers/certs.d",
                                      "/etc/docker/certs.d")
    env["XDG_CONFIG_HOME"] = "/cfg"
    assert tls.certs_d_bases(env)[0] == "/cfg/containers/certs.d"
    assert tls.certs_d_bases({tls.ENV_CERTS_D: "/a::/b:", "HOME": "/h"}) == ("/a", "/b")
    assert tls.certs_d_bases({tls.ENV_CERTS_D: ""}) == ()          # set but empty: no directory at all


def test_find_cert_dir_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    (b / "reg.example:5000").mkdir(parents=True)
    (b / "reg.example").mkdir()
    (a / "api.example").mkdir(parents=True)
    (a / "reg.example:5000.txt").mkdir()
    assert tls.find_cert_dir(["reg.example:5000"], [str(a), str(b)]) == str(b / "reg.example:5000")
    # the port must match exactly (containers-certs.d(5)): no fallback from HOST:PORT to HOST
    assert tls.find_cert_dir(["reg.example:443"], [str(a), str(b)]) is None
    # bases first: an earlier base wins even for the second name
    assert tls.find_cert_dir(["reg.example", "api.example"], [str(a), str(b)]) == str(a / "api.example")
    (a / "file-host").write_text("not a directory")
    assert tls.find_cert_dir(["file-host"], [str(a)]) is None


@pytest.mark.parametrize("host", ["", ".", "..", "a/../../etc", "x\0y", "h" * 400])
def test_find_cert_dir_refuses_strange_names(tmp_path: Path, host: str) -> None:
    (tmp_path / "base").mkdir()
    assert tls.find_cert_dir([host], [str(tmp_path / "base")]) is None


def test_settings(tmp_path: Path) -> None:
    base = tmp_path / "certs.d"
    (base / "127.0.0.1:5000").mkdir(parents=True)
    env = {tls.ENV_CERTS_D: str(base)}
    assert tls.settings_for("127.0.0.1:5000", "127.0.0.1:5000", environ=env) == \
        tls.TLSSettings(str(base / "127.0.0.1:5000"), True, True)
    assert tls.settings_for("127.0.0.1:5001", "127.0.0.1:5001", environ=env) == tls.TLSSettings(None, True, False)
    assert tls.settings_for("h", "h", tls_verify=True, environ=env) == tls.TLSSettings(None, True, True)
    assert tls.settings_for("h", "h", tls_verify=False, environ=env) == tls.TLSSettings(None, False, True)
    # --cert-dir replaces the lookup, for every registry
    own = tmp_path / "own"
    own.mkdir()
    assert tls.settings_for("127.0.0.1:5000", "127.0.0.1:5000", str(own), environ=env).cert_dir == str(own)
    with pytest.raises(UsageError, match="--cert-dir .*missing: not a directory") as ei:
        tls.settings_for("h", "h", str(tmp_path / "missing"))
    one_line(ei.value)


# -- the scheme rule -------------------------------------------------------------------------------
def test_loopback_uses_https_only_when_tls_is_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "certs.d"
    (base / "127.0.0.1:5000").mkdir(parents=True)
    (base / "reg.example:5000").mkdir(parents=True)
    monkeypatch.setenv(tls.ENV_CERTS_D, str(base))

    def scheme(host: str, **kw: object) -> str:
        return RegistryClient(host, host, Options(**kw)).endpoint.scheme  # type: ignore[arg-type]

    assert scheme("127.0.0.1:5000") == "https"                  # a certs.d entry for it
    assert scheme("127.0.0.1:5001") == "http"                   # none: loopback stays plain http
    assert scheme("localhost:5001", tls_verify=True) == "https"
    assert scheme("[::1]:5001", tls_verify=False) == "https"    # still https, just unverified
    assert scheme("127.0.0.1:5001", cert_dir=str(base)) == "https"
    assert scheme("127.0.0.1:5000", insecure=("127.0.0.1:5000",)) == "http"   # named --insecure wins
    assert scheme("reg.example:5000", insecure=("reg.example",), tls_verify=True) == "http"
    assert scheme("reg.example:5000") == "https" and scheme("reg.example:5001") == "https"


def test_clients_differ_by_tls_options(tmp_path: Path) -> None:
    a = get_client("127.0.0.1:5000", "127.0.0.1:5000", Options())
    b = get_client("127.0.0.1:5000", "127.0.0.1:5000", Options(tls_verify=False))
    c = get_client("127.0.0.1:5000", "127.0.0.1:5000", Options(cert_dir=str(tmp_path)))
    assert len({id(a), id(b), id(c)}) == 3
    assert get_client("127.0.0.1:5000", "127.0.0.1:5000", Options(tls_verify=False)) is b


# -- what a directory holds (names) ----------------------------------------------------------------
def test_scan_pairs_and_order(tmp_path: Path) -> None:
    for n in ("z.crt", "a.crt", "b.cert", "b.key", "a.cert", "a.key", "README", "ca.pem", "sub"):
        (tmp_path / n).mkdir() if n == "sub" else (tmp_path / n).write_text("x")
    files = tls.scan_cert_dir(str(tmp_path))
    assert files.cas == (str(tmp_path / "a.crt"), str(tmp_path / "z.crt"))
    assert files.client == (str(tmp_path / "a.cert"), str(tmp_path / "a.key"))      # the first pair by name


def test_scan_empty_dir(tmp_path: Path) -> None:
    files = tls.scan_cert_dir(str(tmp_path))
    assert (files.cas, files.client) == ((), None)


def test_cert_without_key_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "client.cert").write_text("x")
    with pytest.raises(RegistryError) as ei:
        tls.scan_cert_dir(str(tmp_path))
    text = one_line(ei.value)
    assert str(tmp_path / "client.cert") in text and str(tmp_path / "client.key") in text
    assert ".crt" in (ei.value.hint or "")


def test_key_without_cert(tmp_path: Path) -> None:
    (tmp_path / "client.key").write_text("x")
    with pytest.raises(RegistryError, match="client key .*client.key has no certificate .*client.cert") as ei:
        tls.scan_cert_dir(str(tmp_path))
    one_line(ei.value)


def test_scan_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(RegistryError, match="cannot read the certificate directory") as ei:
        tls.scan_cert_dir(str(tmp_path / "f"))
    one_line(ei.value)


# -- loading (contents) ----------------------------------------------------------------------------
def _ctx(d: Path, verify: bool = True) -> object:
    return tls.context(tls.TLSSettings(str(d), verify, True))


def test_context_trusts_the_crt_files_and_is_cached(tls_pki, tmp_path: Path) -> None:
    import ssl
    d = tls_pki.cert_dir(tmp_path / "d", client=True)
    ctx = _ctx(d)
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert any(c["subject"] == ((("commonName", "kilobox test ca"),),) for c in ctx.get_ca_certs())
    assert _ctx(d) is ctx                                    # same contents: same context
    copy = tls_pki.cert_dir(tmp_path / "copy", client=True)
    assert _ctx(copy) is ctx                                 # keyed on contents, not on the path
    (d / "extra.crt").write_bytes(tls_pki.client_ca.read_bytes())
    assert _ctx(d) is not ctx                                # contents changed: a new context
    off = _ctx(d, verify=False)
    assert off.verify_mode == ssl.CERT_NONE and not off.check_hostname  # type: ignore[attr-defined]
    assert tls.context(tls.TLSSettings()) is tls.context(tls.TLSSettings())   # the system roots, once


@pytest.mark.parametrize("content", [b"", b"garbage", b"\xff\xfe\x00binary", b"-----BEGIN CERTIFICATE-----\nAAAA\n",
                                     b"-----BEGIN CERTIFICATE-----\n" + b"A" * 64 + b"\n-----END CERTIFICATE-----\n"])
def test_garbage_crt_is_one_line(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "ca.crt").write_bytes(content)
    with pytest.raises(RegistryError) as ei:
        _ctx(tmp_path)
    assert str(tmp_path / "ca.crt") in one_line(ei.value)


def test_crt_that_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "dir.crt").mkdir()
    with pytest.raises(RegistryError, match="not a regular file"):
        _ctx(tmp_path)


def test_crt_that_is_a_fifo_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "ca.crt")
    with pytest.raises(RegistryError, match="not a regular file"):
        _ctx(tmp_path)


def test_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").symlink_to(tmp_path / "nowhere")
    with pytest.raises(RegistryError, match="cannot read CA certificate") as ei:
        _ctx(tmp_path)
    one_line(ei.value)


def test_oversized_crt(tmp_path: Path) -> None:
    with open(tmp_path / "ca.crt", "wb") as f:
        f.truncate(tls.MAX_FILE + 1)
    with pytest.raises(RegistryError, match="larger than"):
        _ctx(tmp_path)


def test_key_of_another_certificate(tls_pki, tmp_path: Path) -> None:
    d = tls_pki.cert_dir(tmp_path / "d")
    (d / "client.cert").write_bytes(tls_pki.client_crt.read_bytes())
    (d / "client.key").write_bytes(tls_pki.stranger_key.read_bytes())
    with pytest.raises(RegistryError, match="client certificate .*client.cert with key .*client.key cannot be "
                                            "loaded") as ei:
        _ctx(d)
    one_line(ei.value)


@pytest.mark.parametrize("key", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_garbage_client_key(tls_pki, tmp_path: Path, key: bytes) -> None:
    (tmp_path / "client.cert").write_bytes(tls_pki.client_crt.read_bytes())
    (tmp_path / "client.key").write_bytes(key)
    with pytest.raises(RegistryError) as ei:
        _ctx(tmp_path)
    assert "client.key" in one_line(ei.value)


def test_encrypted_client_key_never_prompts(tls_pki, tmp_path: Path) -> None:
    (tmp_path / "client.cert").write_bytes(tls_pki.client_crt.read_bytes())
    subprocess.run(["openssl", "pkey", "-in", str(tls_pki.client_key), "-aes256", "-passout", "pass:secret",
                    "-out", str(tmp_path / "client.key")], check=True, capture_output=True)
    with pytest.raises(RegistryError, match="is encrypted") as ei:
        _ctx(tmp_path)
    one_line(ei.value)


# -- errors of a TLS exchange ----------------------------------------------------------------------
def _verify_error(code: int, message: str) -> Exception:
    import ssl
    e = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message} "
                                        "(_ssl.c:1006)")
    e.verify_code, e.verify_message, e.reason = code, message, "CERTIFICATE_VERIFY_FAILED"
    return e


def test_tls_error_messages() -> None:
    s = tls.TLSSettings()
    e = tls.tls_error(_verify_error(19, "self-signed certificate in certificate chain"), "GET /v2/", "10.0.0.1:5000",
                      "reg:5000", s)
    assert one_line(e) == ("GET /v2/: cannot connect to 10.0.0.1:5000: certificate verify failed: self-signed "
                           "certificate in certificate chain")
    assert "/etc/containers/certs.d/reg:5000/ca.crt" in (e.hint or "") and "--cert-dir" in (e.hint or "")
    e = tls.tls_error(_verify_error(64, "IP address mismatch, certificate is not valid for '10.0.0.1'."),
                      "GET /v2/", "10.0.0.1:5000", "10.0.0.1:5000", s)
    assert "mismatch" in one_line(e) and "10.0.0.1" in (e.hint or "") and "subjectAltName" in (e.hint or "")
    import ssl
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required (_ssl.c:2580)")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    e = tls.tls_error(alert, "GET /v2/", "h:1", "h:1", s)
    assert "asks for a client certificate" in one_line(e) and "client.cert" in (e.hint or "")
    plain = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    plain.reason = "WRONG_VERSION_NUMBER"
    e = tls.tls_error(plain, "GET /v2/", "h:1", "h:1", s)
    assert "does not answer in TLS" in one_line(e) and "--insecure" in (e.hint or "")
    assert tls.is_tls_error(plain) and not tls.is_tls_error(OSError("x"))


# -- the CLI ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["copy", "build", "inspect", "digest", "tags", "unpack", "audit", "sbom",
                                     "diff", "compare"])
def test_every_registry_command_has_the_flags(command: str) -> None:
    from kilobox.cli import build_parser
    sub = build_parser(command)._subparsers._group_actions[0].choices[command]   # type: ignore[union-attr]
    flags = {o for a in sub._actions for o in a.option_strings}
    assert {"--cert-dir", "--tls-verify", "--insecure"} <= flags


@pytest.mark.parametrize("argv,cert_dir,verify", [
    (["copy", "a", "b"], None, None),
    (["copy", "--tls-verify=false", "a", "b"], None, False),
    (["copy", "--tls-verify", "false", "a", "b"], None, False),
    (["copy", "--tls-verify", "TRUE", "a", "b"], None, True),
    (["copy", "a", "b", "--tls-verify"], None, True),
    (["copy", "--cert-dir", "/d", "a", "b", "--tls-verify=0"], "/d", False),
    (["copy", "--cert-dir=/d", "a", "b"], "/d", None),
])
def test_copy_flags_fast_path_and_parser_agree(argv: list[str], cert_dir: str | None, verify: bool | None) -> None:
    from kilobox.cli import build_parser
    from kilobox.cli._common import options_from
    from kilobox.cli.copy_cmd import parse_fast
    full = build_parser("copy").parse_args(argv)
    assert (full.src, full.dst, full.cert_dir, full.tls_verify) == ("a", "b", cert_dir, verify)
    o = options_from(full)
    assert (o.cert_dir, o.tls_verify) == (cert_dir, verify)
    fast = parse_fast(argv)
    if fast is not None:             # the fast path may leave a spelling to argparse, never read it differently
        assert (fast.src, fast.dst, fast.cert_dir, fast.tls_verify) == ("a", "b", cert_dir, verify)


@pytest.mark.parametrize("argv", [["copy", "--tls-verify", "a", "b"], ["copy", "a", "b", "--tls-verify"],
                                  ["copy", "--tls-verify=maybe", "a", "b"], ["copy", "--tls-verify=1", "--tls-verify=0",
                                                                             "a", "b"]])
def test_fast_path_leaves_odd_spellings_to_argparse(argv: list[str]) -> None:
    from kilobox.cli.copy_cmd import parse_fast
    assert parse_fast(argv) is None


@pytest.mark.parametrize("argv", [["copy", "--tls-verify", "a", "b"], ["copy", "--tls-verify=maybe", "a", "b"]])
def test_bad_tls_verify_is_a_usage_error(argv: list[str]) -> None:
    from kilobox.cli import build_parser
    with pytest.raises(UsageError, match="expected true or false") as ei:
        build_parser("copy").parse_args(argv)
    one_line(ei.value)


def test_no_ssl_import_for_the_cli_or_a_plain_http_registry() -> None:
    code = ("import sys\nfrom kilobox.cli import main\nmain(['--version'])\nassert 'ssl' not in sys.modules\n"
            "from kilobox.cli import build_parser\nfrom kilobox.cli._common import options_from\n"
            "args = build_parser('copy').parse_args(['copy', '--cert-dir', '/', 'a', 'b'])\nopts = options_from(args)\n"
            "from kilobox.formats.registry.client import get_client\nc = get_client('127.0.0.1:5', '127.0.0.1:5', "
            "type(opts)())\nassert c.endpoint.scheme == 'http'\nassert 'ssl' not in sys.modules, 'ssl imported'\n"
            "print('lean')")
    env = dict(os.environ, KILOBOX_CERTS_D="")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip().endswith("lean"), out.stderr
