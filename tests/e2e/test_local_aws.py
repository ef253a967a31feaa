"""Plan, deploy, re-plan and destroy against local AWS, then read back what the stacks promised."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scripts import stackctl
from tests.conftest import run_main
from tests.e2e.conftest import LocalDeployment, make_log_group, make_task_roles
from tests.infra.test_stacks import ALL_ENVS

pytestmark = [pytest.mark.e2e, pytest.mark.synth, pytest.mark.terraform]

REGION = "us-east-1"


def client(local: LocalDeployment, service: str, region: str = REGION) -> Any:
    return local.server.session(region).client(service, endpoint_url=local.server.endpoint_url)  # type: ignore[call-overload]


def replan(local: LocalDeployment, env: str) -> subprocess.CompletedProcess[str]:
    """`terraform plan -detailed-exitcode`: returncode 0 no changes, 2 changes, 1 error."""
    return subprocess.run(
        ["terraform", f"-chdir={stackctl.stack_dir(env)}", "plan", "-input=false", "-detailed-exitcode", "-no-color"],
        env=local.environment(env),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("env", ALL_ENVS)
def test_plan_succeeds_for_every_env(local: LocalDeployment, env: str) -> None:
    plan_file = stackctl.plan(env, local.environment(env))
    plan = json.loads((plan_file.parent / "plan.json").read_text(encoding="utf-8"))
    created = {change["type"] for change in plan["resource_changes"] if change["change"]["actions"] == ["create"]}
    assert {"aws_kms_key", "aws_secretsmanager_secret", "aws_iam_policy", "aws_sns_topic"} <= created


@pytest.fixture(scope="module")
def dev(local: LocalDeployment) -> dict[str, str]:
    env = local.environment("dev")
    stackctl.deploy("dev", env, auto_approve=True)
    return stackctl.outputs("dev", env)


@pytest.fixture(scope="module")
def prod(local: LocalDeployment) -> dict[str, str]:
    make_task_roles(local, REGION, "credlink-prod-api-task", "credlink-prod-worker-task")
    make_log_group(local, REGION, "/credlink/prod/app")
    env = local.environment("prod")
    stackctl.deploy("prod", env, auto_approve=True)
    return stackctl.outputs("prod", env)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_deployed_stack_keeps_its_promises(local: LocalDeployment, stack: str, request: pytest.FixtureRequest) -> None:
    outputs: dict[str, str] = request.getfixturevalue(stack)
    kms, secrets, iam = client(local, "kms"), client(local, "secretsmanager"), client(local, "iam")
    key_arn, secret_arn, topic_arn = outputs["kms_key_arn"], outputs["secret_arn"], outputs["alert_topic_arn"]

    key = kms.describe_key(KeyId=key_arn)["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER"
    assert kms.get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"] is True

    secret = secrets.describe_secret(SecretId=secret_arn)
    assert secret["KmsKeyId"] == key_arn
    assert secret["Name"] == f"credlink/{stack}/api-keys"

    version = iam.get_policy(PolicyArn=outputs["read_policy_arn"])["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=outputs["read_policy_arn"], VersionId=version)["PolicyVersion"]
    statements = document["Document"]["Statement"]
    if isinstance(document["Document"], str):  # pragma: no cover - moto returns either form
        statements = json.loads(document["Document"])["Statement"]
    read = next(s for s in statements if s["Sid"] == "ReadApiKeysSecret")
    assert sorted(_as_list(read["Action"])) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    assert secret_arn in _as_list(read["Resource"])
    decrypt = next(s for s in statements if s["Sid"] == "DecryptApiKeysSecret0")
    assert _as_list(decrypt["Action"]) == ["kms:Decrypt"]
    assert _as_list(decrypt["Resource"]) == [key_arn]
    assert decrypt["Condition"]["StringEquals"] == {
        "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
        "kms:EncryptionContext:SecretARN": secret_arn,
    }

    alarms = client(local, "cloudwatch").describe_alarms(AlarmNamePrefix=f"credlink-{stack}-api-keys-")["MetricAlarms"]
    assert len(alarms) == 2
    assert all(alarm["AlarmActions"] == [topic_arn] for alarm in alarms)
    attributes = client(local, "sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    assert attributes["KmsMasterKeyId"] == key_arn

    policy = json.loads(secrets.get_resource_policy(SecretId=secret_arn)["ResourcePolicy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Action"] == "secretsmanager:GetSecretValue"

    if stack == "prod":
        (replica,) = secret["ReplicationStatus"]
        assert replica["Region"] == "us-west-2"
        replica_kms = client(local, "kms", "us-west-2")
        replica_key = replica_kms.describe_key(KeyId="alias/credlink-prod-api-keys")["KeyMetadata"]
        assert replica["KmsKeyId"] == replica_key["Arn"]
        assert replica_key["KeyManager"] == "CUSTOMER"
        assert replica_kms.get_key_rotation_status(KeyId=replica_key["Arn"])["KeyRotationEnabled"] is True


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_second_plan_shows_no_changes(local: LocalDeployment, stack: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue(stack)
    result = replan(local, stack)
    assert result.returncode == 0, result.stdout[-3000:]


def test_value_written_through_terraform_stays_out_of_state(local: LocalDeployment, dev: dict[str, str]) -> None:
    canary = f"canary_{time.time_ns()}"
    value = json.dumps({"apiKeys": f"{canary}:canary-client:Canary"})
    env = {**local.environment("dev"), "TF_VAR_api_keys_secret_string": value}
    result = subprocess.run(
        ["terraform", f"-chdir={stackctl.stack_dir('dev')}", "apply", "-auto-approve", "-input=false", "-no-color",
         "-var", "api_keys_secret_version=1"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert canary not in result.stdout + result.stderr
    read = client(local, "secretsmanager").get_secret_value(SecretId=dev["secret_arn"])
    assert read["SecretString"] == value
    for state in local.server.state_dir.glob("dev.tfstate*"):
        assert canary not in state.read_text(encoding="utf-8")
    # The provider needs the value on every run that manages this version; with the same
    # value and version, nothing changes and the value still appears nowhere.
    again = subprocess.run(
        ["terraform", f"-chdir={stackctl.stack_dir('dev')}", "plan", "-input=false", "-detailed-exitcode",
         "-no-color", "-var", "api_keys_secret_version=1"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-2000:]
    assert canary not in again.stdout + again.stderr


def test_prod_refuses_to_destroy_its_key_and_secret(local: LocalDeployment, prod: dict[str, str]) -> None:
    with pytest.raises(stackctl.StackError, match="terraform destroy"):
        stackctl.destroy("prod", local.environment("prod"), auto_approve=True)
    key = client(local, "kms").describe_key(KeyId=prod["kms_key_arn"])["KeyMetadata"]
    assert key["KeyState"] == "Enabled"
    assert "DeletedDate" not in client(local, "secretsmanager").describe_secret(SecretId=prod["secret_arn"])


def test_destroying_dev_leaves_nothing_behind(local: LocalDeployment, dev: dict[str, str]) -> None:
    stackctl.destroy("dev", local.environment("dev"), auto_approve=True)

    assert client(local, "kms").describe_key(KeyId=dev["kms_key_arn"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    secrets = client(local, "secretsmanager")
    remaining = [s["Name"] for s in secrets.list_secrets()["SecretList"] if s["Name"].startswith("credlink/dev/")]
    assert remaining == []
    topics = [t["TopicArn"] for t in client(local, "sns").list_topics()["Topics"]]
    assert dev["alert_topic_arn"] not in topics
    alarms = client(local, "cloudwatch").describe_alarms(AlarmNamePrefix="credlink-dev-")["MetricAlarms"]
    assert alarms == []
    iam = client(local, "iam")
    assert all(p["Arn"] != dev["read_policy_arn"] for p in iam.list_policies(Scope="Local")["Policies"])
    assert all(r["RoleName"] != "credlink-dev-demo-task" for r in iam.list_roles()["Roles"])
    groups = client(local, "logs").describe_log_groups(logGroupNamePrefix="/credlink/dev/")["logGroups"]
    assert groups == []


def test_s3_state_is_locked_against_a_concurrent_apply(local: LocalDeployment) -> None:
    """qa keeps its state in S3 (use_lockfile): state lands in the bucket, a second apply
    while the first holds the lock is refused, and nothing else about the stack changes."""
    make_task_roles(local, "eu-west-1", "credlink-qa-api-task")
    make_log_group(local, "eu-west-1", "/credlink/qa/app")
    env = local.environment("qa")
    stackctl.init("qa", env)
    s3 = client(local, "s3", "eu-west-1")
    bucket, key = "credlink-terraform-state", "credlink/qa/terraform.tfstate"

    first: dict[str, subprocess.CompletedProcess[str]] = {}

    def apply_in_background() -> None:
        first["result"] = _apply("qa", env)

    runner = threading.Thread(target=apply_in_background)
    runner.start()
    lock_seen = _wait_for_object(s3, bucket, f"{key}.tflock", timeout=60)
    second = _apply("qa", env)
    runner.join(timeout=300)

    assert lock_seen, "the first apply never took the S3 lock"
    assert second.returncode != 0
    assert "Error acquiring the state lock" in second.stderr
    assert first["result"].returncode == 0, first["result"].stderr
    state = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert any(r["type"] == "aws_secretsmanager_secret" for r in state["resources"])
    replanned = replan(local, "qa")
    assert replanned.returncode == 0, replanned.stdout[-3000:]


def _apply(env_name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["terraform", f"-chdir={stackctl.stack_dir(env_name)}", "apply", "-auto-approve", "-input=false",
         "-lock-timeout=0s", "-no-color"],
        env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def _wait_for_object(s3: Any, bucket: str, key: str, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
        if any(item["Key"] == key for item in listed):
            return True
        time.sleep(0.05)
    return False


def test_prod_destroys_only_with_the_explicit_override(
    local: LocalDeployment, prod: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ALLOW_DESTROY=prod re-synthesizes prod without its guard; then destroy goes through."""
    envs = tmp_path / "envs"
    envs.mkdir()
    shutil.copy(local.synthesis.envs_dir / "prod.toml", envs / "prod.toml")
    outdir = tmp_path / "cdktf.out"
    monkeypatch.setenv("CREDLINK_ALLOW_DESTROY", "prod")
    synthesized = run_main(envs, outdir)
    assert synthesized.returncode == 0, synthesized.stderr
    assert "prevent_destroy" not in (outdir / "stacks" / "prod" / "cdk.tf.json").read_text(encoding="utf-8")
    monkeypatch.setenv("CDKTF_OUTDIR", str(outdir))

    stackctl.destroy("prod", local.environment("prod"), auto_approve=True)

    key = client(local, "kms").describe_key(KeyId=prod["kms_key_arn"])["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"
