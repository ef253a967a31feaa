"""The least-privilege policy that lets the service's *task* roles read the keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from constructs import Construct

from stacks.account import AccountContext
from stacks.aws import DataAwsIamPolicyDocument, IamPolicy, IamRolePolicyAttachment
from stacks.policy import Statement, condition

__all__ = ["READ_ACTIONS", "ReadableSecret", "SecretReadPolicy", "attached_policy", "key_use_for_secret"]

# GetSecretValue loads the keys; DescribeSecret lets the loader see a new AWSCURRENT version
# (after a rotation) without fetching the value again.
READ_ACTIONS = ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue")


@dataclass(frozen=True)
class ReadableSecret:
    """One copy of the secret (the primary or a replica) and the key that encrypts it."""

    region: str
    secret_arn: str
    kms_key_arn: str


class SecretReadPolicy(Construct):
    """Read access to exactly this environment's secret, and decrypt with exactly its key(s),
    only through Secrets Manager and only for this secret's encryption context."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account: AccountContext,
        policy_name: str,
        secrets: Sequence[ReadableSecret],
        task_role_names: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        statements: list[Statement] = [
            {
                "sid": "ReadApiKeysSecret",
                "actions": list(READ_ACTIONS),
                "resources": [secret.secret_arn for secret in secrets],
            }
        ]
        statements += [
            key_use_for_secret(f"DecryptApiKeysSecret{index}", ["kms:Decrypt"], secret, account)
            for index, secret in enumerate(secrets)
        ]
        self.document, self.policy = attached_policy(
            self,
            policy_name=policy_name,
            description="Read the service's API keys from Secrets Manager (attach to the ECS *task* role)",
            statements=statements,
            role_names=task_role_names,
            attachment_prefix="task_role",
        )


def attached_policy(
    scope: Construct,
    *,
    policy_name: str,
    description: str,
    statements: list[Statement],
    role_names: Sequence[str],
    attachment_prefix: str,
) -> tuple[DataAwsIamPolicyDocument, IamPolicy]:
    """A managed policy of `statements` in `scope` (ids `document`, `policy`), attached to each role."""
    document = DataAwsIamPolicyDocument(scope, "document", statement=statements)
    policy = IamPolicy(scope, "policy", name=policy_name, description=description, policy=document.json)
    for index, role_name in enumerate(role_names):
        IamRolePolicyAttachment(scope, f"{attachment_prefix}_{index}", role=role_name, policy_arn=policy.arn)
    return document, policy


def key_use_for_secret(sid: str, actions: Sequence[str], secret: ReadableSecret, account: AccountContext) -> Statement:
    """`actions` on the secret's key, only through Secrets Manager in its region and only for
    this secret's encryption context."""
    return {
        "sid": sid,
        "actions": list(actions),
        "resources": [secret.kms_key_arn],
        "condition": [
            condition(
                "StringEquals", "kms:ViaService", account.service_endpoint("secretsmanager", region=secret.region)
            ),
            condition("StringEquals", "kms:EncryptionContext:SecretARN", secret.secret_arn),
        ],
    }
