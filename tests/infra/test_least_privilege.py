"""Least privilege, exactly: every policy document in every synthesized environment.

checkov does not evaluate policies that reach `aws_iam_policy`/`aws_kms_key` as data-source
references (CKV_AWS_286-290, 355 on cdktf JSON), so these rules are ours. They run on the
`DataAwsIamPolicyDocument` statements as synthesized; the module's resource policy has its
own `terraform test` and the deployed documents are linted with parliament (e2e).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from stacks.config import EnvironmentConfig
from tests.conftest import ALL_ENVS, PROJECT_ROOT, Synthesis

pytestmark = pytest.mark.synth

# Where `Resource: "*"` is allowed, and why. Nothing else may use it.
WILDCARD_RESOURCE_ALLOWED = {
    "key_policy": "In a KMS key policy, Resource '*' is the key the policy is attached to; AWS accepts nothing else.",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions: its actions accept only Resource '*'.",
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions: its actions accept only Resource '*'.",
}
# KMS use without kms:ViaService is allowed only for these service principals, each bound by
# the condition that takes its place.
SERVICE_KMS_USE = {
    "cloudwatch.amazonaws.com": "aws:SourceArn",  # alarms of this account publishing to the topic
    "logs.{region}.amazonaws.com": "kms:EncryptionContext:aws:logs:arn",  # the app and rotation log groups
}
CRYPTO_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncrypt")


def documents(stack: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(kind, construct path, statements) for every policy document in the stack."""
    found = []
    for document in stack["data"]["aws_iam_policy_document"].values():
        path = document["//"]["metadata"]["path"]
        if path.endswith("/policy") and any(
            key in path for key in ("/secrets_key/", "/replica_key_", "/monitoring_key/")
        ):
            kind = "key_policy"
        elif path.endswith(("/read_policy/document", "/rotation/policy_document", "/operator_policy/document")):
            kind = "identity_policy"
        elif path.endswith("/alerts/policy_document"):
            kind = "topic_policy"
        elif path.endswith(("/demo_service/task_trust", "/rotation/trust")):
            kind = "trust_policy"
        else:
            raise AssertionError(f"unclassified policy document {path}: add it to this test")
        found.append((kind, path, list(document["statement"])))
    return found


def allows(statement: dict[str, Any]) -> bool:
    return bool(statement.get("effect", "Allow") == "Allow")


def condition_keys(statement: dict[str, Any]) -> set[str]:
    return {c["variable"] for c in statement.get("condition", [])}


def principal_ids(statement: dict[str, Any]) -> set[str]:
    return {identifier for p in statement.get("principals", []) for identifier in p["identifiers"]}


@pytest.mark.parametrize("env", ALL_ENVS)
def test_no_wildcard_action_anywhere(synthesized: Synthesis, env: str) -> None:
    for _, path, statements in documents(synthesized.stacks[env]):
        for statement in statements:
            for action in statement.get("actions", []):
                assert "*" not in action, f"{env} {path} {statement.get('sid')}: {action}"


@pytest.mark.parametrize("env", ALL_ENVS)
def test_wildcard_resource_only_where_aws_requires_it(synthesized: Synthesis, env: str) -> None:
    for kind, path, statements in documents(synthesized.stacks[env]):
        for statement in filter(allows, statements):
            if "*" in statement.get("resources", []):
                allowed = kind in WILDCARD_RESOURCE_ALLOWED or all(
                    action in WILDCARD_RESOURCE_ALLOWED for action in statement["actions"]
                )
                assert allowed, f"{env} {path} {statement.get('sid')}"


@pytest.mark.parametrize("env", ALL_ENVS)
def test_no_wildcard_principal_is_allowed_anything(synthesized: Synthesis, env: str) -> None:
    for _, path, statements in documents(synthesized.stacks[env]):
        for statement in filter(allows, statements):
            assert "*" not in principal_ids(statement), f"{env} {path} {statement.get('sid')}"


@pytest.mark.parametrize("env", ALL_ENVS)
def test_every_secrets_manager_action_is_scoped_to_this_envs_secret(synthesized: Synthesis, env: str) -> None:
    scoped = 0
    found = documents(synthesized.stacks[env])
    for _, path, statements in found:
        for statement in filter(allows, statements):
            if any(action.startswith("secretsmanager:") for action in statement.get("actions", [])):
                assert statement["resources"], path
                assert all(
                    resource == "${module.secrets.secret_arn}"
                    or resource.startswith("${element(module.secrets.replica_arns, ")
                    for resource in statement["resources"]
                ), path
                scoped += 1
    # The read policy, the rotation function's and the operators'; nothing else may touch the secret.
    expected = {"/read_policy/document", "/rotation/policy_document", "/operator_policy/document"}
    assert scoped == sum(1 for _, path, _ in found if path.endswith(tuple(expected)))


