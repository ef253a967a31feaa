"""The IAM policies of an environment's pipeline roles, one document per role kind:

- `plan`: attached to `access.plan_roles`, which run `terraform plan` (pull requests). It
  reads this environment's resources and nothing else; it writes nothing but the S3 state
  lock object, when the state is in S3 with `use_lockfile`.
- `apply`: attached to `access.apply_roles`, which run `terraform apply`/`destroy` and
  `cdktf deploy`. It creates, changes and deletes this environment's resources only.

    python -m stacks.pipeline_policies           # write iam/<env>/plan-role.json and apply-role.json
    python -m stacks.pipeline_policies --check   # exit 1 naming every stale or missing file

The actions are the API calls Terraform (hashicorp/aws 5.100) makes for these stacks,
recorded per role on local AWS and proven by evaluation against these documents
(tests/e2e/test_pipeline_policies.py, reviewed list: iam/recorded-calls.json), plus the
permissions AWS checks without a call of their own (iam:PassRole, tag-on-create, the KMS
calls Secrets Manager makes on the caller's behalf).

Every statement names this environment's resources. The account id is not in the env file:
conditions name it as `${aws:PrincipalAccount}` (the account of the role the document is
attached to); Resource ARNs, where IAM accepts no variable in the account field, leave it
"*" (RESOURCE_ACCOUNT). KMS key ids are unknown before the keys exist, so key statements
name every key in the environment's regions: the key policies (stacks/kms.py) are what
limit these roles to this environment's keys. The few actions that accept no resource but
"*" are listed in WILDCARD_ONLY with the reason.

Only the standard library and `stacks.config`: no cdktf, no provider bindings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from stacks.config import ConfigError, EnvironmentConfig, S3BackendConfig, load_environments, role_name

__all__ = [
    "ACCOUNT",
    "POLICY_FILES",
    "RESOURCE_ACCOUNT",
    "WILDCARD_ONLY",
    "main",
    "pipeline_policies",
    "render",
    "stale_files",
    "write_files",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The account in condition values: the account of the role the document is attached to.
ACCOUNT = "${aws:PrincipalAccount}"
# The account field of a Resource ARN: IAM accepts 12 digits, "*" or nothing there, not a
# policy variable (it refuses such a document as malformed). "*" grants nothing in another
# account by itself: there, only a resource policy naming these roles would let them in, and
# IAM roles and policies, log groups and alarms cannot be managed from another account.
RESOURCE_ACCOUNT = "*"
PARTITION = "aws"
# Role kind -> file name under iam/<env>/.
POLICY_FILES = {"plan": "plan-role.json", "apply": "apply-role.json"}

# The actions these documents grant on Resource "*", and why nothing narrower works. Service
# Authorization Reference: an action with no resource type accepts only "*".
WILDCARD_ONLY = {
    "kms:CreateKey": "no resource type: the key does not exist yet (bound instead by the request's tags)",
    "kms:ListAliases": "no resource type: lists the region's aliases",
    "logs:DescribeLogGroups": "no resource type: lists the region's log groups by prefix",
}

Statement = dict[str, Any]
Document = dict[str, Any]

# Secrets Manager calls on this secret: create (with tags and replicas), read back, resource
# policy, the value Terraform may write (write-only) and its staging labels on destroy,
# rotation schedule (RotateSecret with RotateImmediately=false), replica changes, updates.
_SECRET_APPLY_ACTIONS = (
    "secretsmanager:CancelRotateSecret",
    "secretsmanager:CreateSecret",
    "secretsmanager:DeleteResourcePolicy",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:RemoveRegionsFromReplication",
    "secretsmanager:ReplicateSecretToRegions",
    "secretsmanager:RotateSecret",
    "secretsmanager:TagResource",
    "secretsmanager:UntagResource",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
)
# GetSecretValue: the provider reads back a value Terraform manages (api_keys_secret_version
# set). The secret's resource policy denies it to these roles whenever Terraform manages none.
_SECRET_PLAN_ACTIONS = (
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:GetSecretValue",
)
# Refresh of an aws_kms_key (and the waits after creating one); the same list the key
# policies grant plan roles (stacks/kms.py KEY_METADATA_ACTIONS).
_KEY_READ_ACTIONS = (
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListResourceTags",
)
# Each also granted to the apply roles by the key policies (stacks/kms.py KEY_ADMIN_ACTIONS).
# kms:TagResource must cover every key of the region to tag a key while creating it. No
# kms:DisableKeyRotation: the stack never turns rotation off, and this role may not either.
_KEY_APPLY_ACTIONS = (
    *_KEY_READ_ACTIONS,
    "kms:EnableKeyRotation",
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateKeyDescription",
)
_ALIAS_ACTIONS = ("kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias")
# The roles the stack creates: the rotation function's role and, with demo resources, the
# task roles. CreateRole with tags needs iam:TagRole.
_ROLE_APPLY_ACTIONS = (
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListInstanceProfilesForRole",
    "iam:ListRolePolicies",
    "iam:PutRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
)
_ROLE_PLAN_ACTIONS = ("iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies")
# The read and operator policies: a changed document is a new version (the oldest deleted
# at five); deleting a policy deletes its other versions first.
_POLICY_APPLY_ACTIONS = (
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:ListPolicyVersions",
    "iam:TagPolicy",
    "iam:UntagPolicy",
)
_POLICY_PLAN_ACTIONS = ("iam:GetPolicy", "iam:GetPolicyVersion")
# GetFunctionConfiguration: the provider's waits after an update. InvokeFunction: RotateSecret
# checks that its caller may invoke the rotation function.
_FUNCTION_APPLY_ACTIONS = (
    "lambda:CreateFunction",
    "lambda:DeleteFunction",
    "lambda:DeleteFunctionConcurrency",
    "lambda:GetFunction",
    "lambda:GetFunctionCodeSigningConfig",
    "lambda:GetFunctionConfiguration",
    "lambda:GetPolicy",
    "lambda:InvokeFunction",
    "lambda:ListVersionsByFunction",
    "lambda:PutFunctionConcurrency",
    "lambda:RemovePermission",
    "lambda:TagResource",
    "lambda:UntagResource",
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
)
_FUNCTION_PLAN_ACTIONS = (
    "lambda:GetFunction",
    "lambda:GetFunctionCodeSigningConfig",
    "lambda:GetPolicy",
    "lambda:ListVersionsByFunction",
)
# No logs:DisassociateKmsKey: the alarmed log groups stay encrypted.
_LOG_GROUP_APPLY_ACTIONS = (
    "logs:AssociateKmsKey",
    "logs:CreateLogGroup",
    "logs:DeleteLogGroup",
    "logs:DeleteRetentionPolicy",
    "logs:ListTagsForResource",
    "logs:PutRetentionPolicy",
    "logs:TagResource",
    "logs:UntagResource",
)
_METRIC_FILTER_APPLY_ACTIONS = ("logs:DeleteMetricFilter", "logs:DescribeMetricFilters", "logs:PutMetricFilter")
_ALARM_APPLY_ACTIONS = (
    "cloudwatch:DeleteAlarms",
    "cloudwatch:ListTagsForResource",
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:TagResource",
    "cloudwatch:UntagResource",
)
_TOPIC_APPLY_ACTIONS = (
    "sns:CreateTopic",
    "sns:DeleteTopic",
    "sns:GetTopicAttributes",
    "sns:ListTagsForResource",
    "sns:SetTopicAttributes",
    "sns:TagResource",
    "sns:UntagResource",
)
_SUBSCRIPTION_APPLY_ACTIONS = ("sns:GetSubscriptionAttributes", "sns:Unsubscribe")


def pipeline_policies(config: EnvironmentConfig) -> dict[str, Document]:
    """{"plan": document, "apply": document} for the environment's pipeline roles."""
    names = _Names(config)
    return {"plan": _document(_plan_statements(names)), "apply": _document(_apply_statements(names))}


