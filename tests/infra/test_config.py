"""Environment files: a bad one is one line naming file and field, exit 2, nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.synth import generate_envs
from stacks.config import ConfigError, load_environment, load_environments
from tests.conftest import PROJECT_ROOT, QA_ENV, run_main

DEV = (PROJECT_ROOT / "envs" / "dev.toml").read_text(encoding="utf-8")


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        pytest.param(lambda t: 'surprise = "x"\n' + t, "surprise", "unknown key", id="unknown-key"),
        pytest.param(
            lambda t: t.replace("[service]", "[service]\nlog_retention = 3"),
            "service.log_retention",
            "unknown key",
            id="unknown-nested-key",
        ),
        pytest.param(
            lambda t: t.replace("recovery_window_days = 7", 'recovery_window_days = "7"'),
            "recovery_window_days",
            "valid integer",
            id="wrong-type",
        ),
        pytest.param(
            lambda t: t.replace("enabled = true", "enabled = 1"),
            "rotation.enabled",
            "valid boolean",
            id="int-for-bool",
        ),
        pytest.param(
            lambda t: t.replace('region = "us-east-1"', 'region = "us-east-9x"'),
            "region",
            "not an AWS region",
            id="bad-region",
        ),
        pytest.param(
            lambda t: t.replace("replica_regions = []", 'replica_regions = ["mars-north-1"]'),
            "replica_regions",
            "not an AWS region",
            id="bad-replica-region",
        ),
        pytest.param(
            lambda t: t.replace("replica_regions = []", 'replica_regions = ["us-east-1"]'),
            "replica_regions",
            "primary region",
            id="replica-in-primary-region",
        ),
        pytest.param(
            lambda t: t.replace("recovery_window_days = 7", "recovery_window_days = 6"),
            "recovery_window_days",
            "greater than or equal to 7",
            id="recovery-window-too-short",
        ),
        pytest.param(
            lambda t: t.replace("recovery_window_days = 7", "recovery_window_days = 31"),
            "recovery_window_days",
            "less than or equal to 30",
            id="recovery-window-too-long",
        ),
        pytest.param(
            lambda t: t.replace("kms_deletion_window_days = 7", "kms_deletion_window_days = 3"),
            "kms_deletion_window_days",
            "greater than or equal to 7",
            id="kms-window-too-short",
        ),
        pytest.param(
            lambda t: t.replace(
                'alert_emails = ["platform-alerts+dev@example.com"]', 'alert_emails = ["not-an-email"]'
            ),
            "alert_emails.0",
            "email",
            id="bad-email",
        ),
        pytest.param(
            lambda t: t.replace('environment = "dev"\n', ""), "environment", "required key is missing", id="missing-key"
        ),
        pytest.param(
            lambda t: t.replace('type = "local"', 'type = "s3"\nbucket = "state-bucket"'),
            "backend.s3.key",
            "required key is missing",
            id="s3-backend-incomplete",
        ),
        pytest.param(
            lambda t: t.replace('type = "local"', 'type = "gcs"'), "backend", "does not match", id="unknown-backend"
        ),
        pytest.param(
            lambda t: t.replace("days = 30", "days = 365"),
            "rotation.days",
            "less than or equal to 90",
            id="rotation-days",
        ),
        pytest.param(
            lambda t: t.replace('# account_id = "123456789012"', 'account_id = "12345678901"'),
            "account_id",
            "12-digit AWS account id",
            id="account-id-too-short",
        ),
        pytest.param(
            lambda t: t.replace('# account_id = "123456789012"', "account_id = 123456789012"),
            "account_id",
            "as a quoted string",
            id="account-id-unquoted",
        ),
        pytest.param(
            lambda t: t.replace('# account_id = "123456789012"', 'account_id = "arn:aws:iam::123456789012:root"'),
            "account_id",
            "12-digit AWS account id",
            id="account-id-arn",
        ),
        pytest.param(
            lambda t: t.replace('# partition = "aws"', 'partition = "aws-eu"'),
            "partition",
            "'aws', 'aws-cn' or 'aws-us-gov'",
            id="unknown-partition",
        ),
        pytest.param(lambda t: t + "[tags\n", "", "not valid TOML", id="malformed-toml"),
    ],
)
def test_bad_env_file_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, edit: object, field: str, message: str
) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    text = edit(DEV)  # type: ignore[operator]
    assert text != DEV, "the edit must change the file"
    _write(envs, "dev.toml", text)
    outdir = tmp_path / "cdktf.out"

    result = run_main(envs, outdir)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {envs / 'dev.toml'}: {field}"), lines[0]
    assert message in lines[0]
    assert not outdir.exists()


def test_duplicate_environment_name_names_both_files(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    _write(envs, "dev.toml", DEV)
    _write(envs, "dev-copy.toml", DEV)
    outdir = tmp_path / "cdktf.out"

    result = run_main(envs, outdir)

    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {envs / 'dev.toml'}: environment: 'dev' is already defined in {envs / 'dev-copy.toml'}"
    )
    assert not outdir.exists()


def test_no_env_files_is_an_error(tmp_path: Path) -> None:
    result = run_main(tmp_path, tmp_path / "cdktf.out")
    assert result.returncode == 2
    assert "no environment files" in result.stderr


def test_one_bad_file_among_good_ones_stops_everything(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    _write(envs, "dev.toml", DEV)
    _write(envs, "qa.toml", QA_ENV.replace('region = "eu-west-1"', 'region = "eu-west"'))
    outdir = tmp_path / "cdktf.out"

    result = run_main(envs, outdir)

    assert result.returncode == 2
    assert f"{envs / 'qa.toml'}: region" in result.stderr
    assert not outdir.exists()


def test_shipped_envs_load_with_defaults(tmp_path: Path) -> None:
    configs = {c.environment: c for c in load_environments((PROJECT_ROOT / "envs").glob("*.toml"))}
    assert set(configs) == {"dev", "staging", "prod"}
    assert all(c.project_name == "credlink" for c in configs.values())
    assert configs["dev"].service.create_demo_resources
    assert not configs["prod"].service.create_demo_resources
    assert configs["prod"].recovery_window_days == 30
    assert configs["prod"].kms_deletion_window_days == 30
    assert configs["prod"].replica_regions == ("us-west-2",)
    assert all(c.rotation.enabled and c.rotation.days == 30 for c in configs.values())
    assert load_environment(_write(tmp_path, "qa.toml", QA_ENV)).rotation.enabled  # on unless turned off


def test_account_id_and_partition_are_optional_and_kept(tmp_path: Path) -> None:
    assert load_environment(_write(tmp_path, "dev.toml", DEV)).account_id is None
    assert load_environment(_write(tmp_path, "dev.toml", DEV)).partition == "aws"
    text = DEV.replace('# account_id = "123456789012"', 'account_id = "012345678901"')
    text = text.replace('# partition = "aws"', 'partition = "aws-us-gov"')
    config = load_environment(_write(tmp_path, "dev.toml", text))
    assert (config.account_id, config.partition) == ("012345678901", "aws-us-gov")


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_environment(_write(tmp_path, "qa.toml", QA_ENV))
    with pytest.raises(ValueError, match="frozen"):
        config.region = "us-west-2"  # type: ignore[misc]
    assert config.secret_name == "credlink/qa/api-keys"


def test_error_never_echoes_a_value_it_rejects(tmp_path: Path) -> None:
    # A secret pasted into an env file by mistake must not be printed back.
    fake_secret = "fake-pasted-secret-value-0123456789"
    path = _write(tmp_path, "qa.toml", QA_ENV + f'api_keys = "{fake_secret}"\n')
    with pytest.raises(ConfigError) as raised:
        load_environment(path)
    assert fake_secret not in str(raised.value)
    assert re.search(r"api_keys: unknown key", str(raised.value))


def test_the_benchmarks_generated_env_files_are_valid(tmp_path: Path) -> None:
    """`make bench` synthesizes generated env files: they follow the schema as it is now."""
    configs = load_environments(generate_envs(tmp_path, 2).glob("*.toml"))
    assert sorted(config.environment for config in configs) == ["bench01", "bench02"]
