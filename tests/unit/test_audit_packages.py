"""Package readers (dpkg, apk, Python, Go, Rust) and purls, including hostile databases."""

from __future__ import annotations

import json
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from kilobox.audit.packages import Package, find_packages
from tests.fixtures.debian import scan_of, static_elf, tar_of
from tests.fixtures.toolchain import make_elf
from tests.unit.test_audit_elf import go_blob

DPKG = b"""Package: nginx-light
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1.22.1-9+deb12u1
Maintainer: Debian Nginx Maintainers <pkg-nginx-maintainers@alioth-lists.debian.net>
Description: nginx web/proxy server (basic version)
 This package provides a very light version of nginx.
 .
 More lines.

Package: removed-pkg
Status: deinstall ok config-files
Version: 1.0

Package: passwd
Status: install ok installed
Architecture: amd64
Version: 1:4.13+dfsg1-1+deb12u1
"""
APK = b"C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\n\nP:busybox\nV:1.36.1-r5\nA:x86_64\n\n"
METADATA = b"Metadata-Version: 2.1\nName: Requests_Toolbelt\nVersion: 1.0.0\nLicense: Apache 2.0\n\nbody"


def test_all_package_sources_and_purls():
    rust = zlib.compress(json.dumps({"packages": [{"name": "ripgrep", "version": "14.1.0", "root": True}]}).encode())
    s = scan_of(tar_of({
        "etc/os-release": b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        "var/lib/dpkg/status": DPKG, "lib/apk/db/installed": APK,
        "usr/lib/python3/dist-packages/requests_toolbelt-1.0.0.dist-info/METADATA": METADATA,
        "usr/bin/goapp": ("file", static_elf(go_blob()), 0o755),
        "usr/bin/rg": ("file", make_elf(sections={".dep-v0": rust}), 0o755),
    }))
    pk = {(p.type, p.name): p for p in find_packages(s)}
    assert pk[("deb", "nginx-light")].version == "1.22.1-9+deb12u1"
    assert pk[("deb", "nginx-light")].purl == "pkg:deb/debian/nginx-light@1.22.1-9%2Bdeb12u1?arch=amd64"
    assert pk[("deb", "passwd")].purl == "pkg:deb/debian/passwd@1%3A4.13%2Bdfsg1-1%2Bdeb12u1?arch=amd64"
    assert ("deb", "removed-pkg") not in pk
    assert pk[("apk", "musl")].purl == "pkg:apk/debian/musl@1.2.4-r2?arch=x86_64" and pk[("apk", "musl")].license == "MIT"
    assert pk[("pypi", "Requests_Toolbelt")].purl == "pkg:pypi/requests-toolbelt@1.0.0"
    assert pk[("golang", "example.com/app")].purl == "pkg:golang/example.com/app@v1.2.3"
    assert pk[("golang", "golang.org/x/net")].found_in == "/usr/bin/goapp"
    assert pk[("golang", "stdlib")].version == "1.22.1"
    assert pk[("cargo", "ripgrep")].purl == "pkg:cargo/ripgrep@14.1.0"


def test_distroless_status_d():
    s = scan_of(tar_of({"var/lib/dpkg/status.d/base": b"Package: base-files\nVersion: 12.4\nArchitecture: amd64\n"}))
    [p] = find_packages(s)
    assert (p.name, p.version, p.type) == ("base-files", "12.4", "deb")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_hostile_databases_never_raise(junk):
    s = scan_of(tar_of({"var/lib/dpkg/status": junk, "lib/apk/db/installed": junk, "etc/os-release": junk,
                        "usr/lib/python3.11/site-packages/x-1.dist-info/METADATA": junk}))
    for p in find_packages(s):
        assert isinstance(p, Package) and p.purl.startswith("pkg:")


def test_hostile_names_make_purls_that_parse_back():
    """Names, versions, arches and distro ids with purl syntax in them are quoted, never injected."""
    from packageurl import PackageURL
    evil = b"Package: a/b?c#d@e f\nStatus: install ok installed\nVersion: 1:2.0+x~y#z?q\nArchitecture: amd64?x=1\n"
    s = scan_of(tar_of({"etc/os-release": b'ID="../evil id"\n', "var/lib/dpkg/status": evil,
                        "lib/apk/db/installed": b"P:../../x\nV:1@2\nA:a#b\n\n"}))
    pk = {(p.type, p.name): p for p in find_packages(s)}
    deb, apk = pk[("deb", "a/b?c#d@e f")], pk[("apk", "../../x")]
    for p in (deb, apk):
        u = PackageURL.from_string(p.purl)
        assert (u.type, u.namespace, u.name, u.version, u.qualifiers) == \
            (p.type, "../evil id", p.name, p.version, {"arch": p.arch})


def test_oversized_databases_are_bounded():
    """100,000+ paragraphs, megabyte lines, NULs: bounded output, field lengths capped, no exception."""
    many = b"".join(b"Package: p%d\nVersion: 1\n\n" % i for i in range(100_050))
    long_line = b"Package: " + b"x" * (1 << 20) + b"\nVersion: " + b"9" * (1 << 20) + b"\n\n"
    s = scan_of(tar_of({"var/lib/dpkg/status": many, "var/lib/dpkg/status.d/long": long_line,
                        "lib/apk/db/installed": b"P:\x00\nV:\x00\n\n" * 1000}))
    pkgs = find_packages(s)
    debs = [p for p in pkgs if p.type == "deb"]
    assert 100_000 <= len(debs) <= 100_001
    assert all(len(p.name) <= 200 and len(p.version) <= 100 for p in pkgs)
