"""SARIF 2.1.0 output of an audit, for code-scanning dashboards.

One run, tool ``kilobox``, one rule per audit rule (with ``security-severity`` so GitHub
ranks them), one result per finding. File findings point at the path inside the image
(relative URI under ``%IMAGE%``); image-level findings (user, ENV) point at the image config.
"""

from __future__ import annotations

from urllib.parse import quote

from .. import __version__
from .findings import RULES, SEVERITIES
from .report import AuditReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0", "info": "0.0"}


def to_sarif(report: AuditReport) -> dict:
    rule_ids = list(RULES)
    rules = []
    for rid in rule_ids:
        r = RULES[rid]
        rules.append({
            "id": rid, "name": r.title.title().replace(" ", "").replace("-", ""),
            "shortDescription": {"text": r.title},
            "fullDescription": {"text": f"{r.title}: {r.why}."},
            "help": {"text": r.hint, "markdown": f"**Fix:** {r.hint}"},
            "defaultConfiguration": {"level": _LEVEL[r.severity]},
            "properties": {"security-severity": _SECURITY_SEVERITY[r.severity], "tags": ["security", "container"],
                           "problem.severity": r.severity},
        })
    image = report.image_info()
    results = []
    for f in report.findings:
        uri = quote(f.path.lstrip("/"), safe="/") if f.path else "image-config.json"
        res = {
            "ruleId": f.rule, "ruleIndex": rule_ids.index(f.rule), "level": _LEVEL[f.severity],
            "message": {"text": f"{f.message} Fix: {f.hint}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "IMAGE"}},
                           "logicalLocations": [{"name": image["name"] or "image", "kind": "module"}]}],
            "partialFingerprints": {"kilobox/v1": f"{f.rule}:{f.path}:{f.detail.get('program', '')}"
                                                  f":{f.detail.get('variable', '')}"},
            "properties": {"severity": f.severity, **({"detail": f.detail} if f.detail else {})},
        }
        results.append(res)
    s = report.summary
    return {
        "$schema": SARIF_SCHEMA, "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "kilobox", "version": __version__, "semanticVersion": __version__,
                                "informationUri": "https://github.com/kilobox/kilobox", "rules": rules}},
            "originalUriBaseIds": {"IMAGE": {"uri": "file:///", "description": {"text": f"root of {image['name']}"}}},
            "results": results,
            "properties": {"image": image["name"], "digest": image["digest"], "grade": s["grade"],
                           "score": s["score"], "findings": {k: s["findings"][k] for k in SEVERITIES}},
        }],
    }


__all__ = ["to_sarif", "SARIF_SCHEMA"]
