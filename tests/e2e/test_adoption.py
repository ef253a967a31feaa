"""Adopting a secret that was set up by hand, with the service answering throughout.

Each case builds, in a local AWS of its own, what a team that followed the usual guide runs
in production: the secret (the guide's name, description and value shape, fake keys, one of
them shorter than a new key may be), its key changed by hand (or the default
`aws/secretsmanager` key), `SecretsManagerReadWrite` on the ECS execution role, a resource
policy that lets a service principal read the value, a task definition that still carries
`API_KEYS`, and (in one case) a rotation function of its own. Every step is one of the
guide's commands, made with boto3: the AWS CLI release that matches the pinned botocore is
not on PyPI.

Then the runbook (README, "Adopting an existing secret"): plan (an import, no replace),
apply, `apikeys adopt`, `apikeys doctor --fix`, a rotation. A reference service started on
the old ARN with the old keys is called without pause from start to end.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from scripts import authz, stackctl
from scripts.access import AccessError, assume_locally, check_adopted_secret, create_local_prerequisites
from scripts.demo import http_status
from scripts.local_aws import LocalAws, free_port, local_aws, run_rotation_function
from stacks.config import load_environment
from tests.conftest import PROJECT_ROOT, run_main
from tests.e2e.reference_service import RollingClient, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.synth, pytest.mark.terraform]

# Fake keys in the guide's shape: `sk_live_...` (16 characters) and `sk_test_...` (14, shorter
# than a new key may be, as the guide's own example is).
LONG_KEY = "sk_live_FAKE0001"
SHORT_KEY = "sk_test_FAKE02"
GUIDE_VALUE = json.dumps({"apiKeys": f"{LONG_KEY}:client-prod:Production,{SHORT_KEY}:client-test:Test"})
GUIDE_DESCRIPTION = "CredLink API keys for authentication"
REFRESH_SECONDS, GRACE_SECONDS = 1.0, 6.0


@dataclass(frozen=True)
class HandMade:
    """One team's setup: its env, region and secret name, the key it changed to by hand (None:
    the secret kept `aws/secretsmanager`), replicas, and whether it had a rotation function."""

    env: str
    region: str
    secret_name: str
    hand_made_key_alias: str | None
    replica_regions: tuple[str, ...]
    own_rotation_function: bool

    @property
    def execution_role(self) -> str:
        return f"{self.env}-ecs-task-execution-role"

    @property
    def task_role(self) -> str:
        return f"{self.env}-api-task"

    def env_file(self) -> str:
        replicas = ", ".join(f'"{region}"' for region in self.replica_regions)
        return f"""\
project_name = "credlink"
environment = "{self.env}"
account_id = "123456789012"
region = "{self.region}"
replica_regions = [{replicas}]
recovery_window_days = 30
kms_deletion_window_days = 30
alert_emails = ["platform-alerts@example.com"]

[access]
apply_roles = ["{self.env}-deploy"]
plan_roles = ["{self.env}-plan"]
operator_roles = ["{self.env}-operator"]

[service]
task_roles = ["{self.task_role}"]
log_group_name = "/credlink/{self.env}/app"

[rotation]
days = 30

[adopt]
secret = "{self.secret_name}"
"""


CASES = (
    # The guide as written: a key made by hand, a replica added on adoption, a rotation function of its own.
    HandMade("adopt-prod", "us-east-1", "credlink-prod-api-keys", "alias/credlink-secrets", ("us-west-2",), True),
    # A second environment whose secret never left the default `aws/secretsmanager` key.
    HandMade("adopt-staging", "us-west-2", "credlink-staging-api-keys", None, (), False),
)


@pytest.fixture(scope="module")
def synthesized_adoptions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both env files synthesized by main.py in one run; returns the output directory."""
    envs = tmp_path_factory.mktemp("adoption-envs")
    for case in CASES:
        (envs / f"{case.env}.toml").write_text(case.env_file(), encoding="utf-8")
    outdir = tmp_path_factory.mktemp("adoption-out") / "cdktf.out"
    result = run_main(envs, outdir)
    assert result.returncode == 0, result.stderr
    for case in CASES:
        stack = json.loads((outdir / "stacks" / case.env / "cdk.tf.json").read_text(encoding="utf-8"))
        assert stack["import"] == [
            {
                "to": "module.secrets.aws_secretsmanager_secret.this",
                "id": "${data.aws_secretsmanager_secret.adopted_secret.arn}",
            }
        ]
        assert stack["data"]["aws_secretsmanager_secret"]["adopted_secret"]["name"] == case.secret_name
    return outdir


