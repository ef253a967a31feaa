"""The checkov gate on everything the project ships: each env's cdk.tf.json, its plan JSON
from local AWS, modules/ and bootstrap/ (the state bucket). 0 failed checks; reviewed skips
only from .checkov-skips.yaml, or inline with their reason in bootstrap/'s HCL."""

from __future__ import annotations

import re
import subprocess

import pytest

from scripts import stackctl
from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import LocalDeployment
from tests.infra.test_stacks import ALL_ENVS

pytestmark = [pytest.mark.e2e, pytest.mark.synth, pytest.mark.terraform]

SUMMARY = re.compile(r"^scan (?P<target>\S+): passed=(?P<passed>\d+) failed=(?P<failed>\d+) skipped=(?P<skipped>\d+)$")


def test_checkov_gate_passes_on_stacks_plans_modules_and_the_state_bucket(local: LocalDeployment) -> None:
    for env in ALL_ENVS:
        if not (stackctl.stack_dir(env) / "plan.json").exists():
            stackctl.plan(env, local.environment(env))
    result = subprocess.run(
        [str(PROJECT_ROOT / "scripts" / "scan.sh"), *ALL_ENVS, "modules", "bootstrap"],
        env={**local.terraform_env, "CDKTF_OUTDIR": str(local.synthesis.outdir)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(result.stdout[-5000:])  # the per-target counts end up in the test log
    summaries = {m["target"]: m.groupdict() for line in result.stdout.splitlines() if (m := SUMMARY.match(line))}
    expected_targets = {*ALL_ENVS, *(f"{env}-plan" for env in ALL_ENVS), "modules", "bootstrap"}
    assert set(summaries) == expected_targets, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr
    for target, counts in summaries.items():
        assert counts["failed"] == "0", target
        assert int(counts["passed"]) > 0, target
