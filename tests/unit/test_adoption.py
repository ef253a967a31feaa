"""Adopting a secret set up by hand: `apikeys adopt`, `apikeys doctor --env`, `apikeys checklist`,
against the hand-made setup built in moto in-process (see `adopted_by_hand`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.iam.models import AWSManagedPolicy, iam_backends
from moto.secretsmanager.models import SecretsManagerBackend, secretsmanager_backends

from apikeys import cli
from apikeys.adoption import CHECKS, Deployment
from apikeys.events import Event
from tests.unit.conftest import REGION, run

ACCOUNT = "123456789012"  # moto's default account

# Obviously fake keys in the guide's shape; client-test's is shorter than a new key may be.
LIVE_KEY = "sk_live_FAKE0000000000001"
TEST_KEY = "sk_test_FAKE1"
GUIDE_KEYS = f"{LIVE_KEY}:client-prod:Production,{TEST_KEY}:client-test:Test"
EXECUTION_ROLE = "credlink-prod-ecs-task-execution-role"
TASK_ROLE = "credlink-prod-api-task"
READ_WRITE = "arn:aws:iam::aws:policy/SecretsManagerReadWrite"
ECS_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
CLOUDTRAIL_READS = {
    "Effect": "Allow",
    "Principal": {"Service": "cloudtrail.amazonaws.com"},
    "Action": "secretsmanager:GetSecretValue",
    "Resource": "*",
}


class VersionKeys:
    """moto in-process reports no KmsKeyIds in ListSecretVersionIds. This records, per version,
    the keys Secrets Manager documents: the secret's key when the version is written, and the
    new key added to the labelled versions when the secret's key changes (the old one kept)."""

    def __init__(self) -> None:
        self.report = True

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        add_secret, list_versions = SecretsManagerBackend._add_secret, SecretsManagerBackend.list_secret_version_ids
        keys = self

        def recording(backend: SecretsManagerBackend, secret_id: str, *args: Any, **kwargs: Any) -> Any:
            before = getattr(backend.secrets[secret_id], "kms_key_id", None) if secret_id in backend.secrets else None
            secret, new_version = add_secret(backend, secret_id, *args, **kwargs)
            key = secret.kms_key_id or "alias/aws/secretsmanager"
            for version in secret.versions.values():
                if "kms_key_ids" not in version:
                    version["kms_key_ids"] = [key]
                elif not new_version and kwargs.get("kms_key_id") and key != before and version["version_stages"]:
                    version["kms_key_ids"] = [*version["kms_key_ids"], key]
            return secret, new_version

        def listing(backend: SecretsManagerBackend, secret_id: str) -> str:
            response = json.loads(list_versions(backend, secret_id))
            if keys.report:
                versions = backend.secrets[secret_id].versions
                for entry in response["Versions"]:
                    entry["KmsKeyIds"] = versions[entry["VersionId"]].get("kms_key_ids", [])
            return json.dumps(response)

        monkeypatch.setattr(SecretsManagerBackend, "_add_secret", recording)
        monkeypatch.setattr(SecretsManagerBackend, "list_secret_version_ids", listing)


@pytest.fixture
def version_keys(monkeypatch: pytest.MonkeyPatch) -> VersionKeys:
    keys = VersionKeys()
    keys.install(monkeypatch)
    return keys


