"""The pipeline on local AWS: the saved plan is what gets applied, a stale or stateful-replacing
plan is refused, and drift is reported by address and attribute name, never by value.

One dev deployment on a server of its own, reused by every test here in order.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from scripts import stackctl
from scripts.local_aws import run_rotation_function
from tests.conftest import Synthesis
from tests.e2e.conftest import LocalDeployment, local_deployment
from tests.e2e.test_local_aws import canary_key_set, client, config_of, terraform_in

pytestmark = [pytest.mark.e2e, pytest.mark.synth, pytest.mark.terraform, pytest.mark.xdist_group("pipeline")]

ENV = "dev"


@pytest.fixture(scope="module")
def pipeline_local(
    synthesized: Synthesis, terraform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalDeployment]:
    """A server of its own: the plans and hand-made changes here touch no other test's state."""
    with local_deployment(synthesized, terraform_env, tmp_path_factory.mktemp("pipeline") / "moto.log") as deployment:
        yield deployment


@pytest.fixture
def cli(pipeline_local: LocalDeployment, monkeypatch: pytest.MonkeyPatch) -> LocalDeployment:
    """`stackctl.main` against this module's server, with the roles it assumes for each action."""

    def target_environment(env: str, target: str, *, plan_only: bool = False) -> dict[str, str]:
        assert target == "local"
        return pipeline_local.environment(env, plan_only=plan_only)

    monkeypatch.setattr(stackctl, "target_environment", target_environment)
    return pipeline_local


def aws(local: LocalDeployment, service: str) -> Any:
    return client(local, service, config_of(local, ENV).region)


def saved_plan(env: str = ENV) -> dict[str, Any]:
    plan: dict[str, Any] = json.loads((stackctl.stack_dir(env) / stackctl.PLAN_JSON).read_text(encoding="utf-8"))
    return plan


def changed_addresses(plan: dict[str, Any], *actions: str) -> set[str]:
    return {
        change["address"]
        for change in plan["resource_changes"]
        if change["mode"] == "managed" and change["change"]["actions"] == list(actions)
    }


def state_addresses(local: LocalDeployment) -> set[str]:
    result = terraform_in(ENV, "state", "list", env=local.environment(ENV))
    assert result.returncode == 0, result.stderr
    return {line for line in result.stdout.splitlines() if not line.startswith("data.")}


def plan_then_apply(local: LocalDeployment) -> dict[str, Any]:
    stackctl.plan(ENV, local.environment(ENV, plan_only=True))
    stackctl.apply(ENV, local.environment(ENV), allow_replace=False)
    return saved_plan()


@pytest.fixture(scope="module")
def dev(pipeline_local: LocalDeployment) -> dict[str, str]:
    """dev deployed the pipeline's way: a saved plan, then that plan applied."""
    plan = plan_then_apply(pipeline_local)
    created = changed_addresses(plan, "create")
    assert created
    assert state_addresses(pipeline_local) == created  # what was applied is exactly what was planned
    outputs = stackctl.outputs(ENV, pipeline_local.environment(ENV))
    # The outputs file the operator CLI reads, as `make deploy` writes it.
    written = json.loads((stackctl.stack_dir(ENV) / "outputs.json").read_text(encoding="utf-8"))
    assert written[ENV]["secret_arn"] == outputs["secret_arn"]
    return outputs


def test_the_first_apply_creates_exactly_the_planned_resources(dev: dict[str, str]) -> None:
    summary = (stackctl.stack_dir(ENV) / stackctl.PLAN_SUMMARY).read_text(encoding="utf-8")
    assert f"Plan: {len(changed_addresses(saved_plan(), 'create'))} to add, 0 to change, 0 to destroy" in summary
    assert "Nothing is destroyed or replaced." in summary


