"""Locations in skopeo's spelling: oci:, oci-archive:, docker-archive:, docker://, bare REF."""

from __future__ import annotations

import pytest

from kilobox.errors import ReferenceError_
from kilobox.transports import Location

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,transport,path,tag", [
    ("oci:./out:hello", "oci", "./out", "hello"),
    ("oci:/abs/dir", "oci", "/abs/dir", ""),
    (f"oci:lay:{D}", "oci", "lay", D),
    ("oci-archive:hello.tar", "oci-archive", "hello.tar", ""),
    ("oci-archive:hello.tar:v1", "oci-archive", "hello.tar", "v1"),
    ("docker-archive:app.tar:repo/app:1", "docker-archive", "app.tar", "repo/app:1"),
])
def test_file_transports(text: str, transport: str, path: str, tag: str) -> None:
    loc = Location.parse(text)
    assert (loc.transport, loc.path, loc.tag, loc.ref) == (transport, path, tag, None)
    assert str(loc) == text


@pytest.mark.parametrize("text,ref", [
    ("docker://alpine", "docker.io/library/alpine:latest"),
    ("127.0.0.1:5000/demo/hello:1", "127.0.0.1:5000/demo/hello:1"),
    ("alpine", "docker.io/library/alpine:latest"),
    ("foo:bar", "docker.io/library/foo:bar"),            # an unknown "transport" is a repo:tag
])
def test_registry(text: str, ref: str) -> None:
    loc = Location.parse(text)
    assert loc.transport == "docker" and str(loc.ref) == ref
    assert str(loc) == f"docker://{ref}"


@pytest.mark.parametrize("text", [
    "", "oci:", "oci-archive:", "docker-archive:", "docker://", "docker://UPPER", "dir:/x",
    "docker-daemon:alpine", "containers-storage:alpine", "OCI:x", "://x", "docker:///x",
])
def test_rejects(text: str) -> None:
    with pytest.raises(ReferenceError_):
        Location.parse(text)
