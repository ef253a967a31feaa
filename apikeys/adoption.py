"""Adopting a secret that was set up by hand: what the account still carries from that setup,
and the one write Terraform cannot make.

    deployment = Deployment(secret_arn=arn, region=region, env="prod", outputs=outputs, client=factory)
    findings = run_checks(deployment)      # one set of checks: `apikeys doctor` and `apikeys checklist` show them
    adoption = adopt(deployment)           # AWSCURRENT re-written, unchanged, under the env's CMK

Each check reads the live account and returns `Finding`s: a status (PASS, FAIL, WARN, INFO),
what it saw (never a key), the exact command that fixes it, and, where the fix is safe to
make from here, a `repair` that `apikeys doctor --fix` applies. A check the caller may not
make is one FAIL row naming the IAM action it needs.

Why `adopt` exists: changing a secret's KMS key does not make AWSCURRENT decryptable with the
new key only. Secrets Manager keeps every existing version decryptable with the previous key
too ("To avoid locking you out of the secret, Secrets Manager keeps all existing versions
encrypted with the previous key"), and "To make AWSCURRENT only decryptable by the new key,
create a new version of the secret with the new key" (Secrets Manager User Guide, Change the
encryption key for a secret,
https://docs.aws.amazon.com/secretsmanager/latest/userguide/manage_update-encryption-key.html).
Which keys encrypt a version is `KmsKeyIds` in ListSecretVersionIds ("The KMS keys used to
encrypt the secret version", API_SecretVersionsListEntry).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from functools import cached_property
from typing import Any, Literal

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError

from apikeys.aws import error_code
from apikeys.clients import commit, read_snapshot, refuse_during_rotation
from apikeys.events import Event
from apikeys.keyset import MIN_KEY_LENGTH, ApiKeyParseError, parse_entries, secret_document, short_key_clients
from apikeys.logs import ensure_json_logging, log_event
from apikeys.rotation import CURRENT

__all__ = [
    "CHECKS",
    "Adoption",
    "AdoptionRefusedError",
    "Check",
    "CheckDeniedError",
    "Deployment",
    "Finding",
    "adopt",
    "adoption_lines",
    "broad_secret_reads",
    "cloudtrail_logging",
    "current_version_key_ids",
    "read_policy_on_task_roles",
    "rotation_function",
    "run_check",
    "run_checks",
    "secret_encryption",
    "service_loaded",
    "service_principal_reads",
    "short_keys",
    "task_definition_keys",
]

Status = Literal["PASS", "FAIL", "WARN", "INFO"]
ClientFactory = Callable[[str, str], Any]

API_KEYS = "API_KEYS"
API_KEYS_SECRET_ARN = "API_KEYS_SECRET_ARN"  # noqa: S105 (a variable's name, not a credential)
READ_ACTION = "secretsmanager:getsecretvalue"
DEFAULT_KEY = "alias/aws/secretsmanager"
LOADED_LOOKBACK = timedelta(days=7)
LOADED_FROM_SECRET = f'{{ $.event = "{Event.LOADED}" && $.source = "secret" }}'
ECS_TASKS = "ecs-tasks.amazonaws.com"
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"})
_KEY_ID = re.compile(r"^(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
# The container definition fields RegisterTaskDefinition takes back from DescribeTaskDefinition.
_REGISTRABLE = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
)


class CheckDeniedError(Exception):
    """The caller may not make a call a check needs; `action` names the IAM action."""

    def __init__(self, action: str) -> None:
        super().__init__(f"AccessDenied: needs {action}")
        self.action = action


class AdoptionRefusedError(Exception):
    """`adopt` will not write: its message says why and what to run first."""


@dataclass(frozen=True)
class Finding:
    status: Status
    name: str
    detail: str
    fix: str | None = None
    repair: Callable[[], Sequence[str]] | None = field(default=None, compare=False, repr=False)
    """Applies the fix (`doctor --fix`) and returns what it changed, before and after."""

    @property
    def open(self) -> bool:
        """Something to do: a FAIL, or a WARN (unknown, or not done yet)."""
        return self.status in ("FAIL", "WARN")


@dataclass(frozen=True)
class Check:
    """One thing the account is checked for: the checklist's wording, the functions that
    check it, and the IAM actions they (and their repairs) need."""

    item: str
    runs: tuple[Callable[[Deployment], list[Finding]], ...]
    needs: tuple[str, ...]
    repair_needs: tuple[str, ...] = ()


class Deployment:
    """The env's secret and stack outputs, and the account around them, read once per run."""

    def __init__(
        self, *, secret_arn: str, region: str, env: str | None, outputs: Mapping[str, str], client: ClientFactory
    ) -> None:
        self.secret_arn = secret_arn
        self.region = region
        self.env = env
        self.outputs = outputs
        self._client_factory = client
        self._clients: dict[tuple[str, str], Any] = {}
        self._key_ids: dict[str, str] = {}

    def fresh(self) -> Deployment:
        """The same target, read again (after `doctor --fix` changed the account)."""
        return Deployment(
            secret_arn=self.secret_arn,
            region=self.region,
            env=self.env,
            outputs=self.outputs,
            client=self._client_factory,
        )

    # -- calls -----------------------------------------------------------------------------

    def client(self, service: str, region: str | None = None) -> Any:
        where = (service, region or self.region)
        if where not in self._clients:
            self._clients[where] = self._client_factory(*where)
        return self._clients[where]

    def call(self, service: str, operation: str, *, region: str | None = None, **kwargs: Any) -> Any:
        """One API call; an AccessDenied becomes CheckDeniedError naming `service:operation`
        (for these services the IAM action is named as the operation)."""
        try:
            return getattr(self.client(service, region), xform_name(operation))(**kwargs)
        except ClientError as error:
            if error_code(error) in _DENIED:
                raise CheckDeniedError(f"{service}:{operation}") from None
            raise

    def pages(self, service: str, operation: str, result_key: str, **kwargs: Any) -> Iterator[Any]:
        try:
            for page in self.client(service).get_paginator(xform_name(operation)).paginate(**kwargs):
                yield from page.get(result_key, [])
        except ClientError as error:
            if error_code(error) in _DENIED:
                raise CheckDeniedError(f"{service}:{operation}") from None
            raise

    # -- what the checks share ---------------------------------------------------------------

    @property
    def env_flag(self) -> str:
        return f"--env {self.env}" if self.env else f"--secret-arn {self.secret_arn}"

    @property
    def make_apply(self) -> str:
        env = self.env or "<env>"
        return f"make plan ENV={env} && make apply ENV={env}"

    @cached_property
    def secret(self) -> Mapping[str, Any]:
        return dict(self.call("secretsmanager", "DescribeSecret", SecretId=self.secret_arn))

    @property
    def cmk(self) -> str | None:
        return self.outputs.get("kms_key_arn") or None

    @cached_property
    def task_role_names(self) -> frozenset[str]:
        return frozenset(_role_name(arn) for arn in json.loads(self.outputs.get("task_role_arns") or "null") or [])

    def key_id(self, ref: str) -> str:
        """A KMS key reference (key ARN, key id, alias name or alias ARN) as its key id;
        an alias is resolved with DescribeKey, and one that cannot be is returned as given."""
        if ref not in self._key_ids:
            if ":key/" in ref:
                self._key_ids[ref] = ref.rsplit("/", 1)[1]
            elif _KEY_ID.match(ref):
                self._key_ids[ref] = ref
            else:
                try:
                    self._key_ids[ref] = str(self.call("kms", "DescribeKey", KeyId=ref)["KeyMetadata"]["KeyId"])
                except (CheckDeniedError, ClientError):
                    self._key_ids[ref] = ref
        return self._key_ids[ref]

    def is_cmk(self, ref: str) -> bool:
        return self.cmk is not None and self.key_id(ref) == self.key_id(self.cmk)

    @cached_property
    def task_definitions(self) -> tuple[Mapping[str, Any], ...]:
        """The latest ACTIVE revision of each family that runs as one of the env's task roles,
        carries API_KEYS, or names this secret in API_KEYS_SECRET_ARN, with its tags. A family
        naming another secret under another role is another environment's service: not ours."""
        found = []
        for family in self.pages("ecs", "ListTaskDefinitionFamilies", "families", status="ACTIVE"):
            described = self.call("ecs", "DescribeTaskDefinition", taskDefinition=family, include=["TAGS"])
            definition = {**described["taskDefinition"], "tags": described.get("tags", [])}
            containers = definition["containerDefinitions"]
            if (
                self.runs_as_task_role(definition)
                or any(API_KEYS in _names(container) for container in containers)
                or any(_secret_arns(container) & self.secret_arns for container in containers)
            ):
                found.append(definition)
        return tuple(found)

    @cached_property
    def secret_arns(self) -> frozenset[str]:
        """This secret's ARN and its replicas': what API_KEYS_SECRET_ARN may name."""
        replicas = json.loads(self.outputs.get("replica_secret_arns") or "null") or {}
        return frozenset({self.secret_arn, *replicas.values()})

    def runs_as_task_role(self, definition: Mapping[str, Any]) -> bool:
        role = definition.get("taskRoleArn")
        return role is not None and _role_name(role) in self.task_role_names

    def services_running(self, family: str) -> list[tuple[str, str]]:
        """(cluster, service) of every ECS service running a revision of `family`."""
        return [(cluster, service) for cluster, service, running in self._services if running == family]

    @cached_property
    def _services(self) -> list[tuple[str, str, str]]:
        """(cluster, service, task definition family) of every ECS service in the region."""
        services = []
        for cluster in self.pages("ecs", "ListClusters", "clusterArns"):
            arns = list(self.pages("ecs", "ListServices", "serviceArns", cluster=cluster))
            for start in range(0, len(arns), 10):  # DescribeServices takes up to 10 services
                described = self.call("ecs", "DescribeServices", cluster=cluster, services=arns[start : start + 10])
                for service in described.get("services", []):
                    family = service.get("taskDefinition", "").rsplit("/", 1)[-1].split(":")[0]
                    services.append((cluster.rsplit("/", 1)[-1], service["serviceName"], family))
        return services


