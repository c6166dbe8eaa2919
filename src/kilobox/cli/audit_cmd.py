"""kilobox audit — findings, summary, attack-surface score and grade of any image; a CI gate."""

from __future__ import annotations

import argparse

from ._common import add_platform_option, add_registry_options, options_from, print_json

HELP = "audit an image: shells, package managers, setuid, secrets… with a score, a grade and the audit scope"

EPILOG = """examples:
  kilobox audit 127.0.0.1:5000/team/api:1
  kilobox audit --json oci:out:httpd
  kilobox audit --fail-on high oci:out:app
  kilobox audit --policy policy.toml oci:out:app
  kilobox audit --format sarif oci:out:app > audit.sarif
exit status: 0 passed, 1 a --fail-on/--policy gate failed, 2 bad arguments, 3 image not found"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("ref", metavar="REF", help="image: oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, REGISTRY/REPO:TAG")
    p.add_argument("--json", action="store_true", help="JSON output (schema kilobox.audit/v1, docs/audit.md)")
    p.add_argument("--format", choices=("text", "json", "sarif"), default=None, help="output format (default text)")
    p.add_argument("--fail-on", metavar="SEVERITY", help="exit 1 when a finding of this severity or worse exists "
                   "(critical, high, medium, low, info)")
    p.add_argument("--policy", metavar="FILE", help="TOML policy to enforce (exit 1 on a violation)")
    p.add_argument("--all", action="store_true", help="list every finding (text output)")
    add_platform_option(p)
    add_registry_options(p)


def run(args: argparse.Namespace) -> int:
    from ..audit import audit, check_fail_on, check_policy, parse_severity, render_text
    from ..errors import PolicyViolation
    fmt = args.format or ("json" if args.json else "text")
    if args.fail_on:
        parse_severity(args.fail_on)
    report = audit(args.ref, platform=args.platform, source_options=options_from(args))
    if fmt == "json":
        print_json(report.to_dict())
    elif fmt == "sarif":
        from ..audit.sarif import to_sarif
        print_json(to_sarif(report))
    else:
        print(render_text(report, limit=0 if args.all else 5))
    errors: list[PolicyViolation] = []
    for check, arg in ((check_fail_on, args.fail_on), (check_policy, args.policy)):
        if arg:
            try:
                check(report, arg)
            except PolicyViolation as e:
                errors.append(e)
    if errors:
        raise PolicyViolation("; ".join(e.message for e in errors), hint=errors[0].hint)
    return 0
