"""TLS for registries: certificate directories (containers-certs.d(5)), ``--cert-dir``, ``--tls-verify``.

Where a registry's certificates are found (skopeo, podman and buildah follow the same rules;
Docker's ``/etc/docker/certs.d`` has the same layout):

- ``--cert-dir DIR`` (``Options.cert_dir``): that directory, for every registry of the command;
- otherwise the first directory named after the registry (``HOST`` or ``HOST:PORT``, exactly as
  the image reference spells it) under, in this order,
  ``$XDG_CONFIG_HOME/containers/certs.d`` (``~/.config/containers/certs.d``),
  ``/etc/containers/certs.d`` and ``/etc/docker/certs.d`` — or under the colon-separated list in
  ``$KILOBOX_CERTS_D``, which replaces these three.

In the directory every ``*.crt`` is a CA certificate (PEM) trusted besides the system's roots;
``NAME.cert`` with ``NAME.key`` is a client certificate for mutual TLS (the first pair in name
order). A ``.cert`` without its ``.key`` (or the reverse), an unreadable or oversized file, or a
file that is not PEM is a :class:`~kilobox.errors.RegistryError` naming the file.

``--tls-verify=false`` (``Options.tls_verify = False``) still speaks https but does not check the
registry's certificate. A loopback registry (``127.0.0.1``, ``localhost``) is reached over plain
http unless TLS was configured for it: a certificate directory, or ``--tls-verify`` given.

:mod:`ssl` is imported only when a context is built (the first https connection); one context
per (verification, directory contents) per process.
"""

from __future__ import annotations

import os

from ...errors import RegistryError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Mapping, Sequence

ENV_CERTS_D = "KILOBOX_CERTS_D"
SYSTEM_CERTS_D = ("/etc/containers/certs.d", "/etc/docker/certs.d")
MAX_FILE = 1 << 20          # a CA bundle is a few hundred KiB at most
MAX_ENTRIES = 1000          # names in one certificate directory
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_PAIR_HINT = "a client certificate is a pair NAME.cert + NAME.key; CA certificates end in .crt"


class TLSSettings:
    """How one registry is reached over TLS: its certificate directory and whether to verify."""

    __slots__ = ("cert_dir", "verify", "configured")

    def __init__(self, cert_dir: str | None = None, verify: bool = True, configured: bool = False) -> None:
        self.cert_dir = cert_dir          # the directory in use, or None (system roots only)
        self.verify = verify              # False: --tls-verify=false
        self.configured = configured      # TLS was asked for (a directory, or --tls-verify given)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TLSSettings):
            return NotImplemented
        return (self.cert_dir, self.verify, self.configured) == (other.cert_dir, other.verify, other.configured)

    def __repr__(self) -> str:
        return f"TLSSettings(cert_dir={self.cert_dir!r}, verify={self.verify!r}, configured={self.configured!r})"


class CertFiles:
    """What a certificate directory holds: CA files and at most one client pair (paths)."""

    __slots__ = ("directory", "cas", "client")

    def __init__(self, directory: str, cas: tuple[str, ...], client: tuple[str, str] | None) -> None:
        self.directory = directory
        self.cas = cas
        self.client = client

    def __repr__(self) -> str:
        return f"CertFiles(directory={self.directory!r}, cas={self.cas!r}, client={self.client!r})"


