"""One stack per environment: the KMS key(s), the secrets module, the read policy, alerts."""

from __future__ import annotations

from cdktf import (
    DataResource,
    Fn,
    LocalBackend,
    S3Backend,
    TerraformHclModule,
    TerraformOutput,
    TerraformResourceLifecycle,
    TerraformStack,
    TerraformVariable,
    Token,
)
from constructs import Construct

from stacks.account import AccountContext
from stacks.alerts import AlertTopic, LoaderAlarms
from stacks.aws import AwsProvider, DataAwsCallerIdentity, DataAwsIamSessionContext, DataAwsPartition
from stacks.config import EnvironmentConfig, LocalBackendConfig
from stacks.demo_service import DemoService
from stacks.kms import SecretsKey
from stacks.read_policy import ReadableSecret, SecretReadPolicy
from stacks.rotation import RotationFunction

__all__ = ["SECRETS_MODULE_SOURCE", "SecretsStack"]

# Relative to the project root (the synthesizing process's working directory); cdktf copies
# the module into the stack's assets so `cdktf.out/stacks/<env>` is self-contained.
SECRETS_MODULE_SOURCE = "./modules/secrets"


class SecretsStack(TerraformStack):
    """Everything one environment needs to keep its API keys in Secrets Manager."""

    def __init__(
        self, scope: Construct, stack_id: str, *, config: EnvironmentConfig, rotation_package_path: str
    ) -> None:
        """`rotation_package_path`: the rotation function's code, a zip of the `apikeys`
        package with `apikeys.rotation`, copied into the stack's assets."""
        super().__init__(scope, stack_id)
        self._configure_backend(config)
        tags = {"Project": config.project_name, "Environment": config.environment, "ManagedBy": "cdktf", **config.tags}
        AwsProvider(self, "aws", region=config.region, default_tags=[{"tags": tags}])
        replica_providers = {
            region: AwsProvider(
                self,
                f"aws_{_snake(region)}",
                alias=_snake(region),
                region=region,
                default_tags=[{"tags": tags}],
            )
            for region in config.replica_regions
        }

        caller = DataAwsCallerIdentity(self, "caller")
        account = AccountContext(
            partition=DataAwsPartition(self, "partition").partition,
            account_id=caller.account_id,
            region=config.region,
        )
        # The deploying principal as an IAM ARN (an assumed role's session resolves to its role).
        deployer = DataAwsIamSessionContext(self, "deployer", arn=caller.arn).issuer_arn
        key_admins = [deployer, *(account.role_arn(name) for name in config.kms_admin_role_names)]
        prefix = config.name_prefix
        alarm_prefix = f"{prefix}-api-keys-"
        demo = config.service.create_demo_resources
        rotation_function_name = f"{prefix}-api-keys-rotation"
        logged_groups = [
            *([config.service.log_group_name] if demo else []),
            *([f"/aws/lambda/{rotation_function_name}"] if config.rotation.enabled else []),
        ]

        key = SecretsKey(
            self,
            "secrets_key",
            account=account,
            key_region=config.region,
            kms_alias_name=f"alias/{prefix}-api-keys",
            kms_deletion_window_days=config.kms_deletion_window_days,
            secret_name=config.secret_name,
            admin_principal_arns=key_admins,
            alarm_name_prefix=alarm_prefix,
            log_group_names=logged_groups,
            prevent_destroy=config.deletion_protection,
        )
        replica_keys = {}
        for region, provider in replica_providers.items():
            replica_key = SecretsKey(
                self,
                f"replica_key_{_snake(region)}",
                account=account,
                key_region=region,
                kms_alias_name=f"alias/{prefix}-api-keys",
                kms_deletion_window_days=config.kms_deletion_window_days,
                secret_name=config.secret_name,
                admin_principal_arns=key_admins,
                prevent_destroy=config.deletion_protection,
                provider=provider,
            )
            replica_keys[region] = replica_key

        if demo:
            service = DemoService(
                self,
                "demo_service",
                account=account,
                task_role_names=config.service.task_role_names,
                log_group_name=config.service.log_group_name,
                kms_key_arn=key.key_arn,
            )
            task_role_names = [role.name for role in service.roles]
            task_role_arns = [role.arn for role in service.roles]
            log_group_name = service.log_group.name
        else:
            task_role_names = list(config.service.task_role_names)
            task_role_arns = [account.role_arn(name) for name in config.service.task_role_names]
            log_group_name = config.service.log_group_name

        secret_value = TerraformVariable(
            self,
            "api_keys_secret_string",
            type="string",
            sensitive=True,
            nullable=True,
            description=(
                'Optional JSON value {"apiKeys": "key:clientId:Name,..."} written through the write-only '
                "argument; never stored in plan or state. Prefer `apikeys migrate`."
            ),
        )
        secret_value.add_override("ephemeral", True)
        secret_value.add_override("default", Token.null_value())
        secret_version = TerraformVariable(
            self,
            "api_keys_secret_version",
            type="number",
            nullable=True,
            description="Bump to write api_keys_secret_string as a new secret version; null writes nothing.",
        )
        secret_version.add_override("default", Token.null_value())

        secrets = TerraformHclModule(
            self,
            "secrets",
            source=SECRETS_MODULE_SOURCE,
            variables={
                "name": config.secret_name,
                "kms_key_arn": key.key_arn,
                "recovery_window_days": config.recovery_window_days,
                "replicas": [
                    {"region": region, "kms_key_arn": replica_key.key_arn}
                    for region, replica_key in replica_keys.items()
                ],
                "read_principal_arns": task_role_arns,
                "secret_string": secret_value.string_value,
                "secret_string_version": secret_version.number_value,
            },
        )
        secret_arn = secrets.get_string("secret_arn")
        if config.deletion_protection:
            # A module call takes no lifecycle block, so the secret is guarded by a resource that
            # must be replaced whenever the secret is, and refuses to be.
            DataResource(
                self,
                "secret_destroy_guard",
                triggers_replace={"secret_arn": secret_arn},
                lifecycle=TerraformResourceLifecycle(prevent_destroy=True),
            )

        readable_secrets = [
            ReadableSecret(region=config.region, secret_arn=secret_arn, kms_key_arn=key.key_arn),
            *(
                ReadableSecret(
                    region=region,
                    secret_arn=Fn.replace(secret_arn, f":{config.region}:", f":{region}:"),
                    kms_key_arn=replica_key.key_arn,
                )
                for region, replica_key in replica_keys.items()
            ),
        ]
        read_policy = SecretReadPolicy(
            self,
            "read_policy",
            account=account,
            policy_name=f"{prefix}-api-keys-read",
            secrets=readable_secrets,
            task_role_names=task_role_names,
        )

        alerts = AlertTopic(
            self,
            "alerts",
            account=account,
            topic_name=f"{prefix}-api-keys-alerts",
            kms_key_arn=key.key_arn,
            alarm_name_prefix=alarm_prefix,
            email_endpoints=config.alert_emails,
        )
        metric_namespace = f"{config.project_name}/{config.environment}/ApiKeys"
        LoaderAlarms(
            self,
            "loader_alarms",
            log_group_name=log_group_name,
            metric_namespace=metric_namespace,
            alarm_name_prefix=alarm_prefix,
            topic_arn=alerts.topic_arn,
        )

        if config.rotation.enabled:
            rotation = RotationFunction(
                self,
                "rotation",
                account=account,
                function_name=rotation_function_name,
                handler_package_path=rotation_package_path,
                secrets=readable_secrets,
                log_group_kms_key_arn=key.key_arn,
                alarm_name_prefix=alarm_prefix,
                metric_namespace=metric_namespace,
                topic_arn=alerts.topic_arn,
            )
            # Set after the module call: the function needs the secret's ARN, the secret's
            # rotation needs the function (Terraform orders the resources, not the module).
            secrets.set("read_principal_arns", [*task_role_arns, rotation.role.arn])
            secrets.set("rotation_enabled", True)
            secrets.set("rotation_lambda_arn", rotation.invocable_arn)
            secrets.set("rotation_days", config.rotation.days)

        TerraformOutput(self, "secret_arn", value=secret_arn, description="Set API_KEYS_SECRET_ARN to this value.")
        TerraformOutput(self, "kms_key_arn", value=key.key_arn, description="The CMK that encrypts the secret.")
        TerraformOutput(self, "alert_topic_arn", value=alerts.topic_arn, description="Alarms publish here.")
        TerraformOutput(
            self,
            "read_policy_arn",
            value=read_policy.policy.arn,
            description="Attached to the service's ECS task role(s), not the execution role.",
        )

    def _configure_backend(self, config: EnvironmentConfig) -> None:
        backend = config.backend
        if isinstance(backend, LocalBackendConfig):
            # Relative to cdktf.out/stacks/<env>: state lives at the project root, outside the
            # synthesized (and disposable) output, at the same place for every checkout.
            LocalBackend(self, path=f"../../../terraform.{config.environment}.tfstate")
        else:
            s3 = S3Backend(self, bucket=backend.bucket, key=backend.key, region=backend.region, encrypt=True)
            # cdktf 0.21 predates S3-native locking (Terraform >= 1.10); set it directly.
            s3.add_override("use_lockfile", backend.use_lockfile)


def _snake(name: str) -> str:
    return name.replace("-", "_")
