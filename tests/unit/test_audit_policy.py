"""The TOML policy gate and --fail-on."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kilobox.audit import build_report, check_fail_on, check_policy
from kilobox.audit.policy import evaluate, load_policy, parse_policy, parse_size
from kilobox.errors import PolicyViolation, UsageError
from tests.fixtures.debian import scan_of, static_elf, tar_of

DPKG = b"Package: openssl\nVersion: 3.0\nStatus: install ok installed\n\nPackage: musl\nVersion: 1\n\n"


def fat():
    return build_report(scan_of(tar_of({"bin/sh": ("file", static_elf(b"GNU bash, version"), 0o755),
                                        "usr/bin/su": ("file", static_elf(), 0o4755),
                                        "var/lib/dpkg/status": DPKG}), config={"config": {}}))


@functools.cache
def fat_report():
    return fat()


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


def test_hostile_policy_files(tmp_path):
    """Deep nesting (tomllib recurses), a directory, binary junk, an empty [policy]: UsageError or a policy."""
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000)
    arrays = tmp_path / "arrays.toml"
    arrays.write_text("[[policy]]\nforbid_shells = true\n")
    junk = tmp_path / "junk.toml"
    junk.write_bytes(bytes(range(256)) * 4)
    for p in (deep, arrays, junk, tmp_path):
        with pytest.raises(UsageError):
            load_policy(p)
    empty = tmp_path / "empty.toml"
    empty.write_text("[policy]\n")
    assert evaluate(fat_report(), load_policy(empty)) == []


_KEYS = ["fail_on", "forbid_rules", "forbid_shells", "forbid_setuid", "require_non_root", "max_size",
         "max_unpacked_size", "max_files", "max_executables", "max_scope_files", "min_grade",
         "allowed_packages", "denied_packages", "ignore_paths", "policy", "bogus"]
_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=30),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=3), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES | st.sampled_from(["1MiB", "A", "high", "*"]), max_size=6))
def test_any_policy_table_is_a_policy_or_a_usage_error(doc):
    try:
        pol = parse_policy(doc)
    except UsageError:
        return
    assert isinstance(evaluate(fat_report(), pol), list)