def test_in_sync_after_apply(cli: LocalDeployment, dev: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert stackctl.main(["drift", "--env", ENV]) == 0
    assert "In sync" in capsys.readouterr().out


def change_by_hand(local: LocalDeployment, outputs: dict[str, str], canary: str) -> None:
    """The key's description, a new default version of the read policy and the secret's
    resource policy, changed through the API; `canary` is in every new value."""
    aws(local, "kms").update_key_description(KeyId=outputs["kms_key_arn"], Description=f"changed {canary}")
    iam = aws(local, "iam")
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": canary, "Effect": "Allow", "Action": "sns:ListTopics", "Resource": "*"}],
    }
    # As a person would: room first, so Terraform's next version is never the policy's fifth
    # (a retried CreatePolicyVersion at the limit would fail the apply with LimitExceeded).
    versions = iam.list_policy_versions(PolicyArn=outputs["read_policy_arn"])["Versions"]
    for old in sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])[:-1]:
        iam.delete_policy_version(PolicyArn=outputs["read_policy_arn"], VersionId=old["VersionId"])
    iam.create_policy_version(
        PolicyArn=outputs["read_policy_arn"], PolicyDocument=json.dumps(document), SetAsDefault=True
    )
    secret_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": canary,
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "secretsmanager:DeleteSecret",
                "Resource": "*",
            }
        ],
    }
    aws(local, "secretsmanager").put_resource_policy(
        SecretId=outputs["secret_arn"], ResourcePolicy=json.dumps(secret_policy)
    )


def resource_address(kind: str, prefix: str) -> str:
    """The address of the one resource of `kind` whose name starts with `prefix` (cdktf adds a hash)."""
    (address,) = {
        change["address"]
        for change in saved_plan()["resource_changes"]
        if change["type"] == kind and change["name"].startswith(prefix)
    }
    return str(address)