# -- the checks ----------------------------------------------------------------------------------


def secret_encryption(deployment: Deployment) -> list[Finding]:
    """The secret's KMS key, and the keys that encrypt AWSCURRENT (KmsKeyIds)."""
    if deployment.cmk is None:
        return [
            Finding("FAIL", "secret's KMS key", "no kms_key_arn in the stack outputs", fix=deployment.make_apply),
        ]
    configured = deployment.secret.get("KmsKeyId") or DEFAULT_KEY
    findings = [
        Finding("PASS", "secret's KMS key", f"the env's CMK {deployment.cmk}")
        if deployment.is_cmk(configured)
        else Finding(
            "FAIL",
            "secret's KMS key",
            f"{configured}, not the env's CMK {deployment.cmk}",
            fix=deployment.make_apply,
        )
    ]
    version, key_ids = current_version_key_ids(deployment)
    if key_ids is None:
        findings.append(
            Finding(
                "WARN",
                "AWSCURRENT's KMS key",
                f"unknown: ListSecretVersionIds reports no KmsKeyIds for version {version}",
            )
        )
    elif key_ids and all(deployment.is_cmk(key) for key in key_ids):
        findings.append(Finding("PASS", "AWSCURRENT's KMS key", f"version {version}: the env's CMK only"))
    else:
        findings.append(
            Finding(
                "FAIL",
                "AWSCURRENT's KMS key",
                f"version {version} is encrypted with {', '.join(key_ids) or 'no key reported'}, "
                "not the env's CMK alone: whoever may use the old key still reads it",
                fix=f"apikeys adopt {deployment.env_flag}",
                repair=lambda: adoption_lines(adopt(deployment), deployment),
            )
        )
    return findings