class _Names:
    """This environment's resources as IAM resource ARNs, named the way the stack names them."""

    def __init__(self, config: EnvironmentConfig) -> None:
        self.config = config
        self.region = config.region
        self.regions = (config.region, *config.replica_regions)
        self.prefix = config.resource_prefix  # roles, policies, alarms, topic, function, key aliases
        self.function_name = config.rotation_function_name
        self.topic_name = config.topic_name

    def arn(self, service: str, resource: str, *, region: str | None = None, account: str = RESOURCE_ACCOUNT) -> str:
        return f"arn:{PARTITION}:{service}:{region or self.region}:{account}:{resource}"

    def iam(self, resource: str, *, account: str = RESOURCE_ACCOUNT) -> str:
        return f"arn:{PARTITION}:iam::{account}:{resource}"

    @property
    def secrets(self) -> list[str]:
        # Secrets Manager appends "-" and six characters to the name.
        return [self.secret(region) for region in self.regions]

    def secret(self, region: str, *, account: str = RESOURCE_ACCOUNT) -> str:
        return self.arn("secretsmanager", f"secret:{self.config.secret_name}-??????", region=region, account=account)

    @property
    def keys(self) -> list[str]:
        return [self.arn("kms", "key/*", region=region) for region in self.regions]

    @property
    def aliases(self) -> list[str]:
        # alias/<prefix>-api-keys (the secret's keys) and alias/<prefix>-api-keys-monitoring.
        return [self.arn("kms", f"alias/{self.prefix}*", region=region) for region in self.regions]

    @property
    def created_roles(self) -> list[str]:
        """By exact name (created at the root path): whoever manages a role's trust and inline
        policies can give it any permission, so no name pattern leaves room for another role."""
        config = self.config
        demo = config.service.task_roles if config.service.create_demo_resources else ()
        return [
            *([self.rotation_role] if config.rotation.enabled else []),
            *(self.iam(f"role/{name}") for name in demo),
        ]

    @property
    def rotation_role(self) -> str:
        return self.iam(f"role/{self.function_name}")

    def existing_roles(self, roles: Iterable[str]) -> list[str]:
        """Roles the env file names: an ARN as given; a name under any path, as the stack
        looks it up (`role/<name>` at the root, `role/<path>/<name>` under a path)."""
        arns: list[str] = []
        for role in roles:
            name = role_name(role)
            arns += [role] if role != name else [self.iam(f"role/{name}"), self.iam(f"role/*/{name}")]
        return arns

    @property
    def named_roles(self) -> list[str]:
        """For reading only: one pattern per name, any path (it also matches names that end
        with the same text, which GetRole may then read)."""
        access, service = self.config.access, self.config.service
        task_roles = () if service.create_demo_resources else service.task_roles
        named = (*access.apply_roles, *access.plan_roles, *access.key_admin_roles, *access.operator_roles, *task_roles)
        return [role if role != role_name(role) else self.iam(f"role/*{role}") for role in named]

    @property
    def attachment_targets(self) -> list[str]:
        """The roles the read and operator policies are attached to."""
        service = self.config.service
        task_roles = (
            [self.iam(f"role/{name}") for name in service.task_roles]
            if service.create_demo_resources
            else self.existing_roles(service.task_roles)
        )
        return [*task_roles, *self.existing_roles(self.config.access.operator_roles)]

    def policies(self, *, account: str = RESOURCE_ACCOUNT) -> str:
        return self.iam(f"policy/{self.prefix}-*", account=account)

    @property
    def function(self) -> str:
        return self.arn("lambda", f"function:{self.function_name}")

    def log_groups(self, names: Iterable[str]) -> list[str]:
        # Some Logs actions authorize "log-group:<name>", others "log-group:<name>:*".
        return [
            arn
            for name in names
            for arn in (self.arn("logs", f"log-group:{name}"), self.arn("logs", f"log-group:{name}:*"))
        ]

    @property
    def created_log_groups(self) -> list[str]:
        config = self.config
        return self.log_groups(
            [
                *([f"/aws/lambda/{self.function_name}"] if config.rotation.enabled else []),
                *([config.service.log_group_name] if config.service.create_demo_resources else []),
            ]
        )

    @property
    def filtered_log_groups(self) -> list[str]:
        """The log groups with metric filters: the application's and the rotation function's."""
        config = self.config
        return self.log_groups(
            [config.service.log_group_name, *([f"/aws/lambda/{self.function_name}"] if config.rotation.enabled else [])]
        )

    @property
    def alarms(self) -> str:
        return self.arn("cloudwatch", f"alarm:{self.prefix}-*")

    @property
    def topic(self) -> str:
        return self.arn("sns", self.topic_name)

    @property
    def default_tags(self) -> dict[str, str]:
        """The provider's default tags, as secrets_stack sets them (the env file's tags win)."""
        config = self.config
        return {"Project": config.project_name, "Environment": config.environment, "ManagedBy": "cdktf", **config.tags}


