"""The environment's customer-managed KMS key and its key policy."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import TerraformResourceLifecycle
from constructs import Construct

from stacks.account import AccountContext
from stacks.aws import AwsProvider, DataAwsIamPolicyDocument, KmsAlias, KmsKey
from stacks.policy import Statement, condition, principals

__all__ = ["KEY_ADMIN_ACTIONS", "SecretsKey"]

# Named one by one rather than kms:* or kms:Create*: the administrators can manage the key
# (and so never lock themselves out) but administration grants no cryptographic use.
KEY_ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)

_ENVELOPE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")

# No kms:DescribeKey: it carries no encryption context, so the condition below could never match.
_LOGS_ACTIONS = (
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)


class SecretsKey(Construct):
    """A symmetric key with rotation on, used by Secrets Manager (and, in the primary region,
    by the alert topic, the alarms that publish to it and the given log groups).

    In a key policy `Resource: "*"` means this key: AWS requires that form, because the
    policy exists before the key's ARN does.
    """

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
        admin_principal_arns: Sequence[str],
        alarm_name_prefix: str | None = None,
        log_group_names: Sequence[str] = (),
        prevent_destroy: bool = False,
        provider: AwsProvider | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        secret_arn_pattern = account.arn("secretsmanager", f"secret:{secret_name}-??????", region=key_region)
        root = principals("AWS", account.root_arn)
        statements: list[Statement] = [
            {
                # Only the deploying principal, the configured admin roles and the account's
                # root user (break-glass) administer the key, not every principal in the account.
                "sid": "KeyAdministrators",
                "principals": root,
                "actions": list(KEY_ADMIN_ACTIONS),
                "resources": ["*"],
                "condition": [condition("ArnEquals", "aws:PrincipalArn", account.root_arn, *admin_principal_arns)],
            },
            {
                "sid": "SecretsManagerUseForThisSecret",
                "principals": root,
                "actions": list(_ENVELOPE_ACTIONS),
                "resources": ["*"],
                "condition": [
                    condition(
                        "StringEquals", "kms:ViaService", account.service_endpoint("secretsmanager", region=key_region)
                    ),
                    condition("StringEquals", "kms:CallerAccount", account.account_id),
                    condition("StringLike", "kms:EncryptionContext:SecretARN", secret_arn_pattern),
                ],
            },
        ]
        if alarm_name_prefix is not None:
            statements += [
                {
                    "sid": "SnsUseForTheAlertTopic",
                    "principals": root,
                    "actions": list(_ENVELOPE_ACTIONS),
                    "resources": ["*"],
                    "condition": [
                        condition("StringEquals", "kms:ViaService", account.service_endpoint("sns", region=key_region)),
                        condition("StringEquals", "kms:CallerAccount", account.account_id),
                    ],
                },
                {
                    "sid": "CloudWatchAlarmsPublishToTheAlertTopic",
                    "principals": principals("Service", "cloudwatch.amazonaws.com"),
                    "actions": list(_ENVELOPE_ACTIONS),
                    "resources": ["*"],
                    "condition": [
                        condition("StringEquals", "aws:SourceAccount", account.account_id),
                        condition(
                            "ArnLike",
                            "aws:SourceArn",
                            account.arn("cloudwatch", f"alarm:{alarm_name_prefix}*", region=key_region),
                        ),
                    ],
                },
            ]
        if log_group_names:
            statements.append(
                {
                    "sid": "CloudWatchLogsUseForTheseLogGroups",
                    "principals": principals("Service", account.service_endpoint("logs", region=key_region)),
                    "actions": list(_LOGS_ACTIONS),
                    "resources": ["*"],
                    "condition": [
                        condition(
                            "StringEquals",  # encryption context values are strings, not ARN-typed
                            "kms:EncryptionContext:aws:logs:arn",
                            *(account.arn("logs", f"log-group:{name}", region=key_region) for name in log_group_names),
                        ),
                    ],
                }
            )

        self.policy = DataAwsIamPolicyDocument(self, "policy", statement=statements, provider=provider)
        self.key = KmsKey(
            self,
            "key",
            description=f"Encrypts the API keys secret {secret_name} ({key_region})",
            enable_key_rotation=True,
            deletion_window_in_days=kms_deletion_window_days,
            policy=self.policy.json,
            provider=provider,
            lifecycle=TerraformResourceLifecycle(prevent_destroy=True) if prevent_destroy else None,
        )
        self.alias = KmsAlias(self, "alias", name=kms_alias_name, target_key_id=self.key.key_id, provider=provider)

    @property
    def key_arn(self) -> str:
        return self.key.arn
