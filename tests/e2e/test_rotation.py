"""The rotation protocol, driven as Secrets Manager drives it, against the local endpoint.

moto cannot run a Lambda without Docker, so `SecretsManagerStandIn` plays the service's
part: RotateSecret (the patched moto attaches AWSPENDING to a new empty version, as Secrets
Manager does), then one event per step into `apikeys.rotation.rotate`, which is what the
Lambda entry point calls.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from apikeys.cli import main as cli_main
from apikeys.clients import commit, read_snapshot
from apikeys.keyset import parse_secret_string
from apikeys.loader import ApiKeyLoader, JsonLineFormatter, LoaderSettings
from apikeys.rotation import STEPS, RotationError, rotate
from main import build_rotation_package
from scripts.demo import http_status, start_service
from scripts.local_aws import LocalAws, free_port, local_aws, run_rotation_function
from tests.e2e.reference_service import SERVICES, RollingClient, service_command, wait_for

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("rotation")]

REGION = "eu-west-1"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:credlink-test-api-keys-rotation"
CLIENTS = (("billing", "Billing Service"), ("search", "Search: Indexer"), ("web", "Web"))
ALL_STEPS = tuple(STEPS)


def fake_keys(label: str) -> dict[str, str]:
    return {client_id: f"fake-{label}-key-for-{client_id}-0000" for client_id, _ in CLIENTS}


def secret_string(keys: dict[str, str]) -> str:
    return json.dumps({"apiKeys": ",".join(f"{keys[cid]}:{cid}:{name}" for cid, name in CLIENTS)})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    with local_aws(log_path=tmp_path_factory.mktemp("rotation") / "moto.log") as local:
        deploy_rotation_function(local, tmp_path_factory.mktemp("package"))
        yield local


def deploy_rotation_function(server: LocalAws, staging: Path) -> None:
    """The function Secrets Manager's configuration test runs (local AWS runs its code for that
    step, as Lambda would), built as main.py builds it for the stacks."""
    iam = server.session(REGION).client("iam", endpoint_url=server.endpoint_url)
    role = iam.create_role(
        RoleName="credlink-test-api-keys-rotation",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    server.session(REGION).client("lambda", endpoint_url=server.endpoint_url).create_function(
        FunctionName=FUNCTION_ARN.rsplit(":", 1)[1],
        Runtime="python3.12",
        Role=role,
        Handler="apikeys.rotation.handler",
        Code={"ZipFile": build_rotation_package(staging).read_bytes()},
    )


@pytest.fixture
def secretsmanager(server: LocalAws) -> SecretsManagerClient:
    return server.session(REGION).client("secretsmanager", endpoint_url=server.endpoint_url)


@dataclass
class SecretsManagerStandIn:
    """What Secrets Manager does around the rotation function."""

    client: SecretsManagerClient
    arn: str = ""
    original: str = ""

    def create(self, value: str, *, rotation_enabled: bool = True) -> str:
        self.original = value
        self.arn = self.client.create_secret(Name=f"credlink/test/{uuid.uuid4()}", SecretString=value)["ARN"]
        if rotation_enabled:  # what aws_secretsmanager_secret_rotation does (rotate_immediately = false)
            self.client.rotate_secret(
                SecretId=self.arn,
                RotationLambdaARN=FUNCTION_ARN,
                RotationRules={"AutomaticallyAfterDays": 30},
                RotateImmediately=False,
            )
        return self.arn

    def start(self) -> str:
        return self.client.rotate_secret(SecretId=self.arn)["VersionId"]

    def invoke(self, step: str, token: str, client: SecretsManagerClient | None = None) -> None:
        event = {"Step": step, "SecretId": self.arn, "ClientRequestToken": token}
        rotate(client or self.client, event)

    def rotate_fully(self) -> str:
        token = self.start()
        run_rotation_function(self.client, self.arn, token)
        return token

    def stages(self) -> dict[str, list[str]]:
        return dict(self.client.describe_secret(SecretId=self.arn)["VersionIdsToStages"])

    def previous_version(self) -> str:
        return next(version for version, labels in self.stages().items() if "AWSPREVIOUS" in labels)

    def value(self, stage: str) -> str:
        return self.client.get_secret_value(SecretId=self.arn, VersionStage=stage)["SecretString"]


@pytest.fixture
def standin(secretsmanager: SecretsManagerClient) -> SecretsManagerStandIn:
    stand_in = SecretsManagerStandIn(secretsmanager)
    stand_in.create(secret_string(fake_keys("original")))
    return stand_in


def assert_rotated(standin: SecretsManagerStandIn, token: str, previous_value: str) -> None:
    stages = standin.stages()
    assert stages[token] == ["AWSCURRENT"]  # and not AWSPENDING: nothing left dangling
    assert not [version for version, labels in stages.items() if "AWSPENDING" in labels]
    assert standin.value("AWSPREVIOUS") == previous_value
    new, old = parse_secret_string(standin.value("AWSCURRENT")), parse_secret_string(previous_value)
    assert new.clients == old.clients  # same ids and names
    assert new.diff(old)[2] == 0  # every key is new


@pytest.fixture
def rotation_log() -> Iterator[io.StringIO]:
    """The `apikeys` log lines as the function writes them (JSON), whatever else handles them."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonLineFormatter())
    logger = logging.getLogger("apikeys")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_rotation_gives_every_client_a_new_key_and_keeps_the_old_ones_as_previous(
    standin: SecretsManagerStandIn, rotation_log: io.StringIO
) -> None:
    token = standin.rotate_fully()
    assert_rotated(standin, token, standin.original)
    new_value = standin.value("AWSCURRENT")
    logged = rotation_log.getvalue()
    steps_logged = [json.loads(line)["step"] for line in logged.splitlines() if "apikeys.rotation_step" in line]
    assert steps_logged == list(ALL_STEPS)
    for key in [*fake_keys("original").values(), *json.loads(new_value)["apiKeys"].split(",")]:
        assert key.split(":")[0] not in logged


