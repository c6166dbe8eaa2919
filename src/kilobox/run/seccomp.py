"""The default seccomp profile: package data → an OCI ``linux.seccomp`` section.

``kilobox/data/seccomp_default.json`` is an allow-list in containers-common's
rule format; :func:`oci_profile` selects the rules that apply to a set of
capabilities and an architecture (as podman does) and returns the section.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import FormatError

DATA = Path(__file__).resolve().parent.parent / "data" / "seccomp_default.json"

#: Python's machine name → the Go/OCI architecture names used in the profile's rules
GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
          "armv6l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
          "riscv64": "riscv64", "mips64": "mips64"}
#: Go architecture → seccomp native architecture
SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "arm": "SCMP_ARCH_ARM",
             "386": "SCMP_ARCH_X86", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
             "riscv64": "SCMP_ARCH_RISCV64", "mips64": "SCMP_ARCH_MIPS64"}
#: rule arch names that also match an architecture (x86 rules apply to amd64, …)
_ALIASES = {"amd64": {"amd64", "x86_64"}, "386": {"x86", "386"}, "arm64": {"arm64", "aarch64"}}


@lru_cache(maxsize=4)
def load_profile(path: str | None = None) -> dict[str, Any]:
    """The raw profile (containers-common format); validated lightly."""
    p = Path(path) if path else DATA
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise FormatError(f"seccomp profile {p}: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("syscalls"), list) or "defaultAction" not in doc:
        raise FormatError(f"seccomp profile {p}: needs defaultAction and a syscalls list")
    return doc


def _applies(rule: dict[str, Any], caps: frozenset[str], arch: str) -> bool:
    names = _ALIASES.get(arch, {arch})
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("arches") and not names & set(inc["arches"]):
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if exc.get("arches") and names & set(exc["arches"]):
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    return True


def oci_profile(caps: tuple[str, ...] | frozenset[str] = (), machine: str | None = None,
                profile: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``linux.seccomp`` section for a process holding *caps* on *machine* (default: this host)."""
    if machine is None:
        import os
        machine = os.uname().machine
    arch = GOARCH.get(machine, machine)
    doc = profile if profile is not None else load_profile()
    capset = frozenset(caps)
    out: dict[str, Any] = {"defaultAction": doc["defaultAction"]}
    if doc.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = int(doc["defaultErrnoRet"])
    native = SCMP_ARCH.get(arch)
    if native:
        arches = [native]
        for entry in doc.get("archMap") or []:
            if entry.get("architecture") == native:
                arches += list(entry.get("subArchitectures") or [])
        out["architectures"] = arches
    rules = []
    for rule in doc["syscalls"]:
        if not _applies(rule, capset, arch):
            continue
        r: dict[str, Any] = {"names": list(rule["names"]), "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            r["errnoRet"] = int(rule["errnoRet"])
        if rule.get("args"):
            r["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a} for a in rule["args"]]
        rules.append(r)
    out["syscalls"] = rules
    return out
