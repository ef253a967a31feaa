"""What the environment's operators may do with `apikeys`: read and write the value, start
and cancel rotations, and check the deployment (`verify`). Attached to `access.operator_roles`."""

from __future__ import annotations

from collections.abc import Sequence

from constructs import Construct

from stacks.account import AccountContext
from stacks.kms import KEY_METADATA_ACTIONS
from stacks.policy import Statement
from stacks.read_policy import ReadableSecret, attached_policy, key_use_for_secret

__all__ = ["OPERATOR_ACTIONS", "OperatorPolicy"]

# migrate writes a version; verify and doctor read it and its metadata; rotate starts a
# rotation; a stuck rotation is cancelled by removing AWSPENDING (UpdateSecretVersionStage).
OPERATOR_ACTIONS = (
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:ListSecretVersionIds",
    "secretsmanager:PutSecretValue",
    "secretsmanager:RotateSecret",
    "secretsmanager:UpdateSecretVersionStage",
)


class OperatorPolicy(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account: AccountContext,
        policy_name: str,
        secrets: Sequence[ReadableSecret],  # the primary first, then its replicas
        read_policy_arn: str,
        rotation_function_arn: str | None,
        operator_role_names: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        primary, replicas = secrets[0], secrets[1:]
        statements: list[Statement] = [
            {"sid": "OperateTheSecret", "actions": list(OPERATOR_ACTIONS), "resources": [primary.secret_arn]},
            # A write is encrypted with the primary's key and, to replicate it, with each replica's.
            key_use_for_secret(
                "UseThePrimaryKeyForThisSecret", ["kms:Decrypt", "kms:GenerateDataKey"], primary, account
            ),
            *(
                key_use_for_secret(
                    f"ReplicateWithTheReplicaKey{index}",
                    ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                    replica,
                    account,
                )
                for index, replica in enumerate(replicas)
            ),
            {
                "sid": "CheckTheKeys",
                "actions": list(KEY_METADATA_ACTIONS),
                "resources": [secret.kms_key_arn for secret in secrets],
            },
            {
                "sid": "CheckWhoMayRead",
                "actions": ["iam:ListEntitiesForPolicy"],
                "resources": [read_policy_arn],
            },
        ]
        if rotation_function_arn is not None:
            # RotateSecret checks that its caller may invoke the rotation function.
            statements.append(
                {
                    "sid": "StartRotations",
                    "actions": ["lambda:InvokeFunction"],
                    "resources": [rotation_function_arn],
                }
            )
        self.document, self.policy = attached_policy(
            self,
            policy_name=policy_name,
            description="Operate the service's API keys with apikeys (migrate, verify, rotate)",
            statements=statements,
            role_names=operator_role_names,
            attachment_prefix="operator_role",
        )