def _statement(
    sid: str, actions: Iterable[str], resources: str | Sequence[str], condition: dict[str, Any] | None = None
) -> Statement:
    statement: Statement = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": resources if isinstance(resources, str) else list(dict.fromkeys(resources)),
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _if_any(sid: str, actions: Iterable[str], resources: Sequence[str]) -> list[Statement]:
    """The statement, or none when the environment has no such resource."""
    return [_statement(sid, actions, resources)] if resources else []


def _wildcard(sid: str, actions: Sequence[str], condition: dict[str, Any] | None = None) -> Statement:
    unexplained = [action for action in actions if action not in WILDCARD_ONLY]
    if unexplained:
        raise ValueError(f"Resource '*' for {', '.join(unexplained)}: say why in WILDCARD_ONLY")
    return _statement(sid, actions, "*", condition)


def _document(statements: list[Statement]) -> Document:
    return {"Version": "2012-10-17", "Statement": statements}


def _via_secrets_manager(names: _Names, sid: str, actions: Sequence[str], region: str) -> Statement:
    """KMS use that Secrets Manager makes on the caller's behalf, for this secret only: the
    secret is encrypted under the encryption context {"SecretARN": <its ARN>}."""
    return _statement(
        sid,
        actions,
        names.arn("kms", "key/*", region=region),
        {
            "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:SecretARN": names.secret(region, account=ACCOUNT)},
        },
    )


