"""Suite-wide fixtures. Each area keeps its fixtures in tests/fixtures/<area>.py (a pytest plugin)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.tools import IN_CI

pytest_plugins = [
    "tests.fixtures.registry",
    "tests.fixtures.images",
    "tests.fixtures.toolchain",
    "tests.fixtures.runtime",
    "tests.fixtures.debian",
]

# One store for the whole session (a test that needs a private one sets KILOBOX_CACHE itself).
# The Zig cache is shared across sessions: its first compile per target builds libc (~40 s).
_SESSION_CACHE = Path(os.environ.get("KILOBOX_TEST_CACHE", Path.home() / ".cache" / "kilobox-test"))


def pytest_configure(config: pytest.Config) -> None:
    _SESSION_CACHE.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KILOBOX_CACHE", str(_SESSION_CACHE / "store"))
    os.environ.setdefault("KILOBOX_ZIG_CACHE", str(_SESSION_CACHE / "zig"))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    """In CI no test may be skipped: say so loudly (scripts/test turns it into a failure)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if IN_CI and skipped:
        terminalreporter.write_line(f"CI: {len(skipped)} tests were skipped; skips are failures in CI", red=True)
