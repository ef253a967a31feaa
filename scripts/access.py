"""Who runs Terraform for an environment, checked before anything is planned.

- `check_account`: the credentials belong to the env file's `account_id` (and `partition`),
  asked of STS alone, before anything else is read, assumed or created.
- `preflight`: the account as above, printed with the principal; then every role the env
  file names exists (with the ARN it gives, if any), and the caller is one the key policies
  let manage the keys (an apply or key-admin role, or root) or read them (a plan role). Each
  problem is one line naming the env file, the field (and role or account); nothing runs
  after it.
- `create_local_prerequisites`: what an env file says exists already (its roles, unless the
  stack creates them the task roles and log group, and its S3 state bucket), created in local AWS so a newcomer
  can deploy any environment there (`make local-prereqs ENV=x`). The plan and apply roles get
  the shipped pipeline policies (`stacks.pipeline_policies`, iam/<env>/), inline, as on AWS.
- `assume_locally`: local runs act as the env's own apply or plan role, as CI does on AWS.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from apikeys.aws import error_code
from scripts.bootstrap_state import ensure_local_state_bucket
from stacks.config import EnvironmentConfig, load_environment, role_name
from stacks.pipeline_policies import pipeline_policies

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sts import STSClient

    from scripts.local_aws import LocalAws

__all__ = [
    "AccessError",
    "assume_locally",
    "caller_role_arn",
    "check_account",
    "create_local_prerequisites",
    "environment_config",
    "named_roles",
    "preflight",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_ACCOUNT = "123456789012"  # moto's default account
_TRUST_THE_ACCOUNT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{LOCAL_ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
)
_TRUST_ECS_TASKS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


class AccessError(Exception):
    """One line: the env file, the field, the role and what to do."""


def environment_config(env: str) -> EnvironmentConfig:
    """The env file of `env`, from CREDLINK_ENVS_DIR (default: envs/)."""
    envs_dir = Path(os.environ.get("CREDLINK_ENVS_DIR", PROJECT_ROOT / "envs"))
    return load_environment(envs_dir / f"{env}.toml")


def named_roles(config: EnvironmentConfig) -> Iterator[tuple[str, str]]:
    """(env file field, role name or ARN) for every role the environment expects to exist."""
    access = config.access
    for field in ("apply_roles", "plan_roles", "key_admin_roles", "operator_roles"):
        for role in getattr(access, field):
            yield f"access.{field}", role
    if not config.service.create_demo_resources:
        for role in config.service.task_roles:
            yield "service.task_roles", role


def caller_role_arn(sts: STSClient, iam: IAMClient) -> str:
    """The caller as an IAM ARN: an assumed role's session becomes its role (path included)."""
    arn = sts.get_caller_identity()["Arn"]
    parts = arn.split(":", 5)
    if parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        return iam.get_role(RoleName=parts[5].split("/")[1])["Role"]["Arn"]
    return arn


def check_account(config: EnvironmentConfig, sts: STSClient) -> str:
    """Refuse credentials of another account or partition than the env file names; returns
    the caller's ARN as STS reports it. One read-only call (sts:GetCallerIdentity)."""
    try:
        arn = sts.get_caller_identity()["Arn"]
    except (BotoCoreError, ClientError) as error:
        raise AccessError(f"{config.source}: cannot tell who is calling ({type(error).__name__})") from None
    _, partition, _, _, account, _ = arn.split(":", 5)
    if config.account_id is not None and account != config.account_id:
        raise AccessError(
            f"{config.source}: account_id: expected account {config.account_id}, but the credentials are for "
            f"account {account} ({arn}): use credentials for {config.account_id}, or correct account_id"
        )
    if partition != config.partition:
        raise AccessError(
            f"{config.source}: partition: expected partition {config.partition}, but the credentials are for "
            f"partition {partition} ({arn}): use credentials for {config.partition}, or correct partition"
        )
    return arn


def preflight(config: EnvironmentConfig, iam: IAMClient, sts: STSClient) -> str:
    """Check the account, then the env file's roles and the caller; returns the caller's ARN.

    Prints the account and principal it is about to act as (stderr) once the account is
    the env file's, before any role is read."""
    arn = check_account(config, sts)
    print(f"{config.source}: account {arn.split(':')[4]} as {arn}", file=sys.stderr)
    arns: dict[str, str] = {}
    for field, role in named_roles(config):
        arns[role] = _existing_role_arn(iam, config, field, role)
    try:
        caller = caller_role_arn(sts, iam)
    except (BotoCoreError, ClientError) as error:
        raise AccessError(f"{config.source}: cannot tell who is calling ({type(error).__name__})") from None
    access = config.access
    may_run = {arns[role] for role in (*access.apply_roles, *access.key_admin_roles, *access.plan_roles)}
    account = caller.split(":")[4]
    if caller not in may_run and caller != f"arn:{caller.split(':')[1]}:iam::{account}:root":
        raise AccessError(
            f"{config.source}: access: the caller {caller} is not in apply_roles, key_admin_roles or plan_roles: "
            "applying would leave it unable to manage the keys. Run as one of those roles, or add it."
        )
    return caller


