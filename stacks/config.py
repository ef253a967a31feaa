"""Typed, frozen environment configuration loaded from `envs/*.toml`.

Every environment is data: one TOML file per environment, validated by pydantic into a
frozen `EnvironmentConfig`. Any problem becomes one `ConfigError` whose message names the
file and the field, so `main.py` can print one line and exit 2 before synthesizing anything.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "AccessConfig",
    "AdoptConfig",
    "BackendConfig",
    "ConfigError",
    "EnvironmentConfig",
    "LocalBackendConfig",
    "RotationConfig",
    "S3BackendConfig",
    "ServiceConfig",
    "load_environment",
    "load_environments",
]

# Commercial, GovCloud and China partitions: us-east-1, us-gov-west-1, cn-north-1, ap-southeast-4.
_REGION_PATTERN = re.compile(
    r"^(us|eu|ap|sa|ca|me|af|il|mx|cn)(-gov)?"
    r"-(north|south|east|west|central|northeast|northwest|southeast|southwest)-[1-9]$"
)

Region = Annotated[str, StringConstraints(strict=True)]
Name = Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")]
# A role in the environment's account: its name (letters, digits and +=,.@_-, up to 64
# characters; looked up at plan time, so a role under a path is found too) or its full ARN
# (`arn:aws:iam::<account>:role/<path/><name>`, as `aws:PrincipalArn` carries it).
_ROLE_NAME = r"[A-Za-z0-9+=,.@_-]{1,64}"
_ROLE_ARN = rf"arn:aws[a-z-]*:iam::[0-9]{{12}}:role/(?:[!-~]{{1,510}}/)?{_ROLE_NAME}"
Role = Annotated[str, StringConstraints(strict=True, pattern=rf"^(?:{_ROLE_NAME}|{_ROLE_ARN})$")]
Roles = Annotated[tuple[Role, ...], Field(strict=False)]
LogGroupName = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9_/.#-]{1,512}$")]
TagKey = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(strict=True, max_length=256)]
_ACCOUNT_ID_PATTERN = re.compile(r"^[0-9]{12}$")
Partition = Literal["aws", "aws-cn", "aws-us-gov"]


class ConfigError(Exception):
    """An environment file is unreadable or invalid. The message is one line: file, field, problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_region(value: str) -> str:
    if not _REGION_PATTERN.match(value):
        raise ValueError(f"'{value}' is not an AWS region name (expected e.g. us-east-1)")
    return value


def role_name(role: str) -> str:
    """The role's name, whether `role` is a name or an ARN (the last part of its path)."""
    return role.rsplit("/", 1)[-1]


def _unique_roles(roles: tuple[str, ...]) -> tuple[str, ...]:
    names = [role_name(role) for role in roles]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate role(s): {', '.join(duplicates)}")
    return roles


class ServiceConfig(_Model):
    """The service whose tasks read the keys."""

    task_roles: Roles = Field(min_length=1)
    log_group_name: LogGroupName
    create_demo_resources: bool = False
    """Create the task role(s) and log group here, so the environment stands alone (dev).
    The task roles must then be plain names."""

    _unique = field_validator("task_roles")(_unique_roles)

    @model_validator(mode="after")
    def _demo_roles_are_names(self) -> ServiceConfig:
        if self.create_demo_resources and any(role != role_name(role) for role in self.task_roles):
            raise ValueError("task_roles: with create_demo_resources the roles are created here: give names, not ARNs")
        return self


class AccessConfig(_Model):
    """The people and pipelines that deploy and operate the environment, by role.

    Nobody else administers the keys or reads the value: the key policies and the secret's
    resource policy name exactly these roles (besides the service's task roles, the rotation
    function's role and the account's root user, which keeps break-glass administration).
    """

    apply_roles: Roles = Field(min_length=1)
    """Run `terraform apply`: administer the keys; read the value only while Terraform writes it."""
    plan_roles: Roles = ()
    """Run `terraform plan`: read-only, including the keys' metadata; never the value."""
    key_admin_roles: Roles = ()
    """Administer the keys (policy, rotation, deletion); no use of the keys, no value."""
    operator_roles: Roles = ()
    """Run `apikeys` (migrate, verify, rotate): read and write the value, start rotations."""

    _unique = field_validator("apply_roles", "plan_roles", "key_admin_roles", "operator_roles")(_unique_roles)