# -- where ---------------------------------------------------------------------------------------
def certs_d_bases(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The base directories searched for ``HOST[:PORT]/``, first match wins."""
    env = os.environ if environ is None else environ
    override = env.get(ENV_CERTS_D)
    if override is not None:
        return tuple(p for p in override.split(":") if p)
    config = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return (os.path.join(config, "containers", "certs.d"), *SYSTEM_CERTS_D)


def _usable_name(host: str) -> bool:
    return bool(host) and host not in (".", "..") and "/" not in host and "\0" not in host and len(host) <= 300


def find_cert_dir(hosts: Sequence[str], bases: Sequence[str]) -> str | None:
    """The first ``BASE/HOST`` that is a directory (bases in order, then host names in order)."""
    for base in bases:
        for host in hosts:
            if _usable_name(host):
                d = os.path.join(base, host)
                if os.path.isdir(d):
                    return d
    return None


def settings_for(registry: str, api_host: str, cert_dir: str | None = None,
                 tls_verify: bool | None = None, environ: Mapping[str, str] | None = None) -> TLSSettings:
    """The :class:`TLSSettings` of a registry (``--cert-dir`` wins over the certs.d directories)."""
    if cert_dir:
        if not os.path.isdir(cert_dir):
            raise UsageError(f"--cert-dir {cert_dir}: not a directory",
                             hint="give a directory holding the registry's ca.crt (and client.cert/client.key)")
        found: str | None = cert_dir
    else:
        names = (registry,) if api_host == registry else (registry, api_host)
        found = find_cert_dir(names, certs_d_bases(environ))
    return TLSSettings(found, tls_verify is not False, found is not None or tls_verify is not None)


# -- what ----------------------------------------------------------------------------------------
def scan_cert_dir(directory: str) -> CertFiles:
    """The ``*.crt`` files and the client pair of *directory* (names only checked, nothing read)."""
    try:
        names = os.listdir(directory)
    except OSError as e:
        raise RegistryError(f"cannot read the certificate directory {directory} ({_exc(e)})",
                            hint="make it readable, or remove it") from None
    if len(names) > MAX_ENTRIES:
        raise RegistryError(f"the certificate directory {directory} has more than {MAX_ENTRIES} entries")
    names.sort()
    present = set(names)
    for n in names:
        if n.endswith(".cert") and n[:-5] + ".key" not in present:
            raise RegistryError(f"client certificate {os.path.join(directory, n)} has no key "
                                f"{os.path.join(directory, n[:-5] + '.key')}", hint=_PAIR_HINT)
        if n.endswith(".key") and n[:-4] + ".cert" not in present:
            raise RegistryError(f"client key {os.path.join(directory, n)} has no certificate "
                                f"{os.path.join(directory, n[:-4] + '.cert')}", hint=_PAIR_HINT)
    cas = tuple(os.path.join(directory, n) for n in names if n.endswith(".crt"))
    pairs = [n[:-5] for n in names if n.endswith(".cert")]
    client = (os.path.join(directory, pairs[0] + ".cert"), os.path.join(directory, pairs[0] + ".key")) \
        if pairs else None
    return CertFiles(directory, cas, client)


def read_file(path: str, what: str) -> bytes:
    """The bytes of a small regular file (a FIFO or a device is refused, never opened for long)."""
    import stat
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise RegistryError(f"{what} {path} is not a regular file", hint="remove it from the directory")
        if st.st_size > MAX_FILE:
            raise RegistryError(f"{what} {path} is larger than {MAX_FILE} bytes")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)
        with open(fd, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError as e:
        raise RegistryError(f"cannot read {what} {path} ({_exc(e)})", hint="make it readable, or remove it") from None
    if len(data) > MAX_FILE:
        raise RegistryError(f"{what} {path} is larger than {MAX_FILE} bytes")
    return data


def pem_text(data: bytes, path: str, what: str) -> str:
    """*data* as the ASCII text of PEM blocks, or a one-line error naming *path*."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    if "-----BEGIN " not in text:
        raise RegistryError(f"{what} {path} is not a PEM file (no '-----BEGIN' line)",
                            hint="convert it: openssl x509 -inform der -in FILE -out FILE.crt")
    return text


# -- the SSL context -----------------------------------------------------------------------------
_CONTEXTS: dict[tuple[object, ...], object] = {}


def context(settings: TLSSettings) -> object:
    """The :class:`ssl.SSLContext` for *settings*, one per (verify, directory contents) per process."""
    files = scan_cert_dir(settings.cert_dir) if settings.cert_dir else None
    cas: list[tuple[str, str]] = []
    key: list[object] = [settings.verify]
    if files is not None:
        import hashlib
        for path in files.cas:
            text = pem_text(read_file(path, "CA certificate"), path, "CA certificate")
            cas.append((path, text))
            key.append(hashlib.sha256(text.encode()).hexdigest())
        if files.client:
            cert_path, key_path = files.client
            cert = read_file(cert_path, "client certificate")
            pk = read_file(key_path, "client key")
            pem_text(cert, cert_path, "client certificate")
            if b"ENCRYPTED" in pem_text(pk, key_path, "client key").encode():
                raise RegistryError(f"client key {key_path} is encrypted (a passphrase cannot be asked for)",
                                    hint=f"decrypt it: openssl pkey -in {key_path} -out {key_path}")
            key.append(("client", hashlib.sha256(cert).hexdigest(), hashlib.sha256(pk).hexdigest()))
    k = tuple(key)
    ctx = _CONTEXTS.get(k)
    if ctx is None:
        ctx = _CONTEXTS[k] = _build(settings.verify, cas, files.client if files else None)
    return ctx


def _build(verify: bool, cas: list[tuple[str, str]], client: tuple[str, str] | None) -> object:
    import ssl
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for path, text in cas:
        try:
            ctx.load_verify_locations(cadata=text)
        except (ssl.SSLError, ValueError) as e:
            raise RegistryError(f"CA certificate {path} cannot be loaded ({_ssl_reason(e)})",
                                hint="it must hold PEM certificates ('-----BEGIN CERTIFICATE-----')") from None
    if client:
        cert_path, key_path = client
        try:
            ctx.load_cert_chain(cert_path, key_path, password=_no_passphrase)
        except (ssl.SSLError, OSError, ValueError) as e:
            raise RegistryError(f"client certificate {cert_path} with key {key_path} cannot be loaded "
                                f"({_ssl_reason(e)})", hint="are they PEM, and is the key the certificate's?") from None
    return ctx


def _no_passphrase() -> bytes:
    return b""


# -- errors --------------------------------------------------------------------------------------
def is_tls_error(e: BaseException) -> bool:
    """True for an exception of :mod:`ssl` (checked without importing it)."""
    import sys
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(e, ssl.SSLError)


#: alerts a server sends about the client's certificate (or its absence)
_CLIENT_CERT_ALERTS = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN",
                       "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED", "ACCESS_DENIED")
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
            "RECORD_TOO_LARGE")


