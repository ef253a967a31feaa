"""The environment's customer-managed KMS keys and their key policies.

Two keys in the primary region, so that losing one cannot silence the alarm about it:
- the secrets key encrypts the secret (and, in each replica region, a key of that region
  encrypts the replica);
- the monitoring key encrypts the alert topic and the log groups the alarms read. If the
  secrets key is disabled or pending deletion (what the `decrypt` alarm reports), the log
  line is still written and the alarm still delivered.

In a key policy `Resource: "*"` means this key: AWS requires that form, because the policy
exists before the key's ARN does. Statements whose principal is the account root delegate to
IAM: the named role must also be allowed by its own IAM policies, and `aws:PrincipalArn`
limits the statement to exactly the roles the env file names.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import Precondition, TerraformResourceLifecycle
from constructs import Construct

from stacks.account import AccountContext
from stacks.aws import AwsProvider, DataAwsIamPolicyDocument, KmsAlias, KmsKey
from stacks.policy import Statement, condition, principals

__all__ = ["KEY_ADMIN_ACTIONS", "KEY_METADATA_ACTIONS", "KeyAccess", "MonitoringKey", "SecretsKey"]

# What `terraform plan` reads to refresh an aws_kms_key, and `apikeys verify` checks.
KEY_METADATA_ACTIONS = (
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListResourceTags",
)
# Named one by one rather than kms:* or kms:Create*: the administrators can manage the key
# (and so never lock themselves out) but administration grants no cryptographic use.
KEY_ADMIN_ACTIONS = tuple(
    sorted(
        (
            *KEY_METADATA_ACTIONS,
            "kms:CancelKeyDeletion",
            "kms:CreateAlias",
            "kms:DeleteAlias",
            "kms:DisableKey",
            "kms:DisableKeyRotation",
            "kms:EnableKey",
            "kms:EnableKeyRotation",
            "kms:ListAliases",
            "kms:PutKeyPolicy",
            "kms:RotateKeyOnDemand",
            "kms:ScheduleKeyDeletion",
            "kms:TagResource",
            "kms:UntagResource",
            "kms:UpdateAlias",
            "kms:UpdateKeyDescription",
        )
    )
)

_ENVELOPE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# Replicating a version encrypts it with the replica region's key on the writer's behalf:
# Secrets Manager calls kms:Encrypt there as well as GenerateDataKey (ReplicateSecretToRegions,
# "Troubleshoot replication": the writer needs kms:Encrypt on the replica key).
_REPLICA_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")

# No kms:DescribeKey: it carries no encryption context, so the condition below could never match.
_LOGS_ACTIONS = (
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)


class KeyAccess:
    """Who administers a key and who may read its metadata (IAM role ARNs)."""

    def __init__(self, *, administrators: Sequence[str], metadata_readers: Sequence[str]) -> None:
        self.administrators = tuple(administrators)
        self.metadata_readers = tuple(reader for reader in metadata_readers if reader not in administrators)

    def statements(self, account: AccountContext) -> list[Statement]:
        root = principals("AWS", account.root_arn)
        statements: list[Statement] = [
            {
                # The apply and admin roles and the account's root user (break-glass), not
                # every principal in the account.
                "sid": "KeyAdministrators",
                "principals": root,
                "actions": list(KEY_ADMIN_ACTIONS),
                "resources": ["*"],
                "condition": [condition("ArnEquals", "aws:PrincipalArn", account.root_arn, *self.administrators)],
            }
        ]
        if self.metadata_readers:
            statements.append(
                {
                    # Plan roles refresh the key; operators check its rotation. No policy change, no use.
                    "sid": "KeyMetadataReaders",
                    "principals": root,
                    "actions": list(KEY_METADATA_ACTIONS),
                    "resources": ["*"],
                    "condition": [condition("ArnEquals", "aws:PrincipalArn", *self.metadata_readers)],
                }
            )
        return statements


class _Key(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        statements: list[Statement],
        description: str,
        kms_alias_name: str,
        kms_deletion_window_days: int,
        prevent_destroy: bool,
        provider: AwsProvider | None,
        precondition: Sequence[Precondition] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.policy = DataAwsIamPolicyDocument(self, "policy", statement=statements, provider=provider)
        self.key = KmsKey(
            self,
            "key",
            description=description,
            enable_key_rotation=True,
            deletion_window_in_days=kms_deletion_window_days,
            policy=self.policy.json,
            provider=provider,
            lifecycle=TerraformResourceLifecycle(
                prevent_destroy=prevent_destroy or None, precondition=list(precondition) or None
            )
            if prevent_destroy or precondition
            else None,
        )
        self.alias = KmsAlias(self, "alias", name=kms_alias_name, target_key_id=self.key.key_id, provider=provider)

    @property
    def key_arn(self) -> str:
        return self.key.arn


class SecretsKey(_Key):
    """A symmetric key with rotation on, used only by Secrets Manager for this one secret
    (in the key's region: the primary or a replica)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account: AccountContext,
        key_region: str,
        kms_alias_name: str,
        kms_deletion_window_days: int,
        secret_name: str,
        access: KeyAccess,
        secret_users: Sequence[str],
        replica: bool = False,
        prevent_destroy: bool = False,
        provider: AwsProvider | None = None,
        precondition: Sequence[Precondition] = (),
    ) -> None:
        secret_arn_pattern = account.arn("secretsmanager", f"secret:{secret_name}-??????", region=key_region)
        statements: list[Statement] = [
            *access.statements(account),
            {
                # Only the roles that read or write the secret (task roles, operators, the
                # rotation function, the pipeline), each also needing its own IAM permission;
                # nobody gets the key directly or for another secret.
                "sid": "SecretsManagerUseForThisSecret",
                "principals": principals("AWS", account.root_arn),
                "actions": list(_REPLICA_ACTIONS if replica else _ENVELOPE_ACTIONS),
                "resources": ["*"],
                "condition": [
                    condition("ArnEquals", "aws:PrincipalArn", *secret_users),
                    condition(
                        "StringEquals", "kms:ViaService", account.service_endpoint("secretsmanager", region=key_region)
                    ),
                    condition("StringEquals", "kms:CallerAccount", account.account_id),
                    condition("StringLike", "kms:EncryptionContext:SecretARN", secret_arn_pattern),
                ],
            },
        ]
        super().__init__(
            scope,
            construct_id,
            statements=statements,
            description=f"Encrypts the API keys secret {secret_name} ({key_region})",
            kms_alias_name=kms_alias_name,
            kms_deletion_window_days=kms_deletion_window_days,
            prevent_destroy=prevent_destroy,
            provider=provider,
            precondition=precondition,
        )


