"""Helper of scripts/scan.sh, run with .venv-checkov's Python (it needs only PyYAML, which checkov brings).

    checkov_skips.py baseline --skips FILE --target NAME --out PATH
        Turn the reviewed skips in FILE that apply to target NAME into a checkov baseline file at
        PATH (written only when at least one applies). checkov's `--baseline` is its one
        per-resource suppression that works on every framework we scan: inline `checkov:skip`
        comments exist only in HCL, and checkov ignores them in Terraform JSON (cdk.tf.json) and
        plan JSON.

    checkov_skips.py check --skips FILE
        Validate FILE; print each problem as one line and exit 2.

    checkov_skips.py summary --target NAME --report JSON [--unfiltered JSON] [--skips FILE --sarif SARIF]
        Print `scan NAME: passed=N failed=N skipped=N` from checkov's JSON report. With a baseline,
        checkov drops every passed check from its report (bridgecrewio/checkov#4945), so passed is
        then read from --unfiltered, the same scan run without the baseline. Exit 0 when nothing
        failed, 1 when a check failed, 3 when the report is unusable (parse errors, nothing scanned).
        With --skips, write each applied skip's reason into SARIF's suppression (checkov writes only
        "baseline-skipped") and, with --used-out, record which skips applied and which matched.

    checkov_skips.py unused --skips FILE USED...
        Print a note for each skip that applied to a scanned target but matched nothing in any.

The skip file (.checkov-skips.yaml):

    skips:
      - id: CKV_AWS_356                 # the check id, as checkov prints it
        resource: data.aws_iam_policy_document.secrets_key_policy_464EA78C   # Terraform address
        targets: [dev, staging, prod]   # env names (their stack and plan scans) and/or "modules";
                                        # omitted: every target
        reason: Why the check does not apply here, in a sentence a reviewer can check.
        reviewed_by: name               # who accepted it
        expires: 2026-12-31             # optional; from that day on the skip no longer applies

A skip names one check on one resource; there are no wildcards, and nothing is skipped globally.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_[0-9]+$")
REQUIRED = ("id", "resource", "reason", "reviewed_by")
ALLOWED = (*REQUIRED, "targets", "expires")
BASELINE_MARK = "baseline-skipped"  # checkov's suppress_comment for a finding skipped by the baseline


class SkipFileError(Exception):
    pass


@dataclass(frozen=True)
class Skip:
    index: int
    check_id: str
    resource: str
    targets: tuple[str, ...] | None
    reason: str
    reviewed_by: str
    expires: dt.date | None

    def applies_to(self, target: str) -> bool:
        if self.targets is None:
            return True
        env = target.removesuffix("-plan")
        return target in self.targets or env in self.targets

    def label(self) -> str:
        return f"{self.check_id} on {self.resource}"

    def active(self, target: str, today: dt.date) -> bool:
        return self.applies_to(target) and (self.expires is None or self.expires > today)


def load_skips(path: Path) -> list[Skip]:
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SkipFileError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"skips"}:
        raise SkipFileError(f"{path}: the file must be a mapping with one key, skips")
    entries = data.get("skips") or []
    if not isinstance(entries, list):
        raise SkipFileError(f"{path}: skips must be a list")
    skips: list[Skip] = []
    seen: set[tuple[str, str, tuple[str, ...] | None]] = set()
    for index, entry in enumerate(entries):
        where = f"{path}: skips[{index}]"
        if not isinstance(entry, dict):
            raise SkipFileError(f"{where}: must be a mapping")
        unknown = sorted(set(entry) - set(ALLOWED))
        if unknown:
            raise SkipFileError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(ALLOWED)})")
        for key in REQUIRED:
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise SkipFileError(f"{where}: {key}: required, a non-empty string")
        check_id = entry["id"].strip()
        if not CHECK_ID.match(check_id):
            raise SkipFileError(f"{where}: id: {check_id!r} is not a checkov check id (CKV_AWS_123, CKV2_AWS_57)")
        resource = entry["resource"].strip()
        if "*" in resource:
            raise SkipFileError(f"{where}: resource: name one resource, no wildcards")
        targets = entry.get("targets")
        if targets is not None and (
            not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets)
        ):
            raise SkipFileError(f"{where}: targets: a non-empty list of env names and/or modules")
        expires = entry.get("expires")
        if expires is not None and not isinstance(expires, dt.date):
            raise SkipFileError(f"{where}: expires: a date, YYYY-MM-DD")
        scope = tuple(sorted(targets)) if targets else None
        if (check_id, resource, scope) in seen:
            raise SkipFileError(f"{where}: {check_id} on {resource} is listed twice")
        seen.add((check_id, resource, scope))
        skips.append(
            Skip(index, check_id, resource, scope, entry["reason"].strip(), entry["reviewed_by"].strip(), expires)
        )
    return skips


def checkov_resource_ids(address: str) -> list[str]:
    """The ids checkov may report for one Terraform address.

    Terraform JSON (cdk.tf.json) is reported two ways: Python checks as `data.<name>` /
    `resource.<name>` (no type), graph checks as `<type>.<name>`. HCL and plan scans use
    the address itself (`data.<type>.<name>`, `<type>.<name>`, `module.<m>.<type>.<name>`).
    """
    parts = address.split(".")
    ids = [address]
    if parts[0] == "data" and len(parts) == 3:
        ids += [f"{parts[1]}.{parts[2]}", f"data.{parts[2]}"]
    elif parts[0] not in ("data", "module", "provider") and len(parts) == 2:
        ids += [f"resource.{parts[1]}"]
    return ids


def cmd_check(args: argparse.Namespace) -> int:
    load_skips(Path(args.skips))
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    skips = load_skips(Path(args.skips))
    today = dt.date.today()
    findings: dict[str, set[str]] = {}
    applied = 0
    for skip in skips:
        if not skip.applies_to(args.target):
            continue
        if not skip.active(args.target, today):
            print(f"scan {args.target}: skip {skip.label()} expired on {skip.expires}; not applied", file=sys.stderr)
            continue
        applied += 1
        for resource_id in checkov_resource_ids(skip.resource):
            findings.setdefault(resource_id, set()).add(skip.check_id)
    out = Path(args.out)
    out.unlink(missing_ok=True)
    if applied:
        baseline = {
            "failed_checks": [
                {
                    "file": "/reviewed-skips",  # checkov matches a baseline on resource and check id only
                    "findings": [
                        {"resource": resource, "check_ids": sorted(ids)} for resource, ids in sorted(findings.items())
                    ],
                }
            ]
        }
        out.write_text(json.dumps(baseline, indent=2) + "\n")
    return 0


def reports_of(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return data if isinstance(data, list) else [data]


def count(report: dict[str, Any], key: str) -> int:
    results = report.get("results")
    if isinstance(results, dict):
        return len(results.get(f"{key}_checks", []))
    return int(report.get(key, 0))  # checkov's bare summary when it found nothing to scan


def skipped_records(report: dict[str, Any]) -> list[dict[str, Any]]:
    results = report.get("results")
    return list(results.get("skipped_checks", [])) if isinstance(results, dict) else []


def is_baseline_skip(record: dict[str, Any]) -> bool:
    return bool(record.get("check_result", {}).get("suppress_comment") == BASELINE_MARK)


def note_skips(
    target: str, reports: list[dict[str, Any]], skips: list[Skip], sarif: Path | None, used_out: Path | None
) -> None:
    """Record which active skips matched (for `unused`); put each skip's reason into the SARIF suppression."""
    today = dt.date.today()
    active = [skip for skip in skips if skip.active(target, today)]
    by_id = {(skip.check_id, rid): skip for skip in active for rid in checkov_resource_ids(skip.resource)}
    located: dict[tuple[str, str, int], Skip] = {}
    used: set[int] = set()
    for report in reports:
        for record in (report.get("results") or {}).get("skipped_checks", []):
            if record.get("check_result", {}).get("suppress_comment") != BASELINE_MARK:
                continue
            skip = by_id.get((record["check_id"], record["resource"]))
            if skip is None:
                continue
            used.add(skip.index)
            path = str(record.get("file_path", "")).lstrip("/")
            start = (record.get("file_line_range") or [0])[0]
            located[(record["check_id"], path, start)] = skip
    if used_out is not None:
        used_out.write_text(json.dumps({"active": [skip.index for skip in active], "used": sorted(used)}))
    if sarif is None or not located or not sarif.exists():
        return
    doc = json.loads(sarif.read_text())
    for run in doc.get("runs", []):
        for result in run.get("results", []):
            if not result.get("suppressions"):
                continue
            location = result["locations"][0]["physicalLocation"]
            uri = location["artifactLocation"]["uri"]
            key = (result["ruleId"], uri.lstrip("/"), location.get("region", {}).get("startLine", 0))
            found = located.get(key) or next(
                (s for (rule, path, _), s in located.items() if rule == key[0] and uri.endswith(path)), None
            )
            if found is not None:
                result["suppressions"] = [
                    {
                        "kind": "external",
                        "status": "accepted",
                        "justification": f"{found.reason} (reviewed by {found.reviewed_by}; .checkov-skips.yaml)",
                    }
                ]
    sarif.write_text(json.dumps(doc, indent=2) + "\n")