def test_drift_names_addresses_and_attributes_never_values(
    cli: LocalDeployment, dev: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    key = resource_address("aws_kms_key", "secrets_key")
    read_policy = resource_address("aws_iam_policy", "read_policy")
    canary = f"Canary{secrets.token_hex(8)}"
    change_by_hand(cli, dev, canary)

    assert stackctl.main(["drift", "--env", ENV]) == stackctl.DRIFT_EXIT
    out, err = capfd.readouterr()
    report = (stackctl.stack_dir(ENV) / stackctl.DRIFT_REPORT).read_text(encoding="utf-8")
    assert report in out
    drifted = {line.split("`")[1]: line.split(": ", 1)[1] for line in report.splitlines() if line.startswith("- `")}
    assert drifted == {
        key: "description",
        read_policy: "policy",
        "module.secrets.aws_secretsmanager_secret_policy.this": "policy",
    }
    for text in (out, err, report):
        assert canary not in text
        assert "Statement" not in text


def resource_values(module: dict[str, Any]) -> dict[str, Any]:
    """{address: attribute values} of a `terraform show -json` state or plan's prior state."""
    found = {r["address"]: r["values"] for r in module.get("resources", []) if r["mode"] == "managed"}
    for child in module.get("child_modules", []):
        found |= resource_values(child)
    return found


def deployed_values(local: LocalDeployment) -> dict[str, Any]:
    result = terraform_in(ENV, "show", "-json", env=local.environment(ENV))
    assert result.returncode == 0, result.stderr
    return resource_values(json.loads(result.stdout)["values"]["root_module"])


def test_the_saved_plan_applies_exactly_its_changes(cli: LocalDeployment, dev: dict[str, str]) -> None:
    """After the drift above, the plan puts the three values back. Applying it changes what
    the plan lists as changing (policies built from the key's attributes are re-read, so they
    are listed too) and nothing else: every other resource is as the plan's refresh found it."""
    plan = plan_then_apply(cli)
    updated = changed_addresses(plan, "update")
    planned = [c for c in plan["resource_changes"] if c["mode"] == "managed" and c["change"]["actions"] != ["no-op"]]
    assert {c["address"] for c in planned} == updated
    drifted = {
        resource_address("aws_kms_key", "secrets_key"),
        resource_address("aws_iam_policy", "read_policy"),
        "module.secrets.aws_secretsmanager_secret_policy.this",
    }
    assert drifted <= updated

    before = resource_values(plan["prior_state"]["values"]["root_module"])
    after = deployed_values(cli)
    assert set(after) == set(before)  # nothing created or destroyed
    changed = {address for address, values in after.items() if values != before[address]}
    assert drifted <= changed <= updated
    key = aws(cli, "kms").describe_key(KeyId=dev["kms_key_arn"])["KeyMetadata"]
    assert "Canary" not in key["Description"]
    replanned = terraform_in(ENV, "plan", "-input=false", "-detailed-exitcode", env=cli.environment(ENV))
    assert replanned.returncode == 0, replanned.stdout[-3000:]


def test_a_stale_saved_plan_is_refused_in_one_line(
    cli: LocalDeployment, dev: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    change_by_hand(cli, dev, f"Canary{secrets.token_hex(8)}")
    stackctl.plan(ENV, cli.environment(ENV, plan_only=True))
    # Someone else applies in between: the state the saved plan was made from is gone.
    other = terraform_in(ENV, "apply", "-auto-approve", "-input=false", env=cli.environment(ENV))
    assert other.returncode == 0, other.stderr
    capfd.readouterr()

    assert stackctl.main(["apply", "--env", ENV]) == 1
    err_lines = [line for line in capfd.readouterr().err.splitlines() if not line.startswith(("$ ", "TARGET="))]
    assert len(err_lines) == 1, err_lines
    assert err_lines[0].startswith("error: ")
    assert "the saved plan is stale: plan again" in err_lines[0]


def test_a_stateful_replace_needs_the_env_named(
    cli: LocalDeployment, dev: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    policy = "module.secrets.aws_secretsmanager_secret_policy.this"
    stackctl.plan(ENV, cli.environment(ENV, plan_only=True))
    forced = terraform_in(
        ENV, "plan", "-input=false", f"-replace={policy}", f"-out={stackctl.PLAN_FILE}", env=cli.environment(ENV)
    )
    assert forced.returncode == 0, forced.stderr
    kept = stackctl.stack_dir(ENV) / "forced.tfplan"
    shutil.copy(stackctl.stack_dir(ENV) / stackctl.PLAN_FILE, kept)
    serial = _state_serial(cli)
    capfd.readouterr()

    assert stackctl.main(["apply", "--env", ENV, "--allow-replace", "staging,prod"]) == 1
    err = capfd.readouterr().err
    (refusal,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert f"replace {policy} (stateful)" in refusal
    assert "ALLOW_REPLACE=dev" in refusal
    assert _state_serial(cli) == serial  # nothing applied

    shutil.copy(kept, stackctl.stack_dir(ENV) / stackctl.PLAN_FILE)
    assert stackctl.main(["apply", "--env", ENV, "--allow-replace", "dev"]) == 0
    assert "1 to add, 0 to change, 1 to destroy" in capfd.readouterr().err
    kept.unlink()


def _state_serial(local: LocalDeployment) -> int:
    result = terraform_in(ENV, "state", "pull", env=local.environment(ENV))
    assert result.returncode == 0, result.stderr
    serial: int = json.loads(result.stdout)["serial"]
    return serial


def test_rotating_the_secret_is_not_drift(
    cli: LocalDeployment, dev: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    secretsmanager = aws(cli, "secretsmanager")
    arn = dev["secret_arn"]
    secretsmanager.put_secret_value(SecretId=arn, SecretString=canary_key_set("drift")[0])
    for _ in range(2):  # new versions, and staging labels moved off the earlier ones
        token = secretsmanager.rotate_secret(SecretId=arn)["VersionId"]
        run_rotation_function(secretsmanager, arn, token)
    capsys.readouterr()
    assert stackctl.main(["drift", "--env", ENV]) == 0, capsys.readouterr().out
    assert "In sync" in capsys.readouterr().out


def test_apply_without_a_saved_plan_says_so(cli: LocalDeployment, dev: dict[str, str]) -> None:
    plan_file = stackctl.stack_dir(ENV) / stackctl.PLAN_FILE
    plan_file.unlink(missing_ok=True)
    with pytest.raises(stackctl.StackError, match=r"plan\.tfplan does not exist: run `make plan ENV=dev` first"):
        stackctl.apply(ENV, cli.environment(ENV), allow_replace=False)
