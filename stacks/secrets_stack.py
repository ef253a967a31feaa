"""One stack per environment: the keys, the secrets module, the read and operator policies,
alerts and rotation."""

from __future__ import annotations

from cdktf import (
    DataResource,
    Fn,
    LocalBackend,
    Precondition,
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
from stacks.config import EnvironmentConfig, LocalBackendConfig, role_name
from stacks.demo_service import DemoService
from stacks.kms import KeyAccess, MonitoringKey, SecretsKey
from stacks.operator_policy import OperatorPolicy
from stacks.read_policy import ReadableSecret, SecretReadPolicy
from stacks.roles import ExistingRoles
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
        self.config = config
        self.rotation_package_path = rotation_package_path
        self._configure_backend()
        self._providers()
        caller = DataAwsCallerIdentity(self, "caller")
        self.account = AccountContext(
            partition=DataAwsPartition(self, "partition").partition, account_id=caller.account_id, region=config.region
        )
        # The principal running this plan, as an IAM ARN (an assumed role's session resolves to its role).
        self.caller_arn = DataAwsIamSessionContext(self, "deployer", arn=caller.arn).issuer_arn
        prefix = config.name_prefix
        self.alarm_prefix = f"{prefix}-api-keys-"
        self.rotation_function_name = f"{prefix}-api-keys-rotation"
        self.topic_name = f"{prefix}-api-keys-alerts"

        self._roles()
        self._keys()
        self._service()
        self._secret()
        self._alerts()
        self._policies()
        self._outputs()

    # -- who ---------------------------------------------------------------------------------

    def _roles(self) -> None:
        access, service = self.config.access, self.config.service
        named = [
            *(("access.apply_roles", role) for role in access.apply_roles),
            *(("access.plan_roles", role) for role in access.plan_roles),
            *(("access.key_admin_roles", role) for role in access.key_admin_roles),
            *(("access.operator_roles", role) for role in access.operator_roles),
            *(() if service.create_demo_resources else (("service.task_roles", role) for role in service.task_roles)),
        ]
        roles = ExistingRoles(self, "roles", roles=named, env_file=self.config.source)
        self.apply_arns = [roles.arn(role) for role in access.apply_roles]
        self.plan_arns = [roles.arn(role) for role in access.plan_roles]
        self.admin_arns = [roles.arn(role) for role in access.key_admin_roles]
        self.operator_arns = [roles.arn(role) for role in access.operator_roles]
        self.external_task_arns = (
            [] if service.create_demo_resources else [roles.arn(role) for role in service.task_roles]
        )
        # Created by this stack without a path, so their ARNs are known before they exist.
        demo_task_arns = [self.account.role_arn(role) for role in service.task_roles]
        rotation_role = [self.account.role_arn(self.rotation_function_name)] if self.config.rotation.enabled else []
        self.secret_users = [
            *(demo_task_arns if service.create_demo_resources else self.external_task_arns),
            *self.operator_arns,
            *rotation_role,
            *self.apply_arns,
            *self.plan_arns,
        ]
        self.key_access = KeyAccess(
            administrators=[*self.apply_arns, *self.admin_arns],
            metadata_readers=[*self.plan_arns, *self.operator_arns],
        )

    def _caller_keeps_the_keys(self) -> Precondition:
        """Fail the plan, before anything changes, if the caller is not one the key policies
        let manage (or, for a plan role, read) the keys: applying would lock it out."""
        allowed = [self.account.root_arn, *self.apply_arns, *self.admin_arns, *self.plan_arns]
        return Precondition(
            condition=Fn.contains(allowed, self.caller_arn),
            error_message=(
                f"{self.config.source}: access: the caller {self.caller_arn} is not in apply_roles, "
                "key_admin_roles or plan_roles: applying would leave it unable to manage the keys. "
                "Run as one of those roles, or add it."
            ),
        )

    # -- keys --------------------------------------------------------------------------------

    def _keys(self) -> None:
        config = self.config
        self.secrets_key = SecretsKey(
            self,
            "secrets_key",
            account=self.account,
            key_region=config.region,
            kms_alias_name=f"alias/{config.name_prefix}-api-keys",
            kms_deletion_window_days=config.kms_deletion_window_days,
            secret_name=config.secret_name,
            access=self.key_access,
            secret_users=self.secret_users,
            prevent_destroy=config.deletion_protection,
            precondition=[self._caller_keeps_the_keys()],
        )
        self.replica_keys = {
            region: SecretsKey(
                self,
                f"replica_key_{_snake(region)}",
                account=self.account,
                key_region=region,
                kms_alias_name=f"alias/{config.name_prefix}-api-keys",
                kms_deletion_window_days=config.kms_deletion_window_days,
                secret_name=config.secret_name,
                access=self.key_access,
                secret_users=self.secret_users,
                replica=True,
                prevent_destroy=config.deletion_protection,
                provider=provider,
            )
            for region, provider in self.replica_providers.items()
        }
        logged_groups = [
            *([config.service.log_group_name] if config.service.create_demo_resources else []),
            *([f"/aws/lambda/{self.rotation_function_name}"] if config.rotation.enabled else []),
        ]
        self.monitoring_key = MonitoringKey(
            self,
            "monitoring_key",
            account=self.account,
            kms_alias_name=f"alias/{config.name_prefix}-api-keys-monitoring",
            kms_deletion_window_days=config.kms_deletion_window_days,
            topic_name=self.topic_name,
            alarm_name_prefix=self.alarm_prefix,
            log_group_names=logged_groups,
            access=self.key_access,
            prevent_destroy=config.deletion_protection,
        )

    def _service(self) -> None:
        service = self.config.service
        if service.create_demo_resources:
            demo = DemoService(
                self,
                "demo_service",
                account=self.account,
                task_role_names=service.task_roles,
                log_group_name=service.log_group_name,
                kms_key_arn=self.monitoring_key.key_arn,
            )
            self.task_role_names = [role.name for role in demo.roles]
            self.task_role_arns = [role.arn for role in demo.roles]
            self.log_group_name = demo.log_group.name
        else:
            self.task_role_names = [role_name(role) for role in service.task_roles]
            self.task_role_arns = self.external_task_arns
            self.log_group_name = service.log_group_name

    # -- the secret --------------------------------------------------------------------------

    def _secret(self) -> None:
        config = self.config
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

        self.secrets = TerraformHclModule(
            self,
            "secrets",
            source=SECRETS_MODULE_SOURCE,
            variables={
                "name": config.secret_name,
                "kms_key_arn": self.secrets_key.key_arn,
                "recovery_window_days": config.recovery_window_days,
                "replicas": [
                    {"region": region, "kms_key_arn": key.key_arn} for region, key in self.replica_keys.items()
                ],
                "read_principal_arns": [*self.task_role_arns, *self.operator_arns],
                "value_writer_principal_arns": [*self.apply_arns, *self.plan_arns],
                "secret_string": secret_value.string_value,
                "secret_string_version": secret_version.number_value,
            },
        )
        self.secret_arn = self.secrets.get_string("secret_arn")
        replica_arns = self.secrets.get_list("replica_arns")
        self.readable_secrets = [
            ReadableSecret(region=config.region, secret_arn=self.secret_arn, kms_key_arn=self.secrets_key.key_arn),
            *(
                ReadableSecret(region=region, secret_arn=Fn.element(replica_arns, index), kms_key_arn=key.key_arn)
                for index, (region, key) in enumerate(self.replica_keys.items())
            ),
        ]
        if config.deletion_protection:
            # A module call takes no lifecycle block, so the secret is guarded by a resource that
            # must be replaced whenever the secret is, and refuses to be.
            DataResource(
                self,
                "secret_destroy_guard",
                triggers_replace={"secret_arn": self.secret_arn},
                lifecycle=TerraformResourceLifecycle(prevent_destroy=True),
            )

    # -- who reads, rotates and operates ------------------------------------------------------

    def _policies(self) -> None:
        prefix = self.config.name_prefix
        self.read_policy = SecretReadPolicy(
            self,
            "read_policy",
            account=self.account,
            policy_name=f"{prefix}-api-keys-read",
            secrets=self.readable_secrets,
            task_role_names=self.task_role_names,
        )
        self.rotation = (
            RotationFunction(
                self,
                "rotation",
                account=self.account,
                function_name=self.rotation_function_name,
                handler_package_path=self.rotation_package_path,
                secrets=self.readable_secrets,
                log_group_kms_key_arn=self.monitoring_key.key_arn,
                alarm_name_prefix=self.alarm_prefix,
                metric_namespace=self.metric_namespace,
                topic_arn=self.topic_arn,
            )
            if self.config.rotation.enabled
            else None
        )
        if self.rotation is not None:
            # Set after the module call: the function needs the secret's ARN, the secret's
            # rotation needs the function (Terraform orders the resources, not the module).
            self.secrets.set("read_principal_arns", [*self.task_role_arns, *self.operator_arns, self.rotation.role.arn])
            self.secrets.set("rotation_enabled", True)
            self.secrets.set("rotation_lambda_arn", self.rotation.invocable_arn)
            self.secrets.set("rotation_days", self.config.rotation.days)
        self.operator_policy = (
            OperatorPolicy(
                self,
                "operator_policy",
                account=self.account,
                policy_name=f"{prefix}-api-keys-operate",
                secrets=self.readable_secrets,
                read_policy_arn=self.read_policy.policy.arn,
                rotation_function_arn=self.rotation.function.arn if self.rotation else None,
                operator_role_names=[role_name(role) for role in self.config.access.operator_roles],
            )
            if self.config.access.operator_roles
            else None
        )

    # -- alerts --------------------------------------------------------------------------------

    def _alerts(self) -> None:
        config = self.config
        alerts = AlertTopic(
            self,
            "alerts",
            account=self.account,
            topic_name=self.topic_name,
            kms_key_arn=self.monitoring_key.key_arn,
            alarm_name_prefix=self.alarm_prefix,
            email_endpoints=config.alert_emails,
        )
        self.topic_arn = alerts.topic_arn
        self.metric_namespace = f"{config.project_name}/{config.environment}/ApiKeys"
        LoaderAlarms(
            self,
            "loader_alarms",
            log_group_name=self.log_group_name,
            metric_namespace=self.metric_namespace,
            alarm_name_prefix=self.alarm_prefix,
            topic_arn=self.topic_arn,
        )

    def _outputs(self) -> None:
        TerraformOutput(self, "secret_arn", value=self.secret_arn, description="Set API_KEYS_SECRET_ARN to this value.")
        TerraformOutput(
            self,
            "replica_secret_arns",
            value={secret.region: secret.secret_arn for secret in self.readable_secrets[1:]},
            description="Per replica region: the API_KEYS_SECRET_ARN of a service running there.",
        )
        TerraformOutput(
            self, "kms_key_arn", value=self.secrets_key.key_arn, description="The CMK that encrypts the secret."
        )
        TerraformOutput(
            self,
            "monitoring_kms_key_arn",
            value=self.monitoring_key.key_arn,
            description="The CMK that encrypts the alert topic and the alarmed log groups.",
        )
        TerraformOutput(self, "alert_topic_arn", value=self.topic_arn, description="Alarms publish here.")
        TerraformOutput(
            self,
            "read_policy_arn",
            value=self.read_policy.policy.arn,
            description="Attached to the service's ECS task role(s), not the execution role.",
        )
        if self.operator_policy is not None:
            TerraformOutput(
                self,
                "operator_policy_arn",
                value=self.operator_policy.policy.arn,
                description="Attached to access.operator_roles: what apikeys needs.",
            )

    # -- providers and state -----------------------------------------------------------------

    def _providers(self) -> None:
        config = self.config
        tags = {"Project": config.project_name, "Environment": config.environment, "ManagedBy": "cdktf", **config.tags}
        AwsProvider(self, "aws", region=config.region, default_tags=[{"tags": tags}])
        self.replica_providers = {
            region: AwsProvider(
                self, f"aws_{_snake(region)}", alias=_snake(region), region=region, default_tags=[{"tags": tags}]
            )
            for region in config.replica_regions
        }

    def _configure_backend(self) -> None:
        config = self.config
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
