"""`kilobox build` / `kilobox init` as a user runs them: outputs, reproducibility, bad input.

Every bad input must give a clear one-line error, a non-zero exit and write NOTHING
at the destination.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.toolchain import make_elf
from tests.helpers.schemas import validate_layout_dir
from tests.helpers.tools import kilobox, need

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"


def c_project(d: Path, source: str, extra: str = "") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "main.c").write_text(source)
    (d / "kilobox.toml").write_text(f'name = "{d.name}"\nlang = "c"\nsources = ["main.c"]\n{extra}')
    return d


OK_C = '#include <unistd.h>\nint main(void) { write(1, "ok\\n", 3); return 0; }\n'


# -- init -------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["c", "zig"])
def test_init_then_build_then_run(tmp_path: Path, lang: str) -> None:
    p = kilobox("init", "--lang", lang, "myservice", cwd=tmp_path)
    assert "created myservice/kilobox.toml" in p.stdout
    src = "main.c" if lang == "c" else "main.zig"
    assert sorted(f.name for f in (tmp_path / "myservice").iterdir()) == sorted(["kilobox.toml", src, "README.md"])
    kilobox("build", "myservice", "-o", "oci:out:myservice", cwd=tmp_path)
    validate_layout_dir(tmp_path / "out")
    rootfs = tmp_path / "rootfs"
    kilobox("unpack", "oci:out:myservice", str(rootfs), cwd=tmp_path)
    run = subprocess.run([str(rootfs / "myservice")], capture_output=True)
    assert (run.returncode, run.stdout) == (0, b"hello from myservice\n")


def test_init_refuses_existing_and_bad_names(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    p = kilobox("init", "taken", check=False, cwd=tmp_path)
    assert p.returncode == 2 and "already exists" in p.stderr
    p = kilobox("init", "Bad Name", check=False, cwd=tmp_path)
    assert p.returncode == 2 and "not a valid image name" in p.stderr
    p = kilobox("init", "--lang", "rust", "x", check=False, cwd=tmp_path)
    assert p.returncode == 2 and not (tmp_path / "x").exists()


# -- outputs ------------------------------------------------------------------------------------
def test_json_report_and_every_file_output(tmp_path: Path) -> None:
    p = kilobox("build", str(HELLO), "--platform", "linux/amd64", "--json", "-o", f"oci:{tmp_path}/lay:hello",
                "-o", f"oci-archive:{tmp_path}/hello.oci.tar", "-o", f"docker-archive:{tmp_path}/hello.tar")
    rep = json.loads(p.stdout)
    assert rep["ok"] and rep["platforms"][0]["platform"] == "linux/amd64"
    assert len(rep["destinations"]) == 3
    skopeo = need("skopeo")
    for loc in (f"oci:{tmp_path}/lay:hello", f"oci-archive:{tmp_path}/hello.oci.tar",
                f"docker-archive:{tmp_path}/hello.tar"):
        out = json.loads(subprocess.run([skopeo, "inspect", loc], check=True, capture_output=True).stdout)
        assert out["Architecture"] == "amd64", loc
    # same image everywhere: docker-archive keeps the manifest digest too
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{tmp_path}/lay:hello"], check=True,
                         capture_output=True).stdout
    assert f"sha256:{__import__('hashlib').sha256(raw).hexdigest()}" == rep["root"]["digest"]


def test_text_table_is_printed(tmp_path: Path) -> None:
    p = kilobox("build", str(HELLO), "-o", f"oci:{tmp_path}/out:hello")
    lines = p.stdout.splitlines()
    assert lines[1].split()[:8] == ["platform", "binary", "layer", "config+manifest", "total", "budget", "result",
                                    "+index"]
    assert sum(1 for ln in lines if ln.startswith("linux/")) == 4
    assert any(ln.startswith("index   sha256:") for ln in lines)


def test_push_to_registry(registry, tmp_path: Path) -> None:
    ref = registry.ref("me/hello:1")
    p = kilobox("build", str(HELLO), "--platform", "linux/amd64,linux/arm64", "--push", ref, "--json")
    rep = json.loads(p.stdout)
    assert rep["destinations"] == [f"docker://{ref}"]
    skopeo = need("skopeo")
    raw = subprocess.run([skopeo, "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"], check=True,
                         capture_output=True).stdout
    idx = json.loads(raw)
    assert [m["platform"]["architecture"] for m in idx["manifests"]] == ["amd64", "arm64"]
    assert rep["index"]["digest"] == f"sha256:{__import__('hashlib').sha256(raw).hexdigest()}"


# -- reproducibility -------------------------------------------------------------------------------
def test_reproducible_in_different_dirs_and_times(tmp_path: Path) -> None:
    """Two copies of examples/hello, built in different temp dirs at different times: one index digest."""
    digests = []
    for i in range(2):
        d = tmp_path / f"run{i}" / "hello"
        shutil.copytree(HELLO, d, ignore=shutil.ignore_patterns("__pycache__", "test_*.py"))
        p = kilobox("build", "hello", "--json", "-o", f"oci:out{i}:hello", cwd=d.parent,
                    env={"KILOBOX_CACHE": str(tmp_path / f"store{i}")})  # private compile caches: real recompiles
        digests.append(json.loads(p.stdout)["index"]["digest"])
        time.sleep(1.1)
    assert digests[0] == digests[1]
    a = tmp_path / "run0" / "out0" / "blobs" / "sha256"
    b = tmp_path / "run1" / "out1" / "blobs" / "sha256"
    assert sorted(f.name for f in a.iterdir()) == sorted(f.name for f in b.iterdir())


# -- bad input: clear error, non-zero exit, nothing written ------------------------------------------------
def _fails(tmp_path: Path, *args: str, code: int, words: tuple[str, ...], cwd: Path | None = None) -> str:
    out = tmp_path / "dest"
    p = kilobox("build", *args, "-o", f"oci:{out}:x", check=False, cwd=cwd or tmp_path)
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "kilobox: error: " in p.stderr, p.stderr
    for w in words:
        assert w in p.stderr, (w, p.stderr)
    assert "Traceback" not in p.stderr
    assert not out.exists(), "something was written at the destination"
    return p.stderr


def test_missing_sources(tmp_path: Path) -> None:
    d = c_project(tmp_path / "app", OK_C)
    (d / "kilobox.toml").write_text('name = "app"\nlang = "c"\nsources = ["main.c", "util.c"]\n')
    _fails(tmp_path, str(d), code=7, words=("kilobox.toml: key 'sources[1]'", "file not found", "util.c"))


def test_compile_error_shows_compiler_message(tmp_path: Path) -> None:
    d = c_project(tmp_path / "broken", "int main(void) {\n    return undefined_thing;\n}\n")
    err = _fails(tmp_path, str(d), code=7, words=("compile error in main.c", "undefined_thing", "main.c:2:"))
    assert "error:" in err


def test_dynamic_binary(tmp_path: Path) -> None:
    _fails(tmp_path, "--binary", "/bin/ls", code=7, words=("dynamically linked", "libc.so.6"))


def test_wrong_arch_binary(tmp_path: Path) -> None:
    arm = tmp_path / "arm-app"
    arm.write_bytes(make_elf(machine=183))
    _fails(tmp_path, "--binary", str(arm), "--platform", "linux/amd64", code=7,
           words=("aarch64", "linux/amd64 needs x86-64"))


def test_not_an_elf(tmp_path: Path) -> None:
    s = tmp_path / "run.sh"
    s.write_text("#!/bin/sh\necho hi\n")
    _fails(tmp_path, "--binary", str(s), code=7, words=("not an ELF",))


def test_invalid_toml(tmp_path: Path) -> None:
    d = c_project(tmp_path / "app", OK_C)
    (d / "kilobox.toml").write_text('name = "app"\nlang = "c"\nsources = ["main.c"\n')
    _fails(tmp_path, str(d), code=7, words=("kilobox.toml: invalid TOML", "line 3"))


def test_unknown_key(tmp_path: Path) -> None:
    d = c_project(tmp_path / "app", OK_C, 'entrypiont = "/app"\n')
    _fails(tmp_path, str(d), code=7, words=("key 'entrypiont'", "did you mean 'entrypoint'"))


def test_budget_exceeded_prints_figures(tmp_path: Path) -> None:
    out = tmp_path / "dest"
    p = kilobox("build", str(HELLO), "--max-size", "300", "-o", f"oci:{out}:x", check=False)
    assert p.returncode == 8
    assert "over the size budget" in p.stderr and "> budget 300" in p.stderr
    assert "OVER" in p.stdout and "platform" in p.stdout     # the table is still printed
    assert not out.exists()
    p = kilobox("build", str(HELLO), "--max-size", "300", "--json", "-o", f"oci:{out}:x", check=False)
    assert p.returncode == 8 and json.loads(p.stdout)["ok"] is False and not out.exists()


def test_unknown_platform(tmp_path: Path) -> None:
    _fails(tmp_path, str(HELLO), "--platform", "linux/amd64,linux/foo", code=2,
           words=("unknown platform 'linux/foo'",))
    d = c_project(tmp_path / "app", OK_C, 'platforms = ["linux/amd64", "linux/foo"]\n')
    _fails(tmp_path, str(d), code=7, words=("key 'platforms[1]'", "unknown platform 'linux/foo'"))


def test_docker_archive_refuses_several_platforms(tmp_path: Path) -> None:
    dest = tmp_path / "app.tar"
    p = kilobox("build", str(HELLO), "-o", f"docker-archive:{dest}", check=False)
    assert p.returncode == 2 and "docker-archive holds a single platform" in p.stderr and not dest.exists()


def test_no_project_file(tmp_path: Path) -> None:
    _fails(tmp_path, str(tmp_path), code=7, words=("no kilobox.toml",))
    p = kilobox("build", check=False, cwd=tmp_path)
    assert p.returncode == 2 and "--binary" in p.stderr
