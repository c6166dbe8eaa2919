"""A prebuilt third-party static binary (Rust, built by cargo) becomes a working image with --binary."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers.podman import isolated_podman
from tests.helpers.tools import IN_CI, kilobox

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAIN_RS = 'fn main() {\n    println!("hello from rust, args: {:?}", std::env::args().skip(1).collect::<Vec<_>>());\n}\n'


def _cargo() -> str:
    exe = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    if not os.access(exe, os.X_OK):
        msg = "cargo is not installed (https://rustup.rs, or apt-get install -y cargo)"
        pytest.fail(msg) if IN_CI else pytest.skip(msg)
    return exe


@pytest.fixture(scope="session")
def rust_static_binary() -> Path:
    """A static x86-64 Rust hello (no crates: works offline), cached in the test cache dir.

    Built once per machine under a lock, in a temp dir, and renamed into place whole: safe with
    several sessions or xdist workers at once.
    """
    cache = Path(os.environ.get("KILOBOX_TEST_CACHE", Path.home() / ".cache" / "kilobox-test")) / "rust-hello"
    out = cache / "rust-hello"
    if out.is_file():
        return out
    cargo = _cargo()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.is_file():
            return out
        with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as tmp:
            proj = Path(tmp) / "src"
            (proj / "src").mkdir(parents=True)
            (proj / "Cargo.toml").write_text('[package]\nname = "rust-hello"\nversion = "0.1.0"\nedition = "2021"\n\n'
                                             '[profile.release]\nopt-level = "z"\npanic = "abort"\nstrip = true\n')
            (proj / "src" / "main.rs").write_text(MAIN_RS)
            rustup = shutil.which("rustup") or str(Path(cargo).with_name("rustup"))
            targets = subprocess.run([rustup, "target", "list", "--installed"], capture_output=True,
                                     text=True).stdout.split() if os.access(rustup, os.X_OK) else []
            target = "x86_64-unknown-linux-musl" if "x86_64-unknown-linux-musl" in targets else "x86_64-unknown-linux-gnu"
            env = dict(os.environ, RUSTFLAGS="-C target-feature=+crt-static")
            subprocess.run([cargo, "build", "--release", "--offline", "--target", target], cwd=proj, env=env,
                           check=True, capture_output=True, timeout=600)
            part = Path(tmp) / "rust-hello"
            shutil.copyfile(proj / "target" / target / "release" / "rust-hello", part)
            part.chmod(0o755)
            os.replace(part, out)
    return out


def test_rust_binary_runs_in_podman(rust_static_binary: Path, tmp_path: Path) -> None:
    tar = tmp_path / "app.tar"
    p = kilobox("build", "--binary", str(rust_static_binary), "--entrypoint", "/app", "--cmd", "a b",
                "--json", "-o", f"docker-archive:{tar}")
    rep = json.loads(p.stdout)
    assert rep["name"] == "rust-hello" and rep["platforms"][0]["platform"] == "linux/amd64"  # read from the ELF
    with isolated_podman() as podman:
        names = podman.load(tar)
        assert names == ["docker.io/library/rust-hello:latest"]
        run = podman.run(names[0])
        assert run.stdout == 'hello from rust, args: ["a", "b"]\n'
        run = podman.run(names[0], "x")
        assert run.stdout == 'hello from rust, args: ["x"]\n'