def _attached_policies_only(names: _Names) -> dict[str, Any]:
    # StringLike, not ArnLike: IAM documents policy variables for string conditions.
    return {"StringLike": {"iam:PolicyARN": names.policies(account=ACCOUNT)}}


def _apply_statements(names: _Names) -> list[Statement]:
    config = names.config
    statements = [
        _statement("ThisSecret", _SECRET_APPLY_ACTIONS, names.secrets),
        # No ForceDeleteWithoutRecovery: the request must keep a recovery window (7..30 days).
        _statement(
            "DeleteSecretKeepingARecoveryWindow",
            ["secretsmanager:DeleteSecret"],
            names.secret(names.region),
            {"NumericGreaterThanEquals": {"secretsmanager:RecoveryWindowInDays": "7"}},
        ),
        # Secrets Manager refuses a resource policy granting access outside the account only
        # when the request asks it to, as the module always does.
        _statement(
            "SecretPolicyOnlyWithBlockPublicPolicy",
            ["secretsmanager:PutResourcePolicy"],
            names.secret(names.region),
            {"Bool": {"secretsmanager:BlockPublicPolicy": "true"}},
        ),
        # Writing a version (CreateSecret with a value, PutSecretValue) and replicating one.
        _via_secrets_manager(
            names, "KmsViaSecretsManagerForThisSecret", ["kms:Decrypt", "kms:GenerateDataKey"], names.region
        ),
        *(
            _via_secrets_manager(
                names,
                f"KmsViaSecretsManagerForReplica{index + 1}",
                ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                region,
            )
            for index, region in enumerate(config.replica_regions)
        ),
        # Every key of the regions (the key policies admit only this environment's apply roles);
        # an alias action is authorized on the alias and on the key it points to.
        _statement("KeysAndTheirAliases", [*_KEY_APPLY_ACTIONS, *_ALIAS_ACTIONS], [*names.aliases, *names.keys]),
        _wildcard(
            "CreateKeyTaggedForThisEnvironment",
            ["kms:CreateKey"],
            {"StringEquals": {f"aws:RequestTag/{key}": names.default_tags[key] for key in ("Project", "Environment")}},
        ),
        _wildcard("ListAliases", ["kms:ListAliases"]),
        *_if_any("RolesItCreates", _ROLE_APPLY_ACTIONS, names.created_roles),
        # The roles the env file names: data sources and the caller check read them.
        _statement("RolesTheEnvFileNames", ["iam:GetRole"], names.named_roles),
        # Refreshing a policy attachment lists the role's managed policies, also for a role
        # since removed from the env file, whose attachment Terraform then deletes.
        _statement("ListAttachedPoliciesOfAnyRole", ["iam:ListAttachedRolePolicies"], names.iam("role/*")),
        _statement(
            "AttachItsPoliciesToItsRoles",
            ["iam:AttachRolePolicy"],
            names.attachment_targets,
            _attached_policies_only(names),
        ),
        # Detaching takes access away: allowed from any role, so removing a role from the env
        # file removes its attachment too. Only this environment's policies.
        _statement(
            "DetachItsPoliciesFromAnyRole",
            ["iam:DetachRolePolicy"],
            names.iam("role/*"),
            _attached_policies_only(names),
        ),
        _statement("ItsPolicies", _POLICY_APPLY_ACTIONS, names.policies()),
    ]
    if config.rotation.enabled:
        statements += [
            _statement(
                "PassTheRotationRoleToLambdaOnly",
                ["iam:PassRole"],
                names.rotation_role,
                {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
            ),
            _statement("RotationFunction", _FUNCTION_APPLY_ACTIONS, names.function),
            _statement(
                "InvokePermissionForSecretsManagerOnly",
                ["lambda:AddPermission"],
                names.function,
                {"StringEquals": {"lambda:Principal": "secretsmanager.amazonaws.com"}},
            ),
        ]
    statements += [
        *_if_any("LogGroupsItCreates", _LOG_GROUP_APPLY_ACTIONS, names.created_log_groups),
        _statement("MetricFilters", _METRIC_FILTER_APPLY_ACTIONS, names.filtered_log_groups),
        _wildcard("DescribeLogGroups", ["logs:DescribeLogGroups"]),
        _statement("Alarms", _ALARM_APPLY_ACTIONS, names.alarms),
        # DescribeAlarms is authorized on every alarm of the region, not on the names asked for.
        _statement(
            "DescribeAlarmsIsAuthorizedOnAllAlarms", ["cloudwatch:DescribeAlarms"], names.arn("cloudwatch", "alarm:*")
        ),
        # A subscription's ARN is the topic's followed by ":<id>".
        _statement(
            "AlertTopicAndItsSubscriptions",
            [*_TOPIC_APPLY_ACTIONS, *_SUBSCRIPTION_APPLY_ACTIONS],
            [names.topic, f"{names.topic}:*"],
        ),
        _statement(
            "SubscribeOnlyTheAlertEmails",
            ["sns:Subscribe"],
            names.topic,
            {"StringEquals": {"sns:Protocol": "email", "sns:Endpoint": list(config.alert_emails)}},
        ),
        *_state_statements(config, write_state=True),
    ]
    return statements


def _plan_statements(names: _Names) -> list[Statement]:
    config = names.config
    statements = [
        _statement("ReadThisSecret", _SECRET_PLAN_ACTIONS, names.secrets),
        _via_secrets_manager(names, "KmsViaSecretsManagerForThisSecret", ["kms:Decrypt"], names.region),
        _statement("ReadKeys", _KEY_READ_ACTIONS, names.keys),
        _wildcard("ListAliases", ["kms:ListAliases"]),
        *_if_any("ReadRolesItCreates", _ROLE_PLAN_ACTIONS, names.created_roles),
        _statement("RolesTheEnvFileNames", ["iam:GetRole"], names.named_roles),
        _statement("ListAttachedPoliciesOfAnyRole", ["iam:ListAttachedRolePolicies"], names.iam("role/*")),
        _statement("ReadItsPolicies", _POLICY_PLAN_ACTIONS, names.policies()),
    ]
    if config.rotation.enabled:
        statements.append(_statement("ReadRotationFunction", _FUNCTION_PLAN_ACTIONS, names.function))
    statements += [
        *_if_any("ReadLogGroupsItCreates", ["logs:ListTagsForResource"], names.created_log_groups),
        _statement("ReadMetricFilters", ["logs:DescribeMetricFilters"], names.filtered_log_groups),
        _wildcard("DescribeLogGroups", ["logs:DescribeLogGroups"]),
        _statement("ReadAlarms", ["cloudwatch:ListTagsForResource"], names.alarms),
        _statement(
            "DescribeAlarmsIsAuthorizedOnAllAlarms", ["cloudwatch:DescribeAlarms"], names.arn("cloudwatch", "alarm:*")
        ),
        _statement(
            "ReadAlertTopicAndItsSubscriptions",
            ["sns:GetSubscriptionAttributes", "sns:GetTopicAttributes", "sns:ListTagsForResource"],
            [names.topic, f"{names.topic}:*"],
        ),
        *_state_statements(config, write_state=False),
    ]
    return statements


def _state_statements(config: EnvironmentConfig, *, write_state: bool) -> list[Statement]:
    """The S3 backend's bucket and objects (Terraform's S3 backend documentation). A plan
    reads the state and takes the lock (writes and deletes `<key>.tflock`); only an apply
    writes the state. Terraform never deletes the state object."""
    backend = config.backend
    if not isinstance(backend, S3BackendConfig):
        return []
    bucket = f"arn:{PARTITION}:s3:::{backend.bucket}"
    state, lock = f"{bucket}/{backend.key}", f"{bucket}/{backend.key}.tflock"
    statements = [
        _statement("StateBucket", ["s3:ListBucket"], bucket),
        _statement(
            "StateObjectReadWrite" if write_state else "StateObjectRead",
            ["s3:GetObject", *(["s3:PutObject"] if write_state else [])],
            state,
        ),
    ]
    if backend.use_lockfile:
        statements.append(_statement("StateLockObject", ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], lock))
    return statements


