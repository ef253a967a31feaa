"""What each synthesized stack promises, asserted on the Terraform JSON main.py wrote.

Every expectation is read from the env file the stack was synthesized from (`synthesized.configs`),
so the tests run over whatever envs/ holds, and over the tests' own env files
(tests/conftest.py), which take the shapes the shipped files do not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from apikeys.events import ALARMED_EVENTS, ROTATION_FAILED, AlarmedEvent
from stacks.config import EnvironmentConfig, LocalBackendConfig, role_name
from stacks.kms import KEY_ADMIN_ACTIONS, KEY_METADATA_ACTIONS
from stacks.rotation import ROTATION_ACTIONS
from tests.conftest import ALL_ENVS, TEST_ENVS, Synthesis

pytestmark = pytest.mark.synth


def resources(stack: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return dict(stack.get("resource", {}).get(resource_type, {}))


def only(stack: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    found = resources(stack, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def policy_document(stack: dict[str, Any], construct_path: str) -> list[dict[str, Any]]:
    documents = stack["data"]["aws_iam_policy_document"]
    matches = [d for d in documents.values() if d["//"]["metadata"]["path"].endswith(construct_path)]
    assert len(matches) == 1, construct_path
    return list(matches[0]["statement"])


def primary_key_address(stack: dict[str, Any]) -> str:
    return key_address(stack, "/secrets_key/key")


def replica_key_address(stack: dict[str, Any], region: str) -> str:
    return key_address(stack, f"/replica_key_{snake(region)}/key")


def key_address(stack: dict[str, Any], construct_path: str) -> str:
    keys = resources(stack, "aws_kms_key")
    (name,) = [n for n, k in keys.items() if k["//"]["metadata"]["path"].endswith(construct_path)]
    return f"aws_kms_key.{name}"


def snake(region: str) -> str:
    return region.replace("-", "_")


def role_names(stack: dict[str, Any], arns: list[str]) -> list[str]:
    """The names of the roles behind principal ARNs as synthesized: a role looked up from the
    env file (`data.aws_iam_role`) or created here (`aws_iam_role`) by its `name`, a role the
    stack names by ARN (created later in the same apply) by the ARN's last part."""
    names = []
    for arn in arns:
        if reference := re.fullmatch(r"\$\{(data\.)?aws_iam_role\.(\w+)\.(arn|name)\}", arn):
            roles = stack["data"] if reference[1] else stack["resource"]
            names.append(roles["aws_iam_role"][reference[2]]["name"])
        else:
            assert ":role/" in arn, arn
            names.append(role_name(arn))
    return names


def names(roles: tuple[str, ...]) -> list[str]:
    return [role_name(role) for role in roles]


def task_role_names(config: EnvironmentConfig) -> list[str]:
    return names(config.service.task_roles)


def rotation_function_name(config: EnvironmentConfig) -> str:
    return f"{config.name_prefix}-api-keys-rotation"


def secret_users(config: EnvironmentConfig) -> list[str]:
    """Who the secrets keys let use them through Secrets Manager, by role name, in the stack's order."""
    access = config.access
    rotation = [rotation_function_name(config)] if config.rotation.enabled else []
    return [*task_role_names(config), *names(access.operator_roles), *rotation, *names(access.apply_roles),
            *names(access.plan_roles)]  # fmt: skip


def expected_key_access(config: EnvironmentConfig) -> tuple[list[str], list[str]]:
    """(administrators, metadata readers) of every key, by role name: the apply and key-admin
    roles administer; the plan and operator roles that do not already administer read metadata."""
    administrators = names((*config.access.apply_roles, *config.access.key_admin_roles))
    readers = names((*config.access.plan_roles, *config.access.operator_roles))
    return administrators, [reader for reader in readers if reader not in administrators]


ROTATION_PACKAGE_HASH = "<rotation package hash>"


def without_rotation_package_hash(stack: dict[str, Any]) -> dict[str, Any]:
    """The stack with the rotation package's content hash replaced, so a snapshot is about the
    stack and not about every edit to apikeys/ (tests/infra/test_rotation_package.py checks the package)."""
    text = json.dumps(stack)
    for function in resources(stack, "aws_lambda_function").values():
        text = text.replace(function["source_code_hash"], ROTATION_PACKAGE_HASH)
    return dict(json.loads(text))


