"""Platforms: parsing, aliases, matching."""

from __future__ import annotations

import pytest

from kilobox.errors import UsageError
from kilobox.oci import Platform


@pytest.mark.parametrize("text,want", [
    ("linux/amd64", ("linux", "amd64", "")),
    ("linux/arm/v7", ("linux", "arm", "v7")),
    ("linux/arm64/v8", ("linux", "arm64", "v8")),
    ("LINUX/X86_64", ("linux", "amd64", "")),
    ("linux/aarch64", ("linux", "arm64", "")),
    (" linux/riscv64 ", ("linux", "riscv64", "")),
])
def test_parse(text: str, want: tuple[str, str, str]) -> None:
    p = Platform.parse(text)
    assert (p.os, p.architecture, p.variant) == want
    assert str(p) == "/".join(x for x in want if x)


@pytest.mark.parametrize("text", ["", "linux", "linux/", "/amd64", "linux/arm/v7/x", "linux//v7", "a/b/c/d"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        Platform.parse(text)


def test_matches() -> None:
    arm64 = Platform("linux", "arm64")
    assert arm64.matches(Platform.parse("linux/arm64"))
    assert arm64.matches(Platform.parse("linux/arm64/v8"))          # default variant
    assert not arm64.matches(Platform.parse("linux/amd64"))
    v7 = Platform("linux", "arm", "v7")
    assert v7.matches(Platform.parse("linux/arm"))
    assert not v7.matches(Platform.parse("linux/arm/v6"))
    assert not Platform("windows", "amd64").matches(Platform.parse("linux/amd64"))


def test_dict_roundtrip() -> None:
    d = {"architecture": "arm", "os": "linux", "variant": "v7", "os.version": "1", "os.features": ["a"]}
    assert Platform.from_dict(d).to_dict() == d


def test_host_is_linux() -> None:
    assert Platform.host().os == "linux" and Platform.host().architecture
