"""Audit rules on synthetic images: each finding, detection by content, score, grade and scope."""

from __future__ import annotations

import pytest

from kilobox.audit import build_report
from kilobox.audit.findings import at_least, parse_severity
from kilobox.audit.score import attack_surface_score, grade
from kilobox.errors import UsageError
from tests.fixtures.debian import dynamic_elf, scan_of, static_elf, tar_of
from tests.fixtures.toolchain import make_elf

NONROOT = {"architecture": "amd64", "os": "linux", "config": {"User": "65532:65532", "Entrypoint": ["/app"]}}


def report_of(files: dict, config: dict | None = None):
    return build_report(scan_of(tar_of(files), config=config if config is not None else NONROOT))


def rules(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in report.findings:
        out.setdefault(f.rule, []).append(f.path)
    return out


def test_micro_image_is_clean_grade_a_scope_one_binary():
    r = report_of({"app": ("file", static_elf(), 0o755)})
    assert r.findings == []
    s = r.summary
    assert s["grade"] == "A" and s["score"] == 0 and s["non_root"] and s["shells"] == []
    assert s["scope"]["files"] == 1 and s["scope"]["paths"] == ["/app"] and s["executables"] == 1


def test_shell_by_content_even_renamed_and_reached_by_links():
    bash = static_elf(b"GNU bash, version 5.2 is a shell keyword")
    r = report_of({"usr": ("dir", None, 0o755), "usr/bin": ("dir", None, 0o755),
                   "usr/bin/notashell": ("file", bash, 0o755), "usr/bin/sh": ("symlink", "notashell", 0o777),
                   "bin": ("symlink", "usr/bin", 0o777)})
    [f] = [f for f in r.findings if f.rule == "shell"]
    assert f.path == "/usr/bin/notashell" and f.severity == "high"
    assert f.detail["program"] == "bash" and f.detail["detected_by"] == "content"
    assert "renamed to notashell" not in f.message  # reached as sh: a shell name
    assert f.detail["links"] == ["/usr/bin/sh"]


def test_renamed_shell_without_any_shell_name():
    r = report_of({"opt/tool": ("file", static_elf(b'Use "exit" to leave shell.'), 0o755)})
    [f] = [f for f in r.findings if f.rule == "shell"]
    assert f.detail["program"] == "dash" and "renamed to tool" in f.message


def test_shell_by_name_and_busybox_applets():
    bb = static_elf(b"BusyBox v1.36.1 multi-call binary")
    files = {"bin": ("dir", None, 0o755), "bin/busybox": ("file", bb, 0o755)}
    for applet in ("sh", "ash", "wget", "nc", "ls", "vi"):
        files[f"bin/{applet}"] = ("hardlink" if applet == "ls" else "symlink",
                                  "bin/busybox" if applet == "ls" else "busybox", 0o777)
    files["usr/local/bin/zsh"] = ("file", b"#!/bin/busybox sh\n", 0o755)
    r = report_of(files)
    by = {f.path: f for f in r.findings if f.rule == "shell"}
    assert by["/bin/busybox"].detail["applets"] == 6 and "applet" in by["/bin/busybox"].message
    assert by["/usr/local/bin/zsh"].detail["detected_by"] == "name"
    assert "network-tool" not in rules(r)  # busybox's wget/nc are part of the busybox finding


@pytest.mark.parametrize("path,content,rule,program", [
    ("usr/bin/apt-get", dynamic_elf(("libapt-pkg.so.6.0", "libc.so.6")), "package-manager", "apt-get"),
    ("usr/bin/pip3", b"#!/usr/bin/python3\nfrom pip._internal.cli.main import main\n", "package-manager", "pip3"),
    ("usr/local/bin/x", static_elf(b"Debian `dpkg' package management program"), "package-manager", "dpkg"),
    ("usr/bin/python3.12", static_elf(b"Py_BytesMain"), "interpreter", "python"),
    ("usr/bin/renamed", static_elf(b"perl_parse"), "interpreter", "perl"),
    ("usr/bin/node", static_elf(), "interpreter", "node"),
    ("usr/bin/curl", static_elf(), "network-tool", "curl"),
    ("usr/bin/fetch", static_elf(b"GNU Wget 1.21"), "network-tool", "wget"),
])
def test_programs(path, content, rule, program):
    r = report_of({path: ("file", content, 0o755)})
    [f] = [f for f in r.findings if f.rule == rule]
    assert f.detail["program"] == program and f.path == "/" + path


def test_names_outside_path_dirs_are_not_programs():
    r = report_of({"etc/cron.daily/dpkg": ("file", b"#!/bin/sh\n", 0o755),
                   "usr/lib/apt/methods/ftp": ("file", static_elf(), 0o755)})
    assert "package-manager" not in rules(r) and "network-tool" not in rules(r)


def test_setuid_setgid_caps_world_writable():
    caps = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000").decode("latin-1")
    r = report_of({"usr/bin/su": ("file", static_elf(), 0o4755), "usr/bin/chage": ("file", static_elf(), 0o2755),
                   "usr/bin/ping": ("file", static_elf(), 0o755, 0, {"SCHILY.xattr.security.capability": caps}),
                   "tmp": ("dir", None, 0o1777), "data": ("dir", None, 0o777), "etc/conf": ("file", b"x", 0o666),
                   "usr/bin/own": ("file", static_elf(), 0o4755, 1000)})
    got = rules(r)
    assert got["setuid"] == ["/usr/bin/su", "/usr/bin/own"] or sorted(got["setuid"]) == ["/usr/bin/own", "/usr/bin/su"]
    sev = {f.path: f.severity for f in r.findings if f.rule == "setuid"}
    assert sev == {"/usr/bin/su": "high", "/usr/bin/own": "medium"}
    assert got["setgid"] == ["/usr/bin/chage"] and got["file-capability"] == ["/usr/bin/ping"]
    assert got["world-writable-dir"] == ["/data"] and got["world-writable"] == ["/etc/conf"]


def test_dynamic_executable_with_resolved_libraries():
    libc = static_elf(etype=3)
    r = report_of({"usr/bin/app": ("file", dynamic_elf(("libfoo.so.1", "libc.so.6")), 0o755),
                   "lib64/ld-linux-x86-64.so.2": ("file", libc, 0o755),
                   "usr/lib/x86_64-linux-gnu/libc.so.6": ("file", libc, 0o644),
                   "usr/lib/libfoo.so.1": ("symlink", "libfoo.so.1.2", 0o777),
                   "usr/lib/libfoo.so.1.2": ("file", make_elf(etype=3, needed=("libbar.so",)), 0o644)})
    [f] = [f for f in r.findings if f.rule == "dynamic-executable"]
    assert f.detail["libraries"] == ["/lib64/ld-linux-x86-64.so.2", "/usr/lib/libfoo.so.1.2",
                                     "/usr/lib/x86_64-linux-gnu/libc.so.6"]
    assert f.detail["missing"] == ["libbar.so"]
    assert r.summary["scope"]["files"] == 4


def test_hostile_dependency_graphs_are_bounded_and_stay_inside():
    """Cycles, self-needs, sonames with paths that climb out, thousands of DT_NEEDED, junk ld.so.conf."""
    many = tuple(f"libx{i}.so" for i in range(3000))
    r = report_of({"usr/bin/app": ("file", dynamic_elf(("liba.so", "../../../../etc/shadow", "/proc/self/mem")), 0o755),
                   "usr/bin/wide": ("file", dynamic_elf(many), 0o755),
                   "usr/lib/liba.so": ("file", make_elf(etype=3, needed=("libb.so", "liba.so")), 0o644),
                   "usr/lib/libb.so": ("file", make_elf(etype=3, needed=("liba.so",)), 0o644),
                   "etc/shadow": ("file", b"inside the image", 0o600),
                   "etc/ld.so.conf": ("file", b"include /etc/ld.so.conf\n" + b"/" * 5000 + b"\n\x00\xff\n", 0o644)})
    dyn = {f.path: f for f in r.findings if f.rule == "dynamic-executable"}
    app = dyn["/usr/bin/app"].detail
    assert "/usr/lib/liba.so" in app["libraries"] and "/usr/lib/libb.so" in app["libraries"]
    assert all(p.startswith("/") and "/../" not in p + "/" for p in app["libraries"])
    assert "/proc/self/mem" in app["missing"]                 # never looked up on the host
    wide = dyn["/usr/bin/wide"].detail
    assert len(wide["missing"]) <= 2000 and wide["libraries"] == []


def test_root_user_variants():
    passwd = b"root:x:0:0::/root:/bin/sh\nweb:x:0:0::/:/sbin/nologin\napp:x:1000:1000::/:/sbin/nologin\n"
    for user, root in (("", True), ("root", True), ("0:0", True), ("web", True), ("app", False), ("1000", False),
                       ("nobody-unknown", False)):
        cfg = {"config": {"User": user}} if user else {"config": {}}
        r = report_of({"etc/passwd": passwd}, cfg)
        assert ("root-user" in rules(r)) is root, user
        assert r.summary["non_root"] is (not root and user != "nobody-unknown")


def test_secrets_files_content_and_env():
    key = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEow==\n-----END RSA PRIVATE KEY-----\n"
    cfg = {"config": {"User": "1", "Env": ["PATH=/bin", "DB_PASSWORD=hunter2hunter2", "API_TOKEN=",
                                           "X=ghp_" + "a" * 36, "PASSWORD_FILE=/run/secrets/pw"]}}
    r = report_of({"app/.env": b"DB=1\n", "root/.aws/credentials": b"[default]\n", "srv/tls.key": key,
                   "usr/share/doc/pkg/example.key": key, "home/u/.ssh/id_ed25519": b"x",
                   "app/.env.example": b""}, cfg)
    got = rules(r)
    assert sorted(got["secret-file"]) == ["/app/.env", "/home/u/.ssh/id_ed25519", "/root/.aws/credentials"]
    assert got["secret-content"] == ["/srv/tls.key"]
    env = [f for f in r.findings if f.rule == "secret-env"]
    assert sorted(f.detail["variable"] for f in env) == ["DB_PASSWORD", "X"]
    assert all("hunter2" not in f.message and "ghp_" not in f.message for f in r.findings)
    assert r.summary["grade"] == "F"


def test_timestamps():
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i, t in enumerate((0, 0, 1700000000)):
            ti = tarfile.TarInfo(f"f{i}")
            ti.mtime = t
            tf.addfile(ti, io.BytesIO(b""))
    r = build_report(scan_of(buf.getvalue(), config=NONROOT))
    [f] = [f for f in r.findings if f.rule == "timestamps"]
    assert f.detail["distinct_mtimes"] == 2 and f.severity == "low"


def test_score_grade_and_fail_on():
    r = report_of({"bin/sh": ("file", static_elf(b"GNU bash, version"), 0o755)}, {"config": {}})
    assert {f.rule for f in r.findings} == {"shell", "root-user"}
    assert r.summary["score"] == 20 and r.summary["grade"] == "C"
    assert [f.rule for f in at_least(r.findings, "high")] == ["root-user", "shell"]
    assert at_least(r.findings, "critical") == []
    with pytest.raises(UsageError):
        parse_severity("severe")


def test_grade_boundaries():
    from kilobox.audit.findings import Finding
    low = [Finding("timestamps", "low", "", "", "")]
    assert grade(attack_surface_score(low, 1), low) == "A"
    high = [Finding("setuid", "high", "/x", "", "")]
    assert grade(attack_surface_score(high, 1), high) == "B"
    many = [Finding("setuid", "high", f"/{i}", "", "") for i in range(20)]
    assert attack_surface_score(many, 1) == 30                 # one rule counts at most 3x
    assert attack_surface_score([], 10_000) == 20              # executables count, capped
    crit = [Finding("secret-env", "critical", "", "", "")]
    assert grade(attack_surface_score(crit, 1), crit) == "F"


def test_json_is_stable_and_documented_shape():
    r = report_of({"app": ("file", static_elf(), 0o755)})
    d = r.to_dict()
    assert d["schema"] == "kilobox.audit/v1"
    assert list(d) == ["schema", "image", "summary", "findings", "packages", "warnings"]
    assert set(d["summary"]) >= {"files", "total_bytes", "executables", "shells", "setuid", "packages", "user",
                                 "non_root", "findings", "score", "grade", "scope"}
    import json
    assert json.loads(json.dumps(d)) == d