def test_the_secret_keeps_other_fields_of_its_json_document(secretsmanager: SecretsManagerClient) -> None:
    standin = SecretsManagerStandIn(secretsmanager)
    standin.create(json.dumps({"apiKeys": json.loads(secret_string(fake_keys("doc")))["apiKeys"], "owner": "team-a"}))
    standin.rotate_fully()
    assert json.loads(standin.value("AWSCURRENT"))["owner"] == "team-a"


@pytest.mark.parametrize("step", ALL_STEPS)
def test_every_step_can_be_invoked_twice(standin: SecretsManagerStandIn, step: str) -> None:
    token = standin.start()
    for each in ALL_STEPS:
        standin.invoke(each, token)
        if each == step:
            pending_or_current = standin.client.get_secret_value(SecretId=standin.arn, VersionId=token)["SecretString"]
            standin.invoke(each, token)  # Lambda retries an invocation
            assert standin.client.get_secret_value(SecretId=standin.arn, VersionId=token)["SecretString"] == (
                pending_or_current
            )
    assert_rotated(standin, token, standin.original)


def test_a_token_already_current_is_nothing_to_do(standin: SecretsManagerStandIn) -> None:
    token = standin.rotate_fully()
    before = standin.stages()
    for step in ALL_STEPS:
        standin.invoke(step, token)
    assert standin.stages() == before


def test_the_guards_refuse_what_is_not_a_rotation_in_progress(
    secretsmanager: SecretsManagerClient, standin: SecretsManagerStandIn
) -> None:
    with pytest.raises(RotationError, match="has no stage for rotation"):
        standin.invoke("createSecret", str(uuid.uuid4()))
    first = standin.rotate_fully()
    standin.rotate_fully()
    with pytest.raises(RotationError, match="is not AWSPENDING"):
        standin.invoke("createSecret", first)  # now AWSPREVIOUS
    with pytest.raises(RotationError, match="unknown rotation step"):
        standin.invoke("dropSecret", first)
    not_enabled = SecretsManagerStandIn(secretsmanager)
    not_enabled.create(secret_string(fake_keys("off")), rotation_enabled=False)
    with pytest.raises(RotationError, match="rotation is not enabled"):
        not_enabled.invoke("createSecret", str(uuid.uuid4()))


def test_a_pending_value_that_loses_a_client_fails_the_test_step(standin: SecretsManagerStandIn) -> None:
    token = standin.start()
    keys = fake_keys("pending")
    partial = json.dumps({"apiKeys": f"{keys['web']}:web:Web"})
    standin.client.put_secret_value(
        SecretId=standin.arn, ClientRequestToken=token, SecretString=partial, VersionStages=["AWSPENDING"]
    )
    standin.invoke("createSecret", token)  # finds the value written and keeps it
    with pytest.raises(RotationError, match="does not keep the same clients"):
        standin.invoke("testSecret", token)
    assert standin.value("AWSCURRENT") == standin.original


