"""Digests: parsing, hashing, verification, the verifying reader."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kilobox.errors import DigestMismatch, ManifestError
from kilobox.oci import Digest, VerifyingReader, sha256

HEX = "a" * 64


def test_parse_sha256_and_sha512() -> None:
    d = Digest.parse(f"sha256:{HEX}")
    assert (d.algorithm, d.hex, str(d)) == ("sha256", HEX, f"sha256:{HEX}")
    assert Digest.parse("sha512:" + "b" * 128).algorithm == "sha512"


@pytest.mark.parametrize("text", [
    "", "sha256", "sha256:", f"sha256:{HEX[:-1]}", f"sha256:{HEX}0", f"sha256:{HEX.upper()}",
    f"SHA256:{HEX}", f"md5:{'a' * 32}", f"sha1:{'a' * 40}", f"sha256:../../{HEX[6:]}",
    f"sha256:{HEX[:-1]}/", f" sha256:{HEX}", f"sha256:{HEX}\n", f"sha256:{HEX}\x00",
    "sha512:" + "b" * 64, f"sha256:{'g' * 64}", "a" * 10000,
])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ManifestError):
        Digest.parse(text)


@pytest.mark.parametrize("value", [None, 1, b"sha256:" + HEX.encode(), ["x"], {"a": 1}])
def test_parse_rejects_non_strings(value: object) -> None:
    with pytest.raises(ManifestError):
        Digest.parse(value)  # type: ignore[arg-type]


@given(st.text(max_size=200))
def test_parse_never_crashes(text: str) -> None:
    try:
        d = Digest.parse(text)
    except ManifestError:
        return
    assert str(d) == text


@given(st.binary(max_size=4096))
def test_of_and_verify(data: bytes) -> None:
    d = Digest.of(data)
    assert d.hex == hashlib.sha256(data).hexdigest() and sha256(data) == d
    d.verify(data, len(data))
    with pytest.raises(DigestMismatch):
        d.verify(data + b"x")
    with pytest.raises(DigestMismatch):
        d.verify(data, len(data) + 1)


def test_verifying_reader_ok_truncated_and_long() -> None:
    data = b"hello world" * 1000
    d = Digest.of(data)
    r = VerifyingReader(io.BytesIO(data), d, len(data))
    r.drain(100)
    assert r.verified
    with pytest.raises(DigestMismatch, match="expected"):
        VerifyingReader(io.BytesIO(data[:-1]), d, len(data)).drain()
    with pytest.raises(DigestMismatch, match="more than"):
        VerifyingReader(io.BytesIO(data + b"!"), d, len(data)).drain()
    bad = bytearray(data)
    bad[5] ^= 1
    with pytest.raises(DigestMismatch, match="mismatch"):
        VerifyingReader(io.BytesIO(bytes(bad)), d, len(data)).drain()


def test_sha512_verifies() -> None:
    data = b"x" * 100
    d = Digest.parse("sha512:" + hashlib.sha512(data).hexdigest())
    VerifyingReader(io.BytesIO(data), d, 100).drain()


def test_fast_parse_agrees_with_the_grammar() -> None:
    """The regex-free path for sha256/sha512 accepts exactly what the full check accepts."""
    import re

    from hypothesis import given, settings, strategies as st

    from kilobox.errors import ManifestError
    from kilobox.oci.digest import _HEX_LEN, DIGEST_PATTERN

    def full(text: str) -> bool:
        m = re.fullmatch(DIGEST_PATTERN, text)
        return bool(m) and _HEX_LEN.get(m.group(1)) == len(m.group(2)) and bool(re.fullmatch("[0-9a-f]+", m.group(2)))

    @settings(max_examples=500)
    @given(st.sampled_from(["sha256", "sha512", "SHA256", "md5", "sha256+x", ""]),
           st.sampled_from([":", "", "::"]), st.text(alphabet="0123456789abcdefABX=\n", min_size=0, max_size=130))
    def check(algo: str, sep: str, tail: str) -> None:
        for hexpart in (tail, (tail * 64)[:64], (tail * 128)[:128]):
            text = algo + sep + hexpart
            try:
                Digest.parse(text)
                ok = True
            except ManifestError:
                ok = False
            assert ok == full(text), text
    check()