def read_policy_on_task_roles(deployment: Deployment) -> list[Finding]:
    """The stack's read policy is on every task role the service's task definitions run as."""
    policy = deployment.outputs.get("read_policy_arn")
    if not policy:
        return [
            Finding("FAIL", "task role reads", "no read_policy_arn in the stack outputs", fix=deployment.make_apply)
        ]
    attached = {
        role["RoleName"]
        for role in deployment.pages(
            "iam", "ListEntitiesForPolicy", "PolicyRoles", PolicyArn=policy, EntityFilter="Role"
        )
    }
    findings = []
    for role in sorted(deployment.task_role_names - attached):
        findings.append(
            Finding("FAIL", "task role reads", f"{role} lacks the read policy {policy}", fix=deployment.make_apply)
        )
    for definition in deployment.task_definitions:
        if not deployment.runs_as_task_role(definition) and not any(
            _secret_arns(container) & deployment.secret_arns for container in definition["containerDefinitions"]
        ):
            continue  # carries API_KEYS under another role: the task definition row names it
        revision = _revision(definition)
        role_arn = definition.get("taskRoleArn")
        if not role_arn:
            findings.append(
                Finding(
                    "FAIL",
                    "task role reads",
                    f"{revision} has no task role: the application's SDK has no credentials to read the secret",
                    fix=f"name the service's task role in service.task_roles of envs/{deployment.env or '<env>'}.toml, "
                    f"{deployment.make_apply}, and register {definition['family']} with that taskRoleArn",
                )
            )
        elif _role_name(role_arn) not in attached:
            findings.append(
                Finding(
                    "FAIL",
                    "task role reads",
                    f"{revision} runs as {_role_name(role_arn)}, which lacks the read policy",
                    fix=f"add {_role_name(role_arn)} to service.task_roles in envs/{deployment.env or '<env>'}.toml, "
                    f"then {deployment.make_apply}",
                )
            )
    if not findings:
        findings.append(
            Finding("PASS", "task role reads", f"read policy on {', '.join(sorted(attached)) or 'no role'}")
        )
    return findings


def broad_secret_reads(deployment: Deployment) -> list[Finding]:
    """Policies that let a role read every secret: managed ones attached to any role, and the
    inline policies of the ECS roles. The stack's own policies name this secret's ARN only."""
    own = {deployment.outputs.get("read_policy_arn"), deployment.outputs.get("operator_policy_arn")}
    execution_roles = {
        _role_name(definition["executionRoleArn"]): _revision(definition)
        for definition in deployment.task_definitions
        if definition.get("executionRoleArn")
    }
    ecs_roles = {
        role["RoleName"] for role in deployment.pages("iam", "ListRoles", "Roles") if _trusts_ecs_tasks(role)
    } | set(execution_roles)
    ecs_roles |= {
        _role_name(definition["taskRoleArn"])
        for definition in deployment.task_definitions
        if definition.get("taskRoleArn")
    }
    findings = []
    for policy in deployment.pages("iam", "ListPolicies", "Policies", OnlyAttached=True, Scope="All"):
        if policy["Arn"] in own:
            continue
        document = deployment.call(
            "iam", "GetPolicyVersion", PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"]
        )["PolicyVersion"]["Document"]
        if not _reads_every_secret(document, deployment.secret_arn):
            continue
        for role in deployment.pages(
            "iam", "ListEntitiesForPolicy", "PolicyRoles", PolicyArn=policy["Arn"], EntityFilter="Role"
        ):
            name = role["RoleName"]
            findings.append(
                _broad_read_finding(
                    deployment,
                    name,
                    f"{policy['PolicyName']} ({policy['Arn']})",
                    _role_kind(name, execution_roles, ecs_roles),
                    fix=f"aws iam detach-role-policy --role-name {name} --policy-arn {policy['Arn']}",
                    repair=_detach(deployment, name, policy["Arn"]),
                )
            )
    for name in sorted(ecs_roles):
        for inline in deployment.pages("iam", "ListRolePolicies", "PolicyNames", RoleName=name):
            document = deployment.call("iam", "GetRolePolicy", RoleName=name, PolicyName=inline)["PolicyDocument"]
            if _reads_every_secret(document, deployment.secret_arn):
                findings.append(
                    _broad_read_finding(
                        deployment,
                        name,
                        f"inline policy {inline}",
                        _role_kind(name, execution_roles, ecs_roles),
                        fix=f"aws iam delete-role-policy --role-name {name} --policy-name {inline}",
                        repair=_delete_inline(deployment, name, inline),
                    )
                )
    return findings or [Finding("PASS", "broad secret read", "no role's policy grants GetSecretValue on every secret")]


