"""The unit tests' local AWS: moto in-process, and a deployed-looking secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from apikeys.cli import main
from apikeys.loader import JsonLineFormatter

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def deployed(aws: None, tmp_path: Path) -> dict[str, Any]:
    """What `make deploy ENV=test` leaves: a CMK, the secret, a read policy on a task role, outputs."""
    kms = boto3.client("kms", region_name=REGION)
    secrets = boto3.client("secretsmanager", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    kms.enable_key_rotation(KeyId=key_arn)
    secret_arn = secrets.create_secret(Name="credlink/test/api-keys", KmsKeyId=key_arn)["ARN"]
    iam.create_role(RoleName="credlink-test-task", AssumeRolePolicyDocument="{}")
    policy_arn = iam.create_policy(PolicyName="credlink-test-api-keys-read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                                                 "Resource": secret_arn}]}))["Policy"]["Arn"]  # fmt: skip
    iam.attach_role_policy(RoleName="credlink-test-task", PolicyArn=policy_arn)
    outputs = tmp_path / "outputs.json"
    stack = {"secret_arn": secret_arn, "kms_key_arn": key_arn, "read_policy_arn": policy_arn}
    outputs.write_text(json.dumps({"test": stack}), encoding="utf-8")
    return {**stack, "outputs": str(outputs), "secrets": secrets}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """The `apikeys` logger's lines, formatted exactly as they are written, then parsed."""
    captured: list[dict[str, Any]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(json.loads(JsonLineFormatter().format(record)))

    logger = logging.getLogger("apikeys")
    handler = Capture()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield captured
    logger.removeHandler(handler)
    logger.setLevel(level)