def check_adopted_secret(config: EnvironmentConfig, secretsmanager: SecretsManagerClient) -> str | None:
    """The ARN of the secret `[adopt]` names, which must exist and not be scheduled for deletion;
    None without `[adopt]`. One read-only call (secretsmanager:DescribeSecret)."""
    if config.adopt is None:
        return None
    secret = config.adopt.secret
    try:
        described = secretsmanager.describe_secret(SecretId=secret)
    except ClientError as error:
        if _code(error) == "ResourceNotFoundException":
            raise AccessError(
                f"{config.source}: adopt.secret: no secret {secret} in {config.region}: check its name or ARN "
                "(or remove [adopt] to create a new secret)"
            ) from None
        raise AccessError(f"{config.source}: adopt.secret: cannot read secret {secret} ({_code(error)})") from None
    if described.get("DeletedDate"):
        raise AccessError(
            f"{config.source}: adopt.secret: {secret} is scheduled for deletion: restore it first "
            f"(aws secretsmanager restore-secret --secret-id {described['ARN']})"
        )
    return described["ARN"]


def _existing_role_arn(iam: IAMClient, config: EnvironmentConfig, field: str, role: str) -> str:
    try:
        arn = iam.get_role(RoleName=role_name(role))["Role"]["Arn"]
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            raise AccessError(
                f"{config.source}: {field}: role {role} does not exist in this account: create it first"
                " (locally: make local-prereqs ENV=" + config.environment + ")"
            ) from None
        raise AccessError(f"{config.source}: {field}: cannot read role {role} ({_code(error)})") from None
    if role != role_name(role) and arn != role:
        raise AccessError(f"{config.source}: {field}: {role} is not this role's ARN: it is {arn}")
    return arn


def _code(error: ClientError) -> str:
    return error_code(error) or "error"


def create_local_prerequisites(config: EnvironmentConfig, server: LocalAws) -> list[str]:
    """Create in local AWS what the env file expects to exist; returns what was created."""
    session = server.session(config.region)
    check_account(config, session.client("sts", endpoint_url=server.endpoint_url))
    iam = session.client("iam", endpoint_url=server.endpoint_url)
    created = []
    for field, role in named_roles(config):
        name = role_name(role)
        role_path = role.split(":role/", 1)[1].rpartition("/")[0].strip("/") if role != name else ""
        path = f"/{role_path}/" if role_path else "/"  # an ARN without a path is a role at "/"
        if role != name and role.split(":")[4] != LOCAL_ACCOUNT:
            raise AccessError(
                f"{config.source}: {field}: {role} is in account {role.split(':')[4]}; local AWS has only "
                f"{LOCAL_ACCOUNT}: name the role instead of its ARN to deploy locally"
            )
        try:
            iam.get_role(RoleName=name)
            continue
        except iam.exceptions.NoSuchEntityException:
            pass
        trust = _TRUST_ECS_TASKS if field == "service.task_roles" else _TRUST_THE_ACCOUNT
        iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=trust)
        created.append(f"role {path}{name}")
    pipeline = pipeline_policies(config)
    for kind, roles in (("plan", config.access.plan_roles), ("apply", config.access.apply_roles)):
        for role in roles:
            iam.put_role_policy(
                RoleName=role_name(role), PolicyName=f"pipeline-{kind}", PolicyDocument=json.dumps(pipeline[kind])
            )
    bucket = ensure_local_state_bucket(config, server, os.environ)
    if bucket is not None:
        created.append(f"state bucket {bucket} (bootstrap/state)")
    adopted = _create_adopted_secret(config, session.client("secretsmanager", endpoint_url=server.endpoint_url))
    if adopted is not None:
        created.append(adopted)
    if not config.service.create_demo_resources:
        logs = session.client("logs", endpoint_url=server.endpoint_url)
        existing = logs.describe_log_groups(logGroupNamePrefix=config.service.log_group_name)["logGroups"]
        if not any(group.get("logGroupName") == config.service.log_group_name for group in existing):
            logs.create_log_group(logGroupName=config.service.log_group_name)
            created.append(f"log group {config.service.log_group_name}")
    return created


def _create_adopted_secret(config: EnvironmentConfig, secretsmanager: SecretsManagerClient) -> str | None:
    """The secret `[adopt]` names, made empty (as if by hand) when local AWS does not have it."""
    if config.adopt is None:
        return None
    try:
        secretsmanager.describe_secret(SecretId=config.adopt.secret)
        return None
    except secretsmanager.exceptions.ResourceNotFoundException:
        pass
    if config.adopt.arn is not None:
        raise AccessError(
            f"{config.source}: adopt.secret: local AWS cannot make a secret with the ARN {config.adopt.arn} "
            "(Secrets Manager chooses the suffix): name the secret instead of its ARN to deploy locally"
        )
    secretsmanager.create_secret(Name=config.adopt.name, Description="made by hand, to be adopted")
    return f"secret {config.adopt.name} (to adopt)"


def assume_locally(
    config: EnvironmentConfig,
    server: LocalAws,
    base: Mapping[str, str],
    *,
    plan_only: bool = False,
    role: str | None = None,
) -> dict[str, str]:
    """`base` (already pointed at local AWS) with the credentials of `role`, else the env's
    plan role (`plan_only`, when it has one), else its first apply role."""
    if role is None:
        roles = config.access.plan_roles if plan_only and config.access.plan_roles else config.access.apply_roles
        role = roles[0]
    session = server.session(config.region)
    iam = session.client("iam", endpoint_url=server.endpoint_url)
    sts = session.client("sts", endpoint_url=server.endpoint_url)
    try:
        arn = iam.get_role(RoleName=role_name(role))["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        raise AccessError(
            f"{config.source}: role {role} does not exist in local AWS: run make local-prereqs ENV={config.environment}"
        ) from None
    credentials: Any = sts.assume_role(RoleArn=arn, RoleSessionName=f"local-{config.environment}")["Credentials"]
    return {
        **base,
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }
