"""SBOMs: SPDX 2.3 JSON and CycloneDX 1.6 JSON.

Both describe the image itself, every regular file with its sha256 (SPDX also needs
sha1), the packages found inside (:mod:`kilobox.audit.packages`) and every static
executable as a component of its own (a micro image's one binary is its whole SBOM).
Output is deterministic for an image: identifiers derive from its digest, the creation
time is the image's ``created`` (or ``$SOURCE_DATE_EPOCH``), not the clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import uuid
from urllib.parse import quote

from .. import __version__
from ..errors import UsageError
from .findings import is_executable
from .packages import find_packages
from .scan import Entry, Scan, ScanOptions

FORMATS = ("spdx-json", "cyclonedx-json")
_NS = uuid.UUID("6b1d1e0e-8c3a-4f57-9d1a-6b696c6f626f")


def sbom(image: "str | Scan | object", format: str = "spdx-json", *, platform: str | None = None,
         source_options: object = None) -> dict:
    """The SBOM of *image* (a location, an open Image, or a Scan made with sha1+sha256) as a JSON-ready dict."""
    if format not in FORMATS:
        raise UsageError(f"unknown SBOM format {format!r}", hint=f"use one of {', '.join(FORMATS)}")
    from .inputs import load_scan
    scan = load_scan(image, ScanOptions(content=True, signatures=False, hashes=("sha256", "sha1")), platform=platform,  # type: ignore[arg-type]
                     source_options=source_options)
    return spdx_document(scan) if format == "spdx-json" else cyclonedx_document(scan)


# --------------------------------------------------------------------------- shared

def _created(scan: Scan) -> str:
    sde = os.environ.get("SOURCE_DATE_EPOCH", "")
    if sde.isdigit():
        t = dt.datetime.fromtimestamp(int(sde), dt.timezone.utc)
    else:
        raw = str((scan.config or {}).get("created") or "")
        try:
            t = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            t = t.astimezone(dt.timezone.utc) if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
        except ValueError:
            t = dt.datetime.fromtimestamp(0, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_name(scan: Scan) -> str:
    """A short name: the tag/repository of the location it was read from."""
    name = scan.name or "image"
    if name.startswith(("oci:", "oci-archive:", "docker-archive:")):
        parts = name.split(":")
        return parts[2] if len(parts) > 2 and parts[2] else os.path.basename(parts[1].rstrip("/")) or "image"
    name = name.removeprefix("docker://")
    repo = name.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    return last.split(":", 1)[0] or "image"


def image_purl(scan: Scan) -> str:
    name = re.sub(r"[^a-z0-9._-]", "-", image_name(scan).lower()) or "image"
    out = f"pkg:oci/{name}"
    if scan.digest:
        out += "@" + quote(scan.digest, safe="")
    arch = str((scan.config or {}).get("architecture", "") or "")
    if arch:
        out += "?arch=" + quote(arch, safe="")
    return out


def static_binaries(scan: Scan) -> list[Entry]:
    return sorted((e for e in scan.entries.values()
                   if e.kind == "file" and e.elf is not None and is_executable(e) and not e.elf.dynamic),
                  key=lambda e: e.path)


def _files(scan: Scan) -> list[Entry]:
    return sorted((e for e in scan.entries.values() if e.kind in ("file", "hardlink") and e.sha256),
                  key=lambda e: e.path)


def _binary_version(e: Entry) -> str:
    if e.elf is not None and e.elf.go_modinfo:
        from .elf import go_modules
        main, _ = go_modules(e.elf.go_modinfo)
        if main and main["version"]:
            return main["version"]
    return e.sha256[:12]


def _uuid(scan: Scan, kind: str) -> uuid.UUID:
    return uuid.uuid5(_NS, f"{kind}:{scan.digest or scan.name}:{len(scan.entries)}")


# --------------------------------------------------------------------------- SPDX 2.3

def spdx_document(scan: Scan) -> dict:
    files = _files(scan)
    if any(not e.sha1 for e in files):
        raise UsageError("an SPDX document needs sha1 file checksums", hint="scan with hashes=('sha256', 'sha1')")
    packages = find_packages(scan)
    name = image_name(scan)
    verification = hashlib.sha1("".join(sorted(e.sha1 for e in files)).encode()).hexdigest()
    image_pkg: dict = {
        "SPDXID": "SPDXRef-Image", "name": name, "versionInfo": scan.digest or "unknown",
        "downloadLocation": "NOASSERTION", "filesAnalyzed": True,
        "packageVerificationCode": {"packageVerificationCodeValue": verification},
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": image_purl(scan)}],
        "copyrightText": "NOASSERTION", "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
    }
    if scan.digest.startswith("sha256:"):
        image_pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": scan.digest.split(":", 1)[1]}]
    out_pkgs = [image_pkg]
    rels = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"}]
    for i, p in enumerate(packages, 1):
        sid = f"SPDXRef-Package-{p.type}-{i}"
        d = {"SPDXID": sid, "name": p.name, "versionInfo": p.version or "NOASSERTION",
             "downloadLocation": "NOASSERTION", "filesAnalyzed": False, "primaryPackagePurpose": "LIBRARY",
             "sourceInfo": f"found in {p.found_in}",
             "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": p.purl}],
             "copyrightText": "NOASSERTION", "licenseConcluded": "NOASSERTION",
             "licenseDeclared": "NOASSERTION"}
        if p.supplier:
            d["supplier"] = "Organization: " + _spdx_text(p.supplier)
        out_pkgs.append(d)
        rels.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": sid})
    out_files = []
    for i, e in enumerate(files, 1):
        sid = f"SPDXRef-File-{i}"
        ftype = ["BINARY"] if e.content == "elf" else (["SOURCE"] if e.content == "script" else
                                                       (["TEXT"] if e.content == "text" else ["OTHER"]))
        out_files.append({"SPDXID": sid, "fileName": "." + e.path, "fileTypes": ftype,
                          "checksums": [{"algorithm": "SHA1", "checksumValue": e.sha1},
                                        {"algorithm": "SHA256", "checksumValue": e.sha256}],
                          "licenseConcluded": "NOASSERTION", "copyrightText": "NOASSERTION"})
        rels.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": sid})
    for i, e in enumerate(static_binaries(scan), 1):
        sid = f"SPDXRef-Binary-{i}"
        out_pkgs.append({"SPDXID": sid, "name": e.name, "versionInfo": _binary_version(e),
                         "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
                         "primaryPackagePurpose": "APPLICATION", "sourceInfo": f"static executable {e.path}",
                         "checksums": [{"algorithm": "SHA256", "checksumValue": e.sha256},
                                       {"algorithm": "SHA1", "checksumValue": e.sha1}],
                         "copyrightText": "NOASSERTION", "licenseConcluded": "NOASSERTION",
                         "licenseDeclared": "NOASSERTION"})
        rels.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": sid})
    ns_name = re.sub(r"[^A-Za-z0-9._-]", "-", name)
    return {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": name,
        "documentNamespace": f"https://spdx.org/spdxdocs/kilobox/{ns_name}-{_uuid(scan, 'spdx')}",
        "creationInfo": {"created": _created(scan), "creators": [f"Tool: kilobox-{__version__}"]},
        "documentDescribes": ["SPDXRef-Image"],
        "packages": out_pkgs, "files": out_files, "relationships": rels,
    }


def _spdx_text(s: str) -> str:
    return s.replace("\n", " ").strip()[:200] or "NOASSERTION"


# --------------------------------------------------------------------------- CycloneDX 1.6

def cyclonedx_document(scan: Scan) -> dict:
    packages = find_packages(scan)
    name = image_name(scan)
    image: dict = {"type": "container", "bom-ref": "image", "name": name, "version": scan.digest or "unknown",
                   "purl": image_purl(scan)}
    if scan.digest.startswith("sha256:"):
        image["hashes"] = [{"alg": "SHA-256", "content": scan.digest.split(":", 1)[1]}]
    comps: list[dict] = []
    refs: list[str] = []
    for i, p in enumerate(packages, 1):
        ref = f"pkg-{i}"
        c = {"type": "library", "bom-ref": ref, "name": p.name, "version": p.version, "purl": p.purl,
             "properties": [{"name": "kilobox:found_in", "value": p.found_in},
                            {"name": "kilobox:package_type", "value": p.type}]}
        if p.supplier:
            c["supplier"] = {"name": _spdx_text(p.supplier)}
        if p.license:
            c["licenses"] = [{"license": {"name": p.license[:200]}}]
        comps.append(c)
        refs.append(ref)
    for i, e in enumerate(static_binaries(scan), 1):
        ref = f"binary-{i}"
        comps.append({"type": "application", "bom-ref": ref, "name": e.name, "version": _binary_version(e),
                      "hashes": [{"alg": "SHA-256", "content": e.sha256}],
                      "properties": [{"name": "kilobox:path", "value": e.path},
                                     {"name": "kilobox:linkage", "value": "static"}]})
        refs.append(ref)
    for i, e in enumerate(_files(scan), 1):
        ref = f"file-{i}"
        comps.append({"type": "file", "bom-ref": ref, "name": e.path,
                      "hashes": [{"alg": "SHA-256", "content": e.sha256}, {"alg": "SHA-1", "content": e.sha1}]
                      if e.sha1 else [{"alg": "SHA-256", "content": e.sha256}]})
        refs.append(ref)
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX", "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{_uuid(scan, 'cyclonedx')}", "version": 1,
        "metadata": {"timestamp": _created(scan),
                     "tools": {"components": [{"type": "application", "name": "kilobox", "version": __version__}]},
                     "component": image},
        "components": comps,
        "dependencies": [{"ref": "image", "dependsOn": refs}],
    }


__all__ = ["sbom", "spdx_document", "cyclonedx_document", "FORMATS", "image_purl", "image_name", "static_binaries"]
