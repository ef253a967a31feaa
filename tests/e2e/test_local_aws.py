"""Deploy, re-plan and destroy against local AWS, then read back what the stacks promised
(the first plan of every env is tests/e2e/test_scan.py's)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from apikeys.events import ALARMED_EVENTS, ROTATION_FAILED
from scripts import demo, stackctl
from scripts.local_aws import free_port, run_rotation_function
from stacks.config import EnvironmentConfig, S3BackendConfig
from tests.conftest import REPLICATED_ENV, run_captured, run_main
from tests.e2e.conftest import LocalDeployment

pytestmark = [pytest.mark.e2e, pytest.mark.synth, pytest.mark.terraform, pytest.mark.xdist_group("local_aws")]

# dev and prod are deployed as shipped: dev stands alone (it creates its task role and log
# group), so the CLI and the reference service run against it; prod keeps its destroy guard.
# What each is expected to hold is read from its env file.


def config_of(local: LocalDeployment, env: str) -> EnvironmentConfig:
    return local.synthesis.configs[env]


def client(local: LocalDeployment, service: str, region: str) -> Any:
    return local.server.session(region).client(service, endpoint_url=local.server.endpoint_url)  # type: ignore[call-overload]


def in_region_of(local: LocalDeployment, env: str) -> Any:
    """A client factory for the env's primary region."""
    region = config_of(local, env).region
    return lambda service: client(local, service, region)


