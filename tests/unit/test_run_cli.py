"""The warm-path parser of ``kilobox run`` falls back to argparse for anything unusual."""

from __future__ import annotations

import pytest

from kilobox.cli.run_cmd import fast_main
from kilobox.run.bench import percentile, summarize


@pytest.mark.parametrize("argv", [
    [], ["ps"], ["run"], ["run", "--rm"], ["run", "-h"], ["run", "--engine", "podman", "x"],
    ["run", "--publish", "80:80", "x"], ["run", "--platform", "linux/arm64", "x"], ["run", "--name"],
    ["run", "--name", "a", "--name", "b", "x"], ["run", "--pids-limit", "lots", "x"], ["run", "-it", "x"],
])
def test_unusual_command_lines_fall_back(argv):
    assert fast_main(argv) is None


def test_cold_images_fall_back(tmp_path, monkeypatch):
    monkeypatch.setenv("KILOBOX_CACHE", str(tmp_path))
    assert fast_main(["run", "--rm", "-e", "A=1", f"oci:{tmp_path}/none:x", "arg"]) is None


def test_statistics():
    assert percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile(list(range(1, 101)), 95) == 95
    s = summarize({"kilobox": [10.0, 12.0, 11.0], "podman": [100.0, 110.0, 120.0]})
    assert s["kilobox"]["median"] == 11.0 and s["kilobox"]["min"] == 10.0
    assert s["podman"]["ratio_to_kilobox"] == pytest.approx(10.0)