def cmd_summary(args: argparse.Namespace) -> int:
    reports = reports_of(Path(args.report))
    if not reports:
        print(f"scan {args.target}: error: no checkov JSON report at {args.report}")
        return 3
    failed = sum(count(r, "failed") for r in reports)
    skipped = sum(count(r, "skipped") for r in reports)
    passed_from = reports_of(Path(args.unfiltered)) if args.unfiltered else reports
    passed = sum(count(r, "passed") for r in passed_from)
    if args.unfiltered:
        # The baseline-filtered report keeps only the baseline's skips; inline `checkov:skip`
        # comments (HCL) are counted from the scan without it.
        skipped = sum(1 for r in reports for record in skipped_records(r) if is_baseline_skip(record)) + sum(
            count(r, "skipped") for r in passed_from
        )
    parsing_errors = sum(int(r.get("summary", r).get("parsing_errors", 0)) for r in reports)
    print(f"scan {args.target}: passed={passed} failed={failed} skipped={skipped}")

    if args.skips:
        note_skips(
            args.target,
            reports,
            load_skips(Path(args.skips)),
            Path(args.sarif) if args.sarif else None,
            Path(args.used_out) if args.used_out else None,
        )

    if parsing_errors:
        print(f"scan {args.target}: error: checkov could not parse {parsing_errors} file(s)")
        return 3
    if passed + failed + skipped == 0:
        print(f"scan {args.target}: error: checkov evaluated nothing (wrong framework for the file?)")
        return 3
    return 1 if failed else 0


