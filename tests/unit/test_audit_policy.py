"""The TOML policy gate and --fail-on."""

from __future__ import annotations

import pytest

from kilobox.audit import build_report, check_fail_on, check_policy
from kilobox.audit.policy import evaluate, load_policy, parse_policy, parse_size
from kilobox.errors import PolicyViolation, UsageError
from tests.fixtures.debian import scan_of, static_elf, tar_of

DPKG = b"Package: openssl\nVersion: 3.0\nStatus: install ok installed\n\nPackage: musl\nVersion: 1\n\n"


def fat():
    return build_report(scan_of(tar_of({"bin/sh": ("file", static_elf(b"GNU bash, version"), 0o755),
                                        "usr/bin/su": ("file", static_elf(), 0o4755),
                                        "var/lib/dpkg/status": DPKG}), config={"config": {}}))


def micro():
    return build_report(scan_of(tar_of({"app": ("file", static_elf(), 0o755)})))


def test_strict_policy_passes_micro_and_lists_every_fat_violation(tmp_path):
    p = tmp_path / "policy.toml"
    p.write_text('[policy]\nforbid_shells = true\nforbid_setuid = true\nrequire_non_root = true\n'
                 'max_size = "1MiB"\nmax_executables = 1\nmax_scope_files = 1\nmin_grade = "A"\n'
                 'allowed_packages = ["musl"]\ndenied_packages = ["openssl*"]\nfail_on = "high"\n')
    pol = load_policy(p)
    assert evaluate(micro(), pol) == []
    v = evaluate(fat(), pol)
    text = "\n".join(v)
    for needle in ("at or above high", "forbidden: shell", "forbidden: setuid", "must not run as root",
                   "max_executables: 2 > 1", "grade", "package not allowed: openssl", "package denied: openssl"):
        assert needle in text, (needle, v)
    assert "musl" not in text
    check_policy(micro(), str(p))
    with pytest.raises(PolicyViolation):
        check_policy(fat(), str(p))


def test_ignore_paths():
    pol = parse_policy({"forbid_setuid": True, "ignore_paths": ["/usr/bin/*"]})
    assert evaluate(fat(), pol) == []


def test_fail_on():
    check_fail_on(fat(), "critical")
    with pytest.raises(PolicyViolation, match="at or above high"):
        check_fail_on(fat(), "high")
    with pytest.raises(UsageError):
        check_fail_on(fat(), "bogus")


@pytest.mark.parametrize("doc", [{"forbid_shell": True}, {"forbid_shells": "yes"}, {"max_files": -1},
                                 {"max_size": "12 parsecs"}, {"min_grade": "Z"}, {"forbid_rules": ["nope"]},
                                 {"allowed_packages": "musl"}, {"fail_on": "urgent"}])
def test_bad_policies(doc):
    with pytest.raises(UsageError):
        parse_policy(doc)


def test_bad_toml(tmp_path):
    p = tmp_path / "p.toml"
    p.write_bytes(b"forbid_shells = \xff")
    with pytest.raises(UsageError):
        load_policy(p)
    with pytest.raises(UsageError):
        load_policy(tmp_path / "missing.toml")


def test_sizes():
    assert parse_size("20MiB", "k") == 20 << 20 and parse_size("5MB", "k") == 5_000_000
    assert parse_size(1234, "k") == 1234 and parse_size("1.5k", "k") == 1500
