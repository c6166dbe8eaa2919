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
    "tests.fixtures.slim",
]

# One store for the whole session (a test that needs a private one sets KILOBOX_CACHE itself).
# The Zig cache is shared across sessions: its first compile per target builds libc (~40 s).
_SESSION_CACHE = Path(os.environ.get("KILOBOX_TEST_CACHE", Path.home() / ".cache" / "kilobox-test"))


def pytest_configure(config: pytest.Config) -> None:
    _SESSION_CACHE.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KILOBOX_CACHE", str(_SESSION_CACHE / "store"))
    os.environ.setdefault("KILOBOX_ZIG_CACHE", str(_SESSION_CACHE / "zig"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI no test may be skipped: a skip turns the run into a failure."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if IN_CI and skipped and session.exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} tests were skipped; in CI every test must run", red=True)
        session.exitstatus = 1
