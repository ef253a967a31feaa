"""`apikeys clients` against local AWS with the reference service running and a client
calling it without pause: each change reaches the service within one refresh, a rotated
client's old key lasts its grace period, a revoked client is refused at the next refresh,
and of two concurrent changes one is refused and nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from apikeys.cli import main as cli_main
from apikeys.keyset import parse_entries
from scripts.demo import http_status, start_service
from scripts.local_aws import LocalAws, free_port, local_aws
from tests.e2e.reference_service import RollingClient, wait_for

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("clients")]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
REFRESH_SECONDS = 2.0
GRACE_SECONDS = 8.0
# The loader jitters its refresh by 10%; the refresh runs on a request (one every 20 ms, or
# slower on a busy machine) and takes a DescribeSecret and a GetSecretValue. One refresh,
# with that slack:
ONE_REFRESH = REFRESH_SECONDS * 1.1 + 1.5
FIRST_KEYS = {"billing": "fake-clients-e2e-billing-0000000", "web": "fake-clients-e2e-web-000000000000"}


@dataclass
class Deployment:
    server: LocalAws
    secretsmanager: SecretsManagerClient
    arn: str
    url: str

    def current(self) -> dict[str, str]:
        value = self.secretsmanager.get_secret_value(SecretId=self.arn)["SecretString"]
        return {client.client_id: key for key, client in parse_entries(json.loads(value)["apiKeys"])}

    def apikeys(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """The operator's command, as a separate process."""
        return subprocess.run(
            [sys.executable, "-m", "apikeys", *argv[:2], "--secret-arn", self.arn, *argv[2:]],
            env=self.server.applied_to({"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with local_aws(log_path=tmp_path_factory.mktemp("clients") / "moto.log") as server:
        secretsmanager = server.session(REGION).client("secretsmanager", endpoint_url=server.endpoint_url)
        entries = ",".join(f"{key}:{client_id}:{client_id.title()}" for client_id, key in FIRST_KEYS.items())
        arn = secretsmanager.create_secret(Name="credlink/e2e/clients", SecretString=json.dumps({"apiKeys": entries}))[
            "ARN"
        ]
        port = free_port()
        service = start_service(
            {
                **server.applied_to({"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)}),
                "AWS_REGION": REGION,
                "API_KEYS_SECRET_ARN": arn,
                "API_KEYS_REFRESH_SECONDS": str(REFRESH_SECONDS),
                "API_KEYS_PREVIOUS_GRACE_SECONDS": str(GRACE_SECONDS),
            },
            port,
        )
        try:
            yield Deployment(server, secretsmanager, arn, f"http://127.0.0.1:{port}/sign")
        finally:
            service.terminate()
            service.wait(timeout=10)


@pytest.fixture(scope="module")
def billing(deployment: Deployment) -> Iterator[RollingClient]:
    """A client that is never changed, calling throughout: it must never see anything but 200."""
    client = RollingClient(deployment.url, key=FIRST_KEYS["billing"])
    client.start()
    yield client
    client.stop()
    assert client.requests > 100
    assert client.failures == []


def reaches_service_within_one_refresh(deployment: Deployment, key: str, status: int) -> float:
    written = time.monotonic()
    seen = wait_for(lambda: http_status(deployment.url, key=key) == status, timeout=ONE_REFRESH + 5)
    assert seen - written <= ONE_REFRESH, f"{status} after {seen - written:.2f} s, more than one refresh"
    return seen


def test_add_rotate_revoke_one_client_while_others_keep_calling(
    deployment: Deployment, billing: RollingClient, tmp_path: Path
) -> None:
    before = deployment.current()
    added = deployment.apikeys(
        "clients", "add", "--client-id", "acme", "--name", "Acme Corp", "--out", str(tmp_path / "a")
    )
    assert added.returncode == 0, added.stderr
    first_key = (tmp_path / "a").read_text(encoding="utf-8").strip()
    reaches_service_within_one_refresh(deployment, first_key, 200)

    rotated = deployment.apikeys("clients", "rotate", "--client-id", "acme")
    assert rotated.returncode == 0, rotated.stderr
    second_key = rotated.stdout.strip()
    refreshed = reaches_service_within_one_refresh(deployment, second_key, 200)
    assert http_status(deployment.url, key=first_key) == 200  # the old key, in its grace period
    expired = wait_for(lambda: http_status(deployment.url, key=first_key) == 401, timeout=GRACE_SECONDS + 5)
    assert expired - refreshed >= GRACE_SECONDS - ONE_REFRESH  # not before the grace period ends
    assert deployment.current() == {**before, "acme": second_key}

    rotated_again = deployment.apikeys("clients", "rotate", "--client-id", "acme")
    third_key = rotated_again.stdout.strip()
    reaches_service_within_one_refresh(deployment, third_key, 200)
    assert http_status(deployment.url, key=second_key) == 200  # in grace from this rotation
    revoked = deployment.apikeys("clients", "revoke", "--client-id", "acme")
    assert revoked.returncode == 0, revoked.stderr
    reaches_service_within_one_refresh(deployment, third_key, 401)
    assert http_status(deployment.url, key=second_key) == 401  # revoked: no grace for any of its keys
    assert deployment.current() == before


def test_of_two_concurrent_changes_one_is_refused_and_nothing_is_lost(
    deployment: Deployment, billing: RollingClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first change reads AWSCURRENT; before it writes, a second operator's change lands."""
    for name, value in {**deployment.server.environment(), "AWS_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    before = deployment.current()
    other: list[subprocess.CompletedProcess[str]] = []

    def the_other_operator_first(**_: Any) -> None:
        if not other:
            other.append(deployment.apikeys("clients", "add", "--client-id", "globex", "--name", "Globex"))

    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-call.secrets-manager.PutSecretValue", the_other_operator_first)
    try:
        key_file = tmp_path / "initech.key"
        argv = ["clients", "add", "--secret-arn", deployment.arn, "--client-id", "initech", "--name", "Initech"]
        code = cli_main([*argv, "--out", str(key_file)])
    finally:
        boto3.DEFAULT_SESSION = None

    (landed,) = other
    assert landed.returncode == 0, landed.stderr
    globex_key = landed.stdout.strip()
    assert code == 1  # refused, with its reason on stderr (checked below through the CLI)
    assert not key_file.exists()  # no key handed over for a change that did not land
    assert deployment.current() == {**before, "globex": globex_key}  # the winner, no client lost
    reaches_service_within_one_refresh(deployment, globex_key, 200)

    retried = deployment.apikeys("clients", "add", "--client-id", "initech", "--name", "Initech")
    assert retried.returncode == 0, retried.stderr
    assert set(deployment.current()) == {*before, "globex", "initech"}
    for client_id in ("globex", "initech"):
        assert deployment.apikeys("clients", "revoke", "--client-id", client_id).returncode == 0


def test_the_refused_change_says_why(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**deployment.server.environment(), "AWS_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    before = deployment.secretsmanager.get_secret_value(SecretId=deployment.arn)["VersionId"]

    def the_other_operator_first(**_: Any) -> None:
        boto3.DEFAULT_SESSION.events.unregister(  # type: ignore[union-attr]
            "before-call.secrets-manager.PutSecretValue", the_other_operator_first
        )
        assert deployment.apikeys("clients", "rotate", "--client-id", "web").returncode == 0

    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-call.secrets-manager.PutSecretValue", the_other_operator_first)
    try:
        code = cli_main(["clients", "revoke", "--secret-arn", deployment.arn, "--client-id", "web"])
    finally:
        boto3.DEFAULT_SESSION = None
    err = capsys.readouterr().err
    now = deployment.secretsmanager.get_secret_value(SecretId=deployment.arn)["VersionId"]
    assert code == 1
    assert f"not applied: AWSCURRENT moved from {before} to {now}" in err
    assert "run the command again" in err
    assert "web" in deployment.current()  # the rotation won; the revoke did not half-apply