def client(server: LocalAws, service: str, region: str) -> Any:
    return server.session(region).client(service, endpoint_url=server.endpoint_url)  # type: ignore[call-overload]


def build_the_guides_setup(server: LocalAws, case: HandMade) -> str:
    """The guide's commands (and what they assume exists), against local AWS; the secret's ARN."""
    secretsmanager = client(server, "secretsmanager", case.region)
    iam = client(server, "iam", case.region)
    # aws secretsmanager create-secret --name ... --description ... --secret-string '{"apiKeys":"..."}'
    arn: str = secretsmanager.create_secret(
        Name=case.secret_name, Description=GUIDE_DESCRIPTION, SecretString=GUIDE_VALUE
    )["ARN"]
    if case.hand_made_key_alias:
        # A key made by hand earlier, then: aws secretsmanager update-secret --kms-key-id alias/credlink-secrets
        kms = client(server, "kms", case.region)
        key_id = kms.create_key(Description="made by hand")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=case.hand_made_key_alias, TargetKeyId=key_id)
        secretsmanager.update_secret(SecretId=case.secret_name, KmsKeyId=case.hand_made_key_alias)
    # aws iam attach-role-policy --role-name <execution role> \
    #   --policy-arn arn:aws:iam::aws:policy/SecretsManagerReadWrite
    iam.create_role(RoleName=case.execution_role, AssumeRolePolicyDocument=_TRUST_ECS_TASKS)
    iam.create_role(RoleName=case.task_role, AssumeRolePolicyDocument=_TRUST_ECS_TASKS)
    iam.attach_role_policy(RoleName=case.execution_role, PolicyArn="arn:aws:iam::aws:policy/SecretsManagerReadWrite")
    # aws secretsmanager put-resource-policy --resource-policy '{... "Principal":{"Service":"cloudtrail..."} ...}'
    secretsmanager.put_resource_policy(
        SecretId=case.secret_name,
        ResourcePolicy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudtrail.amazonaws.com"},
                        "Action": "secretsmanager:GetSecretValue",
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    # The service's task definition: the keys still in its environment, next to the new ARN.
    client(server, "ecs", case.region).register_task_definition(
        family=f"{case.env}-api",
        taskRoleArn=f"arn:aws:iam::123456789012:role/{case.task_role}",
        executionRoleArn=f"arn:aws:iam::123456789012:role/{case.execution_role}",
        containerDefinitions=[
            {
                "name": "api",
                "image": "credlink/api:1.0",
                "memory": 512,
                "environment": [
                    {"name": "API_KEYS", "value": json.loads(GUIDE_VALUE)["apiKeys"]},
                    {"name": "API_KEYS_SECRET_ARN", "value": arn},
                    {"name": "PORT", "value": "3001"},
                ],
            }
        ],
    )
    if case.own_rotation_function:
        _configure_a_rotation_function_of_its_own(server, case)
    return arn


_TRUST_ECS_TASKS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def _configure_a_rotation_function_of_its_own(server: LocalAws, case: HandMade) -> None:
    """A one-step rotation function (every step does nothing), configured on the secret."""
    iam = client(server, "iam", case.region)
    role = iam.create_role(RoleName=f"{case.env}-own-rotation", AssumeRolePolicyDocument=_TRUST_ECS_TASKS)["Role"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("rotate.py", "def handler(event, context):\n    return None\n")
    function = client(server, "lambda", case.region).create_function(
        FunctionName=f"{case.env}-rotate-keys",
        Runtime="python3.12",
        Role=role["Arn"],
        Handler="rotate.handler",
        Code={"ZipFile": code.getvalue()},
    )
    client(server, "secretsmanager", case.region).rotate_secret(
        SecretId=case.secret_name,
        RotationLambdaARN=function["FunctionArn"],
        RotationRules={"AutomaticallyAfterDays": 90},
        RotateImmediately=False,
    )


@dataclass
class Service:
    """The reference service on the old ARN, its log written to a file as a container's is."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def ship_log(self, server: LocalAws, region: str, log_group: str) -> None:
        """What ECS's awslogs driver does: the container's lines into the service's log group."""
        logs = client(server, "logs", region)
        stream = f"api/{self.process.pid}-{time.monotonic_ns()}"
        logs.create_log_stream(logGroupName=log_group, logStreamName=stream)
        now = int(time.time() * 1000)
        events = [
            {"timestamp": now, "message": line}
            for line in self.log.read_text(encoding="utf-8").splitlines()
            if line.startswith("{")
        ]
        logs.put_log_events(logGroupName=log_group, logStreamName=stream, logEvents=events)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Service] = []

    def start(env: dict[str, str]) -> Service:
        port = free_port()
        log = tmp_path / f"service-{port}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "apikeys.service", "--port", str(port)],
                env=env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        service = Service(process=process, url=f"http://127.0.0.1:{port}/sign", log=log)
        started.append(service)
        wait_for(lambda: _healthy(f"http://127.0.0.1:{port}/healthz"), timeout=30)
        return service

    yield start
    for service in started:
        service.process.terminate()
        service.process.wait(timeout=10)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback http)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def apikeys(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apikeys", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def current_keys(server: LocalAws, case: HandMade) -> dict[str, str]:
    value = client(server, "secretsmanager", case.region).get_secret_value(SecretId=case.secret_name)["SecretString"]
    entries = json.loads(value)["apiKeys"].split(",")
    return {entry.split(":")[1]: entry.split(":")[0] for entry in entries}


def in_worker_of(case: HandMade) -> pytest.MarkDecorator:
    """One case's tests run in one worker (pytest-xdist), each case beside the other."""
    return pytest.mark.xdist_group(f"adoption-{case.env}")


@pytest.mark.parametrize("case", [pytest.param(case, id=case.env, marks=in_worker_of(case)) for case in CASES])
def test_adopting_a_hand_made_secret_keeps_the_service_up_and_ends_clean(
    case: HandMade,
    synthesized_adoptions: Path,
    terraform_env: dict[str, str],
    service_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CDKTF_OUTDIR", str(synthesized_adoptions))
    monkeypatch.setenv("CREDLINK_ENVS_DIR", str(tmp_path / "envs"))
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / f"{case.env}.toml").write_text(case.env_file(), encoding="utf-8")
    config = load_environment(tmp_path / "envs" / f"{case.env}.toml")
    outputs = str(stackctl.stack_dir(case.env) / "outputs.json")
    transcript: list[str] = []  # everything the adoption printed, searched for key material at the end

    with local_aws(log_path=tmp_path / "moto.log") as server:
        arn = build_the_guides_setup(server, case)
        create_local_prerequisites(config, server)
        base = stackctl.local_environment(case.env, server, terraform_env)
        operator = {
            **server.applied_to({"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT_ROOT)}),
            "AWS_REGION": case.region,
            "API_KEYS_PREVIOUS_GRACE_SECONDS": str(GRACE_SECONDS),
        }

        # The service as it runs today: the old ARN, its old keys.
        service = service_factory(
            {
                **operator,
                "API_KEYS_SECRET_ARN": arn,
                "API_KEYS_REFRESH_SECONDS": str(REFRESH_SECONDS),
            }
        )
        callers = {
            client_id: RollingClient(service.url, key=key) for client_id, key in current_keys(server, case).items()
        }
        for caller in callers.values():
            caller.start()
        try:
            # 1. The first plan imports the secret and changes it in place: nothing is replaced.
            plan_env = assume_locally(config, server, base, plan_only=True)
            stackctl.plan(case.env, plan_env)
            plan_json = (stackctl.stack_dir(case.env) / "plan.json").read_text(encoding="utf-8")
            summary = stackctl.plan_summary(case.env, plan_json)
            assert summary.import_ == 1
            assert summary.removals == ()
            secret_change = next(
                change
                for change in json.loads(plan_json)["resource_changes"]
                if change["address"] == "module.secrets.aws_secretsmanager_secret.this"
            )
            assert secret_change["change"]["actions"] == ["update"]
            assert secret_change["change"]["importing"]["id"] == arn
            transcript.append(plan_json)

            # 2. Apply exactly that plan (as the apply role).
            apply_env = assume_locally(config, server, base)
            stackctl.apply(case.env, apply_env, allow_replace=False)
            deployed = json.loads(Path(outputs).read_text(encoding="utf-8"))[case.env]
            assert deployed["secret_arn"] == arn  # the ARN in running task definitions still holds

            # 3. apikeys adopt: AWSCURRENT re-written under the env's key; the keys are unchanged.
            adopted = apikeys("adopt", "--env", case.env, "--outputs", outputs, env=operator)
            transcript += [adopted.stdout, adopted.stderr]
            assert adopted.returncode == 0, adopted.stderr
            assert "client-test" in adopted.stdout + adopted.stderr  # the short key's client is named
            assert "apikeys rotate" in adopted.stdout + adopted.stderr  # and a rotation is recommended
            again = apikeys("adopt", "--env", case.env, "--outputs", outputs, env=operator)
            assert again.returncode == 0, again.stderr
            versions = client(server, "secretsmanager", case.region).list_secret_version_ids(SecretId=arn)["Versions"]
            current = next(version for version in versions if "AWSCURRENT" in version["VersionStages"])
            assert current["KmsKeyIds"] == [deployed["kms_key_arn"]]
            assert len([v for v in versions if "AWSPREVIOUS" in v["VersionStages"]]) == 1  # one write, not two

            # 4. doctor finds what the guide left behind, --fix repairs what it can.
            found = apikeys("doctor", "--env", case.env, "--outputs", outputs, env=operator)
            transcript += [found.stdout, found.stderr]
            assert found.returncode == 1
            for finding in ("SecretsManagerReadWrite", "API_KEYS", "CloudTrail", "client-test"):
                assert finding in found.stdout, finding
            fixed = apikeys("doctor", "--env", case.env, "--outputs", outputs, "--fix", env=operator)
            transcript += [fixed.stdout, fixed.stderr]
            iam = client(server, "iam", case.region)
            attached = iam.list_attached_role_policies(RoleName=case.execution_role)["AttachedPolicies"]
            assert all(policy["PolicyName"] != "SecretsManagerReadWrite" for policy in attached)
            ecs = client(server, "ecs", case.region)
            definition = ecs.describe_task_definition(taskDefinition=f"{case.env}-api")["taskDefinition"]
            environment = {item["name"]: item["value"] for item in definition["containerDefinitions"][0]["environment"]}
            assert "API_KEYS" not in environment
            assert environment["API_KEYS_SECRET_ARN"] == arn
            # The audit trail is the team's to create; doctor printed how.
            s3 = client(server, "s3", case.region)
            bucket = f"{case.env}-trail"
            s3.create_bucket(
                Bucket=bucket,
                **(
                    {}
                    if case.region == "us-east-1"
                    else {"CreateBucketConfiguration": {"LocationConstraint": case.region}}
                ),
            )
            trails = client(server, "cloudtrail", case.region)
            trails.create_trail(Name=f"{case.env}-trail", S3BucketName=bucket, IsMultiRegionTrail=True)
            trails.start_logging(Name=f"{case.env}-trail")

            # 5. Keys that lived in task definitions are exposed: rotate every one.
            before = current_keys(server, case)
            rotated = apikeys("rotate", "--env", case.env, "--outputs", outputs, env=operator)
            transcript += [rotated.stdout, rotated.stderr]
            assert rotated.returncode == 0, rotated.stderr
            token = rotated.stdout.split("version ", 1)[1].split()[0]
            run_rotation_function(client(server, "secretsmanager", case.region), arn, token)
            after = current_keys(server, case)
            assert set(after) == set(before)
            assert not set(after.values()) & set(before.values())
            for client_id, caller in callers.items():
                refreshed = wait_for(lambda: http_status(service.url, key=after[client_id]) == 200, timeout=15)  # noqa: B023
                caller.key = after[client_id]
            expired = wait_for(
                lambda: all(http_status(service.url, key=key) == 401 for key in before.values()),
                timeout=GRACE_SECONDS + 15,
            )
            assert expired - refreshed >= GRACE_SECONDS - 2  # the old keys lasted their grace period
        finally:
            for caller in callers.values():
                caller.stop()

        # The service answered every request, with the old keys and then the new ones.
        for client_id, caller in callers.items():
            assert caller.failures == [], client_id
            assert caller.requests > 20, client_id

        # 6. Clean: doctor, the checklist (the service's log shipped to its group), no changes to plan.
        service.ship_log(server, case.region, config.service.log_group_name)
        clean = apikeys("doctor", "--env", case.env, "--outputs", outputs, env=operator)
        transcript += [clean.stdout, clean.stderr]
        assert clean.returncode == 0, clean.stdout + clean.stderr
        checklist = apikeys("checklist", "--env", case.env, "--outputs", outputs, env=operator)
        transcript += [checklist.stdout, checklist.stderr]
        assert checklist.returncode == 0, checklist.stdout + checklist.stderr
        stackctl.plan(case.env, assume_locally(config, server, base, plan_only=True))
        final_plan = (stackctl.stack_dir(case.env) / "plan.json").read_text(encoding="utf-8")
        final = stackctl.plan_summary(case.env, final_plan)
        assert (final.add, final.change, final.destroy, final.import_) == (0, 0, 0, 0)
        transcript.append(final_plan)
        all_keys = {*before.values(), *after.values(), LONG_KEY, SHORT_KEY}
        state = (server.state_dir / f"{case.env}.tfstate").read_text(encoding="utf-8")  # local AWS keeps it

    # No key, old or new, in any artifact of the adoption: plans, state, outputs, CLI output, logs.
    printed = capfd.readouterr()  # Terraform's plan and apply output among it
    artifacts = [
        *transcript,
        printed.out,
        printed.err,
        *(
            path.read_text(encoding="utf-8")
            for path in stackctl.stack_dir(case.env).glob("plan*")
            if path.suffix in {".json", ".md"}
        ),
        Path(outputs).read_text(encoding="utf-8"),
        state,
        service.log.read_text(encoding="utf-8"),
    ]
    for key in all_keys:
        assert not any(key in text for text in artifacts), "a key reached an artifact of the adoption"


@pytest.fixture
def in_process_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_a_secret_that_is_not_there_stops_the_run_in_one_line(in_process_aws: Any, tmp_path: Path) -> None:
    case = CASES[0]
    path = tmp_path / f"{case.env}.toml"
    path.write_text(case.env_file().replace(case.secret_name, "credlink-prod-api-kes"), encoding="utf-8")
    with pytest.raises(AccessError) as refused:
        check_adopted_secret(load_environment(path), in_process_aws)
    assert str(refused.value) == (
        f"{path}: adopt.secret: no secret credlink-prod-api-kes in us-east-1: check its name or ARN "
        "(or remove [adopt] to create a new secret)"
    )


def test_a_secret_scheduled_for_deletion_is_not_adopted(in_process_aws: Any, tmp_path: Path) -> None:
    case = CASES[0]
    arn = in_process_aws.create_secret(Name=case.secret_name, SecretString=GUIDE_VALUE)["ARN"]
    in_process_aws.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    path = tmp_path / f"{case.env}.toml"
    path.write_text(case.env_file(), encoding="utf-8")
    with pytest.raises(AccessError, match=rf"is scheduled for deletion: restore it first .*{arn}"):
        check_adopted_secret(load_environment(path), in_process_aws)
    in_process_aws.restore_secret(SecretId=arn)
    assert check_adopted_secret(load_environment(path), in_process_aws) == arn


@in_worker_of(CASES[1])
def test_an_adopted_environment_passes_the_authorization_matrix(
    synthesized_adoptions: Path,
    terraform_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The policies written for an adopted secret's own name, deployed on a secret made by hand
    (local-prereqs makes it), decided by the IAM evaluator row by row."""
    case = CASES[1]
    (tmp_path / f"{case.env}.toml").write_text(case.env_file(), encoding="utf-8")
    monkeypatch.setenv("CREDLINK_ENVS_DIR", str(tmp_path))
    monkeypatch.setenv("CDKTF_OUTDIR", str(synthesized_adoptions))
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", terraform_env["TF_CLI_CONFIG_FILE"])
    assert authz.main(["--env", case.env]) == 0, capsys.readouterr().out
    report = capsys.readouterr().out
    assert f"{case.secret_name}-" in report  # rows about the adopted secret itself
    assert "all hold" in report