@pytest.fixture
def adopted_by_hand(aws: None, version_keys: VersionKeys, tmp_path: Path) -> dict[str, Any]:
    """The guide's setup (a secret with the keys, a hand-made key, SecretsManagerReadWrite on the
    execution role, a resource policy letting CloudTrail read, a task definition carrying
    API_KEYS, no CloudTrail trail), plus what the env's stack adds beside it (its CMK, the read
    policy on the task role) and its outputs. `terraform_applied` then does what apply changes."""
    kms = boto3.client("kms", region_name=REGION)
    secrets = boto3.client("secretsmanager", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    ecs = boto3.client("ecs", region_name=REGION)
    hand_key = kms.create_key(Description="made by hand")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/credlink-secrets", TargetKeyId=hand_key)
    cmk = kms.create_key(Description="the env's CMK")["KeyMetadata"]["Arn"]
    secret_arn = secrets.create_secret(
        Name="credlink-prod-api-keys",
        Description="CredLink API keys for authentication",
        SecretString=json.dumps({"apiKeys": GUIDE_KEYS}),
    )["ARN"]
    secrets.update_secret(SecretId=secret_arn, KmsKeyId="alias/credlink-secrets")
    read_write = AWSManagedPolicy.from_data(
        "SecretsManagerReadWrite",
        ACCOUNT,
        REGION,
        {
            "DefaultVersionId": "v6",
            "Path": "/",
            "CreateDate": "2018-04-04T18:05:29+00:00",
            "UpdateDate": "2018-04-04T18:05:29+00:00",
            "Document": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:*"], "Resource": "*"}],
            },
        },
    )  # loading all of moto's AWS managed policies takes seconds: this is the one the guide attaches
    iam_backends[ACCOUNT]["global"].managed_policies[read_write.arn] = read_write
    execution_role = iam.create_role(RoleName=EXECUTION_ROLE, AssumeRolePolicyDocument=ECS_TRUST)["Role"]["Arn"]
    iam.attach_role_policy(RoleName=EXECUTION_ROLE, PolicyArn=READ_WRITE)
    task_role = iam.create_role(RoleName=TASK_ROLE, AssumeRolePolicyDocument=ECS_TRUST)["Role"]["Arn"]
    read_policy = iam.create_policy(
        PolicyName="credlink-prod-api-keys-read",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": secret_arn}],
            }
        ),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=TASK_ROLE, PolicyArn=read_policy)
    secrets.put_resource_policy(
        SecretId=secret_arn, ResourcePolicy=json.dumps({"Version": "2012-10-17", "Statement": [CLOUDTRAIL_READS]})
    )
    ecs.create_cluster(clusterName="credlink-prod")
    ecs.register_task_definition(
        family="credlink-api",
        taskRoleArn=task_role,
        executionRoleArn=execution_role,
        containerDefinitions=[
            {
                "name": "api",
                "image": "credlink/api:1",
                "memory": 512,
                "environment": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "API_KEYS", "value": GUIDE_KEYS}],
            }
        ],
    )
    ecs.create_service(cluster="credlink-prod", serviceName="credlink-api", taskDefinition="credlink-api:1")
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName="/credlink/prod/app")
    stack = {
        "secret_arn": secret_arn,
        "kms_key_arn": cmk,
        "read_policy_arn": read_policy,
        "task_role_arns": [task_role],
        "service_log_group_name": "/credlink/prod/app",
    }
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"prod": stack}), encoding="utf-8")
    return {
        **stack,
        "outputs": str(outputs),
        "hand_key": hand_key,
        "secrets": secrets,
        "iam": iam,
        "ecs": ecs,
        "logs": logs,
        "keys": version_keys,
    }


PROJECT_STATEMENT = {
    "Sid": "OnlyTheseRolesRead",
    "Effect": "Deny",
    "Principal": {"AWS": "*"},
    "Action": "secretsmanager:GetSecretValue",
    "Resource": "*",
}


def terraform_applied(setup: dict[str, Any], *, also: tuple[dict[str, Any], ...] = ()) -> None:
    """What the first apply changes on the adopted secret that matters here: its KMS key, and
    its resource policy replaced with the project's (plus `also`: a statement added by hand since)."""
    setup["secrets"].update_secret(SecretId=setup["secret_arn"], KmsKeyId=setup["kms_key_arn"])
    policy = {"Version": "2012-10-17", "Statement": [*also, PROJECT_STATEMENT]}
    setup["secrets"].put_resource_policy(SecretId=setup["secret_arn"], ResourcePolicy=json.dumps(policy))


def env(setup: dict[str, Any]) -> list[str]:
    return ["--env", "prod", "--outputs", setup["outputs"]]


def versions(setup: dict[str, Any]) -> dict[str, dict[str, Any]]:
    listed = setup["secrets"].list_secret_version_ids(SecretId=setup["secret_arn"])["Versions"]
    return {each["VersionId"]: each for each in listed}


def current(setup: dict[str, Any], stage: str = "AWSCURRENT") -> dict[str, Any]:
    return dict(setup["secrets"].get_secret_value(SecretId=setup["secret_arn"], VersionStage=stage))


def rows(out: str) -> dict[str, list[str]]:
    """Doctor's table: row name -> the lines of its rows (status first), fixes included."""
    table: dict[str, list[str]] = {}
    name = ""
    for line in out.splitlines():
        if line[:4] in ("PASS", "FAIL", "WARN", "INFO"):
            name = line[6:].split("  ")[0].strip()
            table.setdefault(name, []).append(line)
        elif name:
            table[name][-1] += "\n" + line
    return table