def tls_error(e: BaseException, where: str, netloc: str, registry: str, settings: TLSSettings) -> RegistryError:
    """The one-line :class:`RegistryError` for a failed TLS exchange with *netloc*."""
    import ssl
    head = f"{where}: cannot connect to {netloc}"
    where_ca = f"/etc/containers/certs.d/{registry}/ca.crt"
    if isinstance(e, ssl.SSLCertVerificationError):
        what = (e.verify_message or _ssl_reason(e)).rstrip(".")
        if e.verify_code in (62, 64) or "mismatch" in what.lower():   # X509_V_ERR_{HOSTNAME,IP_ADDRESS}_MISMATCH
            return RegistryError(f"{head}: certificate verify failed: {what}",
                                 hint=f"the registry's certificate does not name {_host(netloc)}: reissue it with "
                                      "that name in subjectAltName, or use a name it has")
        return RegistryError(f"{head}: certificate verify failed: {what}",
                             hint=f"put the registry's CA in {where_ca}, or --cert-dir DIR (--tls-verify=false "
                                  "skips the check; --insecure HOST uses plain http)")
    reason = str(getattr(e, "reason", "") or "").upper()
    detail = _ssl_reason(e)
    client = _client_cert(settings)
    if any(a in reason for a in _CLIENT_CERT_ALERTS):
        if client:
            return RegistryError(f"{head}: the registry refused the client certificate ({detail})",
                                 hint=f"is {client[0]} signed by a CA the registry trusts, and still valid?")
        return RegistryError(f"{head}: the registry asks for a client certificate ({detail})",
                             hint=f"put client.cert and client.key in /etc/containers/certs.d/{registry}/, "
                                  "or in --cert-dir DIR")
    if isinstance(e, ssl.SSLEOFError) or "UNEXPECTED_EOF" in reason:   # closed without an alert
        return RegistryError(f"{head}: the registry ended the TLS connection ({detail})",
                             hint=f"it may have refused the client certificate {client[0]}" if client else
                             "it may require a client certificate: put client.cert and client.key in "
                             f"/etc/containers/certs.d/{registry}/ or in --cert-dir DIR")
    if any(a in reason for a in _NOT_TLS):
        return RegistryError(f"{head}: it does not answer in TLS ({detail})",
                             hint="is it a plain-http registry? then use --insecure HOST")
    return RegistryError(f"{head}: TLS failed ({detail})",
                         hint="a registry without TLS needs --insecure HOST; a private CA goes in "
                              f"{where_ca} or --cert-dir DIR")


def _client_cert(settings: TLSSettings) -> tuple[str, str] | None:
    """The client pair *settings* sends, if any (the directory was scanned before: no new error here)."""
    if not settings.cert_dir:
        return None
    try:
        return scan_cert_dir(settings.cert_dir).client
    except RegistryError:
        return None


def _host(netloc: str) -> str:
    from .http11 import split_netloc
    try:
        return split_netloc(netloc, 443)[0]
    except ValueError:
        return netloc


def _ssl_reason(e: BaseException) -> str:
    """A short text for an :mod:`ssl` error (OpenSSL's reason and message, without the source line)."""
    text = str(getattr(e, "strerror", "") or "") or (str(e.args[1]) if len(getattr(e, "args", ())) > 1 else str(e))
    text = text.split(" (_ssl.c:", 1)[0].strip()
    return " ".join(text.split())[:200] or type(e).__name__


def _exc(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def reset_contexts() -> None:
    """Forget the cached contexts (tests)."""
    _CONTEXTS.clear()


__all__ = ["TLSSettings", "CertFiles", "settings_for", "certs_d_bases", "find_cert_dir", "scan_cert_dir",
           "context", "tls_error", "is_tls_error", "ENV_CERTS_D"]