# -- files ---------------------------------------------------------------------------------


def render(document: Document) -> str:
    return json.dumps(document, indent=2) + "\n"


def expected_files(configs: Iterable[EnvironmentConfig], out_dir: Path) -> dict[Path, str]:
    """Every policy file and its content, for these environments."""
    files: dict[Path, str] = {}
    for config in configs:
        for kind, document in pipeline_policies(config).items():
            files[out_dir / config.environment / POLICY_FILES[kind]] = render(document)
    return files


def _leftovers(expected: dict[Path, str], out_dir: Path) -> list[Path]:
    """Policy files of environments that no longer have an env file."""
    found = (path for name in POLICY_FILES.values() for path in out_dir.glob(f"*/{name}"))
    return sorted(path for path in found if path not in expected)


def stale_files(configs: Iterable[EnvironmentConfig], out_dir: Path) -> list[str]:
    """One line per file that is missing, differs from what the env file gives, or belongs
    to no environment."""
    expected = expected_files(configs, out_dir)
    problems = []
    for path, content in sorted(expected.items()):
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{path}: stale")
    problems += [f"{path}: no env file for it" for path in _leftovers(expected, out_dir)]
    return problems


def write_files(configs: Iterable[EnvironmentConfig], out_dir: Path) -> list[Path]:
    """Write every policy file (removing those of environments that are gone); returns what changed."""
    expected = expected_files(configs, out_dir)
    changed = []
    for path, content in sorted(expected.items()):
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            changed.append(path)
    for path in _leftovers(expected, out_dir):
        path.unlink()
        changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.pipeline_policies", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale or missing")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "iam", help="default: iam/")
    args = parser.parse_args(argv)
    envs_dir = Path(os.environ.get("CREDLINK_ENVS_DIR", PROJECT_ROOT / "envs"))
    try:
        configs = load_environments(envs_dir.glob("*.toml"))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.check:
        problems = stale_files(configs, args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make pipeline-policies` and review the change", file=sys.stderr)
        return 1 if problems else 0
    for path in write_files(configs, args.out):
        print(f"{'wrote' if path.exists() else 'removed'} {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