def test_a_client_change_that_lands_during_a_rotation_is_not_undone(standin: SecretsManagerStandIn) -> None:
    """`apikeys clients` refuses to start during a rotation, but a change that read AWSCURRENT
    just before the rotation started can land while it runs. finishSecret must not then put
    back the value the rotation was made from."""
    before = read_snapshot(standin.client, standin.arn)
    token = standin.start()
    standin.invoke("createSecret", token)
    changed = commit(standin.client, standin.arn, before, before.with_key("web", "fake-changed-key-for-web-00000"))
    standin.invoke("setSecret", token)
    standin.invoke("testSecret", token)  # same clients, no key shared with AWSCURRENT: it passes
    with pytest.raises(RotationError, match=f"AWSCURRENT moved from .* to {changed} while version {token} was made"):
        standin.invoke("finishSecret", token)
    assert standin.stages()[changed] == ["AWSCURRENT"]
    assert _key_of(standin.value("AWSCURRENT"), "web") == "fake-changed-key-for-web-00000"


@dataclass
class Fault:
    """Make the client's `operation` fail on its `call`-th use (counting from 1), once."""

    operation: str
    call: int = 1
    seen: int = field(default=0, init=False)

    def __call__(self, **_: Any) -> None:
        self.seen += 1
        if self.seen == self.call:
            raise ClientError({"Error": {"Code": "InternalServiceError", "Message": "injected"}}, self.operation)


# For each step, the call that fails: the write of createSecret, the guard's DescribeSecret
# (setSecret calls nothing else), the pending read of testSecret, and each of finishSecret's
# two stage moves.
FAULTS = {
    "createSecret": Fault("PutSecretValue"),
    "setSecret": Fault("DescribeSecret"),
    "testSecret": Fault("GetSecretValue"),
    "finishSecret-move-current": Fault("UpdateSecretVersionStage", call=1),
    "finishSecret-remove-pending": Fault("UpdateSecretVersionStage", call=2),
}


@pytest.mark.parametrize("case", FAULTS)
def test_a_failure_at_any_step_leaves_current_valid_and_a_retry_completes(
    server: LocalAws, standin: SecretsManagerStandIn, case: str, rotation_log: io.StringIO
) -> None:
    failing_step = case.split("-")[0]
    fault = FAULTS[case]
    faulty = server.session(REGION).client("secretsmanager", endpoint_url=server.endpoint_url)
    faulty.meta.events.register(f"before-call.secrets-manager.{fault.operation}", Fault(fault.operation, fault.call))
    token = standin.start()
    for step in ALL_STEPS:
        if step != failing_step:
            standin.invoke(step, token)
            continue
        with pytest.raises(ClientError, match="injected"):
            standin.invoke(step, token, client=faulty)
        failed = [json.loads(line) for line in rotation_log.getvalue().splitlines() if "rotation_failed" in line]
        assert [(line["step"], line["error"]) for line in failed] == [(step, "ClientError")]  # what the alarm counts
        if case != "finishSecret-remove-pending":  # there AWSCURRENT has moved: the new keys are current
            # The rotation has not happened: AWSCURRENT is the original, valid value.
            assert standin.value("AWSCURRENT") == standin.original
            parse_secret_string(standin.value("AWSCURRENT"))
        standin.invoke(step, token)  # the retry
    assert_rotated(standin, token, standin.original)


def service_env(server: LocalAws, arn: str, *, grace_seconds: float, refresh_seconds: float = 300) -> dict[str, str]:
    """A reference service's environment: local AWS, the secret, the loader's timings."""
    return {
        **server.applied_to({"PATH": "/usr/bin:/bin"}),
        "AWS_REGION": REGION,
        "API_KEYS_SECRET_ARN": arn,
        "API_KEYS_REFRESH_SECONDS": str(refresh_seconds),
        "API_KEYS_PREVIOUS_GRACE_SECONDS": str(grace_seconds),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }


@pytest.mark.parametrize("service_kind", SERVICES)
def test_three_rotations_in_a_row_with_a_running_service(
    server: LocalAws, standin: SecretsManagerStandIn, service_kind: str
) -> None:
    """The Python and the Node reference service, each reading the secret through its loader,
    serve every request of a client that calls without pause across three rotations."""
    grace_seconds, refresh_seconds = 4.0, 0.2
    port = free_port()
    env = service_env(server, standin.arn, refresh_seconds=refresh_seconds, grace_seconds=grace_seconds)
    service = start_service(env, port, command=service_command(service_kind))
    url = f"http://127.0.0.1:{port}/sign"
    client = RollingClient(url, key=fake_keys("original")["billing"])
    try:
        assert http_status(url, key=client.key, method="GET") == 200  # the guide's check: a GET, no body
        client.start()
        for _ in range(3):
            previous_value = standin.value("AWSCURRENT")
            old_key = client.key
            token = standin.rotate_fully()
            assert_rotated(standin, token, previous_value)
            new_key = _key_of(standin.value("AWSCURRENT"), "billing")
            # An observer (not the client) waits for the service's refresh; the client keeps
            # calling with its old key meanwhile, then is handed its new one.
            refreshed_at = wait_for(lambda: http_status(url, key=new_key) == 200, timeout=15)  # noqa: B023
            client.key = new_key
            assert http_status(url, key=old_key) == 200  # the previous key, in its grace period
            expired_at = wait_for(lambda: http_status(url, key=old_key) == 401, timeout=grace_seconds + 15)  # noqa: B023
            assert expired_at - refreshed_at >= grace_seconds - 1  # not before the grace period ends
    finally:
        client.stop()
        service.terminate()
        service.wait(timeout=10)
    assert client.requests > 50
    assert client.failures == []


def _key_of(value: str, client_id: str) -> str:
    entries: str = json.loads(value)["apiKeys"]
    return next(entry.split(":")[0] for entry in entries.split(",") if f":{client_id}:" in entry)