@pytest.mark.parametrize("env", ALL_ENVS)
def test_every_kms_use_is_conditioned(synthesized: Synthesis, env: str) -> None:
    region = synthesized.configs[env].region
    services = {name.format(region=region): key for name, key in SERVICE_KMS_USE.items()}
    for _, path, statements in documents(synthesized.stacks[env]):
        for statement in filter(allows, statements):
            if not any(action.startswith(CRYPTO_ACTIONS) for action in statement.get("actions", [])):
                continue
            keys = condition_keys(statement)
            service = principal_ids(statement) & set(services)
            if service:
                (name,) = service
                assert services[name] in keys, f"{env} {path} {statement.get('sid')}"
                continue
            assert "kms:ViaService" in keys, f"{env} {path} {statement.get('sid')}: KMS use without kms:ViaService"
            via = next(c["values"] for c in statement["condition"] if c["variable"] == "kms:ViaService")
            if all(v.startswith("secretsmanager.") for v in via):
                assert "kms:EncryptionContext:SecretARN" in keys, f"{env} {path} {statement.get('sid')}"


@pytest.mark.parametrize("env", ALL_ENVS)
def test_no_env_names_another_envs_resources(synthesized: Synthesis, env: str) -> None:
    text = json.dumps(synthesized.stacks[env])
    own = name_markers(synthesized.configs[env])
    for other in synthesized.configs.values():
        if other.environment == env:
            continue
        for marker in name_markers(other):
            for found in re.finditer(re.escape(marker), text):
                # Another env's name may start this one's (prod, prod-eu): there, this env's longer name is meant.
                ours = any(len(mine) > len(marker) and text.startswith(mine, found.start()) for mine in own)
                assert ours, f"{env} mentions {marker}"


def name_markers(config: EnvironmentConfig) -> tuple[str, ...]:
    """How an environment's resources are named: its secret (and log groups), and everything else."""
    return (f"{config.project_name}/{config.environment}/", f"{config.name_prefix}-")


@pytest.mark.parametrize("env", ALL_ENVS)
def test_seed_anti_patterns_are_absent(synthesized: Synthesis, env: str) -> None:
    stack = synthesized.stacks[env]
    # The managed SecretsManagerReadWrite policy grants every secret in the account.
    assert "SecretsManagerReadWrite" not in json.dumps(stack)
    for attachment in stack["resource"].get("aws_iam_role_policy_attachment", {}).values():
        assert attachment["policy_arn"].startswith("${aws_iam_policy.")
    # No statement anywhere lets anyone read a secret on Resource "*".
    for _, path, statements in documents(stack):
        for statement in filter(allows, statements):
            if "secretsmanager:GetSecretValue" in statement.get("actions", []):
                assert "*" not in statement["resources"], path


def test_a_plain_secret_string_is_never_used() -> None:
    """The value only ever travels through the write-only argument."""
    sources = [
        *PROJECT_ROOT.glob("modules/**/*.tf"),
        *PROJECT_ROOT.glob("stacks/**/*.py"),
        PROJECT_ROOT / "main.py",
    ]
    for source in sources:
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            assert not _assigns_plain_secret_string(code), f"{source.relative_to(PROJECT_ROOT)}:{number}: {line}"


def _assigns_plain_secret_string(code: str) -> bool:
    return re.match(r"^\s*secret_string\s*=", code) is not None


def test_module_sends_the_value_only_write_only() -> None:
    main_tf = (PROJECT_ROOT / "modules" / "secrets" / "main.tf").read_text(encoding="utf-8")
    version_block = main_tf[main_tf.index('resource "aws_secretsmanager_secret_version" "this"') :]
    version_block = version_block[: version_block.index("\n}\n")]
    assert "secret_string_wo         = var.secret_string_wo\n" in version_block
    assert "secret_string =" not in version_block.replace("secret_string_wo", "")
    assert "secret_binary" not in version_block


def test_synthesized_stacks_never_create_a_plain_secret_version(synthesized: Synthesis) -> None:
    for env, stack in synthesized.stacks.items():
        assert "aws_secretsmanager_secret_version" not in stack.get("resource", {}), env
        assert '"secret_string":' not in json.dumps(stack.get("resource", {})), env


def test_plain_secret_string_detector() -> None:
    assert _assigns_plain_secret_string('  secret_string = "x"')
    assert _assigns_plain_secret_string("secret_string=var.value")
    assert not _assigns_plain_secret_string("  secret_string_wo         = var.secret_string_wo")
    assert not _assigns_plain_secret_string('variable "secret_string" {')
