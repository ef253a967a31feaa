"""The first plan of every env against local AWS, then the checkov gate on everything the
project ships: each env's cdk.tf.json, that plan's JSON, modules/ and bootstrap/ (the state
bucket). 0 failed checks; reviewed skips only from .checkov-skips.yaml, or inline with their
reason in bootstrap/'s HCL. An env file that turns rotation off fails the rotation check, and
only that one."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest

from scripts import stackctl
from scripts.checkov_skips import reports_of
from tests.conftest import ALL_ENVS, PROJECT_ROOT, Synthesis
from tests.e2e.conftest import LocalDeployment, local_deployment

pytestmark = [pytest.mark.e2e, pytest.mark.synth, pytest.mark.terraform, pytest.mark.xdist_group("scan")]

SUMMARY = re.compile(r"^scan (?P<target>\S+): passed=(?P<passed>\d+) failed=(?P<failed>\d+) skipped=(?P<skipped>\d+)$")
# "Secrets Manager secrets should have automatic rotation enabled": what `[rotation] enabled = false` fails.
ROTATION_CHECK = "CKV2_AWS_57"


@pytest.fixture(scope="module")
def planning(
    synthesized: Synthesis, terraform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalDeployment]:
    """A server of its own, where nothing is deployed: every plan here is a first plan."""
    with local_deployment(synthesized, terraform_env, tmp_path_factory.mktemp("scan") / "moto.log") as deployment:
        yield deployment


@pytest.mark.parametrize("env", ALL_ENVS)
def test_plan_succeeds_for_every_env(planning: LocalDeployment, env: str) -> None:
    plan_file = stackctl.plan(env, planning.environment(env, plan_only=True))
    plan = json.loads((plan_file.parent / "plan.json").read_text(encoding="utf-8"))
    created = {change["type"] for change in plan["resource_changes"] if change["change"]["actions"] == ["create"]}
    assert {"aws_kms_key", "aws_secretsmanager_secret", "aws_iam_policy", "aws_sns_topic"} <= created


def failed_checks(target: str) -> set[str]:
    """The ids of the checks that failed on a target, from the JSON report scripts/scan.sh wrote."""
    reports = reports_of(PROJECT_ROOT / "reports" / f"checkov-{target}.json")
    return {
        record["check_id"] for report in reports for record in (report.get("results") or {}).get("failed_checks", [])
    }


def test_checkov_gate_passes_on_stacks_plans_modules_and_the_state_bucket(planning: LocalDeployment) -> None:
    for env in ALL_ENVS:
        if not (stackctl.stack_dir(env) / "plan.json").exists():
            stackctl.plan(env, planning.environment(env))
    result = subprocess.run(
        [str(PROJECT_ROOT / "scripts" / "scan.sh"), *ALL_ENVS, "modules", "bootstrap"],
        env={**planning.terraform_env, "CDKTF_OUTDIR": str(planning.synthesis.outdir)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(result.stdout[-5000:])  # the per-target counts end up in the test log
    summaries = {m["target"]: m.groupdict() for line in result.stdout.splitlines() if (m := SUMMARY.match(line))}
    env_of = {**{env: env for env in ALL_ENVS}, **{f"{env}-plan": env for env in ALL_ENVS}}
    assert set(summaries) == {*env_of, "modules", "bootstrap"}, result.stdout + result.stderr
    rotation_off = {env for env in ALL_ENVS if not planning.synthesis.configs[env].rotation.enabled}
    for target, counts in summaries.items():
        assert int(counts["passed"]) > 0, target
        if env_of.get(target) in rotation_off:
            assert failed_checks(target) <= {ROTATION_CHECK}, target
        else:
            assert counts["failed"] == "0", target
    # The gate does notice a secret that never rotates.
    for env in rotation_off:
        assert ROTATION_CHECK in failed_checks(env) | failed_checks(f"{env}-plan"), env
    assert result.returncode == (1 if rotation_off else 0), result.stdout[-5000:] + result.stderr