class MonitoringKey(_Key):
    """A symmetric key with rotation on for the alert topic and the alarmed log groups."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account: AccountContext,
        kms_alias_name: str,
        kms_deletion_window_days: int,
        topic_name: str,
        alarm_name_prefix: str,
        log_group_names: Sequence[str],
        access: KeyAccess,
        prevent_destroy: bool = False,
    ) -> None:
        statements: list[Statement] = [
            *access.statements(account),
            {
                # CloudWatch encrypts the alarm's message for the topic (SNS asks it to, as the
                # publisher): only this account's alarms, only for this topic.
                "sid": "CloudWatchAlarmsPublishToTheAlertTopic",
                "principals": principals("Service", "cloudwatch.amazonaws.com"),
                "actions": list(_ENVELOPE_ACTIONS),
                "resources": ["*"],
                "condition": [
                    condition("StringEquals", "aws:SourceAccount", account.account_id),
                    condition("ArnLike", "aws:SourceArn", account.arn("cloudwatch", f"alarm:{alarm_name_prefix}*")),
                    condition("StringEquals", "kms:EncryptionContext:aws:sns:topicArn", account.arn("sns", topic_name)),
                ],
            },
        ]
        if log_group_names:
            statements.append(
                {
                    "sid": "CloudWatchLogsUseForTheseLogGroups",
                    "principals": principals("Service", account.service_endpoint("logs")),
                    "actions": list(_LOGS_ACTIONS),
                    "resources": ["*"],
                    "condition": [
                        condition(
                            "StringEquals",  # encryption context values are strings, not ARN-typed
                            "kms:EncryptionContext:aws:logs:arn",
                            *(account.arn("logs", f"log-group:{name}") for name in log_group_names),
                        ),
                    ],
                }
            )
        super().__init__(
            scope,
            construct_id,
            statements=statements,
            description=f"Encrypts the alert topic {topic_name} and the log groups its alarms read",
            kms_alias_name=kms_alias_name,
            kms_deletion_window_days=kms_deletion_window_days,
            prevent_destroy=prevent_destroy,
            provider=None,
        )
