"""Environment files: a bad one is one line naming file and field, exit 2, nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.synth import generate_envs
from stacks.config import ConfigError, S3BackendConfig, load_environment, load_environments
from tests.conftest import PROJECT_ROOT, REPLICATED_ENV, SHIPPED_ENVS, TEST_ENV_FILES, run_main

# A complete, valid env file of the tests' own: each case below edits one line of it. Not a
# file from envs/, which is the user's to edit.
VALID_NAME = "pytest-config"
VALID = f"""\
environment = "{VALID_NAME}"
region = "us-east-1"
recovery_window_days = 7
kms_deletion_window_days = 7
replica_regions = []
alert_emails = ["pytest-alerts@example.com"]
# account_id = "123456789012"
# partition = "aws"

[access]
apply_roles = ["{VALID_NAME}-deploy"]

[service]
task_roles = ["{VALID_NAME}-api-task"]
log_group_name = "/pytest/config/app"

[rotation]
enabled = true
days = 30

[backend]
type = "local"
"""
REPLICATED = TEST_ENV_FILES[REPLICATED_ENV]


ADOPTED_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:credlink-prod-api-keys-AbCdEf"


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
            lambda t: t.replace('alert_emails = ["pytest-alerts@example.com"]', 'alert_emails = ["not-an-email"]'),
            "alert_emails.0",
            "email",
            id="bad-email",
        ),
        pytest.param(
            lambda t: t.replace(f'environment = "{VALID_NAME}"\n', ""),
            "environment",
            "required key is missing",
            id="missing-key",
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
        pytest.param(
            lambda t: t + '\n[adopt]\nsecret = "credlink-prod-api-keys-AbCdEf"\n',
            "adopt.secret",
            "give the full ARN",
            id="adopt-ambiguous-name",
        ),
        pytest.param(
            lambda t: t + '\n[adopt]\nsecret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys"\n',
            "adopt.secret",
            "not a Secrets Manager secret ARN",
            id="adopt-arn-without-suffix",
        ),
        pytest.param(
            lambda t: t + f'\n[adopt]\nsecret = "{ADOPTED_ARN.replace("us-east-1", "eu-west-1")}"\n',
            "adopt.secret",
            "the secret is in eu-west-1, the environment in us-east-1",
            id="adopt-another-region",
        ),
        pytest.param(
            lambda t: (
                t.replace('# account_id = "123456789012"', 'account_id = "210987654321"')
                + f'\n[adopt]\nsecret = "{ADOPTED_ARN}"\n'
            ),
            "adopt.secret",
            "not the env's 210987654321",
            id="adopt-another-account",
        ),
        pytest.param(lambda t: t + "[tags\n", "", "not valid TOML", id="malformed-toml"),
    ],
)
def test_bad_env_file_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, edit: object, field: str, message: str
) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    text = edit(VALID)  # type: ignore[operator]
    assert text != VALID, "the edit must change the file"
    path = _write(envs, f"{VALID_NAME}.toml", text)
    outdir = tmp_path / "cdktf.out"

    result = run_main(envs, outdir)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}: {field}"), lines[0]
    assert message in lines[0]
    assert not outdir.exists()


def test_the_cases_edit_a_valid_file(tmp_path: Path) -> None:
    assert load_environment(_write(tmp_path, f"{VALID_NAME}.toml", VALID)).environment == VALID_NAME


def test_duplicate_environment_name_names_both_files(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    original = _write(envs, f"{VALID_NAME}.toml", VALID)
    copy = _write(envs, f"{VALID_NAME}-copy.toml", VALID)
    outdir = tmp_path / "cdktf.out"

    result = run_main(envs, outdir)

    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {original}: environment: '{VALID_NAME}' is already defined in {copy}"
    assert not outdir.exists()


def test_no_env_files_is_an_error(tmp_path: Path) -> None:
    result = run_main(tmp_path, tmp_path / "cdktf.out")
    assert result.returncode == 2
    assert "no environment files" in result.stderr


def test_one_bad_file_among_good_ones_stops_everything(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    _write(envs, f"{VALID_NAME}.toml", VALID)
    bad = _write(envs, f"{REPLICATED_ENV}.toml", REPLICATED.replace('region = "eu-west-1"', 'region = "eu-west"', 1))
    outdir = tmp_path / "cdktf.out"

    result = run_main(envs, outdir)

    assert result.returncode == 2
    assert f"{bad}: region" in result.stderr
    assert not outdir.exists()


def test_every_env_file_in_envs_loads() -> None:
    """Whatever envs/ holds: valid, one environment per file."""
    configs = load_environments((PROJECT_ROOT / "envs").glob("*.toml"))
    assert sorted(config.environment for config in configs) == sorted(SHIPPED_ENVS)


def test_what_an_env_file_leaves_out_takes_the_defaults(tmp_path: Path) -> None:
    minimal = load_environment(_write(tmp_path, f"{VALID_NAME}.toml", VALID))
    assert minimal.project_name == "credlink"
    assert minimal.access.plan_roles == minimal.access.key_admin_roles == minimal.access.operator_roles == ()
    assert not minimal.deletion_protection
    assert not minimal.service.create_demo_resources
    assert minimal.tags == {}
    # [rotation] without `enabled`, [backend] s3 without `use_lockfile`: both on.
    replicated = load_environment(_write(tmp_path, f"{REPLICATED_ENV}.toml", REPLICATED))
    assert "enabled" not in REPLICATED
    assert replicated.rotation.enabled
    assert replicated.rotation.days == 45
    assert isinstance(replicated.backend, S3BackendConfig)
    assert replicated.backend.use_lockfile


@pytest.mark.parametrize(
    "name",
    [name for name in ("dev", "prod") if name in SHIPPED_ENVS],  # a user may have removed either
)
def test_the_shipped_dev_stands_alone_and_prod_keeps_its_guard(name: str) -> None:
    """What the README and the e2e tests rely on in these two files, as shipped."""
    config = load_environment(PROJECT_ROOT / "envs" / f"{name}.toml")
    if name == "dev":  # `make demo` deploys it to local AWS without any role or log group made first
        assert config.service.create_demo_resources
    else:  # Terraform refuses to destroy prod's keys and secret unless CREDLINK_ALLOW_DESTROY names it
        assert config.deletion_protection
        assert not config.service.create_demo_resources


def test_account_id_and_partition_are_optional_and_kept(tmp_path: Path) -> None:
    config = load_environment(_write(tmp_path, f"{VALID_NAME}.toml", VALID))
    assert (config.account_id, config.partition) == (None, "aws")
    text = VALID.replace('# account_id = "123456789012"', 'account_id = "012345678901"')
    text = text.replace('# partition = "aws"', 'partition = "aws-us-gov"')
    config = load_environment(_write(tmp_path, f"{VALID_NAME}.toml", text))
    assert (config.account_id, config.partition) == ("012345678901", "aws-us-gov")


@pytest.mark.parametrize("secret", ["credlink-prod-api-keys", ADOPTED_ARN])
def test_an_adopted_secret_keeps_its_name(tmp_path: Path, secret: str) -> None:
    config = load_environment(_write(tmp_path, "adopting.toml", f'{VALID}\n[adopt]\nsecret = "{secret}"\n'))
    assert config.adopt is not None
    assert config.secret_name == "credlink-prod-api-keys"  # the name the key policies and pipeline roles use
    assert config.adopt.arn == (secret if secret.startswith("arn:") else None)


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_environment(_write(tmp_path, f"{REPLICATED_ENV}.toml", REPLICATED))
    with pytest.raises(ValueError, match="frozen"):
        config.region = "us-west-2"  # type: ignore[misc]
    assert config.secret_name == f"credlink/{REPLICATED_ENV}/api-keys"


def test_error_never_echoes_a_value_it_rejects(tmp_path: Path) -> None:
    # A secret pasted into an env file by mistake must not be printed back.
    fake_secret = "fake-pasted-secret-value-0123456789"
    path = _write(tmp_path, f"{REPLICATED_ENV}.toml", REPLICATED + f'api_keys = "{fake_secret}"\n')
    with pytest.raises(ConfigError) as raised:
        load_environment(path)
    assert fake_secret not in str(raised.value)
    assert re.search(r"api_keys: unknown key", str(raised.value))


def test_the_benchmarks_generated_env_files_are_valid(tmp_path: Path) -> None:
    """`make bench` synthesizes generated env files: they follow the schema as it is now."""
    configs = load_environments(generate_envs(tmp_path, 2).glob("*.toml"))
    assert sorted(config.environment for config in configs) == ["bench01", "bench02"]
