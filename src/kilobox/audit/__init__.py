"""Audit and inspect any image: attack surface, size breakdown, SBOM, diff, compare, policy gate.

::

    from kilobox.audit import audit
    report = audit("oci:out:httpd")          # or an open Image, or a Scan
    report.grade, report.summary["scope"], report.findings

Everything reads the image in one streaming pass (:mod:`kilobox.audit.scan`); the
other modules are pure functions over that scan.
"""

from __future__ import annotations

from .findings import RULES, SEVERITIES, Finding, at_least, parse_severity
from .report import AuditReport, build_report, render_text
from .scan import Scan, ScanOptions


def audit(image: "str | Scan | object", *, platform: str | None = None, source_options: object = None) -> AuditReport:
    """Audit *image*: a location (``oci:DIR:TAG``, ``REGISTRY/REPO:TAG``…), an open Image, or a Scan."""
    from .inputs import load_scan
    scan = load_scan(image, ScanOptions(content=True, hashes=()), platform=platform,  # type: ignore[arg-type]
                     source_options=source_options)
    return build_report(scan)


def check_fail_on(report: AuditReport, severity: str) -> None:
    """Raise :class:`~kilobox.errors.PolicyViolation` when a finding of *severity* or worse exists."""
    from ..errors import PolicyViolation
    bad = at_least(report.findings, severity)
    if bad:
        raise PolicyViolation(f"{len(bad)} finding{'s' if len(bad) != 1 else ''} at or above {severity} "
                              f"in {report.scan.name} (first: {bad[0].rule} {bad[0].path or '(config)'})",
                              hint="fix them, or lower --fail-on")


def check_policy(report: AuditReport, policy_file: str) -> None:
    """Raise :class:`~kilobox.errors.PolicyViolation` listing every violation of the TOML policy."""
    from ..errors import PolicyViolation
    from .policy import evaluate, load_policy
    violations = evaluate(report, load_policy(policy_file))
    if violations:
        raise PolicyViolation(f"{report.scan.name} violates {policy_file}: " + "; ".join(violations),
                              hint="fix the image or adjust the policy")


__all__ = ["audit", "check_fail_on", "check_policy", "AuditReport", "Finding", "Scan", "ScanOptions", "RULES",
           "SEVERITIES", "build_report", "render_text", "parse_severity"]
