"""The pipeline's two outer guards on local AWS: an env file naming another account is refused
before anything changes, and the state bucket is made by `make bootstrap-state` and then
holds the state of an environment that names it."""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts import bootstrap_state, stackctl
from scripts.access import LOCAL_ACCOUNT
from scripts.local_aws import LocalAws, start, stop
from stacks.config import S3BackendConfig, load_environment
from tests.conftest import Synthesis

pytestmark = [pytest.mark.e2e, pytest.mark.synth, pytest.mark.terraform]

RECORD_CALLS = "CREDLINK_RECORD_CALLS"  # the server's call recorder (tests/e2e/test_call_recorder.py)
OTHER_ACCOUNT = "210987654321"
READ_ONLY_IDENTITY_CALL = "GetCallerIdentity"
SERVER_READY_PROBE = "GET /moto-api/"  # scripts.local_aws.start waits for it


def client(server: LocalAws, service: str, region: str = "us-east-1") -> Any:
    return server.session(region).client(service, endpoint_url=server.endpoint_url)  # type: ignore[call-overload]


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[tuple[LocalAws, Path]]:
    """A local AWS server of this test's own, recording every call it answers."""
    record = tmp_path / "calls.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RECORD_CALLS, str(record))  # the server process inherits it
        server = start(log_path=tmp_path / "moto.log")
    try:
        yield server, record
    finally:
        stop(server)


def recorded_operations(record: Path) -> list[str]:
    if not record.exists():
        return []
    operations = (json.loads(line)["operation"] for line in record.read_text(encoding="utf-8").splitlines())
    return [operation for operation in operations if operation != SERVER_READY_PROBE]


def test_an_env_file_naming_another_account_is_refused_before_anything_changes(
    synthesized: Synthesis,
    fresh_server: tuple[LocalAws, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, record = fresh_server
    envs = tmp_path / "envs"
    envs.mkdir()
    text = (synthesized.envs_dir / "prod.toml").read_text(encoding="utf-8")
    guarded = text.replace('# account_id = "123456789012"', f'account_id = "{OTHER_ACCOUNT}"')
    assert guarded != text
    env_file = envs / "prod.toml"
    env_file.write_text(guarded, encoding="utf-8")
    assert load_environment(env_file).account_id == OTHER_ACCOUNT
    monkeypatch.setenv("CREDLINK_ENVS_DIR", str(envs))
    monkeypatch.setenv("CDKTF_OUTDIR", str(synthesized.outdir))
    monkeypatch.setattr(stackctl, "running_local_aws", lambda: server)

    for action in ("prereqs", "plan", "deploy", "destroy"):
        assert stackctl.main([action, "--env", "prod", "--target", "local"]) == 1, action
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, (action, lines)
        assert lines[0].startswith(
            f"error: {env_file}: account_id: expected account {OTHER_ACCOUNT}, "
            f"but the credentials are for account {LOCAL_ACCOUNT} ("
        ), (action, lines[0])

    # STS was asked who is calling, and nothing else was called: nothing read, assumed or made.
    operations = recorded_operations(record)
    assert operations, "the server recorded no call"
    assert operations == [READ_ONLY_IDENTITY_CALL] * 4, operations  # one per command
    assert client(server, "iam").list_roles()["Roles"] == []
    assert client(server, "kms").list_keys()["Keys"] == []
    assert client(server, "secretsmanager").list_secrets()["SecretList"] == []
    assert client(server, "s3").list_buckets()["Buckets"] == []


def test_bootstrap_state_then_an_env_keeps_its_state_in_that_bucket(
    synthesized: Synthesis,
    fresh_server: tuple[LocalAws, Path],
    terraform_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`make bootstrap-state TARGET=local` with the bucket the env files name, then staging
    (shipped with S3 state) deployed as `make local-prereqs` and `make deploy` would."""
    server, _ = fresh_server
    staging = load_environment(synthesized.envs_dir / "staging.toml")
    assert isinstance(staging.backend, S3BackendConfig), "staging ships with S3 state"
    backend = staging.backend
    envs = tmp_path / "envs"  # staging alone: the tests' own env files name a state bucket of their own
    envs.mkdir()
    shutil.copy(synthesized.envs_dir / "staging.toml", envs)
    monkeypatch.setenv("CREDLINK_ENVS_DIR", str(envs))
    monkeypatch.setenv("CDKTF_OUTDIR", str(synthesized.outdir))
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", terraform_env["TF_CLI_CONFIG_FILE"])
    monkeypatch.setattr(bootstrap_state, "recorded", lambda: server)
    monkeypatch.setattr(stackctl, "running_local_aws", lambda: server)

    s3 = client(server, "s3", backend.region)
    assert s3.list_buckets()["Buckets"] == []

    assert bootstrap_state.main(["--target", "local"]) == 0  # the bucket the env files name
    printed = tomllib.loads(capsys.readouterr().out)["backend"]
    assert printed == {
        "type": "s3",
        "bucket": backend.bucket,
        "key": "credlink/<env>/terraform.tfstate",
        "region": backend.region,
        "use_lockfile": True,
    }

    bucket = backend.bucket
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    blocked = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert blocked == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    (ownership,) = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert ownership["ObjectOwnership"] == "BucketOwnerEnforced"
    (deny,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(deny["Resource"]) == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90

    assert stackctl.main(["prereqs", "--env", "staging"]) == 0
    assert "state bucket" not in capsys.readouterr().err  # made once, by the bootstrap
    assert stackctl.main(["deploy", "--env", "staging", "--target", "local"]) == 0
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=backend.key).get("Contents", [])
    assert [item["Key"] for item in listed] == [backend.key]
    state = json.loads(s3.get_object(Bucket=bucket, Key=backend.key)["Body"].read())
    assert any(r["type"] == "aws_secretsmanager_secret" for r in state["resources"])


def test_a_missing_state_bucket_stops_the_run_with_the_command_that_makes_it(
    synthesized: Synthesis, fresh_server: tuple[LocalAws, Path]
) -> None:
    server, _ = fresh_server
    prod = load_environment(synthesized.envs_dir / "prod.toml")
    backend = prod.backend
    assert isinstance(backend, S3BackendConfig)
    with pytest.raises(stackctl.StackError) as raised:
        stackctl.require_state_bucket(prod, "local", client(server, "s3", backend.region))
    assert str(raised.value) == (
        f"{prod.source}: backend.bucket: state bucket {backend.bucket} does not exist: run make bootstrap-state "
        f"TARGET=local BUCKET={backend.bucket} REGION={backend.region} (or make local-prereqs ENV=prod)"
    )
    assert client(server, "s3").list_buckets()["Buckets"] == []