def service_principal_reads(deployment: Deployment) -> list[Finding]:
    """The secret's resource policy lets no AWS service principal read the value."""
    text = deployment.call("secretsmanager", "GetResourcePolicy", SecretId=deployment.secret_arn).get("ResourcePolicy")
    if not text:
        return [Finding("WARN", "secret's policy", "none: the project's policy is missing", fix=deployment.make_apply)]
    policy = json.loads(text)
    statements = _as_list(policy.get("Statement"))
    offending = [statement for statement in statements if _lets_a_service_read(statement)]
    if not offending:
        return [Finding("PASS", "secret's policy", "no AWS service principal may read the value")]
    services = sorted({service for statement in offending for service in _as_list(statement["Principal"]["Service"])})
    kept = [statement for statement in statements if statement not in offending]

    def remove() -> list[str]:
        if kept:
            deployment.call(
                "secretsmanager",
                "PutResourcePolicy",
                SecretId=deployment.secret_arn,
                ResourcePolicy=json.dumps({**policy, "Statement": kept}),
                BlockPublicPolicy=True,
            )
        else:
            deployment.call("secretsmanager", "DeleteResourcePolicy", SecretId=deployment.secret_arn)
        return [
            f"before: {len(statements)} statements, {len(offending)} letting {', '.join(services)} read the value; "
            f"after: {len(kept)} (every other statement kept)"
        ]

    return [
        Finding(
            "FAIL",
            "secret's policy",
            f"lets {', '.join(services)} read the value (GetSecretValue); Terraform owns this policy",
            fix=deployment.make_apply,
            repair=remove,
        )
    ]


def task_definition_keys(deployment: Deployment) -> list[Finding]:
    """The service's task definitions name this secret in API_KEYS_SECRET_ARN and carry no API_KEYS."""
    if not deployment.task_definitions:
        roles = ", ".join(sorted(deployment.task_role_names)) or "none in the outputs"
        return [
            Finding(
                "WARN",
                "task definition",
                f"no ACTIVE task definition runs as the env's task roles ({roles}) or names API_KEYS",
            )
        ]
    findings = []
    accepted = deployment.secret_arns
    for definition in deployment.task_definitions:
        problems = []
        for container in definition["containerDefinitions"]:
            where = f"container {container['name']}"
            if any(each["name"] == API_KEYS for each in container.get("environment", [])):
                problems.append(f"{where} has API_KEYS in its environment (the keys in the task definition's text)")
            for each in container.get("secrets", []):
                if each["name"] == API_KEYS:
                    problems.append(
                        f"{where} injects API_KEYS from {each['valueFrom']} (ECS puts the value in its environment)"
                    )
            for each in container.get("environment", []):
                if each["name"] == API_KEYS_SECRET_ARN and each["value"] not in accepted:
                    problems.append(f"{where}'s API_KEYS_SECRET_ARN names another secret: {each['value']}")
        if not any(
            each["name"] == API_KEYS_SECRET_ARN and each["value"] in accepted
            for container in definition["containerDefinitions"]
            for each in container.get("environment", [])
        ):
            problems.append("no container has API_KEYS_SECRET_ARN set to this secret")
        if not problems:
            findings.append(
                Finding("PASS", "task definition", f"{_revision(definition)}: API_KEYS_SECRET_ARN, no API_KEYS")
            )
            continue
        containers = _containers_to_change(definition)
        rollout = _rollout(deployment, definition["family"], "<new revision>")
        ours = deployment.runs_as_task_role(definition)
        if not ours:
            # Which env's secret it should read is not known here: --fix leaves it to a person.
            problems.append("it runs as none of the env's task roles (task_role_arns): check it is this env's")
        findings.append(
            Finding(
                "FAIL",
                "task definition",
                f"{_revision(definition)}: " + "; ".join(problems),
                fix=f"register a new revision of {definition['family']} without API_KEYS and with "
                f"API_KEYS_SECRET_ARN={deployment.secret_arn} in the environment of "
                f"{', '.join(containers) or 'the application container'}, then {rollout}",
                repair=_register_without_keys(deployment, definition, containers) if containers and ours else None,
            )
        )
    return findings


