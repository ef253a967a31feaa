"""The operator CLI and the reference service, against moto in-process."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from apikeys import cli
from apikeys.cli import main
from apikeys.loader import ApiKeyLoader, LoaderSettings
from apikeys.service import create_app
from tests.unit.conftest import REGION, run

KEY_1 = "fake_cli_key_11111111111111111111"
KEY_2 = "fake_cli_key_22222222222222222222"
KEY_3 = "fake_cli_key_33333333333333333333"


def test_generate_makes_long_random_prefixed_keys(capsys: pytest.CaptureFixture[str]) -> None:
    _, first, _ = run(capsys, "generate", "--env", "prod")
    _, second, _ = run(capsys, "generate", "--env", "prod")
    assert first.startswith("prod_")
    assert len(first.strip()) >= len("prod_") + 32
    assert first != second


def test_migrate_writes_a_version_reports_clients_only_and_is_idempotent(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEYS", f"{KEY_1}:client-1:One,{KEY_2}:client-2:Two")
    code, out, err = run(capsys, "migrate", "--env", "test", "--outputs", deployed["outputs"])
    assert code == 0, err
    assert "2 keys (added 2, removed 0, kept 0)" in out
    assert "client-1, client-2" in out
    assert KEY_1 not in out + err

    code, out, _ = run(capsys, "migrate", "--env", "test", "--outputs", deployed["outputs"])
    assert code == 0
    assert out.startswith("unchanged")
    versions = deployed["secrets"].list_secret_version_ids(SecretId=deployed["secret_arn"])["Versions"]
    assert len(versions) == 1

    monkeypatch.setenv("API_KEYS", f"{KEY_1}:client-1:One,{KEY_3}:client-3:Three")
    code, out, _ = run(capsys, "migrate", "--env", "test", "--outputs", deployed["outputs"])
    assert "(added 1, removed 1, kept 1)" in out
    assert "added: client-3" in out
    assert "removed: client-2" in out


def test_migrate_reads_stdin_and_rejects_bad_input_without_echoing_it(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)
    code, _, err = run(capsys, "migrate", "--env", "test", "--outputs", deployed["outputs"])
    assert code == 1
    assert "never on the command line" in err

    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(f"{KEY_1}:client-1:One,{KEY_2}:client-1:Two\n"))
    code, _, err = run(capsys, "migrate", "--env", "test", "--stdin", "--outputs", deployed["outputs"])
    assert code == 1
    assert 'entry 2, field "clientId"' in err
    assert KEY_2 not in err
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(f"{KEY_1}:client-1:One,sk_test_FAKE14:client-2:Two\n"))
    code, _, err = run(capsys, "migrate", "--env", "test", "--stdin", "--outputs", deployed["outputs"])
    assert code == 1
    assert 'entry 2, field "key": must be at least 16' in err  # a new key meets the rule; adopted ones are read
    assert "sk_test_FAKE14" not in err
    with pytest.raises(SystemExit):
        main(["migrate", "--env", "test", "--api-keys", KEY_1])  # there is no argv option for keys


def test_verify_passes_on_a_good_deployment_and_fails_rows_otherwise(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "verify", "--env", "test", "--outputs", deployed["outputs"])
    assert code == 1  # no value yet
    assert "FAIL  value readable and parseable" in out

    monkeypatch.setenv("API_KEYS", f"{KEY_1}:client-1:One")
    assert main(["migrate", "--env", "test", "--outputs", deployed["outputs"]]) == 0
    code, out, _ = run(capsys, "verify", "--env", "test", "--outputs", deployed["outputs"])
    assert code == 0, out
    for row in ("secret exists", "uses this env's CMK", "KMS key rotation on", "read policy on the task role(s)",
                "value readable and parseable", "key count"):  # fmt: skip
        assert f"PASS  {row}" in out
    assert "credlink-test-task" in out
    assert "INFO  rotation" in out

    boto3.client("kms", region_name=REGION).disable_key_rotation(KeyId=deployed["kms_key_arn"])
    code, out, _ = run(capsys, "verify", "--env", "test", "--outputs", deployed["outputs"])
    assert code == 1
    assert "FAIL  KMS key rotation on" in out


def test_doctor_explains_not_found_and_a_region_mismatch(
    aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:credlink/test/api-keys-AbCdEf"
    code, out, _ = run(capsys, "doctor", "--secret-arn", missing)
    assert code == 1
    assert "NotFound" in out
    assert "PASS  ARN shape" in out
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    code, out, _ = run(capsys, "doctor", "--secret-arn", missing)
    assert "AWS_REGION=eu-west-1 but the ARN is in us-east-1" in out
    code, out, _ = run(capsys, "doctor", "--secret-arn", "not-an-arn")
    assert "FAIL  ARN shape" in out


def test_reference_service_requires_a_valid_bearer_key(deployed: dict[str, Any]) -> None:
    deployed["secrets"].put_secret_value(
        SecretId=deployed["secret_arn"], SecretString=json.dumps({"apiKeys": f"{KEY_1}:client-1:One"})
    )
    loader = ApiKeyLoader(LoaderSettings(secret_arn=deployed["secret_arn"], region=REGION), client=deployed["secrets"])
    loader.load()
    http = create_app(loader).test_client()
    assert http.get("/healthz").status_code == 200
    assert http.post("/sign", data=b"hello").status_code == 401
    assert http.post("/sign", data=b"hello", headers={"Authorization": f"Bearer {KEY_2}"}).status_code == 401
    response = http.post("/sign", data=b"hello", headers={"Authorization": f"Bearer {KEY_1}"})
    assert response.status_code == 200
    assert response.json == {"clientId": "client-1", "sha256": hashlib.sha256(b"hello").hexdigest()}
    assert response.headers.get("WWW-Authenticate") is None
    # The guide's check: a GET without a body.
    response = http.get("/sign", headers={"Authorization": f"Bearer {KEY_1}"})
    assert response.status_code == 200
    assert response.json == {"clientId": "client-1", "sha256": hashlib.sha256(b"").hexdigest()}
    assert http.get("/sign").status_code == 401


def test_verify_reports_an_unreadable_key_and_a_stale_replica_instead_of_crashing(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator whose role the key policy does not let read key metadata gets a FAIL row, not
    a traceback; a replica that is not InSync (e.g. no kms:Encrypt on its key) fails verify."""
    real_client = cli.client

    class DeniedKms:
        def get_key_rotation_status(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "GetKeyRotationStatus")

    class ReplicatedSecrets:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def describe_secret(self, **kwargs: Any) -> Any:
            failed = {"Region": "us-west-2", "Status": "Failed", "StatusMessage": "Access denied to the KMS key"}
            return {**self.inner.describe_secret(**kwargs), "ReplicationStatus": [failed]}

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    def patched(service: str, region: str) -> Any:
        if service == "kms":
            return DeniedKms()
        inner = real_client(service, region)
        return ReplicatedSecrets(inner) if service == "secretsmanager" else inner

    monkeypatch.setattr(cli, "client", patched)
    code, out, err = run(capsys, "verify", "--env", "test", "--outputs", deployed["outputs"])
    assert code == 1
    assert "FAIL  KMS key rotation on" in out
    assert "cannot read the key's rotation status: AccessDeniedException" in out
    assert "FAIL  replica in sync" in out
    assert "us-west-2: Failed (Access denied to the KMS key)" in out
    assert "Traceback" not in err


def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    top = run_help(capsys)
    for command in ("generate", "migrate", "verify", "doctor", "rotate", "adopt", "checklist", "clients"):
        line = next(line for line in top.splitlines() if line.strip().startswith(command))
        assert line.strip() != command  # a one-line help next to the name
        if command != "clients":
            assert f"example: apikeys {command}" in run_help(capsys, command)


def run_help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        run(capsys, *argv, "--help")
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_a_malformed_arn_is_one_line_not_a_guessed_region(
    aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    code, out, err = run(capsys, "clients", "list", "--secret-arn", "credlink/prod/api-keys")
    assert (code, out) == (1, "")
    assert err.startswith("apikeys: 'credlink/prod/api-keys' is not a Secrets Manager secret ARN")
    assert len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "doctor", "--secret-arn", "credlink/prod/api-keys")
    assert code == 1
    assert "FAIL  ARN shape" in out
