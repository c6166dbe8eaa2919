"""The core commands (copy, digest, inspect, unpack, tags, prune) run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kilobox.formats.layout import LayoutSource
from tests.helpers.tools import kilobox


def _one_line_error(p: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert p.returncode == code, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kilobox: error: "), p.stderr
    assert "Traceback" not in p.stderr
    for w in words:
        assert w in p.stderr


def test_copy_digest_inspect_tags(make_layout, tmp_path: Path) -> None:
    lay = make_layout("t", layers=2)
    make_layout("u", seed=5)
    out = tmp_path / "out"
    p = kilobox("copy", f"oci:{lay}:t", f"oci:{out}:hello")
    digest = p.stdout.strip()
    assert digest.startswith("sha256:") and p.stderr == ""          # no progress on a pipe
    assert kilobox("digest", f"oci:{out}:hello").stdout.strip() == digest
    info = json.loads(kilobox("inspect", f"oci:{out}:hello", "--json").stdout)
    assert info["Digest"] == digest and info["Tag"] == "hello" and len(info["Layers"]) == 2
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"
    human = kilobox("inspect", f"oci:{out}:hello").stdout
    assert digest in human and "Layers:" in human
    assert kilobox("tags", f"oci:{lay}").stdout.split() == ["t", "u"]
    assert json.loads(kilobox("tags", f"oci:{lay}", "--json").stdout) == ["t", "u"]
    with LayoutSource(out, "hello") as s:
        raw = s.manifest_bytes(s.root())
    assert kilobox("inspect", "--raw", f"oci:{out}:hello").stdout.encode() == raw
    cfg = json.loads(kilobox("inspect", "--config", f"oci:{out}:hello").stdout)
    assert cfg["os"] == "linux"
    j = json.loads(kilobox("copy", "--json", f"oci:{lay}:t", f"oci-archive:{tmp_path / 'a.tar'}").stdout)
    assert j["digest"] == digest
    assert kilobox("tags", f"oci-archive:{tmp_path / 'a.tar'}").stdout.split() == ["t"]


def test_index_platform_selection(make_layout, tmp_path: Path) -> None:
    lay = make_layout("multi", platforms=["linux/amd64", "linux/arm64", "linux/arm/v7"])
    info = json.loads(kilobox("inspect", "--json", "--platform", "linux/arm/v7", f"oci:{lay}:multi").stdout)
    assert [m["Platform"] for m in info["Manifests"]] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    assert (info["Architecture"], info["Variant"]) == ("arm", "v7")
    arm = kilobox("digest", "--platform", "linux/arm64", f"oci:{lay}:multi").stdout.strip()
    assert arm == info["Manifests"][1]["Digest"]
    d = kilobox("copy", "--platform", "linux/arm64", f"oci:{lay}:multi", f"oci:{tmp_path / 'one'}:a").stdout.strip()
    assert d == arm
    p = kilobox("digest", "--platform", "linux/s390x", f"oci:{lay}:multi", check=False)
    _one_line_error(p, 3, "linux/s390x")


@pytest.mark.parametrize("args,code,word", [
    (["copy", "only-one"], 2, "required"),
    (["copy", "oci:a:b", "oci:c:d", "--bogus"], 2, "--bogus"),
    (["digest", "UPPER/Case"], 2, "invalid repository"),
    (["digest", "dir:/x"], 2, "not supported"),
    (["digest", "oci:"], 2, "missing path"),
    (["inspect", "oci:/nonexistent/layout:t"], 3, "does not exist"),
    (["prune", "--older-than", "soon"], 2, "invalid duration"),
    (["inspect", "--platform", "linux", "oci:x:t"], 2, "invalid platform"),
])
def test_usage_errors(args: list[str], code: int, word: str) -> None:
    _one_line_error(kilobox(*args, check=False), code, word)


def test_error_exit_codes_and_debug(make_layout, tmp_path: Path) -> None:
    lay = make_layout("t")
    _one_line_error(kilobox("inspect", f"oci:{lay}:nope", check=False), 3, "available tags: t")
    # a corrupt layer: DigestMismatch → 4, nothing committed
    with LayoutSource(lay, "t") as s:
        layer = json.loads(s.manifest_bytes(s.root()))["layers"][0]["digest"].split(":")[1]
    blob = lay / "blobs" / "sha256" / layer
    blob.write_bytes(blob.read_bytes()[:-3] + b"xyz")
    p = kilobox("copy", f"oci:{lay}:t", f"oci:{tmp_path / 'o'}:t", check=False)
    _one_line_error(p, 4, "digest mismatch")
    assert not (tmp_path / "o").exists()
    p = kilobox("--debug", "copy", f"oci:{lay}:t", f"oci:{tmp_path / 'o'}:t", check=False)
    assert p.returncode == 4 and "Traceback" in p.stderr and "DigestMismatch" in p.stderr
    (lay / "index.json").write_text("{garbage")
    _one_line_error(kilobox("digest", f"oci:{lay}:t", check=False), 4, "index.json")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    _one_line_error(kilobox("unpack", f"oci:{lay}:t", str(tmp_path / "full"), check=False), 2, "not an empty")


def test_version_is_lean() -> None:
    code = ("import sys\nfrom kilobox.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sorted(sys.modules)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mods = set(p.stdout.split())
    heavy = {m for m in mods if m.split(".")[0] in {"http", "rich", "ssl", "urllib", "zstandard", "elftools",
                                                      "jsonschema", "tarfile", "gzip", "socket", "email"}}
    assert not heavy, heavy
    assert not {m for m in mods if m.startswith(("kilobox.formats", "kilobox.oci", "kilobox.api",
                                                 "kilobox.layers", "kilobox.copying"))}
    assert kilobox("--version").stdout.strip() == "kilobox 0.1.0"


def test_prune(tmp_path: Path) -> None:
    from kilobox.store import Store
    store = Store(tmp_path / "cache")
    old = store.put_bytes(b"old blob")
    store.put_bytes(b"new blob")
    p = store.blob_path(old.digest)
    week_ago = time.time() - 8 * 86400
    os.utime(p, (week_ago, week_ago))
    env = {"KILOBOX_CACHE": str(tmp_path / "cache")}
    info = json.loads(kilobox("prune", "--json", env=env).stdout)
    assert info["removed"] == 1 and info["freed"] == len(b"old blob") and not p.exists()
    assert "removed 1 entries" in kilobox("prune", "--all", env=env).stdout
    assert not list((tmp_path / "cache" / "blobs").rglob("*")) or not any(
        f.is_file() for f in (tmp_path / "cache" / "blobs").rglob("*"))


class _Tty:
    """A text stream that says it is a terminal."""

    def __init__(self) -> None:
        import io
        self.buf = io.StringIO()

    def isatty(self) -> bool:
        return True

    def write(self, s: str) -> int:
        return self.buf.write(s)

    def flush(self) -> None:
        pass


def test_progress_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from kilobox import progress
    with progress.progress_reporter(stream=io.StringIO()) as cb:
        assert cb is None                                   # a pipe / file: no bars
    with progress.progress_reporter(enabled=False, stream=_Tty()) as cb:
        assert cb is None
    monkeypatch.setattr(progress, "DELAY", 0.0)
    tty = _Tty()
    with progress.progress_reporter(stream=tty) as cb:
        assert cb is not None
        for done in range(0, 1 << 20, 1 << 16):
            cb("abc123", done, 1 << 20)
        cb("abc123", 1 << 20, 1 << 20)
    assert "abc123" in tty.buf.getvalue()


def test_copy_reports_progress(tmp_path: Path, make_layout) -> None:
    from kilobox.copying import copy
    from kilobox.formats import Options
    seen: dict[str, int] = {}
    lay = make_layout("t", layers=2, size=300_000)
    copy(f"oci:{lay}:t", f"oci:{tmp_path / 'o'}:t",
         options=Options(progress=lambda what, done, total: seen.__setitem__(what, done)))
    assert len(seen) == 2 and all(v > 0 for v in seen.values())


def test_copy_fast_parse() -> None:
    """``kilobox copy``'s argv without argparse: the common spellings, anything else is argparse's."""
    from kilobox.cli.copy_cmd import parse_fast
    a = parse_fast(["copy", "--json", "-u", "me", "--insecure=h:1", "--insecure", "h:2", "src", "dst",
                    "--platform", "linux/arm64", "--authfile=/a", "--password-stdin", "--debug"])
    assert a is not None
    assert (a.src, a.dst, a.json, a.username, a.insecure, a.platform, a.authfile, a.password_stdin) == \
        ("src", "dst", True, "me", ["h:1", "h:2"], "linux/arm64", "/a", True)
    b = parse_fast(["copy", "s", "d"])
    assert b is not None and (b.platform, b.username, b.insecure, b.json) == (None, None, [], False)
    for argv in (["copy", "s"], ["copy", "s", "d", "e"], ["copy", "-h", "s", "d"], ["copy", "--help"],
                 ["copy", "--plat", "x", "s", "d"], ["copy", "--platform"], ["copy", "s", "d", "--platform", "-x"],
                 ["copy", "--platform", "a", "--platform", "b", "s", "d"], ["copy", "-u=x", "s", "d"],
                 ["copy", "--json=1", "s", "d"], ["copy", "-", "d"], ["copy", "--", "s", "d"], ["tags", "s", "d"]):
        assert parse_fast(argv) is None, argv