# Snapshots are taken of the tests' own env files only. A snapshot is a reviewed artifact of
# what the stack code makes of a fixed input; envs/ is the user's data (copy a file, edit it),
# so a snapshot of it would fail for a new or edited env file without any code change, and
# teach people to rubber-stamp `--snapshot-update`. The shipped files are checked instead by
# every per-env test below (each expectation read from the file) and by
# test_every_env_file_synthesizes_one_stack.
@pytest.mark.parametrize("env", TEST_ENVS)
def test_snapshot(synthesized: Synthesis, env: str, snapshot: SnapshotAssertion) -> None:
    stack = without_rotation_package_hash(synthesized.stacks[env])
    # Messages name the env file where it was read; the tests read copies from a temporary directory.
    stack = json.loads(json.dumps(stack).replace(f"{synthesized.envs_dir}/", "envs/"))
    assert stack == snapshot(extension_class=JSONSnapshotExtension)


def test_every_env_file_synthesizes_one_stack(synthesized: Synthesis) -> None:
    """Whatever envs/ holds, plus the tests' own files: one stack each, named by its environment."""
    files = sorted(path.stem for path in synthesized.envs_dir.glob("*.toml"))
    assert files == sorted(ALL_ENVS)
    assert sorted(config.environment for config in synthesized.configs.values()) == files
    assert sorted(synthesized.stacks) == files
    manifest = json.loads((synthesized.outdir / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(manifest["stacks"]) == files


@pytest.mark.parametrize("env", ALL_ENVS)
def test_kms_keys_rotate_and_keep_the_configured_deletion_window(synthesized: Synthesis, env: str) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    keys = resources(stack, "aws_kms_key")
    # The secrets key, the monitoring key, and one key per replica region.
    assert len(keys) == 2 + len(config.replica_regions)
    for key in keys.values():
        assert key["enable_key_rotation"] is True
        assert key["deletion_window_in_days"] == config.kms_deletion_window_days
        assert key["policy"].startswith("${data.aws_iam_policy_document.")


@pytest.mark.parametrize("env", ALL_ENVS)
def test_key_policy_has_no_wildcard_principal_and_no_wildcard_action(synthesized: Synthesis, env: str) -> None:
    config = synthesized.configs[env]
    for path in ("/secrets_key/policy", *(f"/replica_key_{snake(r)}/policy" for r in config.replica_regions)):
        for statement in policy_document(synthesized.stacks[env], path):
            for principal in statement["principals"]:
                assert "*" not in principal["identifiers"]
            assert all("*" not in action for action in statement["actions"])
            assert statement.get("effect", "Allow") == "Allow"


@pytest.mark.parametrize("env", ALL_ENVS)
def test_key_policy_statements(synthesized: Synthesis, env: str) -> None:
    """In each region's secrets key: exactly the env file's roles, for this secret only."""
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    administrators, metadata_readers = expected_key_access(config)
    key_policies = {
        config.region: "/secrets_key/policy",
        **{region: f"/replica_key_{snake(region)}/policy" for region in config.replica_regions},
    }
    for region, path in key_policies.items():
        statements = {s["sid"]: s for s in policy_document(stack, path)}
        # Only Secrets Manager uses the secrets key: the topic and the log groups have their own.
        assert set(statements) == {"KeyAdministrators", "SecretsManagerUseForThisSecret"} | (
            {"KeyMetadataReaders"} if metadata_readers else set()
        )
        assert statements["KeyAdministrators"]["actions"] == list(KEY_ADMIN_ACTIONS)
        admins = statements["KeyAdministrators"]["condition"][0]
        assert (admins["test"], admins["variable"]) == ("ArnEquals", "aws:PrincipalArn")
        assert admins["values"][0].endswith(":root")
        assert role_names(stack, admins["values"][1:]) == administrators
        if metadata_readers:
            readers = statements["KeyMetadataReaders"]
            assert readers["actions"] == list(KEY_METADATA_ACTIONS)
            assert role_names(stack, readers["condition"][0]["values"]) == metadata_readers
        secrets_use = statements["SecretsManagerUseForThisSecret"]
        replica = region != config.region
        assert secrets_use["actions"] == sorted(
            ["kms:Decrypt", "kms:GenerateDataKey", *(["kms:Encrypt"] if replica else [])]
        )
        conditions = {(c["test"], c["variable"]): c["values"] for c in secrets_use["condition"]}
        assert role_names(stack, conditions[("ArnEquals", "aws:PrincipalArn")]) == secret_users(config)
        assert conditions[("StringEquals", "kms:ViaService")] == [f"secretsmanager.{region}.amazonaws.com"]
        assert conditions[("StringLike", "kms:EncryptionContext:SecretARN")][0].endswith(
            f":secretsmanager:{region}:${{data.aws_caller_identity.caller.account_id}}:secret:{config.secret_name}-??????"
        )


@pytest.mark.parametrize("env", ALL_ENVS)
def test_monitoring_key_serves_only_the_topic_and_the_alarmed_log_groups(synthesized: Synthesis, env: str) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    statements = {s["sid"]: s for s in policy_document(stack, "/monitoring_key/policy")}
    assert "SecretsManagerUseForThisSecret" not in statements
    # The log groups this stack creates: the app's (standalone envs) and the rotation function's.
    created = [
        *([config.service.log_group_name] if config.service.create_demo_resources else []),
        *([f"/aws/lambda/{rotation_function_name(config)}"] if config.rotation.enabled else []),
    ]
    logs = statements.get("CloudWatchLogsUseForTheseLogGroups")
    if created:
        assert logs is not None
        assert [arn.rsplit(":log-group:", 1)[1] for arn in logs["condition"][0]["values"]] == created
        assert logs["principals"] == [{"type": "Service", "identifiers": [f"logs.{config.region}.amazonaws.com"]}]
    else:
        assert logs is None
    alarms = statements["CloudWatchAlarmsPublishToTheAlertTopic"]
    assert alarms["principals"] == [{"type": "Service", "identifiers": ["cloudwatch.amazonaws.com"]}]
    conditions = {c["variable"]: c["values"] for c in alarms["condition"]}
    assert conditions["kms:EncryptionContext:aws:sns:topicArn"][0].endswith(f":{config.name_prefix}-api-keys-alerts")
    assert conditions["aws:SourceArn"][0].endswith(f":alarm:{config.name_prefix}-api-keys-*")


@pytest.mark.parametrize("env", ALL_ENVS)
def test_secret_module_is_fed_this_envs_key_name_and_recovery_window(synthesized: Synthesis, env: str) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    module = stack["module"]["secrets"]
    assert module["kms_key_arn"] == f"${{{primary_key_address(stack)}.arn}}"
    assert module["name"] == config.secret_name
    assert module["recovery_window_days"] == config.recovery_window_days
    assert module["source"].startswith("./assets/__cdktf_module_asset_")


@pytest.mark.parametrize("env", ALL_ENVS)
def test_read_policy_is_exactly_get_and_describe_on_this_secret_and_decrypt_via_secrets_manager(
    synthesized: Synthesis, env: str
) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    statements = policy_document(stack, "/read_policy/document")

    # The primary, then each replica in the env file's order, each with its own region's key.
    secrets = [
        (config.region, "${module.secrets.secret_arn}", f"${{{primary_key_address(stack)}.arn}}"),
        *(
            (
                region,
                f"${{element(module.secrets.replica_arns, {index})}}",
                f"${{{replica_key_address(stack, region)}.arn}}",
            )
            for index, region in enumerate(config.replica_regions)
        ),
    ]
    expected: list[dict[str, Any]] = [
        {
            "sid": "ReadApiKeysSecret",
            "actions": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
            "resources": [secret_arn for _, secret_arn, _ in secrets],
        },
        *(
            {
                "sid": f"DecryptApiKeysSecret{index}",
                "actions": ["kms:Decrypt"],
                "resources": [key_arn],
                "condition": [
                    {
                        "test": "StringEquals",
                        "variable": "kms:ViaService",
                        "values": [f"secretsmanager.{region}.amazonaws.com"],
                    },
                    {"test": "StringEquals", "variable": "kms:EncryptionContext:SecretARN", "values": [secret_arn]},
                ],
            }
            for index, (region, secret_arn, key_arn) in enumerate(secrets)
        ),
    ]
    assert statements == expected


@pytest.mark.parametrize("env", ALL_ENVS)
def test_read_policy_is_attached_to_every_task_role(synthesized: Synthesis, env: str) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    policy_name, policy = "read_policy_3CAE269C", resources(stack, "aws_iam_policy")["read_policy_3CAE269C"]
    assert policy["name"] == f"{config.name_prefix}-api-keys-read"
    attachments = [
        a for a in resources(stack, "aws_iam_role_policy_attachment").values() if "read_policy" in a["policy_arn"]
    ]
    assert all(a["policy_arn"] == f"${{aws_iam_policy.{policy_name}.arn}}" for a in attachments)
    roles = [a["role"] for a in attachments]
    if config.service.create_demo_resources:
        # The roles the stack creates, referenced so that they exist first.
        assert all(role.startswith("${aws_iam_role.demo_service_") for role in roles)
        assert sorted(role_names(stack, roles)) == sorted(task_role_names(config))
    else:
        assert sorted(roles) == sorted(task_role_names(config))


@pytest.mark.parametrize("env", ALL_ENVS)
def test_alert_topic_is_encrypted_and_only_this_accounts_alarms_publish_over_tls(
    synthesized: Synthesis, env: str
) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    topic_name, topic = only(stack, "aws_sns_topic")
    assert topic["name"] == f"{config.name_prefix}-api-keys-alerts"
    assert topic["kms_master_key_id"] == f"${{{key_address(stack, '/monitoring_key/key')}.arn}}"
    statements = {s["sid"]: s for s in policy_document(stack, "/alerts/policy_document")}
    publish = statements["CloudWatchAlarmsInThisAccountPublish"]
    assert publish["principals"] == [{"type": "Service", "identifiers": ["cloudwatch.amazonaws.com"]}]
    assert publish["actions"] == ["sns:Publish"]
    assert {c["variable"] for c in publish["condition"]} == {"aws:SourceAccount", "aws:SourceArn"}
    tls = statements["DenyRequestsWithoutTls"]
    assert tls["effect"] == "Deny"
    assert tls["condition"] == [{"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}]
    subscriptions = resources(stack, "aws_sns_topic_subscription").values()
    assert all(
        s["protocol"] == "email" and s["topic_arn"] == f"${{aws_sns_topic.{topic_name}.arn}}" for s in subscriptions
    )
    assert sorted(s["endpoint"] for s in subscriptions) == sorted(config.alert_emails)


@pytest.mark.parametrize("env", ALL_ENVS)
def test_alarms_watch_the_loader_contract_and_notify_the_topic(synthesized: Synthesis, env: str) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    topic_name, _ = only(stack, "aws_sns_topic")
    topic_arn = f"${{aws_sns_topic.{topic_name}.arn}}"
    filters = resources(stack, "aws_cloudwatch_log_metric_filter").values()
    alarms = resources(stack, "aws_cloudwatch_metric_alarm").values()
    rotation_events = [ROTATION_FAILED] if config.rotation.enabled else []
    app_log_group = config.service.log_group_name
    if config.service.create_demo_resources:  # the log group this stack creates, referenced so it exists first
        (demo_log_group,) = [n for n in resources(stack, "aws_cloudwatch_log_group") if n.startswith("demo_service_")]
        app_log_group = f"${{aws_cloudwatch_log_group.{demo_log_group}.name}}"
    loader_filters = [f for f in filters if f["log_group_name"] == app_log_group]

    def patterns(events: Iterable[AlarmedEvent]) -> list[str]:
        return sorted(pattern for event in events for pattern in (event.pattern, *event.text_patterns))

    assert sorted(f["pattern"] for f in loader_filters) == patterns(ALARMED_EVENTS)
    assert sorted(f["pattern"] for f in filters) == patterns((*ALARMED_EVENTS, *rotation_events))
    # A plain-text filter counts into its event's metric: the same alarm fires for either line.
    metric_of = {f["pattern"]: f["metric_transformation"]["name"] for f in filters}
    for event in ALARMED_EVENTS:
        assert {metric_of[pattern] for pattern in (event.pattern, *event.text_patterns)} == {event.metric_name}
    assert {f["metric_transformation"]["namespace"] for f in filters} == {
        f"{config.project_name}/{config.environment}/ApiKeys"
    }
    # One alarm per alarmed log line, and the rotation function's errors and failures.
    assert len(list(alarms)) == len(ALARMED_EVENTS) + 2 * len(rotation_events)
    for alarm in alarms:
        assert alarm["alarm_actions"] == [topic_arn]
        assert alarm["ok_actions"] == [topic_arn]
        assert alarm["alarm_name"].startswith(f"{config.name_prefix}-api-keys-")
    metrics = {(f["metric_transformation"]["namespace"], f["metric_transformation"]["name"]) for f in filters}
    lambda_errors = {("AWS/Lambda", "Errors")} if config.rotation.enabled else set()
    assert metrics | lambda_errors == {(a["namespace"], a["metric_name"]) for a in alarms}


@pytest.mark.parametrize("env", ALL_ENVS)
def test_secret_value_path_is_write_only_and_ephemeral(synthesized: Synthesis, env: str) -> None:
    stack = synthesized.stacks[env]
    value = stack["variable"]["api_keys_secret_string"]
    assert value["ephemeral"] is True
    assert value["sensitive"] is True
    assert value["default"] is None
    assert stack["variable"]["api_keys_secret_version"]["default"] is None
    assert stack["module"]["secrets"]["secret_string_wo"] == "${var.api_keys_secret_string}"
    assert "aws_secretsmanager_secret_version" not in stack.get("resource", {})


@pytest.mark.parametrize("env", ALL_ENVS)
def test_outputs(synthesized: Synthesis, env: str) -> None:
    outputs, config = synthesized.stacks[env]["output"], synthesized.configs[env]
    operators = {"operator_policy_arn"} if config.access.operator_roles else set()
    rotation = {"rotation_function_arn"} if config.rotation.enabled else set()
    assert set(outputs) == {
        "secret_arn",
        "replica_secret_arns",
        "kms_key_arn",
        "monitoring_kms_key_arn",
        "alert_topic_arn",
        "read_policy_arn",
        "task_role_arns",
        "service_log_group_name",
        *operators,
        *rotation,
    }
    assert outputs["secret_arn"]["value"] == "${module.secrets.secret_arn}"
    # A service in a replica region sets API_KEYS_SECRET_ARN to its region's replica: the
    # module's map (modules/secrets/tests checks its content).
    assert outputs["replica_secret_arns"]["value"] == "${module.secrets.replica_arns_by_region}"


@pytest.mark.parametrize("env", ALL_ENVS)
def test_only_a_standalone_env_creates_its_task_roles_and_encrypted_log_group(synthesized: Synthesis, env: str) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    demo_roles = {n: r for n, r in resources(stack, "aws_iam_role").items() if n.startswith("demo_service_")}
    demo_log_groups = {
        n: g for n, g in resources(stack, "aws_cloudwatch_log_group").items() if n.startswith("demo_service_")
    }
    rotation_log_group = [f"/aws/lambda/{rotation_function_name(config)}"] if config.rotation.enabled else []
    if not config.service.create_demo_resources:
        assert demo_roles == {}
        assert [g["name"] for g in resources(stack, "aws_cloudwatch_log_group").values()] == rotation_log_group
        return
    assert [role["name"] for role in demo_roles.values()] == task_role_names(config)
    (log_group,) = demo_log_groups.values()
    assert log_group["name"] == config.service.log_group_name
    assert log_group["kms_key_id"] == f"${{{key_address(stack, '/monitoring_key/key')}.arn}}"
    assert log_group["retention_in_days"] >= 365
    demo_role_arns = [f"${{aws_iam_role.{name}.arn}}" for name in demo_roles]
    assert stack["module"]["secrets"]["read_principal_arns"][: len(demo_roles)] == demo_role_arns


@pytest.mark.parametrize("env", ALL_ENVS)
def test_each_replica_region_has_its_provider_and_its_own_key(synthesized: Synthesis, env: str) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    providers = {p.get("alias"): p["region"] for p in stack["provider"]["aws"]}
    expected: dict[str | None, str] = {None: config.region}
    expected.update({snake(region): region for region in config.replica_regions})
    assert providers == expected
    for region in config.replica_regions:
        replica_key = resources(stack, "aws_kms_key")[replica_key_address(stack, region).split(".", 1)[1]]
        assert replica_key["provider"] == f"aws.{snake(region)}"
    assert stack["module"]["secrets"]["replicas"] == [
        {"region": region, "kms_key_arn": f"${{{replica_key_address(stack, region)}.arn}}"}
        for region in config.replica_regions
    ]


@pytest.mark.parametrize("env", ALL_ENVS)
def test_provider_region_and_default_tags(synthesized: Synthesis, env: str) -> None:
    config = synthesized.configs[env]
    expected = {"Project": config.project_name, "Environment": config.environment, "ManagedBy": "cdktf", **config.tags}
    for provider in synthesized.stacks[env]["provider"]["aws"]:  # the replica regions' too
        assert provider["default_tags"] == [{"tags": expected}]


@pytest.mark.parametrize("env", ALL_ENVS)
def test_backend(synthesized: Synthesis, env: str) -> None:
    config = synthesized.configs[env]
    backend = config.backend
    if isinstance(backend, LocalBackendConfig):
        # At the project root, outside the disposable cdktf.out/stacks/<env>.
        expected: dict[str, Any] = {"local": {"path": f"../../../terraform.{env}.tfstate"}}
    else:
        expected = {
            "s3": {
                "bucket": backend.bucket,
                "key": backend.key,
                "region": backend.region,
                "encrypt": True,
                "use_lockfile": backend.use_lockfile,
            }
        }
    assert synthesized.stacks[env]["terraform"]["backend"] == expected


@pytest.mark.parametrize("env", ALL_ENVS)
def test_the_destroy_guard_is_on_exactly_where_the_env_file_asks(synthesized: Synthesis, env: str) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    for name, key in resources(stack, "aws_kms_key").items():
        assert key.get("lifecycle", {}).get("prevent_destroy", False) is config.deletion_protection, name
    guard = resources(stack, "terraform_data").get("secret_destroy_guard")
    if config.deletion_protection:
        assert guard is not None
        assert guard["lifecycle"] == {"prevent_destroy": True}
        assert guard["triggers_replace"] == {"secret_arn": "${module.secrets.secret_arn}"}
    else:
        assert guard is None


@pytest.mark.parametrize("env", ALL_ENVS)
def test_every_provider_is_held_to_the_env_files_account(synthesized: Synthesis, env: str) -> None:
    config = synthesized.configs[env]
    providers = synthesized.stacks[env]["provider"]["aws"]
    assert len(providers) == 1 + len(config.replica_regions)  # the replica regions' too
    for provider in providers:
        if config.account_id is None:
            assert "allowed_account_ids" not in provider
        else:
            assert provider["allowed_account_ids"] == [config.account_id]


# Terraform addresses of stateful resources. A change here means `terraform apply` would
# destroy and recreate the key, the secret or the topic: only change it with a `moved` block.
PINNED_ADDRESSES = {
    "aws_kms_key": "secrets_key_4BAEB432",
    "aws_kms_alias": "secrets_key_alias_6CBA8DCB",
    "aws_sns_topic": "alerts_topic_3313844B",
    "aws_iam_policy": "read_policy_3CAE269C",
}
PINNED_MONITORING_KEY = "monitoring_key_92C25530"


@pytest.mark.parametrize("env", ALL_ENVS)
def test_stateful_resources_keep_their_addresses(synthesized: Synthesis, env: str) -> None:
    stack = synthesized.stacks[env]
    for resource_type, name in PINNED_ADDRESSES.items():
        assert name in resources(stack, resource_type), f"{resource_type}.{name} moved"
    assert PINNED_MONITORING_KEY in resources(stack, "aws_kms_key")
    assert "secrets" in stack["module"]


@pytest.mark.parametrize("env", ALL_ENVS)
def test_rotation_function_is_wired_to_this_secret_only(synthesized: Synthesis, env: str) -> None:
    stack, config = synthesized.stacks[env], synthesized.configs[env]
    if not config.rotation.enabled:
        assert_no_rotation(stack, config)
        return
    function_name, function = only(stack, "aws_lambda_function")
    role_id, role = next((n, r) for n, r in resources(stack, "aws_iam_role").items() if n.startswith("rotation_"))
    log_group_name, log_group = next(
        (n, g) for n, g in resources(stack, "aws_cloudwatch_log_group").items() if n.startswith("rotation_")
    )
    name = rotation_function_name(config)
    assert function["function_name"] == role["name"] == name
    assert (function["handler"], function["runtime"]) == ("apikeys.rotation.handler", "python3.12")
    assert function["role"] == f"${{aws_iam_role.{role_id}.arn}}"
    assert function["reserved_concurrent_executions"] == 1
    assert function["tracing_config"] == {"mode": "Active"}
    # Secrets Manager invokes it synchronously: a dead-letter queue would never receive anything.
    assert "dead_letter_config" not in function
    assert "aws_sqs_queue" not in stack["resource"]
    assert log_group["name"] == f"/aws/lambda/{name}"
    assert log_group["kms_key_id"] == f"${{{key_address(stack, '/monitoring_key/key')}.arn}}"
    assert log_group["retention_in_days"] >= 365
    assert f"aws_cloudwatch_log_group.{log_group_name}" in function["depends_on"]

    permission_name, permission = only(stack, "aws_lambda_permission")
    assert permission["action"] == "lambda:InvokeFunction"
    assert permission["principal"] == "secretsmanager.amazonaws.com"
    assert permission["source_arn"] == "${module.secrets.secret_arn}"
    assert permission["source_account"] == "${data.aws_caller_identity.caller.account_id}"
    assert permission["function_name"] == f"${{aws_lambda_function.{function_name}.arn}}"
    module = stack["module"]["secrets"]
    # Read through the permission: the rotation is configured only once Secrets Manager may invoke.
    assert module["rotation_lambda_arn"] == f"${{aws_lambda_permission.{permission_name}.function_name}}"
    assert module["rotation_days"] == config.rotation.days
    assert module["rotation_enabled"] is True
    assert role_names(stack, module["read_principal_arns"]) == [
        *task_role_names(config),
        *names(config.access.operator_roles),
        name,
    ]
    assert module["read_principal_arns"][-1] == f"${{aws_iam_role.{role_id}.arn}}"

    statements = {s["sid"]: s for s in policy_document(stack, "/rotation/policy_document")}
    assert statements["RotateThisSecret"]["actions"] == sorted(ROTATION_ACTIONS)
    assert statements["RotateThisSecret"]["resources"] == ["${module.secrets.secret_arn}"]
    assert statements["WriteItsOwnLog"]["resources"] == [
        f"${{aws_cloudwatch_log_group.{log_group_name}.arn}}:log-stream:*"
    ]
    key_statements = {sid for sid in statements if sid.startswith("UseTheKeysForThisSecretOnly")}
    assert set(statements) - key_statements == {
        "RotateThisSecret",
        "WriteItsOwnLog",
        "WriteTraces",
    }
    # The same key use as the read policy's decrypt statements (one per region), plus the data
    # key for new versions and, for each replica, kms:Encrypt to replicate them.
    read_statements = [s for s in policy_document(stack, "/read_policy/document") if s["sid"].startswith("Decrypt")]
    assert len(key_statements) == len(read_statements) == 1 + len(config.replica_regions)
    for index, read in enumerate(read_statements):
        rotate = statements[f"UseTheKeysForThisSecretOnly{index}"]
        replica = ["kms:Encrypt"] if index else []
        assert rotate["actions"] == sorted(["kms:Decrypt", "kms:GenerateDataKey", *replica])
        assert (rotate["resources"], rotate["condition"]) == (read["resources"], read["condition"])
    (trust,) = policy_document(stack, "/rotation/trust")
    assert trust["principals"] == [{"type": "Service", "identifiers": ["lambda.amazonaws.com"]}]

    errors = next(a for a in resources(stack, "aws_cloudwatch_metric_alarm").values() if a["namespace"] == "AWS/Lambda")
    assert errors["metric_name"] == "Errors"
    assert errors["dimensions"] == {"FunctionName": f"${{aws_lambda_function.{function_name}.function_name}}"}


def assert_no_rotation(stack: dict[str, Any], config: EnvironmentConfig) -> None:
    """[rotation] enabled = false: no function, no role or log group for it, nothing that
    configures rotation on the secret, and nobody but the task roles and operators reads it."""
    for resource_type in ("aws_lambda_function", "aws_lambda_permission", "aws_iam_role_policy"):
        assert resource_type not in stack["resource"], resource_type
    assert not [n for n in resources(stack, "aws_iam_role") if n.startswith("rotation_")]
    assert not [n for n in resources(stack, "aws_cloudwatch_log_group") if n.startswith("rotation_")]
    module = stack["module"]["secrets"]
    assert not {"rotation_enabled", "rotation_lambda_arn", "rotation_days"} & set(module)
    assert role_names(stack, module["read_principal_arns"]) == [
        *task_role_names(config),
        *names(config.access.operator_roles),
    ]
    assert all(a["namespace"] != "AWS/Lambda" for a in resources(stack, "aws_cloudwatch_metric_alarm").values())
