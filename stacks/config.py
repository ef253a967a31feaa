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
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
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
# IAM role names: letters, digits and +=,.@_- up to 64 characters.
RoleName = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9+=,.@_-]{1,64}$")]
LogGroupName = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9_/.#-]{1,512}$")]
TagKey = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(strict=True, max_length=256)]


class ConfigError(Exception):
    """An environment file is unreadable or invalid. The message is one line: file, field, problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_region(value: str) -> str:
    if not _REGION_PATTERN.match(value):
        raise ValueError(f"'{value}' is not an AWS region name (expected e.g. us-east-1)")
    return value


class ServiceConfig(_Model):
    """The service whose tasks read the keys."""

    task_role_names: tuple[RoleName, ...] = Field(min_length=1, strict=False)
    log_group_name: LogGroupName
    create_demo_resources: bool = False
    """Create the task role(s) and log group here, so the environment stands alone (dev)."""

    @field_validator("task_role_names")
    @classmethod
    def _unique_roles(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({role for role in roles if roles.count(role) > 1})
        if duplicates:
            raise ValueError(f"duplicate role name(s): {', '.join(duplicates)}")
        return roles


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
    region: Region
    service: ServiceConfig
    alert_emails: tuple[EmailStr, ...] = Field(min_length=1, strict=False)
    replica_regions: tuple[Region, ...] = Field(default=(), strict=False)
    recovery_window_days: int = Field(ge=7, le=30)
    kms_deletion_window_days: int = Field(ge=7, le=30)
    kms_admin_role_names: tuple[RoleName, ...] = Field(default=(), strict=False)
    """Roles that may administer the KMS key(s), besides the deploying principal and root."""
    deletion_protection: bool = False
    """prevent_destroy on the key and the secret: Terraform refuses any plan that destroys them."""
    rotation: RotationConfig = RotationConfig()
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    backend: BackendConfig = LocalBackendConfig()

    _region = field_validator("region")(_check_region)

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

    def without_deletion_protection(self) -> EnvironmentConfig:
        """The same environment with its destroy guard lifted (an explicit operator override)."""
        return self.model_copy(update={"deletion_protection": False})

    @property
    def secret_name(self) -> str:
        """The secret's name; the app finds it by the ARN this name resolves to."""
        return f"{self.project_name}/{self.environment}/api-keys"

    @property
    def name_prefix(self) -> str:
        return f"{self.project_name}-{self.environment}"


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
        return EnvironmentConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {_describe(error)}") from None


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