def service_loaded(deployment: Deployment) -> list[Finding]:
    """The loader's `apikeys.loaded` line with source "secret" in the service's log group.

    The JSON filter pattern narrows the search on AWS; each match is parsed again here, so a
    backend that does not apply JSON patterns (moto returns every event) is not trusted blindly."""
    group = deployment.outputs.get("service_log_group_name")
    if not group:
        return [Finding("WARN", "service loaded", "no service_log_group_name in the stack outputs")]
    since = datetime.now(UTC) - LOADED_LOOKBACK
    try:
        for event in deployment.pages(
            "logs",
            "FilterLogEvents",
            "events",
            logGroupName=group,
            filterPattern=LOADED_FROM_SECRET,
            startTime=int(since.timestamp() * 1000),
        ):
            line = _json_object(event.get("message", ""))
            if line.get("event") == Event.LOADED and line.get("source") == "secret":
                when = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
                return [
                    Finding("PASS", "service loaded", f"from Secrets Manager, {when:%Y-%m-%d %H:%M} UTC in {group}")
                ]
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        return [Finding("WARN", "service loaded", f"log group {group} does not exist")]
    return [
        Finding(
            "WARN",
            "service loaded",
            f"no {Event.LOADED} line with source secret in {group} in the last {LOADED_LOOKBACK.days} days: "
            "roll out a task definition with API_KEYS_SECRET_ARN",
        )
    ]


def cloudtrail_logging(deployment: Deployment) -> list[Finding]:
    """A trail that logs this region (multi-region, or at home here) and is logging."""
    region = deployment.region
    trails = [
        trail
        for trail in deployment.call("cloudtrail", "DescribeTrails", includeShadowTrails=True).get("trailList", [])
        if trail.get("IsMultiRegionTrail") or trail.get("HomeRegion") == region
    ]
    stopped = []
    for trail in trails:
        # A shadow trail's status needs its ARN (GetTrailStatus, Name).
        if deployment.call("cloudtrail", "GetTrailStatus", Name=trail["TrailARN"]).get("IsLogging"):
            return [Finding("PASS", "CloudTrail", f"{trail['Name']} logs {region}")]
        stopped.append(trail)
    if stopped:
        trail = stopped[0]
        home = trail.get("HomeRegion", region)

        def start() -> list[str]:
            deployment.call("cloudtrail", "StartLogging", region=home, Name=trail["TrailARN"])
            return [f"{trail['Name']}: before: not logging; after: logging"]

        return [
            Finding(
                "FAIL",
                "CloudTrail",
                f"{trail['Name']} covers {region} but is not logging: nobody could tell who read the secret",
                fix=f"aws cloudtrail start-logging --name {trail['TrailARN']} --region {home}",
                repair=start,
            )
        ]
    return [
        Finding(
            "FAIL",
            "CloudTrail",
            f"no trail logs {region}: nobody could tell who read the secret",
            fix="aws cloudtrail create-trail --name account-trail --s3-bucket-name <bucket with the CloudTrail bucket "
            f"policy> --is-multi-region-trail --region {region} && aws cloudtrail start-logging --name account-trail "
            f"--region {region}",
        )
    ]


def rotation_function(deployment: Deployment) -> list[Finding]:
    """Rotation, if any, runs this env's function (DescribeSecret RotationLambdaARN)."""
    expected = deployment.outputs.get("rotation_function_arn") or None
    configured = deployment.secret.get("RotationLambdaARN") or None
    enabled = bool(deployment.secret.get("RotationEnabled"))
    if expected is None and configured is None:
        return [Finding("INFO", "rotation function", "none: rotation is off in this env")]
    if expected is None:
        return [
            Finding(
                "FAIL",
                "rotation function",
                f"{configured} rotates the secret, but this env has no rotation function",
                fix=f"aws secretsmanager cancel-rotate-secret --secret-id {deployment.secret_arn} (or turn "
                f"[rotation] on in envs/{deployment.env or '<env>'}.toml and {deployment.make_apply})",
            )
        ]
    if configured is None or _function(configured) != _function(expected):
        return [
            Finding(
                "FAIL",
                "rotation function",
                f"{configured or 'no function'} is configured, not this env's {expected}",
                fix=deployment.make_apply,
            )
        ]
    if not enabled:
        return [
            Finding(
                "FAIL", "rotation function", f"{expected} is configured but rotation is off", fix=deployment.make_apply
            )
        ]
    days = deployment.secret.get("RotationRules", {}).get("AutomaticallyAfterDays")
    return [Finding("PASS", "rotation function", f"{expected}" + (f", every {days} days" if days else ""))]


def short_keys(deployment: Deployment) -> list[Finding]:
    """No client left with a key shorter than a new key must be (adopted keys may be)."""
    try:
        response = deployment.call(
            "secretsmanager", "GetSecretValue", SecretId=deployment.secret_arn, VersionStage=CURRENT
        )
    except ClientError as error:
        code = error_code(error)
        if code == "DecryptionFailure":
            raise CheckDeniedError("kms:Decrypt on the key that encrypts AWSCURRENT") from None
        if code == "ResourceNotFoundException":
            return [Finding("INFO", "short keys", "the secret holds no value yet")]
        raise
    try:
        entries = parse_entries(secret_document(response.get("SecretString", ""))["apiKeys"])
    except ApiKeyParseError as error:
        return [Finding("FAIL", "short keys", f"AWSCURRENT is not a valid key list: {error}")]
    short = sorted(client.client_id for client in short_key_clients(entries))
    if not short:
        return [Finding("PASS", "short keys", f"every key has at least {MIN_KEY_LENGTH} characters")]
    return [
        Finding(
            "WARN",
            "short keys",
            f"clients with keys shorter than {MIN_KEY_LENGTH} characters: {', '.join(short)}",
            fix=f"apikeys rotate {deployment.env_flag} (or apikeys clients rotate {deployment.env_flag} "
            f"--client-id {short[0]})",
        )
    ]


