"""Packages found inside an image: dpkg, apk, Python dist-info, Go build info, Rust cargo-auditable.

Pure readers over a :class:`~kilobox.audit.scan.Scan` (the captured database files and
the ELF facts); malformed databases yield what could be read, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import HeaderParser
from urllib.parse import quote

from .elf import go_modules
from .scan import Scan

_MAX_PARAGRAPHS = 100_000


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    type: str                # deb | apk | pypi | golang | cargo
    found_in: str            # the file it was read from
    arch: str = ""
    supplier: str = ""
    license: str = ""
    namespace: str = ""      # distro (purl namespace) for deb/apk

    @property
    def purl(self) -> str:
        name = self.name
        if self.type == "pypi":
            name = re.sub(r"[-_.]+", "-", name).lower()
        ns = ""
        if self.type in ("deb", "apk") and self.namespace:
            ns = quote(self.namespace, safe="") + "/"
        elif self.type == "golang" and "/" in name:
            head, _, name = name.rpartition("/")
            ns = "/".join(quote(p, safe="") for p in head.split("/")) + "/"
        out = f"pkg:{self.type}/{ns}{quote(name, safe='')}"
        if self.version:
            out += "@" + quote(self.version, safe=".-_~")
        if self.arch:
            out += "?arch=" + quote(self.arch, safe="")
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "type": self.type, "purl": self.purl,
                "found_in": self.found_in, **({"arch": self.arch} if self.arch else {}),
                **({"license": self.license} if self.license else {})}


def os_release(scan: Scan) -> dict[str, str]:
    raw = scan.captured.get("/etc/os-release") or scan.captured.get("/usr/lib/os-release") or b""
    out = {}
    for line in raw.decode("utf-8", "replace").splitlines()[:200]:
        k, sep, v = line.partition("=")
        if sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", k):
            out[k] = v.strip().strip("\"'")[:200]
    return out


def _deb_paragraphs(text: str):
    para: dict[str, str] = {}
    last = None
    count = 0
    for line in text.splitlines():
        if not line.strip():
            if para:
                yield para
                count += 1
                if count >= _MAX_PARAGRAPHS:
                    return
            para, last = {}, None
            continue
        if line[0] in " \t":
            continue  # continuation lines (descriptions, conffiles): not needed
        k, sep, v = line.partition(":")
        if sep:
            last = k.strip()
            para[last] = v.strip()
    if para:
        yield para


def dpkg_packages(scan: Scan, namespace: str = "debian") -> list[Package]:
    out = []
    for path, raw in sorted(scan.captured.items()):
        if not (path == "/var/lib/dpkg/status" or path.startswith("/var/lib/dpkg/status.d/")):
            continue
        for p in _deb_paragraphs(raw.decode("utf-8", "replace")):
            status = p.get("Status", "install ok installed").split()
            if not p.get("Package") or (status and status[-1] != "installed"):
                continue
            out.append(Package(p["Package"][:200], p.get("Version", "")[:100], "deb", path,
                               arch=p.get("Architecture", "")[:32], supplier=p.get("Maintainer", "")[:200],
                               namespace=namespace))
    return out


def apk_packages(scan: Scan, namespace: str = "alpine") -> list[Package]:
    raw = scan.captured.get("/lib/apk/db/installed")
    if raw is None:
        return []
    out = []
    cur: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines() + [""]:
        if not line:
            if cur.get("P"):
                out.append(Package(cur["P"][:200], cur.get("V", "")[:100], "apk", "/lib/apk/db/installed",
                                   arch=cur.get("A", "")[:32], supplier=cur.get("m", "")[:200],
                                   license=cur.get("L", "")[:200], namespace=namespace))
                if len(out) >= _MAX_PARAGRAPHS:
                    break
            cur = {}
            continue
        if len(line) > 2 and line[1] == ":":
            cur.setdefault(line[0], line[2:])
    return out


def python_packages(scan: Scan) -> list[Package]:
    out = []
    for path, raw in sorted(scan.captured.items()):
        if not (path.endswith(".dist-info/METADATA") or path.endswith("PKG-INFO") or path.endswith(".egg-info")):
            continue
        try:
            msg = HeaderParser().parsestr(raw[:65536].decode("utf-8", "replace"), headersonly=True)
        except Exception:  # noqa: BLE001 - hostile metadata: skip it
            continue
        name, version = msg.get("Name"), msg.get("Version")
        if name and version:
            out.append(Package(str(name)[:200], str(version)[:100], "pypi", path,
                               license=str(msg.get("License") or "")[:200]))
    return out


def binary_packages(scan: Scan) -> list[Package]:
    """Go modules (build info) and Rust crates (cargo auditable) embedded in ELF files."""
    out = []
    for e in scan.entries.values():
        if e.kind != "file" or e.elf is None:
            continue
        if e.elf.go_modinfo:
            main, deps = go_modules(e.elf.go_modinfo)
            if main:
                out.append(Package(main["path"][:300], main["version"][:100], "golang", e.path))
            for d in deps[:5000]:
                out.append(Package(d["path"][:300], d["version"][:100], "golang", e.path))
            if e.elf.go_version:
                out.append(Package("stdlib", e.elf.go_version.removeprefix("go")[:100], "golang", e.path))
        for d in e.elf.rust_deps:
            out.append(Package(d["name"], d["version"], "cargo", e.path))
    return out


def find_packages(scan: Scan) -> list[Package]:
    """Every package the image declares, sorted by type, name, version; duplicates removed."""
    osr = os_release(scan)
    distro = osr.get("ID", "")
    pkgs = (dpkg_packages(scan, distro or "debian") + apk_packages(scan, distro or "alpine")
            + python_packages(scan) + binary_packages(scan))
    seen: set[tuple[str, str, str, str]] = set()
    out = []
    for p in sorted(pkgs, key=lambda p: (p.type, p.name, p.version, p.found_in)):
        key = (p.type, p.name, p.version, p.found_in)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


__all__ = ["Package", "find_packages", "os_release", "dpkg_packages", "apk_packages", "python_packages",
           "binary_packages"]
