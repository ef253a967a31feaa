"""One stack per environment: the keys, the secrets module, the read and operator policies,
alerts and rotation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jsii
from cdktf import (
    DataResource,
    Fn,
    IResolveContext,
    IStringProducer,
    Lazy,
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
from stacks.aws import (
    AwsProvider,
    DataAwsCallerIdentity,
    DataAwsIamSessionContext,
    DataAwsPartition,
    DataAwsSecretsmanagerSecret,
)
from stacks.config import EnvironmentConfig, LocalBackendConfig, role_name
from stacks.demo_service import DemoService
from stacks.kms import KeyAccess, MonitoringKey, SecretsKey
from stacks.operator_policy import OperatorPolicy
from stacks.read_policy import ReadableSecret, SecretReadPolicy
from stacks.roles import ExistingRoles
from stacks.rotation import RotationFunction

__all__ = ["ADOPTED_RESOURCE", "SECRETS_MODULE_SOURCE", "SecretsStack"]

# Relative to the project root (the synthesizing process's working directory); cdktf copies
# the module into the stack's assets so `cdktf.out/stacks/<env>` is self-contained.
SECRETS_MODULE_SOURCE = "./modules/secrets"
# The resource of modules/secrets that an adopted secret is imported into.
ADOPTED_RESOURCE = "aws_secretsmanager_secret.this"


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
        self._account()
        self._roles()
        self._keys()
        self._service()
        self._alerts()
        self._secret_copies()
        self._rotation()
        self._secret()
        self._policies()
        self._outputs()

    # -- where and who -----------------------------------------------------------------------

    def _account(self) -> None:
        caller = DataAwsCallerIdentity(self, "caller")
        self.account = AccountContext(
            partition=DataAwsPartition(self, "partition").partition,
            account_id=caller.account_id,
            region=self.config.region,
        )
        # The principal running this plan, as an IAM ARN (an assumed role's session resolves to its role).
        self.caller_arn = DataAwsIamSessionContext(self, "deployer", arn=caller.arn).issuer_arn

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
        rotation_role = (
            [self.account.role_arn(self.config.rotation_function_name)] if self.config.rotation.enabled else []
        )
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
        # One key per copy of the secret, each in its copy's region: the primary's key (at its
        # original address, guarded by the caller check) and one per replica region.
        self.secret_keys = {
            region.name: SecretsKey(
                self,
                region.key_id,
                account=self.account,
                key_region=region.name,
                kms_alias_name=config.secrets_key_alias,
                kms_deletion_window_days=config.kms_deletion_window_days,
                secret_name=config.secret_name,
                access=self.key_access,
                secret_users=self.secret_users,
                replica=region.is_replica,
                prevent_destroy=config.deletion_protection,
                provider=region.provider,
                precondition=[] if region.is_replica else [self._caller_keeps_the_keys()],
            )
            for region in self.regions
        }
        self.secrets_key = self.secret_keys[config.region]
        logged_groups = [
            *([config.service.log_group_name] if config.service.create_demo_resources else []),
            *([config.rotation_log_group_name] if config.rotation.enabled else []),
        ]
        self.monitoring_key = MonitoringKey(
            self,
            "monitoring_key",
            account=self.account,
            kms_alias_name=config.monitoring_key_alias,
            kms_deletion_window_days=config.kms_deletion_window_days,
            topic_name=config.topic_name,
            alarm_name_prefix=config.alarm_name_prefix,
            log_group_names=logged_groups,
            access=self.key_access,
            prevent_destroy=config.deletion_protection,
        )

    # -- the service ---------------------------------------------------------------------------

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

    # -- alerts --------------------------------------------------------------------------------

    def _alerts(self) -> None:
        config = self.config
        alerts = AlertTopic(
            self,
            "alerts",
            account=self.account,
            topic_name=config.topic_name,
            kms_key_arn=self.monitoring_key.key_arn,
            alarm_name_prefix=config.alarm_name_prefix,
            email_endpoints=config.alert_emails,
        )
        self.topic_arn = alerts.topic_arn
        LoaderAlarms(
            self,
            "loader_alarms",
            log_group_name=self.log_group_name,
            metric_namespace=config.metric_namespace,
            alarm_name_prefix=config.alarm_name_prefix,
            topic_arn=self.topic_arn,
        )

    # -- the secret and its rotation -----------------------------------------------------------

    def _secret_copies(self) -> None:
        """The secret's copies, primary first, as the module's outputs report them.

        The rotation function needs them and the module's rotation inputs need the function
        (Terraform orders the resources, not the module call), so they are read by forward
        reference: the module is declared once, below, with every input it takes."""
        self.secret_arn = _forward_reference(lambda: self.secrets.get_string("secret_arn"))
        replica_arns = [_forward_reference(partial(self._replica_arn, index)) for index in range(len(self.regions) - 1)]
        self.readable_secrets = [
            ReadableSecret(region=region.name, secret_arn=arn, kms_key_arn=self.secret_keys[region.name].key_arn)
            for region, arn in zip(self.regions, [self.secret_arn, *replica_arns], strict=True)
        ]

    def _replica_arn(self, index: int) -> str:
        # Replica ARNs come from the module (it derives them), in the order of its `replicas` input.
        return Token.as_string(Fn.element(self.secrets.get_list("replica_arns"), index))

    def _rotation(self) -> None:
        config = self.config
        self.rotation = (
            RotationFunction(
                self,
                "rotation",
                account=self.account,
                function_name=config.rotation_function_name,
                handler_package_path=self.rotation_package_path,
                secrets=self.readable_secrets,
                log_group_kms_key_arn=self.monitoring_key.key_arn,
                alarm_name_prefix=config.alarm_name_prefix,
                metric_namespace=config.metric_namespace,
                topic_arn=self.topic_arn,
            )
            if config.rotation.enabled
            else None
        )

    def _secret(self) -> None:
        self.secrets = TerraformHclModule(
            self, "secrets", source=SECRETS_MODULE_SOURCE, variables=self._secret_inputs()
        )
        adopt = self.config.adopt
        if adopt is not None:
            # An existing secret is imported into the module's secret on the first plan; once it
            # is in state, the import block does nothing. Terraform then changes it in place.
            secret_id = adopt.arn or DataAwsSecretsmanagerSecret(self, "adopted_secret", name=adopt.name).arn
            self.add_override("import", [{"to": f"module.secrets.{ADOPTED_RESOURCE}", "id": secret_id}])
        if self.config.deletion_protection:
            # A module call takes no lifecycle block, so the secret is guarded by a resource that
            # must be replaced whenever the secret is, and refuses to be.
            DataResource(
                self,
                "secret_destroy_guard",
                triggers_replace={"secret_arn": self.secret_arn},
                lifecycle=TerraformResourceLifecycle(prevent_destroy=True),
            )

    def _secret_inputs(self) -> dict[str, Any]:
        """Every input of modules/secrets, in one place."""
        config, rotation = self.config, self.rotation
        value, value_version = self._value_variables()
        return {
            "name": config.secret_name,
            "kms_key_arn": self.secrets_key.key_arn,
            "recovery_window_days": config.recovery_window_days,
            "replicas": [
                {"region": region.name, "kms_key_arn": self.secret_keys[region.name].key_arn}
                for region in self.regions
                if region.is_replica
            ],
            "read_principal_arns": [
                *self.task_role_arns,
                *self.operator_arns,
                *([rotation.role.arn] if rotation else []),
            ],
            "value_writer_principal_arns": [*self.apply_arns, *self.plan_arns],
            "secret_string_wo": value.string_value,
            "secret_string_wo_version": value_version.number_value,
            **(
                {
                    "rotation_enabled": True,
                    # Through the invoke permission: the rotation is configured once Secrets Manager may call it.
                    "rotation_lambda_arn": rotation.invocable_arn,
                    "rotation_days": config.rotation.days,
                }
                if rotation
                else {}
            ),
        }

    def _value_variables(self) -> tuple[TerraformVariable, TerraformVariable]:
        """The optional write-only value path: an ephemeral value and the version that writes it."""
        value = TerraformVariable(
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
        value.add_override("ephemeral", True)
        value.add_override("default", Token.null_value())
        version = TerraformVariable(
            self,
            "api_keys_secret_version",
            type="number",
            nullable=True,
            description="Bump to write api_keys_secret_string as a new secret version; null writes nothing.",
        )
        version.add_override("default", Token.null_value())
        return value, version

    # -- who reads and operates ------------------------------------------------------------------

    def _policies(self) -> None:
        config = self.config
        self.read_policy = SecretReadPolicy(
            self,
            "read_policy",
            account=self.account,
            policy_name=config.read_policy_name,
            secrets=self.readable_secrets,
            task_role_names=self.task_role_names,
        )
        self.operator_policy = (
            OperatorPolicy(
                self,
                "operator_policy",
                account=self.account,
                policy_name=config.operator_policy_name,
                secrets=self.readable_secrets,
                read_policy_arn=self.read_policy.policy.arn,
                rotation_function_arn=self.rotation.function.arn if self.rotation else None,
                operator_role_names=[role_name(role) for role in config.access.operator_roles],
            )
            if config.access.operator_roles
            else None
        )

    # -- outputs -------------------------------------------------------------------------------

    def _outputs(self) -> None:
        TerraformOutput(self, "secret_arn", value=self.secret_arn, description="Set API_KEYS_SECRET_ARN to this value.")
        TerraformOutput(
            self,
            "replica_secret_arns",
            value=self.secrets.get("replica_arns_by_region"),
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
        TerraformOutput(
            self,
            "task_role_arns",
            # A token, not a Python list: cdktf inspects a plain list output with a Node API
            # that is deprecated (DEP0044) and says so on every synthesis.
            value=Fn.tolist(self.task_role_arns),
            description="The service's ECS task roles: the only roles of the service that read the keys.",
        )
        TerraformOutput(
            self,
            "service_log_group_name",
            value=self.log_group_name,
            description="The service's log group, where the loader's lines raise the alarms.",
        )
        if self.rotation is not None:
            TerraformOutput(
                self,
                "rotation_function_arn",
                value=self.rotation.function.arn,
                description="The function that rotates the keys (the only one the secret should name).",
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
        common: dict[str, Any] = {"default_tags": [{"tags": tags}]}
        if config.account_id is not None:
            # Terraform refuses to plan or apply with credentials of any other account.
            common["allowed_account_ids"] = [config.account_id]
        AwsProvider(self, "aws", region=config.region, **common)
        self.regions = [
            _Region(config.region, provider=None),
            *(
                _Region(
                    region,
                    provider=AwsProvider(self, f"aws_{_snake(region)}", alias=_snake(region), region=region, **common),
                )
                for region in config.replica_regions
            ),
        ]

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


@dataclass(frozen=True)
class _Region:
    """A region the secret lives in: the primary's (the stack's default provider) or a replica's."""

    name: str
    provider: AwsProvider | None

    @property
    def is_replica(self) -> bool:
        return self.provider is not None

    @property
    def key_id(self) -> str:
        """The construct id of the region's secrets key: part of its Terraform address, so fixed."""
        return f"replica_key_{_snake(self.name)}" if self.is_replica else "secrets_key"


@jsii.implements(IStringProducer)
class _Reference:
    def __init__(self, resolve: Callable[[], str]) -> None:
        self._resolve = resolve

    def produce(self, context: IResolveContext) -> str:
        return self._resolve()


def _forward_reference(resolve: Callable[[], str]) -> str:
    """A reference to a construct declared further down the stack, resolved at synthesis."""
    return Lazy.string_value(_Reference(resolve))


def _snake(name: str) -> str:
    return name.replace("-", "_")