# A Secrets Manager secret's name (1-512 of letters, digits and /_+=.@-), or its full ARN (the
# name and the 6 characters Secrets Manager appends). A name ending in a hyphen and 6
# characters is ambiguous to Secrets Manager's partial-ARN lookup, so only the full ARN of
# such a secret is accepted.
_SECRET_NAME = r"[A-Za-z0-9/_+=.@-]{1,512}"  # noqa: S105 (a name pattern, not a credential)
_SECRET_ARN = re.compile(
    rf"^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):([0-9]{{12}}):secret:({_SECRET_NAME})-[A-Za-z0-9]{{6}}$"
)


class AdoptConfig(_Model):
    """An existing secret, set up before this project, that the environment takes over.

    Terraform imports it on the first plan instead of creating a secret: its ARN (in running
    task definitions) stays, and the plan changes it in place (the env's key, the resource
    policy, replicas, rotation). `apikeys adopt` then re-encrypts its current value."""

    secret: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=2048)]
    """The secret's name or full ARN."""

    @field_validator("secret")
    @classmethod
    def _name_or_arn(cls, value: str) -> str:
        if value.startswith("arn:"):
            if not _SECRET_ARN.match(value):
                raise ValueError(
                    f"'{value}' is not a Secrets Manager secret ARN "
                    "(arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>)"
                )
        elif not re.fullmatch(_SECRET_NAME, value) or re.search(r"-[A-Za-z0-9]{6}$", value):
            raise ValueError(
                f"'{value}' is not a secret name Secrets Manager finds unambiguously (letters, digits and /_+=.@-; "
                "a name that ends in a hyphen and 6 characters: give the full ARN)"
            )
        return value

    @property
    def arn(self) -> str | None:
        """The ARN, if the env file gives one (else Terraform looks the name up)."""
        return self.secret if self.secret.startswith("arn:") else None

    @property
    def name(self) -> str:
        match = _SECRET_ARN.match(self.secret)
        return match[3] if match else self.secret


class RotationConfig(_Model):
    enabled: bool = True
    days: int = Field(default=30, ge=1, le=90)


class LocalBackendConfig(_Model):
    type: Literal["local"] = "local"


class S3BackendConfig(_Model):
    type: Literal["s3"]
    bucket: Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    key: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=1024)]
    region: Region
    use_lockfile: bool = True

    _region = field_validator("region")(_check_region)


BackendConfig = Annotated[LocalBackendConfig | S3BackendConfig, Field(discriminator="type")]


