"""The rotation function: the packaged `apikeys.rotation` handler, its least-privilege role,
encrypted log group and alarms, and the invoke permission for Secrets Manager on this one
secret."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import AssetType, TerraformAsset
from constructs import Construct

from apikeys.events import ROTATION_FAILED
from stacks.account import AccountContext
from stacks.alerts import alarm_on_log_event, count_alarm
from stacks.aws import (
    CloudwatchLogGroup,
    DataAwsIamPolicyDocument,
    IamRole,
    IamRolePolicy,
    LambdaFunction,
    LambdaPermission,
)
from stacks.demo_service import LOG_RETENTION_DAYS
from stacks.policy import assume_role_statement
from stacks.read_policy import ReadableSecret, key_use_for_secret

__all__ = ["ROTATION_ACTIONS", "ROTATION_HANDLER", "RotationFunction"]

ROTATION_HANDLER = "apikeys.rotation.handler"
ROTATION_RUNTIME = "python3.12"
# What the four steps call, on this secret only. No GetRandomPassword: new keys come from
# Python's `secrets` (one call per client would be thousands per rotation).
ROTATION_ACTIONS = (
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
)

_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# Each new version is replicated: Secrets Manager encrypts it with the replica region's key
# on the writer's behalf, with kms:Encrypt.
_REPLICA_KEY_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")


class RotationFunction(Construct):
    """One Lambda per environment that rotates the API keys secret.

    `invocable_arn` is the function's ARN read through the invoke permission, so whatever
    is configured with it (the secret's rotation) is created after Secrets Manager may call it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account: AccountContext,
        function_name: str,
        handler_package_path: str,  # the zip of the `apikeys` package (main.py builds it)
        secrets: Sequence[ReadableSecret],  # the primary first, then its replicas
        log_group_kms_key_arn: str,
        alarm_name_prefix: str,
        metric_namespace: str,
        topic_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        primary = secrets[0]
        package = TerraformAsset(self, "package", path=handler_package_path, type=AssetType.FILE)
        trust = DataAwsIamPolicyDocument(
            self,
            "trust",
            statement=[assume_role_statement("LambdaInThisAccount", "lambda.amazonaws.com", account.account_id)],
        )
        self.role = IamRole(
            self,
            "role",
            name=function_name,
            description=f"The rotation function {function_name}: rotates one API keys secret",
            assume_role_policy=trust.json,
        )
        self.log_group = CloudwatchLogGroup(
            self,
            "log_group",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=LOG_RETENTION_DAYS,
            kms_key_id=log_group_kms_key_arn,
        )
        self.policy_document = DataAwsIamPolicyDocument(
            self,
            "policy_document",
            statement=[
                {
                    "sid": "RotateThisSecret",
                    "actions": list(ROTATION_ACTIONS),
                    "resources": [primary.secret_arn],
                },
                # Each new version is encrypted in every region it is replicated to, with that
                # region's key, on the rotation function's behalf.
                *(
                    key_use_for_secret(
                        f"UseTheKeysForThisSecretOnly{index}",
                        _REPLICA_KEY_ACTIONS if index else _KEY_ACTIONS,
                        secret,
                        account,
                    )
                    for index, secret in enumerate(secrets)
                ),
                {
                    "sid": "WriteItsOwnLog",
                    "actions": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "resources": [f"{self.log_group.arn}:log-stream:*"],
                },
                {
                    # X-Ray has no resource-level permissions: "*" is the only resource it accepts.
                    "sid": "WriteTraces",
                    "actions": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
                    "resources": ["*"],
                },
            ],
        )
        role_policy = IamRolePolicy(
            self, "policy", name="rotate-api-keys", role=self.role.id, policy=self.policy_document.json
        )
        # Reviewed checkov skips (.checkov-skips.yaml): CKV_AWS_117, no VPC (no inbound surface; it
        # calls only Secrets Manager, and these stacks own no network); CKV_AWS_272, no code
        # signing (the package is built at synthesis from this repository's reviewed code);
        # CKV_AWS_116, no dead-letter queue (Secrets Manager invokes the function synchronously,
        # and a DLQ serves only asynchronous invocations: failures raise the alarms below);
        # CKV_AWS_173 on plans of the deployed function (no environment variables to encrypt).
        self.function = LambdaFunction(
            self,
            "function",
            function_name=function_name,
            description="Rotates the API keys secret (Secrets Manager's four-step protocol)",
            role=self.role.arn,
            runtime=ROTATION_RUNTIME,
            handler=ROTATION_HANDLER,
            filename=package.path,
            source_code_hash=package.asset_hash,
            timeout=60,
            memory_size=256,
            # One rotation at a time: a second concurrent run of the same steps could only race the first.
            reserved_concurrent_executions=1,
            tracing_config={"mode": "Active"},
            depends_on=[role_policy, self.log_group],  # its log lines go to the encrypted group from the start
        )
        self.permission = LambdaPermission(
            self,
            "invoke_by_secrets_manager",
            statement_id="SecretsManagerRotatesThisSecret",
            action="lambda:InvokeFunction",
            function_name=self.function.arn,
            principal="secretsmanager.amazonaws.com",
            source_arn=primary.secret_arn,
            source_account=account.account_id,
        )

        count_alarm(
            self,
            "errors_alarm",
            alarm_name=f"{alarm_name_prefix}rotation-errors",
            description="The rotation function failed an invocation: AWSCURRENT is unchanged; see its log.",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": self.function.function_name},
            period_seconds=300,
            topic_arn=topic_arn,
        )
        alarm_on_log_event(
            self,
            ROTATION_FAILED,
            log_group_name=self.log_group.name,
            metric_namespace=metric_namespace,
            alarm_name_prefix=alarm_name_prefix,
            topic_arn=topic_arn,
        )

    @property
    def invocable_arn(self) -> str:
        return self.permission.function_name
