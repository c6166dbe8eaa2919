"""Shared helpers for the examples' tests (pytest collects ``examples/`` as well as ``tests/``).

Makes ``tests.*`` importable and sets up the shared caches when examples are run on their own
(``pytest examples/httpd``), then offers ``example_binary(name, platform)``: the example compiled
exactly as its kilobox.toml says, through the library's toolchain.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import pytest_configure  # noqa: E402,F401  same session caches when run alone

EXAMPLES = Path(__file__).resolve().parent


def example_config(name: str) -> dict:
    """The example's kilobox.toml, as a plain dict."""
    with open(EXAMPLES / name / "kilobox.toml", "rb") as f:
        return tomllib.load(f)


def compile_example(name: str, platform: str) -> Path:
    """Compile examples/<name> for *platform* with the flags its kilobox.toml gives."""
    from kilobox.build.elf import check_binary
    from kilobox.build.toolchain import Target, compile_sources

    cfg = example_config(name)
    sources = [EXAMPLES / name / s for s in cfg["sources"]]
    binary = compile_sources(cfg["lang"], sources, Target.from_platform(platform),
                             cflags=cfg.get("cflags", []), ldflags=cfg.get("ldflags", []),
                             freestanding=cfg.get("freestanding", False))
    info = check_binary(binary, platform)
    assert info.static and info.stripped and not info.warnings, info
    return binary


@pytest.fixture(scope="session")
def example_binary():
    """Factory ``example_binary(name, platform) -> Path`` (compiles are cached across tests)."""
    return compile_example


def build_cmd_available() -> bool:
    """True once the builder's CLI command exists (image-level tests depend on it)."""
    return (ROOT / "src" / "kilobox" / "cli" / "build_cmd.py").exists()
