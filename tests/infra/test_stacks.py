"""What each synthesized stack promises, asserted on the Terraform JSON main.py wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from apikeys.events import ALARMED_EVENTS, ROTATION_FAILED
from stacks.config import S3BackendConfig, load_environment
from stacks.kms import KEY_ADMIN_ACTIONS, KEY_METADATA_ACTIONS
from stacks.rotation import ROTATION_ACTIONS
from tests.conftest import SHIPPED_ENVS, Synthesis, run_main

pytestmark = pytest.mark.synth

ALL_ENVS = (*SHIPPED_ENVS, "qa")


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


def key_address(stack: dict[str, Any], construct_path: str) -> str:
    keys = resources(stack, "aws_kms_key")
    (name,) = [n for n, k in keys.items() if k["//"]["metadata"]["path"].endswith(construct_path)]
    return f"aws_kms_key.{name}"


ROTATION_PACKAGE_HASH = "<rotation package hash>"


def without_rotation_package_hash(stack: dict[str, Any]) -> dict[str, Any]:
    """The stack with the rotation package's content hash replaced, so a snapshot is about the
    stack and not about every edit to apikeys/ (tests/infra/test_rotation_package.py checks the package)."""
    text = json.dumps(stack)
    for function in resources(stack, "aws_lambda_function").values():
        text = text.replace(function["source_code_hash"], ROTATION_PACKAGE_HASH)
    return dict(json.loads(text))


@pytest.mark.parametrize("env", SHIPPED_ENVS)
def test_snapshot(synthesized: Synthesis, env: str, snapshot: SnapshotAssertion) -> None:
    stack = without_rotation_package_hash(synthesized.stacks[env])
    # Messages name the env file where it was read; the tests read copies from a temporary directory.
    stack = json.loads(json.dumps(stack).replace(f"{synthesized.envs_dir}/", "envs/"))
    assert stack == snapshot(extension_class=JSONSnapshotExtension)


def test_one_stack_per_env_file_including_a_user_added_one(synthesized: Synthesis) -> None:
    assert sorted(synthesized.stacks) == sorted(ALL_ENVS)
    manifest = json.loads((synthesized.outdir / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(manifest["stacks"]) == sorted(ALL_ENVS)


@pytest.mark.parametrize("env", ALL_ENVS)
def test_kms_keys_rotate_and_keep_the_configured_deletion_window(synthesized: Synthesis, env: str) -> None:
    stack = synthesized.stacks[env]
    expected_window = {"dev": 7, "staging": 14, "prod": 30, "qa": 7}[env]
    keys = resources(stack, "aws_kms_key")
    assert keys
    for key in keys.values():
        assert key["enable_key_rotation"] is True
        assert key["deletion_window_in_days"] == expected_window
        assert key["policy"].startswith("${data.aws_iam_policy_document.")


@pytest.mark.parametrize("env", ALL_ENVS)
def test_key_policy_has_no_wildcard_principal_and_no_wildcard_action(synthesized: Synthesis, env: str) -> None:
    for statement in policy_document(synthesized.stacks[env], "/secrets_key/policy"):
        for principal in statement["principals"]:
            assert "*" not in principal["identifiers"]
        assert all("*" not in action for action in statement["actions"])
        assert statement.get("effect", "Allow") == "Allow"


@pytest.mark.parametrize("env", ALL_ENVS)
def test_key_policy_statements(synthesized: Synthesis, env: str) -> None:
    statements = {s["sid"]: s for s in policy_document(synthesized.stacks[env], "/secrets_key/policy")}
    region = {"qa": "eu-west-1"}.get(env, "us-east-1")
    # Only Secrets Manager uses the secrets key: the topic and the log groups have their own.
    assert set(statements) == {"KeyAdministrators", "KeyMetadataReaders", "SecretsManagerUseForThisSecret"} - (
        set() if env != "qa" else {"KeyMetadataReaders"}
    )
    assert statements["KeyAdministrators"]["actions"] == list(KEY_ADMIN_ACTIONS)
    admins = statements["KeyAdministrators"]["condition"][0]
    assert (admins["test"], admins["variable"]) == ("ArnEquals", "aws:PrincipalArn")
    assert admins["values"][0].endswith(":root")
    assert all("data.aws_iam_role.roles_" in arn for arn in admins["values"][1:])
    if "KeyMetadataReaders" in statements:
        assert statements["KeyMetadataReaders"]["actions"] == list(KEY_METADATA_ACTIONS)
    secrets_use = statements["SecretsManagerUseForThisSecret"]
    assert secrets_use["actions"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    conditions = {(c["test"], c["variable"]): c["values"] for c in secrets_use["condition"]}
    assert conditions[("StringEquals", "kms:ViaService")] == [f"secretsmanager.{region}.amazonaws.com"]
    assert conditions[("StringLike", "kms:EncryptionContext:SecretARN")][0].endswith(
        f":secretsmanager:{region}:${{data.aws_caller_identity.caller.account_id}}:secret:credlink/{env}/api-keys-??????"
    )


@pytest.mark.parametrize("env", ALL_ENVS)
def test_monitoring_key_serves_only_the_topic_and_the_alarmed_log_groups(synthesized: Synthesis, env: str) -> None:
    statements = {s["sid"]: s for s in policy_document(synthesized.stacks[env], "/monitoring_key/policy")}
    assert "SecretsManagerUseForThisSecret" not in statements
    logs = statements["CloudWatchLogsUseForTheseLogGroups"]
    log_groups = [arn.rsplit(":log-group:", 1)[1] for arn in logs["condition"][0]["values"]]
    app_log_groups = ["/credlink/dev/app"] if env == "dev" else []
    assert log_groups == [*app_log_groups, f"/aws/lambda/credlink-{env}-api-keys-rotation"]
    alarms = statements["CloudWatchAlarmsPublishToTheAlertTopic"]
    assert alarms["principals"] == [{"type": "Service", "identifiers": ["cloudwatch.amazonaws.com"]}]
    conditions = {c["variable"]: c["values"] for c in alarms["condition"]}
    assert conditions["kms:EncryptionContext:aws:sns:topicArn"][0].endswith(f":credlink-{env}-api-keys-alerts")
    assert conditions["aws:SourceArn"][0].endswith(f":alarm:credlink-{env}-api-keys-*")


@pytest.mark.parametrize("env", ALL_ENVS)
def test_secret_module_is_fed_this_envs_key(synthesized: Synthesis, env: str) -> None:
    stack = synthesized.stacks[env]
    module = stack["module"]["secrets"]
    assert module["kms_key_arn"] == f"${{{primary_key_address(stack)}.arn}}"
    assert module["name"] == f"credlink/{env}/api-keys"
    assert module["source"].startswith("./assets/__cdktf_module_asset_")


@pytest.mark.parametrize("env", ALL_ENVS)
def test_read_policy_is_exactly_get_and_describe_on_this_secret_and_decrypt_via_secrets_manager(
    synthesized: Synthesis, env: str
) -> None:
    stack = synthesized.stacks[env]
    key_arn = f"${{{primary_key_address(stack)}.arn}}"
    region = {"qa": "eu-west-1"}.get(env, "us-east-1")
    statements = policy_document(stack, "/read_policy/document")

    expected: list[dict[str, Any]] = [
        {
            "sid": "ReadApiKeysSecret",
            "actions": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
            "resources": ["${module.secrets.secret_arn}"],
        },
        {
            "sid": "DecryptApiKeysSecret0",
            "actions": ["kms:Decrypt"],
            "resources": [key_arn],
            "condition": [
                {
                    "test": "StringEquals",
                    "variable": "kms:ViaService",
                    "values": [f"secretsmanager.{region}.amazonaws.com"],
                },
                {
                    "test": "StringEquals",
                    "variable": "kms:EncryptionContext:SecretARN",
                    "values": ["${module.secrets.secret_arn}"],
                },
            ],
        },
    ]
    if env == "prod":
        replica_key = next(n for n in resources(stack, "aws_kms_key") if "replica_key_us_west_2" in n)
        replica_arn = "${element(module.secrets.replica_arns, 0)}"
        expected[0]["resources"] = ["${module.secrets.secret_arn}", replica_arn]
        expected.append(
            {
                "sid": "DecryptApiKeysSecret1",
                "actions": ["kms:Decrypt"],
                "resources": [f"${{aws_kms_key.{replica_key}.arn}}"],
                "condition": [
                    {
                        "test": "StringEquals",
                        "variable": "kms:ViaService",
                        "values": ["secretsmanager.us-west-2.amazonaws.com"],
                    },
                    {"test": "StringEquals", "variable": "kms:EncryptionContext:SecretARN", "values": [replica_arn]},
                ],
            }
        )
    assert statements == expected


@pytest.mark.parametrize("env", ALL_ENVS)
def test_read_policy_is_attached_to_every_task_role(synthesized: Synthesis, env: str) -> None:
    stack = synthesized.stacks[env]
    policy_name, policy = "read_policy_3CAE269C", resources(stack, "aws_iam_policy")["read_policy_3CAE269C"]
    assert policy["name"] == f"credlink-{env}-api-keys-read"
    attachments = [
        a for a in resources(stack, "aws_iam_role_policy_attachment").values() if "read_policy" in a["policy_arn"]
    ]
    roles = sorted(a["role"] for a in attachments)
    assert all(a["policy_arn"] == f"${{aws_iam_policy.{policy_name}.arn}}" for a in attachments)
    if env == "dev":  # the demo role the stack creates, referenced so it exists first
        (role_name,) = [n for n in resources(stack, "aws_iam_role") if n.startswith("demo_service_")]
        assert roles == [f"${{aws_iam_role.{role_name}.name}}"]
    else:
        assert (
            roles
            == {
                "staging": ["credlink-staging-api-task"],
                "prod": ["credlink-prod-api-task", "credlink-prod-worker-task"],
                "qa": ["credlink-qa-api-task"],
            }[env]
        )


@pytest.mark.parametrize("env", ALL_ENVS)
def test_alert_topic_is_encrypted_and_only_this_accounts_alarms_publish_over_tls(
    synthesized: Synthesis, env: str
) -> None:
    stack = synthesized.stacks[env]
    topic_name, topic = only(stack, "aws_sns_topic")
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


@pytest.mark.parametrize("env", ALL_ENVS)
def test_alarms_watch_the_loader_contract_and_notify_the_topic(synthesized: Synthesis, env: str) -> None:
    stack = synthesized.stacks[env]
    topic_name, _ = only(stack, "aws_sns_topic")
    topic_arn = f"${{aws_sns_topic.{topic_name}.arn}}"
    filters = resources(stack, "aws_cloudwatch_log_metric_filter").values()
    alarms = resources(stack, "aws_cloudwatch_metric_alarm").values()
    app_log_group = "${aws_cloudwatch_log_group.demo_service_log_group_772774C9.name}" if env == "dev" else ""
    loader_filters = [f for f in filters if f["log_group_name"] in (app_log_group, f"/credlink/{env}/app")]

    assert sorted(f["pattern"] for f in loader_filters) == sorted(event.pattern for event in ALARMED_EVENTS)
    assert sorted(f["pattern"] for f in filters) == sorted(e.pattern for e in (*ALARMED_EVENTS, ROTATION_FAILED))
    assert len(list(alarms)) == len(ALARMED_EVENTS) + 2  # and the rotation function's errors and failures
    for alarm in alarms:
        assert alarm["alarm_actions"] == [topic_arn]
        assert alarm["ok_actions"] == [topic_arn]
        assert alarm["alarm_name"].startswith(f"credlink-{env}-api-keys-")
    metrics = {(f["metric_transformation"]["namespace"], f["metric_transformation"]["name"]) for f in filters}
    assert metrics | {("AWS/Lambda", "Errors")} == {(a["namespace"], a["metric_name"]) for a in alarms}


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
    outputs = synthesized.stacks[env]["output"]
    operators = {"operator_policy_arn"} if env != "qa" else set()
    assert set(outputs) == {
        "secret_arn",
        "replica_secret_arns",
        "kms_key_arn",
        "monitoring_kms_key_arn",
        "alert_topic_arn",
        "read_policy_arn",
        *operators,
    }
    assert outputs["secret_arn"]["value"] == "${module.secrets.secret_arn}"
    # A service in a replica region sets API_KEYS_SECRET_ARN to its region's replica: the
    # module's map (modules/secrets/tests checks its content).
    assert outputs["replica_secret_arns"]["value"] == "${module.secrets.replica_arns_by_region}"


def test_dev_stands_alone_with_its_own_task_role_and_encrypted_log_group(synthesized: Synthesis) -> None:
    stack = synthesized.stacks["dev"]
    log_group = resources(stack, "aws_cloudwatch_log_group")["demo_service_log_group_772774C9"]
    assert log_group["name"] == "/credlink/dev/app"
    assert log_group["kms_key_id"] == f"${{{key_address(stack, '/monitoring_key/key')}.arn}}"
    assert log_group["retention_in_days"] >= 365
    role = resources(stack, "aws_iam_role")["demo_service_task_role_0_3EC2563B"]
    assert role["name"] == "credlink-dev-demo-task"
    demo_role_arn = "${aws_iam_role.demo_service_task_role_0_3EC2563B.arn}"
    assert stack["module"]["secrets"]["read_principal_arns"][0] == demo_role_arn
    for env in ("staging", "prod", "qa"):
        assert not [n for n in resources(synthesized.stacks[env], "aws_iam_role") if n.startswith("demo_service_")]
        assert [g["name"] for g in resources(synthesized.stacks[env], "aws_cloudwatch_log_group").values()] == [
            f"/aws/lambda/credlink-{env}-api-keys-rotation"
        ]


def test_prod_replicates_with_a_key_of_the_replica_region(synthesized: Synthesis) -> None:
    stack = synthesized.stacks["prod"]
    providers = {p.get("alias"): p["region"] for p in stack["provider"]["aws"]}
    assert providers == {None: "us-east-1", "us_west_2": "us-west-2"}
    replica_key = next(k for n, k in resources(stack, "aws_kms_key").items() if "replica_key_us_west_2" in n)
    assert replica_key["provider"] == "aws.us_west_2"
    (replica,) = stack["module"]["secrets"]["replicas"]
    assert replica["region"] == "us-west-2"
    assert replica["kms_key_arn"].endswith(".arn}")
    assert "replica_key_us_west_2" in replica["kms_key_arn"]


@pytest.mark.parametrize("env", ALL_ENVS)
def test_provider_region_and_default_tags(synthesized: Synthesis, env: str) -> None:
    (provider,) = [p for p in synthesized.stacks[env]["provider"]["aws"] if "alias" not in p]
    tags = provider["default_tags"][0]["tags"]
    assert tags["Environment"] == env
    assert tags["Project"] == "credlink"
    assert tags["ManagedBy"] == "cdktf"


@pytest.mark.parametrize("env", ALL_ENVS)
def test_backend_is_the_env_files(synthesized: Synthesis, env: str) -> None:
    backend = load_environment(synthesized.envs_dir / f"{env}.toml").backend
    expected: dict[str, Any]
    if isinstance(backend, S3BackendConfig):
        expected = {
            "s3": {
                "bucket": backend.bucket,
                "key": backend.key,
                "region": backend.region,
                "encrypt": True,
                "use_lockfile": backend.use_lockfile,
            }
        }
    else:
        expected = {"local": {"path": f"../../../terraform.{env}.tfstate"}}
    assert synthesized.stacks[env]["terraform"]["backend"] == expected


@pytest.mark.parametrize("env", ALL_ENVS)
def test_every_provider_is_held_to_the_env_files_account(synthesized: Synthesis, env: str) -> None:
    config = load_environment(synthesized.envs_dir / f"{env}.toml")
    providers = synthesized.stacks[env]["provider"]["aws"]
    assert len(providers) == 1 + len(config.replica_regions)
    for provider in providers:
        if config.account_id is None:
            assert "allowed_account_ids" not in provider
        else:
            assert provider["allowed_account_ids"] == [config.account_id]


def test_an_account_id_guards_the_replica_regions_providers_too(tmp_path: Path, synthesized: Synthesis) -> None:
    """prod (a replica region) with an account id: every provider, primary and replica, carries it."""
    envs = tmp_path / "envs"
    envs.mkdir()
    text = (synthesized.envs_dir / "prod.toml").read_text(encoding="utf-8")
    (envs / "prod.toml").write_text(text.replace('# account_id = "123456789012"', 'account_id = "210987654321"'))
    config = load_environment(envs / "prod.toml")
    assert config.account_id == "210987654321"
    assert config.replica_regions
    result = run_main(envs, tmp_path / "cdktf.out")
    assert result.returncode == 0, result.stderr
    stack = json.loads((tmp_path / "cdktf.out" / "stacks" / "prod" / "cdk.tf.json").read_text(encoding="utf-8"))
    providers = stack["provider"]["aws"]
    assert sorted(p.get("region") for p in providers) == sorted([config.region, *config.replica_regions])
    assert all(p["allowed_account_ids"] == [config.account_id] for p in providers)


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
    stack = synthesized.stacks[env]
    function_name, function = only(stack, "aws_lambda_function")
    role_name, role = next((n, r) for n, r in resources(stack, "aws_iam_role").items() if n.startswith("rotation_"))
    log_group_name, log_group = next(
        (n, g) for n, g in resources(stack, "aws_cloudwatch_log_group").items() if n.startswith("rotation_")
    )
    name = f"credlink-{env}-api-keys-rotation"
    assert function["function_name"] == role["name"] == name
    assert (function["handler"], function["runtime"]) == ("apikeys.rotation.handler", "python3.12")
    assert function["role"] == f"${{aws_iam_role.{role_name}.arn}}"
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
    assert module["rotation_days"] == 30
    assert module["rotation_enabled"] is True
    assert module["read_principal_arns"][-1] == f"${{aws_iam_role.{role_name}.arn}}"

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
    assert len(key_statements) == len(read_statements) == (2 if env == "prod" else 1)
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


def test_an_env_can_turn_rotation_off(tmp_path_factory: pytest.TempPathFactory, synthesized: Synthesis) -> None:
    envs = tmp_path_factory.mktemp("envs-rotation-off")
    dev = (synthesized.envs_dir / "dev.toml").read_text(encoding="utf-8")
    (envs / "dev.toml").write_text(dev.replace("enabled = true", "enabled = false"), encoding="utf-8")
    outdir = tmp_path_factory.mktemp("cdktf-rotation-off.out")
    assert run_main(envs, outdir).returncode == 0
    stack = json.loads((outdir / "stacks" / "dev" / "cdk.tf.json").read_text(encoding="utf-8"))
    assert "aws_lambda_function" not in stack["resource"]
    assert "rotation_lambda_arn" not in stack["module"]["secrets"]
    assert "rotation_enabled" not in stack["module"]["secrets"]
    assert "aws_lambda_function" in synthesized.stacks["dev"]["resource"]
