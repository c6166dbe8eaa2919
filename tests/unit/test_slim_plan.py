"""Slim planning: rules, the kept-path plan, globs, assembly and the report (no runtime needed)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from kilobox.slim import rootpath
from kilobox.slim.assemble import assemble, build_layer, write_image
from kilobox.slim.plan import Plan, glob_base, iter_glob, tree_size
from kilobox.slim.report import Attempt, KeptPath, SlimReport, render_text
from kilobox.slim.rules import config_paths, rule_paths, under
from kilobox.slim.stracelog import Trace


def _mk(root: Path, path: str, data: bytes = b"x", mode: int = 0o644) -> Path:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    p.chmod(mode)
    return p


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    for p in ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/ld.so.cache",
              "/etc/ssl/certs/ca-certificates.crt", "/usr/share/zoneinfo/Etc/UTC", "/usr/share/zoneinfo/Europe/Paris",
              "/usr/lib/locale/C.utf8/LC_CTYPE", "/usr/lib/locale/locale-archive", "/srv/app.conf",
              "/usr/share/doc/pkg/README", "/opt/data/big.bin"):
        _mk(r, p)
    os.symlink("/usr/share/zoneinfo/Etc/UTC", r / "etc/localtime")
    for d in ("proc", "sys", "dev", "tmp", "var/lib/app"):
        (r / d).mkdir(parents=True, exist_ok=True)
    _mk(r, "/proc/cpuinfo")          # an image may ship junk under mount points: never kept
    _mk(r, "/tmp/leftover")
    os.symlink("usr/share", r / "share")
    os.symlink("/etc", r / "usr/share/evil")  # absolute: must resolve inside the root, never on the host
    return r


def test_under():
    assert under("/proc/1", ["/proc"]) and under("/proc", ["/proc"])
    assert not under("/procfs", ["/proc"])


def test_config_paths(root):
    got = dict(config_paths(root, {}, ["/bin/app", "--config=/srv/app.conf", "/nope", "x"],
                            ["PATH=/usr/bin", "DATA=/opt/data", "CONF=/srv/app.conf:/nope"], "/var/lib/app"))
    assert got["/var/lib/app"] == "WORKDIR"
    assert got["/opt/data"].startswith("named by ENV DATA")
    assert "/srv/app.conf" in got and "/nope" not in got and "/usr/bin" not in got


def test_rules(root):
    plain = dict(rule_paths(root, env=[], kept=[], user_set=False, tmpfs=[], has_dynamic_elf=False))
    assert "/etc/passwd" not in plain and "/etc/hosts" in plain
    assert "/etc/localtime" in plain and "/proc" in plain and "/dev" in plain
    assert "/etc/ssl/certs/ca-certificates.crt" not in plain and "/etc/ld.so.cache" not in plain
    assert not any("locale" in p for p in plain)
    rich = dict(rule_paths(root, env=["TZ=Europe/Paris", "LANG=C.UTF-8"],
                           kept=["/usr/lib/x86_64-linux-gnu/libssl.so.3"], user_set=True, tmpfs=["/tmp:size=1m"],
                           has_dynamic_elf=True))
    for p in ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/ssl/certs/ca-certificates.crt",
              "/usr/share/zoneinfo/Europe/Paris", "/usr/lib/locale/C.utf8", "/etc/ld.so.cache", "/tmp"):
        assert p in rich, p
    assert "/usr/lib/locale/locale-archive" not in rich            # C.UTF-8 needs no archive
    de = dict(rule_paths(root, env=["LANG=de_DE.UTF-8"], kept=[], user_set=False, tmpfs=[], has_dynamic_elf=False))
    assert "/usr/lib/locale/locale-archive" in de
    hostile = dict(rule_paths(root, env=["TZ=../../etc/passwd", "LANG=../x"], kept=[], user_set=False, tmpfs=[],
                              has_dynamic_elf=False))
    assert "/etc/passwd" not in hostile


def test_plan_keeps_chains_and_skips_mounted_dirs(root):
    plan = Plan(root, skip=["/tmp"])
    trace = Trace(found={"/etc/localtime", "/proc/cpuinfo", "/tmp/leftover", "/share/doc/pkg/README", "/gone",
                         "/usr/share/evil/passwd"})
    plan.add_trace(trace)
    kept = plan.kept
    assert kept["/etc/localtime"].category == "runtime"          # the path itself is the symlink
    assert kept["/usr/share/zoneinfo/Etc/UTC"].category == "runtime"
    assert kept["/share"].category == "symlink" and "/usr/share/doc/pkg/README" in kept
    assert "/proc/cpuinfo" not in kept and "/tmp/leftover" not in kept and "/gone" not in kept
    assert "/etc/passwd" in kept                                   # via /usr/share/evil -> /etc, inside the root
    assert plan.add("/tmp", "rule", "mount point") == "/tmp" and kept["/tmp"].category == "rule"
    assert plan.exclude(["/usr/share/doc/**"]) == ["/usr/share/doc/pkg/README"]


def test_symlink_into_a_runtime_filesystem_is_kept(root):
    os.symlink("../proc/self/mounts", root / "etc/mtab")
    os.symlink("/nowhere/at/all", root / "etc/dangling")
    plan = Plan(root)
    plan.add_trace(Trace(found={"/etc/mtab", "/etc/dangling"}))
    assert plan.kept["/etc/mtab"].category == "runtime" and "/etc/dangling" not in plan.kept


def test_globs_through_symlinked_dirs_and_never_outside(root):
    assert glob_base("/usr/share/zoneinfo/**") == "/usr/share/zoneinfo"
    assert glob_base("/a/b*/c") == "/a"
    got = set(iter_glob(root, "/share/zoneinfo/**"))
    assert {"/share/zoneinfo", "/share/zoneinfo/Etc/UTC", "/share/zoneinfo/Europe/Paris"} <= got
    assert set(iter_glob(root, "/etc/passwd")) == {"/etc/passwd"}
    assert list(iter_glob(root, "/nope/**")) == []
    assert set(iter_glob(root, "/usr/share/zoneinfo/E*/P*")) == {"/usr/share/zoneinfo/Europe/Paris"}
    plan = Plan(root)
    assert plan.add_include(["/share/zoneinfo/**"]) >= 3
    assert "/usr/share/zoneinfo/Europe/Paris" in plan.kept and plan.kept["/share"].category == "symlink"


def test_tree_size(root):
    files, size = tree_size(root)
    assert files >= 15 and size >= 13


def _members(blob: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tf:
        return {m.name.rstrip("/"): m for m in tf.getmembers()}


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_layer_keeps_parents_real_modes_and_owners_and_dirs_empty(root):
    (root / "tmp").chmod(0o1777)
    os.chown(root / "var/lib/app", 33, 33)
    (root / "var/lib/app").chmod(0o750)
    _mk(root, "/var/lib/app/state.db", b"data")
    _mk(root, "/var/lib/app/other", b"junk")
    os.chown(root / "var/lib/app/state.db", 33, 33)
    buf = io.BytesIO()
    info, files, size = build_layer(root, ["/var/lib/app/state.db", "/tmp", "/usr/share/zoneinfo"], buf)
    m = _members(buf.getvalue())
    assert m["tmp"].mode == 0o1777
    assert (m["var/lib/app"].uid, m["var/lib/app"].mode) == (33, 0o750)
    assert m["var/lib/app/state.db"].uid == 33
    assert "var/lib/app/other" not in m
    assert "usr/share/zoneinfo" in m and "usr/share/zoneinfo/Etc/UTC" not in m   # a kept dir is kept empty
    assert files == 1 and size == 4


def test_assemble_and_write_a_layout(root, tmp_path):
    from kilobox.image import open_image
    from kilobox.oci import ImageConfig
    fat = ImageConfig.build({"architecture": "amd64", "os": "linux", "created": "2025-01-01T00:00:00Z",
                             "config": {"Entrypoint": ["/bin/app"], "Env": ["A=1"], "User": "65532",
                                        "WorkingDir": "/srv", "ExposedPorts": {"80/tcp": {}}, "Labels": {"x": "y"}},
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64] * 2}})
    one = assemble(root, ["/etc/passwd", "/etc/localtime"], fat, "oci:fat:t", "sha256:" + "a" * 64, tmp_path / "w1")
    two = assemble(root, ["/etc/localtime", "/etc/passwd"], fat, "oci:fat:t", "sha256:" + "a" * 64, tmp_path / "w2")
    assert one.digest == two.digest                                   # deterministic
    desc = write_image(one, f"oci:{tmp_path / 'out'}:slim")
    assert str(desc.digest) == one.digest
    with open_image(f"oci:{tmp_path / 'out'}:slim") as img:
        c = img.config
        assert c.entrypoint == ["/bin/app"] and c.config["User"] == "65532" and c.config["WorkingDir"] == "/srv"
        assert c.config["ExposedPorts"] == {"80/tcp": {}} and c.config["Labels"]["x"] == "y"
        assert c.config["Labels"]["dev.kilobox.slim.source.digest"] == "sha256:" + "a" * 64
        assert len(img.layers) == 1 and len(c.obj["rootfs"]["diff_ids"]) == 1
        assert img.manifest.annotations["dev.kilobox.slim.source"] == "oci:fat:t"
    with open(tmp_path / "w1" / "layer.tar.gz", "rb") as f:
        names = set(_members(f.read()))
    assert {"etc/passwd", "etc/localtime"} <= names and "usr/share/zoneinfo/Etc/UTC" not in names


def test_report_json_and_text():
    r = SlimReport(source="oci:fat:n", source_digest="sha256:1", output="oci:slim:n", written=True, probe="GET /",
                   runtime="crun", before={"files": 6000, "bytes": 200 << 20, "compressed_bytes": 100 << 20},
                   after={"files": 20, "bytes": 4 << 20, "compressed_bytes": 2 << 20},
                   kept=[KeptPath("/usr/sbin/nginx", "file", 1 << 20, "runtime", "seen at run time"),
                         KeptPath("/lib", "symlink", 0, "symlink", "symlink on the way to /lib/x"),
                         KeptPath("/usr/lib/libc.so.6", "file", 2 << 20, "elf", "ELF dependency of /usr/sbin/nginx"),
                         KeptPath("/tmp", "dir", 0, "rule", "rule: mount point")],
                   fat_probe={"ok": True, "detail": "HTTP 200", "seconds": 0.2},
                   attempts=[Attempt(False, "HTTP 404", 1.0, missing=["/etc/mime.types"], added=["/etc/mime.types"]),
                             Attempt(True, "HTTP 200", 0.1)],
                   audit={"before": {"grade": "F", "score": 100, "shells": ["/bin/sh"], "executables": 500},
                          "after": {"grade": "A", "score": 2, "shells": [], "executables": 3}})
    assert r.ok and round(r.ratio) == 50 and r.missing == []
    d = json.loads(json.dumps(r.to_dict()))
    assert d["schema"] == "kilobox.slim/v1" and d["ratio"] == 50.0 and d["by_category"]["elf"]["files"] == 1
    assert "tmp" not in json.dumps(d["by_category"]) and len(d["verification"]) == 2
    text = render_text(r)
    for needle in ("50.0x smaller", "grade F (score 100) -> grade A", "shells 1 -> 0", "attempt 1: probe FAILED",
                   "--auto-fix added 1", "seen at run time", "ELF dependency", "/usr/sbin/nginx"):
        assert needle in text, needle
    r.attempts = [Attempt(False, "refused", 1.0, missing=["/x"])]
    assert not r.ok and "FAILED its probe" in render_text(r) and r.missing == ["/x"]


def test_rootpath_resolve_keeps_inside(root):
    assert rootpath.resolve(root, "/usr/share/evil/passwd")[0] == "/etc/passwd"