CHECKS: tuple[Check, ...] = (
    Check(
        "the secret exists and only the env's CMK encrypts it",
        (secret_encryption,),
        needs=("secretsmanager:DescribeSecret", "secretsmanager:ListSecretVersionIds", "kms:DescribeKey"),
        repair_needs=("the adopt permissions",),
    ),
    Check(
        "the task role, not the execution role, reads it",
        (read_policy_on_task_roles, broad_secret_reads),
        needs=(
            "iam:ListEntitiesForPolicy",
            "iam:ListPolicies",
            "iam:GetPolicyVersion",
            "iam:ListRoles",
            "iam:ListRolePolicies",
            "iam:GetRolePolicy",
            "ecs:ListTaskDefinitionFamilies",
            "ecs:DescribeTaskDefinition",
        ),
        repair_needs=("iam:DetachRolePolicy", "iam:DeleteRolePolicy"),
    ),
    Check(
        "the secret's policy lets no AWS service read it",
        (service_principal_reads,),
        needs=("secretsmanager:GetResourcePolicy",),
        repair_needs=("secretsmanager:PutResourcePolicy", "secretsmanager:DeleteResourcePolicy"),
    ),
    Check(
        "the task definition has API_KEYS_SECRET_ARN and no API_KEYS",
        (task_definition_keys,),
        needs=(
            "ecs:ListTaskDefinitionFamilies",
            "ecs:DescribeTaskDefinition",
            "ecs:ListClusters",
            "ecs:ListServices",
            "ecs:DescribeServices",
        ),
        repair_needs=("ecs:RegisterTaskDefinition", "ecs:TagResource", "iam:PassRole"),
    ),
    Check(
        "the service loaded its keys from Secrets Manager",
        (service_loaded,),
        needs=("logs:FilterLogEvents",),
    ),
    Check(
        "CloudTrail logs the region",
        (cloudtrail_logging,),
        needs=("cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus"),
        repair_needs=("cloudtrail:StartLogging",),
    ),
    Check(
        "rotation is scheduled with this env's function",
        (rotation_function,),
        needs=("secretsmanager:DescribeSecret",),
    ),
    Check(
        "no client has a short key",
        (short_keys,),
        needs=("secretsmanager:GetSecretValue", "kms:Decrypt"),
    ),
)


def run_check(check: Check, deployment: Deployment) -> list[Finding]:
    """A check's findings; a call it may not make, or that fails, is a FAIL row saying so."""
    findings: list[Finding] = []
    for run in check.runs:
        name = run.__name__.replace("_", " ")
        try:
            findings += run(deployment)
        except CheckDeniedError as error:
            findings.append(Finding("FAIL", name, f"cannot check: needs {error.action}"))
        except ClientError as error:
            details = error.response.get("Error", {})
            findings.append(Finding("FAIL", name, f"cannot check: {details.get('Code')}: {details.get('Message', '')}"))
        except BotoCoreError as error:
            findings.append(Finding("FAIL", name, f"cannot check: {type(error).__name__}: {error}"))
    return findings


def run_checks(deployment: Deployment) -> list[tuple[Check, list[Finding]]]:
    return [(check, run_check(check, deployment)) for check in CHECKS]


# -- adopt ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Adoption:
    """What `adopt` did: the version it wrote (None when AWSCURRENT already used the CMK)."""

    kms_key_id: str
    previous_version: str
    version: str | None
    previous_key_ids: tuple[str, ...] | None
    short_key_clients: tuple[str, ...] = ()


def current_version_key_ids(deployment: Deployment) -> tuple[str, tuple[str, ...] | None]:
    """AWSCURRENT's version id and the KMS keys that encrypt it; None when the response
    carries no KmsKeyIds (then which key it is, is unknown)."""
    token: dict[str, str] = {}
    while True:  # botocore has no paginator for ListSecretVersionIds
        page = deployment.call("secretsmanager", "ListSecretVersionIds", SecretId=deployment.secret_arn, **token)
        for version in page.get("Versions", []):
            if CURRENT in version.get("VersionStages", []):
                ids = version.get("KmsKeyIds")
                return str(version["VersionId"]), None if ids is None else tuple(ids)
        if not page.get("NextToken"):
            break
        token = {"NextToken": page["NextToken"]}
    raise AdoptionRefusedError(f"{deployment.secret_arn} has no AWSCURRENT version: nothing to adopt")


