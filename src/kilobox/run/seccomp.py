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


# -- precompiled filters for crun ------------------------------------------------------
#: crun annotation carrying a ready BPF program (base64): crun then skips compiling the
#: profile with libseccomp on every start (~10 ms of a ~25 ms start on this class of host)
CRUN_BPF_ANNOTATION = "run.oci.seccomp_bpf_data"
PR_SET_CHILD_SUBREAPER = 36


def crun_bpf(section: dict[str, Any], crun: str, cache_dir: Path) -> bytes | None:
    """The BPF program crun compiles from *section*, compiled once by crun itself and cached.

    crun is asked to ``create`` (never start) a throwaway container with this
    profile in a scratch bundle; the ``seccomp.bpf`` it writes is exactly what
    it would load, byte for byte. Returns None if that fails (crun then compiles
    at each start, as usual).
    """
    import hashlib
    import os
    try:
        st = os.stat(crun)
    except OSError:
        return None
    key = hashlib.sha256(json.dumps([section, os.path.realpath(crun), st.st_size, st.st_mtime_ns,
                                     os.uname().release, os.uname().machine], sort_keys=True).encode()).hexdigest()
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / f"{key[:40]}.bpf"
    if cached.is_file():
        data = cached.read_bytes()
        return data if data and len(data) % 8 == 0 else None
    import tempfile
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="harvest.") as tmp:
        data = _harvest(section, crun, Path(tmp))
    if data:
        part = cached.with_name(cached.name + f".{os.getpid()}.tmp")
        part.write_bytes(data)
        os.replace(part, cached)
    return data


def _harvest(section: dict[str, Any], crun: str, d: Path) -> bytes | None:
    import os
    from .ns import Mounts, _lib, spawn
    from .runtimes import cgroup_mode
    rootfs = d / "rootfs"
    for sub in ("dev", "proc"):
        (rootfs / sub).mkdir(parents=True)
    (rootfs / "true").write_bytes(b"")
    os.chmod(rootfs / "true", 0o755)
    cfg = {"ociVersion": "1.0.2",
           "process": {"args": ["/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "terminal": False,
                       "noNewPrivileges": True},
           "root": {"path": "rootfs"}, "mounts": [],
           "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}], "seccomp": section}}
    (d / "config.json").write_text(json.dumps(cfg))
    root, out, cid = d / "root", d / "out.bpf", "kilobox-seccomp"
    mounts = Mounts(rootfs="", target="", cgroup_fix="cgroup2") if cgroup_mode() == "hybrid" else None
    glob = [crun, "--root", str(root), "--cgroup-manager=disabled"]
    lib, _ctypes = _lib()
    pid = os.fork()
    if pid == 0:   # helper: a subreaper, so the created (never started) init is reaped here
        code = 1
        try:
            lib.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            null = os.open(os.devnull, os.O_RDWR)
            p = spawn(glob + ["create", "--bundle", str(d), cid], mounts, stdin=null, stdout=null, stderr=null)
            os.waitpid(p, 0)
            try:
                out.write_bytes((root / cid / "seccomp.bpf").read_bytes())
                code = 0
            except OSError:
                pass
            p = spawn(glob + ["delete", "--force", cid], mounts, stdin=null, stdout=null, stderr=null)
            os.waitpid(p, 0)
            while True:
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    break
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0 or not out.is_file():
        return None
    data = out.read_bytes()
    return data if data and len(data) % 8 == 0 else None