@pytest.fixture
def cli_env(server: LocalAws, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator CLI (in this process) pointed at the local endpoint."""
    for name, value in {**server.environment(), "AWS_REGION": REGION}.items():
        monkeypatch.setenv(name, value)


def test_apikeys_rotate_starts_a_rotation_and_verify_shows_it(
    cli_env: None,
    standin: SecretsManagerStandIn,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_KEYS_PREVIOUS_GRACE_SECONDS", "3600")
    target = ["--secret-arn", standin.arn]

    rows = verify(target, capsys)
    assert rows["rotation"][0] == "PASS"
    assert rows["rotation"][1].startswith("every 30 days, never rotated yet, next ")
    assert rows["rotation in progress"] == ("INFO", "none")
    assert rows["previous keys"] == ("INFO", "none")

    assert cli_main(["rotate", *target]) == 0
    token = capsys.readouterr().out.split("version ")[1].split()[0]
    assert standin.stages()[token] == ["AWSPENDING"]
    assert standin.value("AWSCURRENT") == standin.original  # until the function has run
    assert verify(target, capsys)["rotation in progress"][1].startswith(f"version {token} is AWSPENDING")

    assert cli_main(["rotate", *target]) == 1  # one rotation at a time
    assert "a rotation is already in progress" in capsys.readouterr().err

    run_rotation_function(standin.client, standin.arn, token)  # the rotation function, invoked by Secrets Manager
    assert_rotated(standin, token, standin.original)
    rows = verify(target, capsys)
    assert rows["rotation"][1].startswith("every 30 days, last ")
    assert rows["rotation in progress"] == ("INFO", "none")
    assert rows["previous keys"][1].startswith(f"version {standin.previous_version()}: still accepted (grace 1:00:00")
    monkeypatch.setenv("API_KEYS_PREVIOUS_GRACE_SECONDS", "0")
    assert "no longer accepted" in verify(target, capsys)["previous keys"][1]


def verify(target: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, tuple[str, str]]:
    """`apikeys verify`'s table as {check: (status, detail)}."""
    cli_main(["verify", *target])
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        status, rest = line.split(maxsplit=1)
        name, _, detail = rest.partition("  ")
        rows[name] = (status, detail.strip())
    return rows


def test_apikeys_rotate_refuses_a_secret_without_rotation(
    cli_env: None,
    secretsmanager: SecretsManagerClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stand_in = SecretsManagerStandIn(secretsmanager)
    stand_in.create(secret_string(fake_keys("manual")), rotation_enabled=False)
    assert cli_main(["rotate", "--secret-arn", stand_in.arn]) == 1
    assert "rotation is not configured" in capsys.readouterr().err
    assert stand_in.stages() == {next(iter(stand_in.stages())): ["AWSCURRENT"]}


def test_secrets_managers_configuration_test_passes_on_a_new_empty_secret(
    secretsmanager: SecretsManagerClient,
) -> None:
    """A new environment has no value until `apikeys migrate`; configuring rotation
    (RotateImmediately=false) runs testSecret on it, and local AWS runs the deployed function's
    step, as Secrets Manager does. It must pass, and leave no AWSPENDING behind."""
    arn = secretsmanager.create_secret(Name=f"credlink/test/{uuid.uuid4()}")["ARN"]
    secretsmanager.rotate_secret(
        SecretId=arn,
        RotationLambdaARN=FUNCTION_ARN,
        RotationRules={"AutomaticallyAfterDays": 30},
        RotateImmediately=False,
    )
    described = secretsmanager.describe_secret(SecretId=arn)
    assert described["RotationEnabled"] is True
    assert not described.get("VersionIdsToStages")


def test_the_configuration_test_fails_without_a_function_to_run(secretsmanager: SecretsManagerClient) -> None:
    """RotateSecret says so when the step cannot run, instead of leaving a schedule that will
    never rotate; no AWSPENDING is left behind."""
    arn = secretsmanager.create_secret(Name=f"credlink/test/{uuid.uuid4()}", SecretString="{}")["ARN"]
    missing = f"arn:aws:lambda:{REGION}:123456789012:function:missing"
    with pytest.raises(ClientError, match="missing does not exist"):
        secretsmanager.rotate_secret(
            SecretId=arn,
            RotationLambdaARN=missing,
            RotationRules={"AutomaticallyAfterDays": 30},
            RotateImmediately=False,
        )
    assert list(secretsmanager.describe_secret(SecretId=arn)["VersionIdsToStages"].values()) == [["AWSCURRENT"]]


def test_secrets_managers_configuration_test_passes_on_a_copy_of_current(standin: SecretsManagerStandIn) -> None:
    """RotateSecret with RotateImmediately=false stages a copy of AWSCURRENT and runs testSecret alone."""
    token = standin.start()
    standin.client.put_secret_value(
        SecretId=standin.arn, ClientRequestToken=token, SecretString=standin.original, VersionStages=["AWSPENDING"]
    )
    standin.invoke("testSecret", token)
    assert standin.value("AWSCURRENT") == standin.original


def test_a_service_started_during_the_grace_period_accepts_the_previous_keys(
    standin: SecretsManagerStandIn,
) -> None:
    old_key = fake_keys("original")["web"]
    standin.rotate_fully()
    new_key = _key_of(standin.value("AWSCURRENT"), "web")
    for grace, old_key_accepted in ((timedelta(hours=1), True), (timedelta(0), False)):
        settings = LoaderSettings(secret_arn=standin.arn, region=REGION, previous_grace=grace)
        late = ApiKeyLoader(settings, client=standin.client)  # started after the rotation
        late.load()
        assert late.authenticate(f"Bearer {new_key}") is not None
        assert (late.authenticate(f"Bearer {old_key}") is not None) is old_key_accepted


@pytest.mark.parametrize("service_kind", SERVICES)
def test_a_reference_service_started_during_the_grace_period_accepts_the_previous_keys(
    server: LocalAws, standin: SecretsManagerStandIn, service_kind: str
) -> None:
    old_key = fake_keys("original")["web"]
    standin.rotate_fully()
    new_key = _key_of(standin.value("AWSCURRENT"), "web")
    for grace_seconds, old_key_status in ((3600, 200), (0, 401)):
        port = free_port()
        env = service_env(server, standin.arn, grace_seconds=grace_seconds)
        service = start_service(env, port, command=service_command(service_kind))  # started after the rotation
        try:
            url = f"http://127.0.0.1:{port}/sign"
            assert http_status(url, key=new_key) == 200
            assert http_status(url, key=old_key) == old_key_status
        finally:
            service.terminate()
            service.wait(timeout=10)


def test_apikeys_migrate_refuses_to_write_during_a_rotation(
    cli_env: None,
    standin: SecretsManagerStandIn,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = fake_keys("migrated")
    monkeypatch.setenv("API_KEYS", f"{keys['web']}:web:Web")
    token = standin.start()
    assert cli_main(["migrate", "--secret-arn", standin.arn]) == 1
    error = capsys.readouterr().err
    assert f"a rotation is in progress (version {token} is AWSPENDING)" in error
    assert f"--remove-from-version-id {token}" in error
    assert standin.value("AWSCURRENT") == standin.original
