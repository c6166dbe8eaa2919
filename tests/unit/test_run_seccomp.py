"""The default seccomp profile: allow-list shape and capability-dependent rules."""

from __future__ import annotations

import json

import pytest

from kilobox.errors import FormatError
from kilobox.run.seccomp import DATA, load_profile, oci_profile


def _allowed(p):
    return {n for r in p["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}


def _denied(p):
    return {n for r in p["syscalls"] if r["action"] == "SCMP_ACT_ERRNO" for n in r["names"]}


def test_packaged_profile_is_an_allow_list():
    raw = json.loads(DATA.read_text())
    assert raw["defaultAction"] == "SCMP_ACT_ERRNO"
    p = oci_profile((), "x86_64")
    assert p["architectures"][0] == "SCMP_ARCH_X86_64"
    allowed = _allowed(p)
    assert {"read", "write", "execve", "exit_group", "epoll_wait", "accept4", "arch_prctl"} <= allowed
    for dangerous in ("kexec_load", "init_module", "bpf", "mount", "umount2", "unshare", "setns", "pivot_root",
                      "open_by_handle_at", "reboot", "swapon", "chroot", "perf_event_open", "clone3", "fsopen"):
        assert dangerous not in allowed, dangerous
    clone = [r for r in p["syscalls"] if r["names"] == ["clone"]]
    assert clone == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]


def test_capabilities_unlock_their_syscalls():
    assert "chroot" in _denied(oci_profile((), "x86_64"))
    p = oci_profile(("CAP_SYS_CHROOT",), "x86_64")
    assert "chroot" in _allowed(p) and "chroot" not in _denied(p)
    p = oci_profile(("CAP_SYS_ADMIN",), "x86_64")
    assert {"mount", "unshare", "clone", "clone3"} <= _allowed(p)
    assert not {"mount", "unshare", "clone3"} & _denied(p)


def test_arch_specific_rules():
    assert "arch_prctl" not in _allowed(oci_profile((), "aarch64"))
    assert oci_profile((), "aarch64")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


@pytest.mark.parametrize("doc", ["", "[]", "{}", '{"defaultAction": "SCMP_ACT_ERRNO"}', "{"])
def test_broken_profiles_are_rejected(tmp_path, doc):
    f = tmp_path / "p.json"
    f.write_text(doc)
    load_profile.cache_clear()
    with pytest.raises(FormatError):
        load_profile(str(f))