def adopt(deployment: Deployment) -> Adoption:
    """Re-write AWSCURRENT's value, unchanged, as a new version so that only the env's CMK
    encrypts it (compare-and-swap, like every `apikeys clients` change). Refused before
    `make apply` has set the CMK and during a rotation; writes nothing when AWSCURRENT already
    uses the CMK alone. One audit line, never a value."""
    env = deployment.env or "<env>"
    cmk = deployment.cmk
    if cmk is None:
        raise AdoptionRefusedError(f"no kms_key_arn in the stack outputs of env {env}: run make apply ENV={env} first")
    configured = deployment.secret.get("KmsKeyId") or DEFAULT_KEY
    if not deployment.is_cmk(configured):
        raise AdoptionRefusedError(
            f"the secret's KMS key is {configured}, not the env's CMK {cmk}: run make apply ENV={env} first "
            "(Terraform sets the key)"
        )
    stages = deployment.secret.get("VersionIdsToStages", {})
    refuse_during_rotation(deployment.secret_arn, stages)
    previous, key_ids = current_version_key_ids(deployment)
    if key_ids and all(deployment.is_cmk(key) for key in key_ids):
        return Adoption(
            kms_key_id=deployment.key_id(cmk), previous_version=previous, version=None, previous_key_ids=key_ids
        )
    secretsmanager = deployment.client("secretsmanager")
    try:
        snapshot = read_snapshot(secretsmanager, deployment.secret_arn)
    except ClientError as error:
        code = error_code(error)
        if code not in ("DecryptionFailure", *_DENIED):
            raise
        old = [key for key in key_ids or () if not deployment.is_cmk(key)]
        raise AdoptionRefusedError(
            f"cannot read AWSCURRENT ({code}): it is encrypted with "
            f"{', '.join(old) if old else 'the key the secret used before (KmsKeyIds not reported)'}; grant the "
            "operator role kms:Decrypt on that key (via secretsmanager."
            f"{deployment.region}.amazonaws.com), for the adoption only, then run apikeys adopt again"
        ) from None
    version = commit(secretsmanager, deployment.secret_arn, snapshot, snapshot.entries)
    adoption = Adoption(
        kms_key_id=deployment.key_id(cmk),
        previous_version=snapshot.version,
        version=version,
        previous_key_ids=key_ids,
        short_key_clients=tuple(sorted(client.client_id for client in short_key_clients(snapshot.entries))),
    )
    caller = str(deployment.call("sts", "GetCallerIdentity")["Arn"])
    ensure_json_logging()
    log_event(
        logging.INFO,
        Event.SECRET_ADOPTED,
        "API keys secret re-encrypted with the env's CMK",
        secret_arn=deployment.secret_arn,
        version=version,
        previous_version=snapshot.version,
        kms_key_id=adoption.kms_key_id,
        previous_kms_key_ids=list(key_ids) if key_ids is not None else None,
        caller=caller,
    )
    return adoption


def adoption_lines(adoption: Adoption, deployment: Deployment) -> list[str]:
    """What `adopt` did, for the operator: versions and key ids, client ids, never a key."""
    if adoption.version is None:
        return [
            f"AWSCURRENT (version {adoption.previous_version}) is already encrypted with the env's CMK "
            f"{adoption.kms_key_id} alone: nothing written"
        ]
    before = ", ".join(adoption.previous_key_ids) if adoption.previous_key_ids is not None else "unknown keys"
    lines = [
        f"wrote version {adoption.version} (AWSCURRENT, encrypted with the env's CMK {adoption.kms_key_id}); "
        f"version {adoption.previous_version} ({before}) is AWSPREVIOUS with the same keys, so services that "
        "refresh keep accepting every key; replicas are re-encrypted by replication",
    ]
    if adoption.short_key_clients:
        lines.append(
            f"WARN  clients with keys shorter than {MIN_KEY_LENGTH} characters: {', '.join(adoption.short_key_clients)}"
        )
    lines.append(
        "next: rotate every key. Keys that lived in environment variables, task definitions or a Terraform state "
        f"file must be treated as exposed: apikeys rotate {deployment.env_flag}"
    )
    return lines


# -- helpers -------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _document(document: Any) -> Mapping[str, Any]:
    return json.loads(document) if isinstance(document, str) else dict(document)


def _json_object(text: str) -> Mapping[str, Any]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _revision(definition: Mapping[str, Any]) -> str:
    return f"{definition['family']}:{definition['revision']}"


def _function(arn: str) -> str:
    """A Lambda function ARN without a version or alias qualifier."""
    return ":".join(arn.split(":")[:7])


def _secret_arns(container: Mapping[str, Any]) -> set[str]:
    return {each["value"] for each in container.get("environment", []) if each["name"] == API_KEYS_SECRET_ARN}


def _names(container: Mapping[str, Any]) -> set[str]:
    return {each["name"] for each in (*container.get("environment", []), *container.get("secrets", []))}


def _covers_read(action: str) -> bool:
    return fnmatchcase(READ_ACTION, action.lower())


def _reads_every_secret(document: Any, secret_arn: str) -> bool:
    """An identity policy allowing a secretsmanager action pattern that covers GetSecretValue
    on `*` or on a wildcard that takes in this secret. A bare `*` action (administrators)
    is another finding's business; conditions are not weighed (a conditioned grant is still
    listed, for a person to judge)."""
    for statement in _as_list(_document(document).get("Statement")):
        if statement.get("Effect") != "Allow":
            continue
        actions = [a for a in _as_list(statement.get("Action")) if a.lower().startswith("secretsmanager:")]
        if not any(_covers_read(action) for action in actions):
            continue
        if any(
            "*" in resource and fnmatchcase(secret_arn, resource) for resource in _as_list(statement.get("Resource"))
        ):
            return True
    return False