def cmd_unused(args: argparse.Namespace) -> int:
    active: set[int] = set()
    used: set[int] = set()
    for path in args.used:
        record = json.loads(Path(path).read_text())
        active.update(record["active"])
        used.update(record["used"])
    for skip in load_skips(Path(args.skips)):
        if skip.index in active - used:
            print(f"scan: note: skip {skip.label()} matched no failed check in any target scanned: delete it?")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    baseline = sub.add_parser("baseline")
    baseline.add_argument("--skips", required=True)
    baseline.add_argument("--target", required=True)
    baseline.add_argument("--out", required=True)
    check = sub.add_parser("check")
    check.add_argument("--skips", required=True)
    summary = sub.add_parser("summary")
    summary.add_argument("--target", required=True)
    summary.add_argument("--report", required=True)
    summary.add_argument("--unfiltered")
    summary.add_argument("--skips")
    summary.add_argument("--sarif")
    summary.add_argument("--used-out")
    unused = sub.add_parser("unused")
    unused.add_argument("--skips", required=True)
    unused.add_argument("used", nargs="*")
    args = parser.parse_args(argv)
    try:
        commands = {"baseline": cmd_baseline, "check": cmd_check, "summary": cmd_summary, "unused": cmd_unused}
        return commands[args.command](args)
    except SkipFileError as exc:
        print(f"scan: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