def terraform_in(env_name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`terraform <args>` in the env's synthesized stack directory, output captured."""
    return run_captured(
        ["terraform", f"-chdir={stackctl.stack_dir(env_name)}", *args, "-no-color"], env=env, timeout=300
    )


def replan(local: LocalDeployment, env: str) -> subprocess.CompletedProcess[str]:
    """`terraform plan -detailed-exitcode`: returncode 0 no changes, 2 changes, 1 error."""
    return terraform_in(env, "plan", "-input=false", "-detailed-exitcode", env=local.environment(env))


@pytest.fixture(scope="module")
def dev(local: LocalDeployment) -> dict[str, str]:
    env = local.environment("dev")
    stackctl.deploy("dev", env, auto_approve=True)
    return stackctl.outputs("dev", env)


@pytest.fixture(scope="module")
def prod(local: LocalDeployment) -> dict[str, str]:
    env = local.environment("prod")
    stackctl.deploy("prod", env, auto_approve=True)
    return stackctl.outputs("prod", env)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_deployed_stack_keeps_its_promises(local: LocalDeployment, stack: str, request: pytest.FixtureRequest) -> None:
    outputs: dict[str, str] = request.getfixturevalue(stack)
    config, primary = config_of(local, stack), in_region_of(local, stack)
    kms, secrets, iam = primary("kms"), primary("secretsmanager"), primary("iam")
    key_arn, secret_arn, topic_arn = outputs["kms_key_arn"], outputs["secret_arn"], outputs["alert_topic_arn"]

    key = kms.describe_key(KeyId=key_arn)["KeyMetadata"]
    assert key["KeyManager"] == "CUSTOMER"
    assert kms.get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"] is True

    secret = secrets.describe_secret(SecretId=secret_arn)
    assert secret["KmsKeyId"] == key_arn
    assert secret["Name"] == config.secret_name

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
        "kms:ViaService": f"secretsmanager.{config.region}.amazonaws.com",
        "kms:EncryptionContext:SecretARN": secret_arn,
    }

    prefix = f"{config.name_prefix}-api-keys-"
    alarms = primary("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    rotation_alarms = [ROTATION_FAILED.name, "rotation_errors"] if config.rotation.enabled else []
    assert sorted(alarm["AlarmName"].removeprefix(prefix) for alarm in alarms) == sorted(
        name.replace("_", "-") for name in (*(event.name for event in ALARMED_EVENTS), *rotation_alarms)
    )
    assert all(alarm["AlarmActions"] == [topic_arn] for alarm in alarms)
    # The alert path has its own key: a disabled secrets key cannot silence the alarm about it.
    monitoring_key_arn = outputs["monitoring_kms_key_arn"]
    assert monitoring_key_arn != key_arn
    attributes = primary("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    assert attributes["KmsMasterKeyId"] == monitoring_key_arn

    policy = json.loads(secrets.get_resource_policy(SecretId=secret_arn)["ResourcePolicy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Action"] == "secretsmanager:GetSecretValue"

    # Rotation: the function, its schedule, and who may invoke it.
    assert secret.get("RotationEnabled", False) is config.rotation.enabled
    if config.rotation.enabled:
        assert_rotation_deployed(local, config, secret, monitoring_key_arn)

    # Each replica in its region, encrypted with that region's own key.
    assert sorted(replica["Region"] for replica in secret.get("ReplicationStatus", [])) == sorted(
        config.replica_regions
    )
    for replica in secret.get("ReplicationStatus", []):
        replica_kms = client(local, "kms", replica["Region"])
        replica_key = replica_kms.describe_key(KeyId=f"alias/{config.name_prefix}-api-keys")["KeyMetadata"]
        assert replica["KmsKeyId"] == replica_key["Arn"]
        assert replica_key["KeyManager"] == "CUSTOMER"
        assert replica_kms.get_key_rotation_status(KeyId=replica_key["Arn"])["KeyRotationEnabled"] is True


def assert_rotation_deployed(
    local: LocalDeployment, config: EnvironmentConfig, secret: dict[str, Any], monitoring_key_arn: str
) -> None:
    function_name = f"{config.name_prefix}-api-keys-rotation"
    lambda_client = client(local, "lambda", config.region)
    function = lambda_client.get_function(FunctionName=function_name)
    configuration = function["Configuration"]
    assert secret["RotationLambdaARN"] == configuration["FunctionArn"]
    assert secret["RotationRules"]["AutomaticallyAfterDays"] == config.rotation.days
    assert (configuration["Handler"], configuration["Runtime"]) == ("apikeys.rotation.handler", "python3.12")
    assert configuration["TracingConfig"] == {"Mode": "Active"}
    assert "DeadLetterConfig" not in configuration
    assert function["Concurrency"] == {"ReservedConcurrentExecutions": 1}
    (invoke,) = json.loads(lambda_client.get_policy(FunctionName=function_name)["Policy"])["Statement"]
    assert invoke["Principal"] == {"Service": "secretsmanager.amazonaws.com"}
    assert invoke["Condition"]["ArnLike"]["AWS:SourceArn"] == secret["ARN"]
    logs = client(local, "logs", config.region)
    log_group = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{function_name}")
    assert log_group["logGroups"][0]["kmsKeyId"] == monitoring_key_arn


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_second_plan_shows_no_changes(local: LocalDeployment, stack: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue(stack)
    result = replan(local, stack)
    assert result.returncode == 0, result.stdout[-3000:]


def test_terraform_does_not_fight_rotation(local: LocalDeployment, dev: dict[str, str]) -> None:
    secretsmanager = in_region_of(local, "dev")("secretsmanager")
    arn = dev["secret_arn"]
    value, _ = canary_key_set("rotation")
    secretsmanager.put_secret_value(SecretId=arn, SecretString=value)
    for _ in range(2):  # the second rotation takes every label off the first value
        token = secretsmanager.rotate_secret(SecretId=arn)["VersionId"]
        run_rotation_function(secretsmanager, arn, token)  # what the deployed function does
        assert secretsmanager.describe_secret(SecretId=arn)["VersionIdsToStages"][token] == ["AWSCURRENT"]
    result = replan(local, "dev")
    assert result.returncode == 0, result.stdout[-3000:]


def canary_key_set(label: str) -> tuple[str, list[str]]:
    """A unique, obviously fake key set, and the substrings that must never appear anywhere."""
    keys = [f"canary{label}{secrets.token_hex(16)}" for _ in range(3)]
    value = json.dumps({"apiKeys": ",".join(f"{key}:canary-client-{i}:Canary {i}" for i, key in enumerate(keys))})
    return value, keys


def terraform_captured(local: LocalDeployment, *args: str, extra_env: dict[str, str] | None = None) -> str:
    result = terraform_in("dev", *args, env={**local.environment("dev"), **(extra_env or {})})
    assert result.returncode in (0, 2), result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout + result.stderr


def operate_one_client_at_a_time(
    local: LocalDeployment, dev: dict[str, str], key_files: Path, captured: list[str]
) -> list[str]:
    """Every `apikeys clients` command, and its refusals, with keys handed over in files; their
    output and log lines go to `captured`. The keys handed over."""
    env = {**local.environment("dev"), "AWS_REGION": config_of(local, "dev").region}
    refused = 1
    for expected, argv in (
        (0, ["list"]),
        (0, ["add", "--client-id", "canary-new", "--name", "Canary New", "--out", str(key_files / "added")]),
        (0, ["rotate", "--client-id", "canary-client-1", "--out", str(key_files / "rotated")]),
        (0, ["show-key", "--client-id", "canary-client-2", "--out", str(key_files / "shown")]),
        (0, ["revoke", "--client-id", "canary-client-0"]),
        (refused, ["add", "--client-id", "canary-new", "--name", "Again"]),  # it exists
        (refused, ["show-key", "--client-id", "canary-client-0"]),  # revoked
        (refused, ["rotate", "--client-id", "canary-new", "--out", str(key_files / "added")]),  # the file exists
        (0, ["list"]),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "apikeys", "clients", argv[0], "--secret-arn", dev["secret_arn"], *argv[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == expected, (argv, result.stderr)
        captured += [result.stdout, result.stderr]
    return [path.read_text(encoding="utf-8").strip() for path in sorted(key_files.iterdir())]


def test_canary_key_set_never_lands_in_any_artifact(
    local: LocalDeployment, dev: dict[str, str], capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Pass fake keys the ways a user would (TF_VAR through the write-only path; the operator
    path straight to Secrets Manager; one client at a time with `apikeys clients`), then
    search every artifact for any of them."""
    tf_value, tf_keys = canary_key_set("tf")
    op_value, op_keys = canary_key_set("op")
    with_value = {"TF_VAR_api_keys_secret_string": tf_value}
    captured = [
        terraform_captured(local, "plan", "-input=false", "-var", "api_keys_secret_version=1", "-out=canary.tfplan",
                           extra_env=with_value),
        terraform_captured(local, "show", "-json", "canary.tfplan", extra_env=with_value),
        terraform_captured(local, "apply", "-input=false", "canary.tfplan", extra_env=with_value),
    ]  # fmt: skip
    secretsmanager = in_region_of(local, "dev")("secretsmanager")
    assert secretsmanager.get_secret_value(SecretId=dev["secret_arn"])["SecretString"] == tf_value
    secretsmanager.put_secret_value(SecretId=dev["secret_arn"], SecretString=op_value)
    assert secretsmanager.get_secret_value(SecretId=dev["secret_arn"])["SecretString"] == op_value
    captured += [
        terraform_captured(local, "plan", "-input=false", "-var", "api_keys_secret_version=1", extra_env=with_value),
        terraform_captured(local, "output", "-json"),
        terraform_captured(local, "state", "pull"),
    ]
    handed_over = operate_one_client_at_a_time(local, dev, tmp_path, captured)
    out, err = capfd.readouterr()
    captured += [out, err]

    artifacts = [
        *(path for path in local.synthesis.outdir.rglob("*") if path.is_file()),  # cdk.tf.json, plans, .terraform
        *(path for path in local.server.state_dir.rglob("*") if path.is_file()),  # state and backups
        local.server_log,
    ]
    assert any(path.name == "canary.tfplan" for path in artifacts)
    assert any(path.name.endswith(".tfstate") for path in artifacts)
    for secret in (*tf_keys, *op_keys, *handed_over):
        for path in artifacts:
            assert secret.encode() not in path.read_bytes(), f"{secret[:10]}... found in {path}"
        for text in captured:
            assert secret not in text


# parliament findings accepted on deployed documents, each with its reason. parliament reads
# every document as an identity policy; these are where that reading is wrong.
PARLIAMENT_EXPLAINED = {
    ("key_policy", "RESOURCE_STAR", ""): "a key policy's Resource '*' is the key itself; AWS requires that form",
    ("trust_policy", "MALFORMED", "neither Resource nor NotResource"): "a role trust policy has no Resource element",
}


def deployed_documents(local: LocalDeployment, stack: str, outputs: dict[str, str]) -> list[tuple[str, str]]:
    """(kind, JSON) of every policy the stack deployed, read back from (local) AWS."""
    config, primary = config_of(local, stack), in_region_of(local, stack)
    iam, kms = primary("iam"), primary("kms")
    version = iam.get_policy(PolicyArn=outputs["read_policy_arn"])["Policy"]["DefaultVersionId"]
    read = iam.get_policy_version(PolicyArn=outputs["read_policy_arn"], VersionId=version)["PolicyVersion"]["Document"]
    topic = primary("sns").get_topic_attributes(TopicArn=outputs["alert_topic_arn"])["Attributes"]["Policy"]
    secret = primary("secretsmanager").get_resource_policy(SecretId=outputs["secret_arn"])["ResourcePolicy"]
    key = kms.get_key_policy(KeyId=outputs["kms_key_arn"], PolicyName="default")["Policy"]
    found = [
        ("identity_policy", read if isinstance(read, str) else json.dumps(read)),
        ("topic_policy", topic),
        ("secret_policy", secret),
        ("key_policy", key),
    ]
    if config.service.create_demo_resources:  # the trust policies of the task roles it created
        for role in config.service.task_roles:
            trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
            found.append(("trust_policy", trust if isinstance(trust, str) else json.dumps(trust)))
    for region in config.replica_regions:  # each replica's key
        replica_kms = client(local, "kms", region)
        replica_key = replica_kms.describe_key(KeyId=f"alias/{config.name_prefix}-api-keys")["KeyMetadata"]["Arn"]
        found.append(("key_policy", replica_kms.get_key_policy(KeyId=replica_key, PolicyName="default")["Policy"]))
    return found


def parliament_findings(document: str) -> list[Any]:
    # parliament 1.6.4 opens its data files at import without closing them; keep that
    # library's ResourceWarning out of our warnings-are-errors run, and only that.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        from parliament import analyze_policy_string  # type: ignore[import-untyped]
    return list(analyze_policy_string(document).findings)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_deployed_policies_pass_parliament(local: LocalDeployment, stack: str, request: pytest.FixtureRequest) -> None:
    outputs: dict[str, str] = request.getfixturevalue(stack)
    unexplained = []
    for kind, document in deployed_documents(local, stack, outputs):
        for finding in parliament_findings(document):
            explained = any(
                (kind, finding.issue) == (known_kind, known_issue) and detail in str(finding.detail)
                for known_kind, known_issue, detail in PARLIAMENT_EXPLAINED
            )
            if not explained:
                unexplained.append(f"{kind}: {finding.issue} {finding.detail}")
    assert unexplained == []


def test_cli_and_reference_service_against_local_aws(local: LocalDeployment, dev: dict[str, str]) -> None:
    """The operator path and the application path end to end: migrate, verify, then a service
    that reads the secret answers 200 for a good key and 401 for a bad one."""
    env = {**local.environment("dev"), "AWS_REGION": config_of(local, "dev").region}
    keys = [f"e2e_{secrets.token_urlsafe(32)}" for _ in range(2)]
    api_keys = f"{keys[0]}:e2e-client-1:One,{keys[1]}:e2e-client-2:Two"
    outputs = str(stackctl.stack_dir("dev") / "outputs.json")
    migrated = demo.apikeys_cli("migrate", "--env", "dev", "--outputs", outputs, env={**env, "API_KEYS": api_keys})
    assert "added 2" in migrated
    verified = demo.apikeys_cli("verify", "--env", "dev", "--outputs", outputs, env=env)
    assert "FAIL" not in verified
    port = free_port()
    service = demo.start_service({**env, "API_KEYS_SECRET_ARN": dev["secret_arn"]}, port)
    try:
        url = f"http://127.0.0.1:{port}/sign"
        assert demo.http_status(url, key=keys[1]) == 200
        assert demo.http_status(url, key=f"e2e_{secrets.token_urlsafe(32)}") == 401
        assert demo.http_status(url) == 401
    finally:
        service.terminate()
        service.wait(timeout=10)
    for text in (migrated, verified):
        assert all(key not in text for key in keys)


def test_prod_refuses_to_destroy_its_key_and_secret(local: LocalDeployment, prod: dict[str, str]) -> None:
    assert config_of(local, "prod").deletion_protection  # as shipped (tests/infra/test_config.py)
    with pytest.raises(stackctl.StackError, match="terraform destroy"):
        stackctl.destroy("prod", local.environment("prod"), auto_approve=True)
    primary = in_region_of(local, "prod")
    key = primary("kms").describe_key(KeyId=prod["kms_key_arn"])["KeyMetadata"]
    assert key["KeyState"] == "Enabled"
    assert "DeletedDate" not in primary("secretsmanager").describe_secret(SecretId=prod["secret_arn"])


def test_destroying_dev_leaves_nothing_behind(local: LocalDeployment, dev: dict[str, str]) -> None:
    stackctl.destroy("dev", local.environment("dev"), auto_approve=True)

    config, primary = config_of(local, "dev"), in_region_of(local, "dev")
    assert primary("kms").describe_key(KeyId=dev["kms_key_arn"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    secrets = primary("secretsmanager")
    own = f"{config.project_name}/{config.environment}/"
    remaining = [s["Name"] for s in secrets.list_secrets()["SecretList"] if s["Name"].startswith(own)]
    assert remaining == []
    topics = [t["TopicArn"] for t in primary("sns").list_topics()["Topics"]]
    assert dev["alert_topic_arn"] not in topics
    alarms = primary("cloudwatch").describe_alarms(AlarmNamePrefix=f"{config.name_prefix}-")["MetricAlarms"]
    assert alarms == []
    iam = primary("iam")
    assert all(p["Arn"] != dev["read_policy_arn"] for p in iam.list_policies(Scope="Local")["Policies"])
    created_roles = set(config.service.task_roles) if config.service.create_demo_resources else set()
    assert not created_roles & {r["RoleName"] for r in iam.list_roles()["Roles"]}
    logs = primary("logs")
    created_log_groups = [
        *([config.service.log_group_name] if config.service.create_demo_resources else []),
        *([f"/aws/lambda/{config.name_prefix}-api-keys-rotation"] if config.rotation.enabled else []),
    ]
    for name in created_log_groups:
        assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []


def test_s3_state_is_locked_against_a_concurrent_apply(local: LocalDeployment) -> None:
    """The tests' env with S3 state (use_lockfile): state lands in the bucket, a second apply
    while the first holds the lock is refused, and nothing else about the stack changes."""
    name = REPLICATED_ENV
    backend = config_of(local, name).backend
    assert isinstance(backend, S3BackendConfig)
    assert backend.use_lockfile
    env = local.environment(name)
    stackctl.init(name, env)
    s3 = client(local, "s3", backend.region)
    bucket, key = backend.bucket, backend.key

    first: dict[str, subprocess.CompletedProcess[str]] = {}

    def apply_in_background() -> None:
        first["result"] = _apply(name, env)

    runner = threading.Thread(target=apply_in_background)
    runner.start()
    lock_seen = _wait_for_object(s3, bucket, f"{key}.tflock", timeout=60)
    second = _apply(name, env)
    runner.join(timeout=300)

    assert lock_seen, "the first apply never took the S3 lock"
    assert second.returncode != 0
    assert "Error acquiring the state lock" in second.stderr
    assert first["result"].returncode == 0, first["result"].stderr
    state = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert any(r["type"] == "aws_secretsmanager_secret" for r in state["resources"])
    replanned = replan(local, name)
    assert replanned.returncode == 0, replanned.stdout[-3000:]


def _apply(env_name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return terraform_in(env_name, "apply", "-auto-approve", "-input=false", "-lock-timeout=0s", env=env)


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

    key = in_region_of(local, "prod")("kms").describe_key(KeyId=prod["kms_key_arn"])["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"