def _lets_a_service_read(statement: Mapping[str, Any]) -> bool:
    principal = statement.get("Principal")
    return (
        statement.get("Effect") == "Allow"
        and isinstance(principal, dict)
        and "Service" in principal
        and any(_covers_read(action) for action in _as_list(statement.get("Action")))
    )


def _trusts_ecs_tasks(role: Mapping[str, Any]) -> bool:
    trust = role.get("AssumeRolePolicyDocument") or {}
    return any(
        ECS_TASKS in _as_list((statement.get("Principal") or {}).get("Service"))
        for statement in _as_list(_document(trust).get("Statement"))
        if isinstance(statement.get("Principal"), dict)
    )


def _role_kind(name: str, execution_roles: Mapping[str, str], ecs_roles: set[str]) -> str:
    if name in execution_roles:
        return f"the ECS execution role of {execution_roles[name]}: every task it starts may read every secret"
    if name in ecs_roles:
        return "an ECS task role: its tasks may read every secret in the account"
    return "it may read every secret in the account"


def _broad_read_finding(
    deployment: Deployment,
    role: str,
    policy: str,
    kind: str,
    *,
    fix: str,
    repair: Callable[[], Sequence[str]],
) -> Finding:
    injected = sorted(
        {
            each["valueFrom"]
            for definition in deployment.task_definitions
            if definition.get("executionRoleArn") and _role_name(definition["executionRoleArn"]) == role
            for container in definition["containerDefinitions"]
            for each in container.get("secrets", [])
            if each["name"] != API_KEYS
        }
    )
    if injected:
        # Detaching would stop these tasks from starting: the agent reads them with this role.
        return Finding(
            "FAIL",
            "broad secret read",
            f"{policy} on role {role}, {kind}; its task definitions also inject {', '.join(injected)}",
            fix=f"attach a policy allowing secretsmanager:GetSecretValue on {', '.join(injected)} only, then {fix}",
        )
    return Finding("FAIL", "broad secret read", f"{policy} on role {role}, {kind}", fix=fix, repair=repair)


def _detach(deployment: Deployment, role: str, policy_arn: str) -> Callable[[], list[str]]:
    def detach() -> list[str]:
        deployment.call("iam", "DetachRolePolicy", RoleName=role, PolicyArn=policy_arn)
        return [f"role {role}: before: {policy_arn} attached; after: detached"]

    return detach


def _delete_inline(deployment: Deployment, role: str, name: str) -> Callable[[], list[str]]:
    def delete() -> list[str]:
        deployment.call("iam", "DeleteRolePolicy", RoleName=role, PolicyName=name)
        return [f"role {role}: before: inline policy {name}; after: deleted"]

    return delete


def _containers_to_change(definition: Mapping[str, Any]) -> list[str]:
    """The containers that name API_KEYS or API_KEYS_SECRET_ARN; else the only container."""
    containers = definition["containerDefinitions"]
    named = [c["name"] for c in containers if _names(c) & {API_KEYS, API_KEYS_SECRET_ARN}]
    return named or ([containers[0]["name"]] if len(containers) == 1 else [])


def _rollout(deployment: Deployment, family: str, revision: str) -> str:
    running = deployment.services_running(family) or [("<cluster>", "<service>")]
    return " ; ".join(
        f"aws ecs update-service --cluster {cluster} --service {service} --task-definition {family}:{revision}"
        for cluster, service in running
    )


def _register_without_keys(
    deployment: Deployment, definition: Mapping[str, Any], containers: Sequence[str]
) -> Callable[[], list[str]]:
    def register() -> list[str]:
        request = {name: definition[name] for name in _REGISTRABLE if definition.get(name) not in (None, [], {})}
        request["containerDefinitions"] = [
            _without_keys(container, deployment.secret_arn) if container["name"] in containers else container
            for container in definition["containerDefinitions"]
        ]
        if definition.get("tags"):
            request["tags"] = definition["tags"]
        registered = deployment.call("ecs", "RegisterTaskDefinition", **request)["taskDefinition"]
        revision = str(registered["revision"])
        return [
            f"before: {_revision(definition)} with API_KEYS; after: {definition['family']}:{revision} "
            f"with API_KEYS_SECRET_ARN={deployment.secret_arn} and no API_KEYS",
            f"roll it out (not done here): {_rollout(deployment, definition['family'], revision)}",
        ]

    return register


def _without_keys(container: Mapping[str, Any], secret_arn: str) -> dict[str, Any]:
    environment = [
        each for each in container.get("environment", []) if each["name"] not in (API_KEYS, API_KEYS_SECRET_ARN)
    ]
    changed = {**container, "environment": [*environment, {"name": API_KEYS_SECRET_ARN, "value": secret_arn}]}
    if "secrets" in container:
        changed["secrets"] = [each for each in container["secrets"] if each["name"] != API_KEYS]
    return changed