class EnvironmentConfig(_Model):
    """One deployable environment. Built only by `load_environment(s)`."""

    project_name: Name = "credlink"
    environment: Name
    account_id: str | None = None
    """The only AWS account this environment may be deployed to: Terraform's providers refuse
    any other (allowed_account_ids) and the preflight stops before anything runs."""
    partition: Partition = "aws"
    region: Region
    service: ServiceConfig
    alert_emails: tuple[EmailStr, ...] = Field(min_length=1, strict=False)
    replica_regions: tuple[Region, ...] = Field(default=(), strict=False)
    recovery_window_days: int = Field(ge=7, le=30)
    kms_deletion_window_days: int = Field(ge=7, le=30)
    access: AccessConfig
    deletion_protection: bool = False
    """prevent_destroy on the key and the secret: Terraform refuses any plan that destroys them."""
    rotation: RotationConfig = RotationConfig()
    adopt: AdoptConfig | None = None
    """Take over an existing secret instead of creating one."""
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    backend: BackendConfig = LocalBackendConfig()

    _region = field_validator("region")(_check_region)
    _source: str = PrivateAttr(default="")

    @field_validator("account_id", mode="before")
    @classmethod
    def _valid_account_id(cls, value: object) -> object:
        # Before type checking, so a number (leading zeros lost) gets the same advice.
        if value is not None and not (isinstance(value, str) and _ACCOUNT_ID_PATTERN.match(value)):
            raise ValueError('must be the 12-digit AWS account id as a quoted string, e.g. "123456789012"')
        return value

    @property
    def source(self) -> str:
        """The file this environment was read from (for messages that send the user to it)."""
        return self._source or f"envs/{self.environment}.toml"

    @field_validator("replica_regions")
    @classmethod
    def _valid_replicas(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        for region in regions:
            _check_region(region)
        if len(set(regions)) != len(regions):
            raise ValueError("replica regions must be unique")
        return regions

    @model_validator(mode="after")
    def _replicas_elsewhere(self) -> EnvironmentConfig:
        if self.region in self.replica_regions:
            raise ValueError(f"replica_regions: must not include the primary region {self.region}")
        return self

    @model_validator(mode="after")
    def _adopted_secret_is_here(self) -> EnvironmentConfig:
        match = _SECRET_ARN.match(self.adopt.secret) if self.adopt else None
        if match and match[1] != self.region:
            raise ValueError(f"adopt.secret: the secret is in {match[1]}, the environment in {self.region}")
        if match and self.account_id is not None and match[2] != self.account_id:
            raise ValueError(f"adopt.secret: the secret is in account {match[2]}, not the env's {self.account_id}")
        return self

    def without_deletion_protection(self) -> EnvironmentConfig:
        """The same environment with its destroy guard lifted (an explicit operator override)."""
        return self.model_copy(update={"deletion_protection": False})

    @property
    def secret_name(self) -> str:
        """The secret's name (an adopted secret keeps its own); the app finds it by its ARN."""
        return self.adopt.name if self.adopt else f"{self.project_name}/{self.environment}/api-keys"

    @property
    def name_prefix(self) -> str:
        return f"{self.project_name}-{self.environment}"

    # The names the stack gives what it creates. Every one starts with `resource_prefix`, which
    # the pipeline roles' policies (stacks/pipeline_policies.py) rely on.

    @property
    def resource_prefix(self) -> str:
        return f"{self.name_prefix}-api-keys"

    @property
    def secrets_key_alias(self) -> str:
        """The alias of the key that encrypts the secret (the same in every replica region)."""
        return f"alias/{self.resource_prefix}"

    @property
    def monitoring_key_alias(self) -> str:
        return f"alias/{self.resource_prefix}-monitoring"

    @property
    def topic_name(self) -> str:
        return f"{self.resource_prefix}-alerts"

    @property
    def alarm_name_prefix(self) -> str:
        return f"{self.resource_prefix}-"

    @property
    def metric_namespace(self) -> str:
        """The CloudWatch namespace of the metrics counted from the loader's log lines."""
        return f"{self.project_name}/{self.environment}/ApiKeys"

    @property
    def rotation_function_name(self) -> str:
        """The rotation function's name, also its role's (created at the root path)."""
        return f"{self.resource_prefix}-rotation"

    @property
    def rotation_log_group_name(self) -> str:
        """Where Lambda writes the rotation function's log."""
        return f"/aws/lambda/{self.rotation_function_name}"

    @property
    def read_policy_name(self) -> str:
        return f"{self.resource_prefix}-read"

    @property
    def operator_policy_name(self) -> str:
        return f"{self.resource_prefix}-operate"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required key is missing"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    # Cross-field checks have no location of their own; their message starts with the field.
    return f"{location}: {message}{suffix}" if location else f"{message}{suffix}"


def load_environment(path: Path) -> EnvironmentConfig:
    """Read and validate one environment file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        config = EnvironmentConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_describe(error)}") from None
    config._source = str(path)
    return config


def load_environments(paths: Iterable[Path]) -> tuple[EnvironmentConfig, ...]:
    """Validate every environment file; environment names must be unique across them."""
    configs: list[EnvironmentConfig] = []
    seen: dict[str, Path] = {}
    for path in sorted(paths):
        config = load_environment(path)
        if config.environment in seen:
            raise ConfigError(
                f"{path}: environment: '{config.environment}' is already defined in {seen[config.environment]}"
            )
        seen[config.environment] = path
        configs.append(config)
    if not configs:
        raise ConfigError("envs/: no environment files (*.toml) found")
    return tuple(configs)
