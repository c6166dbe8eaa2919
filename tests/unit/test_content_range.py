"""``Content-Range`` of a resumed blob download: the parser faces outside data."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from kilobox.formats.registry.resume import parse_content_range, range_matches


@pytest.mark.parametrize("value, expected", [
    ("bytes 0-9/10", (0, 9, 10)),
    ("bytes 100-199/200", (100, 199, 200)),
    ("BYTES 5-5/6", (5, 5, 6)),
    ("  bytes 1-2/3  ", (1, 2, 3)),
    ("bytes 0-9223372036854775806/9223372036854775807", (0, 9223372036854775806, 9223372036854775807)),
])
def test_valid(value: str, expected: tuple[int, int, int]) -> None:
    assert parse_content_range(value) == expected


@pytest.mark.parametrize("value", [
    "", " ", "bytes", "bytes ", "bytes 0-9", "bytes 0/10", "bytes -9/10", "bytes 0-/10",
    "bytes */10",                               # a 416's unsatisfied range
    "bytes 0-9/*",                              # unknown total: we need it
    "bytes -1-9/10", "bytes 0--9/10", "bytes +0-9/10", "bytes 0-+9/10", "bytes 0-9/+10", "bytes 0-9/-10",
    "bytes 10-9/20",                            # first after last
    "bytes 0-10/10", "bytes 0-9/9", "bytes 5-9/0",   # last beyond the total
    "bytes 0-9/10/11", "bytes 0-9-10/11", "bytes 0x0-0x9/0xa", "bytes 1e3-2e3/3e3", "bytes 1.0-2/3",
    "bytes 0 -9/10", "bytes 0- 9/10", "bytes 0-9 /10", "bytes 0-9/ 10", "bytes\t0-9/10",
    "items 0-9/10", "bits 0-9/10", "bytes=0-9/10", "0-9/10",
    "bytes ٠-٩/١٠", "bytes ０-９/１０", "bytes ²-³/⁴",      # non-ASCII digits int() would take
    "bytes 0-9/10\r\nX-Evil: 1", "bytes 0-9/10\x00",
    "bytes 0-99999999999999999999/100000000000000000000",   # 20 digits: over 2**63
    "bytes " + "9" * 5000 + "-" + "9" * 5000 + "/" + "9" * 5001,
    "bytes " + "0" * 300 + "-9/10",
])
def test_hostile_values_are_refused(value: str) -> None:
    assert parse_content_range(value) is None


def test_not_a_string() -> None:
    assert parse_content_range(None) is None  # type: ignore[arg-type]
    assert parse_content_range(b"bytes 0-9/10") is None  # type: ignore[arg-type]


@pytest.mark.parametrize("value, offset, size, ok", [
    ("bytes 100-999/1000", 100, 1000, True),
    ("bytes 101-999/1000", 100, 1000, False),   # not where we stopped
    ("bytes 0-999/1000", 100, 1000, False),     # from the start, as a 206
    ("bytes 100-998/1000", 100, 1000, False),   # not to the end
    ("bytes 100-999/1001", 100, 1000, False),   # another blob's total
    ("bytes 100-1000/1001", 100, 1000, False),
    ("bytes 100-999/999", 100, 1000, False),
    ("", 100, 1000, False),
    ("bytes */1000", 100, 1000, False),
])
def test_range_matches_checks_start_end_and_total(value: str, offset: int, size: int, ok: bool) -> None:
    assert range_matches(value, offset, size) is ok


# -- properties ---------------------------------------------------------------------------------------
@given(st.text(max_size=300))
def test_any_text_is_refused_or_sane(value: str) -> None:
    got = parse_content_range(value)
    if got is not None:
        first, last, total = got
        assert 0 <= first <= last < total < 10 ** 19


@given(st.integers(0, 10 ** 19 - 2), st.integers(0, 10 ** 19 - 2), st.integers(0, 10 ** 19 - 1))
def test_round_trip(first: int, last: int, total: int) -> None:
    got = parse_content_range(f"bytes {first}-{last}/{total}")
    assert got == ((first, last, total) if first <= last < total else None)