def answer(monkeypatch: pytest.MonkeyPatch, service: str, **methods: Callable[[Any], Any]) -> None:
    """The CLI's `service` client answers `methods` itself (each made from moto's client), the
    rest from moto."""
    real = cli.client

    class Answering:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return methods[name](self.inner) if name in methods else getattr(self.inner, name)

    monkeypatch.setattr(cli, "client", lambda s, r: Answering(real(s, r)) if s == service else real(s, r))


def assert_no_fake_key(*texts: str) -> None:
    for text in texts:
        assert LIVE_KEY not in text
        assert TEST_KEY not in text


@pytest.fixture
def trail() -> None:
    """A multi-region trail, not logging."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="credlink-audit-trail")
    boto3.client("cloudtrail", region_name=REGION).create_trail(
        Name="account-trail", S3BucketName="credlink-audit-trail", IsMultiRegionTrail=True
    )


# -- doctor ---------------------------------------------------------------------------------------


def test_doctor_reports_every_mistake_of_the_hand_made_setup_with_its_fix(
    adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "doctor", *env(adopted_by_hand))
    assert code == 1
    table = rows(out)
    assert table["read the secret"][0].startswith("PASS")  # the service-side rows are kept
    (broad,) = table["broad secret read"]
    assert broad.startswith("FAIL")
    assert "SecretsManagerReadWrite" in broad
    assert f"on role {EXECUTION_ROLE}, the ECS execution role of credlink-api:1" in broad
    assert f"fix: aws iam detach-role-policy --role-name {EXECUTION_ROLE} --policy-arn {READ_WRITE}" in broad
    (policy,) = table["secret's policy"]
    assert policy.startswith("FAIL")
    assert "cloudtrail.amazonaws.com" in policy
    assert "fix: make plan ENV=prod && make apply ENV=prod" in policy
    (configured,) = table["secret's KMS key"]
    assert configured.startswith("FAIL  secret's KMS key")
    assert "alias/credlink-secrets, not the env's CMK" in configured
    assert "fix: make plan ENV=prod && make apply ENV=prod" in configured
    (encryption,) = table["AWSCURRENT's KMS key"]
    assert encryption.startswith("FAIL")
    assert "alias/credlink-secrets" in encryption
    assert "fix: apikeys adopt --env prod" in encryption
    (definition,) = table["task definition"]
    assert definition.startswith("FAIL")
    assert "credlink-api:1: container api has API_KEYS in its environment" in definition
    assert "aws ecs update-service --cluster credlink-prod --service credlink-api" in definition
    assert table["CloudTrail"][0].startswith("FAIL  CloudTrail")
    assert "no trail logs us-east-1" in table["CloudTrail"][0]
    assert "aws cloudtrail create-trail" in table["CloudTrail"][0]
    (short,) = table["short keys"]
    assert short.startswith("WARN")
    assert "client-test" in short
    assert "client-prod" not in short
    assert "fix: apikeys rotate --env prod" in short
    assert table["task role reads"][0].startswith("PASS")
    assert table["rotation function"][0].startswith("INFO")
    assert table["service loaded"][0].startswith("WARN")
    assert_no_fake_key(out, err)


def test_doctor_fix_repairs_what_it_can_and_a_second_run_is_clean_for_those_rows(
    adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str], log_lines: list[dict[str, Any]]
) -> None:
    setup = adopted_by_hand
    terraform_applied(setup, also=(CLOUDTRAIL_READS,))
    code, out, err = run(capsys, "doctor", *env(setup), "--fix")
    fixes = [line for line in out.splitlines() if line.startswith("fix ")]
    assert any(f"role {EXECUTION_ROLE}: before: {READ_WRITE} attached; after: detached" in line for line in fixes)
    assert any("secret's policy: before: 2 statements, 1 letting cloudtrail" in line for line in fixes)
    assert any("task definition: before: credlink-api:1 with API_KEYS; after: credlink-api:2" in line for line in fixes)
    assert any(
        "aws ecs update-service --cluster credlink-prod --service credlink-api --task-definition credlink-api:2" in line
        for line in fixes
    )
    assert any("wrote version" in line for line in fixes)
    assert code == 1  # CloudTrail has no trail to start: that one is printed, not made
    code, out, err = run(capsys, "doctor", *env(setup))
    table = rows(out)
    for name in ("broad secret read", "secret's policy", "AWSCURRENT's KMS key", "task definition"):
        assert all(line.startswith("PASS") for line in table[name]), table[name]
    assert table["CloudTrail"][0].startswith("FAIL")

    assert setup["iam"].list_attached_role_policies(RoleName=EXECUTION_ROLE)["AttachedPolicies"] == []
    statements = json.loads(setup["secrets"].get_resource_policy(SecretId=setup["secret_arn"])["ResourcePolicy"])
    assert statements["Statement"] == [PROJECT_STATEMENT]  # only the service principal's statement removed
    latest = setup["ecs"].describe_task_definition(taskDefinition="credlink-api")["taskDefinition"]
    (container,) = latest["containerDefinitions"]
    assert container["environment"] == [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "API_KEYS_SECRET_ARN", "value": setup["secret_arn"]},
    ]
    assert latest["executionRoleArn"].endswith(EXECUTION_ROLE)
    assert latest["taskRoleArn"].endswith(TASK_ROLE)
    service = setup["ecs"].describe_services(cluster="credlink-prod", services=["credlink-api"])["services"][0]
    assert service["taskDefinition"].endswith("credlink-api:1")  # rolling out is the operator's step
    assert_no_fake_key(out, err, json.dumps(log_lines))


def test_doctor_fix_starts_a_trail_that_covers_the_region_but_is_stopped(
    adopted_by_hand: dict[str, Any], trail: None, capsys: pytest.CaptureFixture[str]
) -> None:
    terraform_applied(adopted_by_hand)
    _, out, _ = run(capsys, "doctor", *env(adopted_by_hand))
    (row,) = rows(out)["CloudTrail"]
    assert "account-trail covers us-east-1 but is not logging" in row
    assert "fix: aws cloudtrail start-logging --name arn:aws:cloudtrail:us-east-1:" in row
    _, out, _ = run(capsys, "doctor", *env(adopted_by_hand), "--fix")
    assert "CloudTrail: account-trail: before: not logging; after: logging" in out
    assert rows(out)["CloudTrail"][0].startswith("PASS  CloudTrail")


def test_doctor_flags_a_foreign_rotation_function_secrets_injection_and_another_secrets_arn(
    adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    setup = adopted_by_hand
    terraform_applied(setup)
    model: Any = secretsmanager_backends[ACCOUNT][REGION].secrets[setup["secret_arn"]]
    model.rotation_lambda_arn = "arn:aws:lambda:us-east-1:123456789012:function:hand-rotation"
    model.rotation_enabled = model.rotation_requested = True  # by hand: RotateSecret in moto invokes the function
    elsewhere = "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbCdEf"
    setup["ecs"].register_task_definition(
        family="credlink-worker",
        containerDefinitions=[
            {
                "name": "worker",
                "image": "credlink/worker:1",
                "memory": 256,
                "secrets": [{"name": "API_KEYS", "valueFrom": setup["secret_arn"]}],
                "environment": [{"name": "API_KEYS_SECRET_ARN", "value": elsewhere}],
            }
        ],
    )
    _, out, err = run(capsys, "doctor", *env(setup))
    table = rows(out)
    (rotation,) = table["rotation function"]
    assert rotation.startswith("FAIL")
    assert "hand-rotation rotates the secret, but this env has no rotation function" in rotation
    worker = next(line for line in table["task definition"] if "credlink-worker:1" in line)
    assert "injects API_KEYS from" in worker
    assert f"API_KEYS_SECRET_ARN names another secret: {elsewhere}" in worker
    assert_no_fake_key(out, err)

    stack = json.loads(Path(setup["outputs"]).read_text())
    stack["prod"]["rotation_function_arn"] = "arn:aws:lambda:us-east-1:123456789012:function:credlink-prod-rotation"
    Path(setup["outputs"]).write_text(json.dumps(stack))
    _, out, _ = run(capsys, "doctor", *env(setup))
    assert "hand-rotation is configured, not this env's" in rows(out)["rotation function"][0]


def test_another_envs_task_definitions_are_not_rewritten(
    adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """An account holding staging and prod: prod's doctor neither lists staging's service nor
    points a task definition it cannot tell is prod's at prod's secret."""
    setup = adopted_by_hand
    terraform_applied(setup)
    staging_role = setup["iam"].create_role(RoleName="credlink-staging-api-task", AssumeRolePolicyDocument=ECS_TRUST)
    staging_secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:credlink/staging/api-keys-AbCdEf"
    for family, environment in (
        ("credlink-staging-api", [{"name": "API_KEYS_SECRET_ARN", "value": staging_secret}]),
        ("credlink-legacy", [{"name": "API_KEYS", "value": GUIDE_KEYS}]),
    ):
        setup["ecs"].register_task_definition(
            family=family,
            taskRoleArn=staging_role["Role"]["Arn"],
            containerDefinitions=[
                {"name": "api", "image": "credlink/api:1", "memory": 256, "environment": environment}
            ],
        )
    _, out, err = run(capsys, "doctor", *env(setup), "--fix")
    assert "credlink-staging-api:" not in out
    assert "credlink-staging-api-task" not in out
    legacy = next(line for line in rows(out)["task definition"] if "credlink-legacy:1" in line)
    assert "runs as none of the env's task roles" in legacy
    assert len(setup["ecs"].list_task_definitions(familyPrefix="credlink-legacy")["taskDefinitionArns"]) == 1
    assert len(setup["ecs"].list_task_definitions(familyPrefix="credlink-api")["taskDefinitionArns"]) == 2
    assert_no_fake_key(out, err)


def test_a_check_the_caller_may_not_make_names_the_action_it_needs(
    adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terraform_applied(adopted_by_hand)

    class Denied:
        def paginate(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListPolicies")

    answer(
        monkeypatch,
        "iam",
        get_paginator=lambda iam: lambda name: Denied() if name == "list_policies" else iam.get_paginator(name),
    )
    code, out, _ = run(capsys, "doctor", *env(adopted_by_hand))
    assert code == 1
    assert "FAIL  broad secret reads" in out
    assert "cannot check: needs iam:ListPolicies" in out


# -- adopt ----------------------------------------------------------------------------------------


def test_adopt_refuses_before_apply_and_writes_nothing(
    adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    before = versions(adopted_by_hand)
    code, out, err = run(capsys, "adopt", *env(adopted_by_hand))
    assert (code, out) == (1, "")
    assert len(err.strip().splitlines()) == 1
    assert "the secret's KMS key is alias/credlink-secrets, not the env's CMK" in err
    assert "run make apply ENV=prod first" in err
    assert versions(adopted_by_hand).keys() == before.keys()


def test_adopt_refuses_during_a_rotation(adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    terraform_applied(adopted_by_hand)
    adopted_by_hand["secrets"].put_secret_value(
        SecretId=adopted_by_hand["secret_arn"], SecretString=json.dumps({"apiKeys": "x"}), VersionStages=["AWSPENDING"]
    )
    before = versions(adopted_by_hand)
    code, _, err = run(capsys, "adopt", *env(adopted_by_hand))
    assert code == 1
    assert "a rotation is in progress" in err
    assert versions(adopted_by_hand).keys() == before.keys()


def test_adopt_rewrites_awscurrent_under_the_cmk_once_then_changes_nothing(
    adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str], log_lines: list[dict[str, Any]]
) -> None:
    setup = adopted_by_hand
    terraform_applied(setup)
    old = current(setup)
    code, out, err = run(capsys, "adopt", *env(setup))
    assert code == 0, err
    new = current(setup)
    assert new["VersionId"] != old["VersionId"]
    assert json.loads(new["SecretString"]) == json.loads(old["SecretString"])  # the same keys and fields
    assert current(setup, "AWSPREVIOUS")["VersionId"] == old["VersionId"]
    listed = versions(setup)
    assert len(listed) == 2
    assert listed[new["VersionId"]]["KmsKeyIds"] == [setup["kms_key_arn"]]
    assert f"wrote version {new['VersionId']}" in out
    assert f"version {old['VersionId']}" in out
    assert "WARN  clients with keys shorter than 16 characters: client-test" in out
    assert out.strip().splitlines()[-1].endswith("apikeys rotate --env prod")
    (audit,) = [line for line in log_lines if line["event"] == Event.SECRET_ADOPTED]
    assert (audit["version"], audit["previous_version"]) == (new["VersionId"], old["VersionId"])
    assert audit["kms_key_id"] == setup["kms_key_arn"].rsplit("/", 1)[1]
    assert audit["caller"].startswith("arn:aws:")
    assert_no_fake_key(out, err, json.dumps(log_lines))

    code, out, _ = run(capsys, "adopt", *env(setup))
    assert code == 0
    assert "already encrypted with the env's CMK" in out
    assert "nothing written" in out
    assert len(versions(setup)) == 2


def test_adopt_names_the_old_key_when_it_cannot_decrypt(
    adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terraform_applied(adopted_by_hand)

    def cannot_decrypt(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "DecryptionFailure", "Message": "no"}}, "GetSecretValue")

    answer(monkeypatch, "secretsmanager", get_secret_value=lambda _: cannot_decrypt)
    code, out, err = run(capsys, "adopt", *env(adopted_by_hand))
    assert (code, out) == (1, "")
    assert len(err.strip().splitlines()) == 1
    assert "it is encrypted with alias/aws/secretsmanager, alias/credlink-secrets" in err
    assert "kms:Decrypt on that key" in err
    assert "for the adoption only" in err


def test_unknown_kms_key_ids_are_reported_as_unknown_not_as_a_pass(
    adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    terraform_applied(adopted_by_hand)
    adopted_by_hand["keys"].report = False  # as moto in-process answers: no KmsKeyIds at all
    _, out, _ = run(capsys, "doctor", *env(adopted_by_hand))
    (row,) = rows(out)["AWSCURRENT's KMS key"]
    assert row.startswith("WARN")
    assert "unknown: ListSecretVersionIds reports no KmsKeyIds" in row
    code, out, _ = run(capsys, "checklist", *env(adopted_by_hand))
    assert code == 1
    assert "[ ] 1. the secret exists and only the env's CMK encrypts it" in out


# -- checklist ------------------------------------------------------------------------------------


def test_checklist_is_open_until_every_item_is_done_in_the_account(
    adopted_by_hand: dict[str, Any], trail: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = adopted_by_hand
    terraform_applied(setup, also=(CLOUDTRAIL_READS,))
    code, out, err = run(capsys, "checklist", *env(setup))
    assert code == 1
    assert "[ ] 1. the secret exists and only the env's CMK encrypts it" in out
    assert "[x] 7. rotation is scheduled with this env's function" in out
    assert "next: apikeys adopt --env prod" in out
    assert out.strip().endswith("doctor --env prod --fix repairs some")
    assert_no_fake_key(out, err)

    assert main_quiet(capsys, "doctor", *env(setup), "--fix") in (0, 1)
    rotated = main_quiet(capsys, "clients", "rotate", *env(setup), "--client-id", "client-test")
    assert rotated == 0
    setup["logs"].create_log_stream(logGroupName="/credlink/prod/app", logStreamName="api/1")
    loaded = {"event": str(Event.LOADED), "source": "secret", "key_count": 2}
    setup["logs"].put_log_events(
        logGroupName="/credlink/prod/app",
        logStreamName="api/1",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(loaded)}],
    )
    code, out, _ = run(capsys, "checklist", *env(setup))
    assert code == 0, out
    assert "[ ]" not in out
    assert out.strip().endswith("8 of 8 done")


def test_a_fallback_line_is_not_taken_for_a_load_from_the_secret(
    adopted_by_hand: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """moto applies no JSON filter pattern (every event matches), so each match is read again."""
    setup = adopted_by_hand
    setup["logs"].create_log_stream(logGroupName="/credlink/prod/app", logStreamName="api/1")
    fallback = {"event": str(Event.LOADED), "source": "env"}
    setup["logs"].put_log_events(
        logGroupName="/credlink/prod/app",
        logStreamName="api/1",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(fallback)}],
    )
    _, out, _ = run(capsys, "checklist", *env(setup))
    assert "[ ] 5. the service loaded its keys from Secrets Manager" in out


def main_quiet(capsys: pytest.CaptureFixture[str], *argv: str) -> int:
    code, _, _ = run(capsys, *argv)
    return code


def test_the_adoption_page_names_every_iam_action_the_checks_and_their_fixes_need() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "adoption.md").read_text(encoding="utf-8")
    actions = {action for check in CHECKS for action in (*check.needs, *check.repair_needs) if ":" in action}
    assert actions
    assert sorted(action for action in actions if f"`{action}`" not in page) == []


def test_keys_are_compared_by_key_id_whatever_form_names_them(adopted_by_hand: dict[str, Any]) -> None:
    kms = boto3.client("kms", region_name=REGION)
    cmk = adopted_by_hand["kms_key_arn"]
    kms.create_alias(AliasName="alias/credlink-prod-api-keys", TargetKeyId=cmk)
    deployment = Deployment(
        secret_arn=adopted_by_hand["secret_arn"],
        region=REGION,
        env="prod",
        outputs={"kms_key_arn": cmk},
        client=cli.client,
    )
    key_id = cmk.rsplit("/", 1)[1]
    alias_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/credlink-prod-api-keys"
    for same in (cmk, key_id, "alias/credlink-prod-api-keys", alias_arn):
        assert deployment.is_cmk(same), same
    for other in ("alias/credlink-secrets", adopted_by_hand["hand_key"], "alias/aws/secretsmanager", "alias/gone"):
        assert not deployment.is_cmk(other), other
