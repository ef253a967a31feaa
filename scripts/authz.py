"""The authorization matrix (security/authorization-matrix.toml), evaluated against a deployment.

    python -m scripts.authz --env prod          # make authz ENV=prod

Deploys the env's synthesized stack to a private local AWS endpoint (as its apply role, after
creating the roles its env file expects), reads back every policy the deployment relies on
and has `scripts/authz/evaluate.mjs` (@cloud-copilot/iam-simulate, with KMS's key-policy rule)
decide each row. Prints the matrix (✔/✘ per row, expected vs evaluated) and exits 1 on any
mismatch, or when a principal named in any of those policies has no row.

Local AWS enforces nothing: it only stores the policies. The decisions are the evaluator's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacks.config import EnvironmentConfig, role_name

__all__ = ["Deployment", "Outcome", "Row", "evaluate", "load_matrix", "main", "read_back", "render", "unmatched"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MATRIX = PROJECT_ROOT / "security" / "authorization-matrix.toml"
EVALUATOR = PROJECT_ROOT / "scripts" / "authz" / "evaluate.mjs"
OTHER_ACCOUNT = "999999999999"

Document = dict[str, Any]
ADMINISTRATOR: Document = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "AdministratorAccess", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}
# How services get a secret into a container's environment: the execution role reads it.
EXECUTION_ROLE: Document = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AmazonECSTaskExecutionRolePolicy",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        },
        {
            "Sid": "SecretsForTheEnvironment",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt"],
            "Resource": "*",
        },
    ],
}

_ROW_KEYS = {"guarantee", "who", "action", "on", "context", "expect"}
_KINDS = {
    "task_role",
    "rotation_role",
    "operator_role",
    "apply_role",
    "plan_role",
    "key_admin_role",
    "root",
    "admin_elsewhere",
    "execution_role",
    "other_account",
    "secretsmanager",
    "cloudwatch",
    "logs",
}
_RESOURCES = {
    "secret",
    "primary_secret",
    "secrets_key",
    "replica_key",
    "monitoring_key",
    "alert_topic",
    "rotation_function",
}


class MatrixError(Exception):
    """The matrix file is malformed: one line naming the row and the problem."""


@dataclass(frozen=True)
class Row:
    index: int
    guarantee: str
    who: str
    action: str
    on: str
    context: Mapping[str, str]
    expect: str


def load_matrix(path: Path = MATRIX) -> list[Row]:
    rows = []
    for index, data in enumerate(tomllib.loads(path.read_text(encoding="utf-8")).get("row", []), start=1):
        where = f"{path.name}: row {index}"
        if set(data) - _ROW_KEYS or not {"guarantee", "who", "action", "on", "expect"} <= set(data):
            raise MatrixError(f"{where}: keys must be {sorted(_ROW_KEYS)} (context optional)")
        if data["who"] not in _KINDS:
            raise MatrixError(f"{where}: unknown principal kind {data['who']!r}")
        if data["on"] not in _RESOURCES:
            raise MatrixError(f"{where}: unknown resource kind {data['on']!r}")
        if data["expect"] not in ("allow", "deny"):
            raise MatrixError(f"{where}: expect must be allow or deny")
        rows.append(
            Row(
                index,
                data["guarantee"],
                data["who"],
                data["action"],
                data["on"],
                data.get("context", {}),
                data["expect"],
            )
        )
    return rows


@dataclass(frozen=True)
class Principal:
    arn: str
    policies: tuple[Document, ...] = ()


@dataclass(frozen=True)
class Resource:
    arn: str
    policy: Document | None
    bindings: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Deployment:
    """The policies of one deployed environment, read back from (local) AWS."""

    account: str
    principals: dict[str, list[Principal]]
    resources: dict[str, list[Resource]]
    bindings: dict[str, str | None]  # None: the env has no such thing (rows that need it are n/a)
    # Principals the policies name (PrincipalArn conditions, Principal elements, attachments).
    named: set[str]


def read_back(
    config: EnvironmentConfig, session: Any, endpoint_url: str | None, outputs: Mapping[str, str]
) -> Deployment:
    """Everything the matrix needs from the deployment. `session`: a boto3 session with the
    credentials to read it (local AWS: any)."""

    def client(service: str, region: str = config.region) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint_url)

    iam, secretsmanager = client("iam"), client("secretsmanager")
    secret_arn = outputs["secret_arn"]
    account = secret_arn.split(":")[4]
    partition = secret_arn.split(":")[1]

    def role(name: str) -> Principal:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        return Principal(arn, tuple(_role_policies(iam, name)))

    access, service = config.access, config.service
    rotation = config.rotation.enabled
    principals: dict[str, list[Principal]] = {
        "task_role": [role(role_name(name)) for name in service.task_roles],
        "rotation_role": [role(config.rotation_function_name)] if rotation else [],
        "operator_role": [role(role_name(name)) for name in access.operator_roles],
        "apply_role": [role(role_name(name)) for name in access.apply_roles],
        "plan_role": [role(role_name(name)) for name in access.plan_roles],
        "key_admin_role": [Principal(role(role_name(name)).arn, (ADMINISTRATOR,)) for name in access.key_admin_roles],
        "root": [Principal(f"arn:{partition}:iam::{account}:root", (ADMINISTRATOR,))],
        "admin_elsewhere": [Principal(f"arn:{partition}:iam::{account}:role/administrator", (ADMINISTRATOR,))],
        "execution_role": [
            Principal(f"arn:{partition}:iam::{account}:role/{config.name_prefix}-ecs-task-execution", (EXECUTION_ROLE,))
        ],
        "other_account": [Principal(f"arn:{partition}:iam::{OTHER_ACCOUNT}:role/administrator", (ADMINISTRATOR,))],
        "secretsmanager": [Principal("secretsmanager.amazonaws.com")],
        "cloudwatch": [Principal("cloudwatch.amazonaws.com")],
        "logs": [Principal(f"logs.{config.region}.amazonaws.com")],
    }

    secret = secretsmanager.describe_secret(SecretId=secret_arn)
    secret_policy = _document(secretsmanager.get_resource_policy(SecretId=secret_arn).get("ResourcePolicy"))
    replica_arns: dict[str, str] = json.loads(outputs.get("replica_secret_arns", "{}"))
    replica_keys = {replica["Region"]: replica["KmsKeyId"] for replica in secret.get("ReplicationStatus", [])}

    def key(arn: str, region: str) -> Document | None:
        return _document(client("kms", region).get_key_policy(KeyId=arn, PolicyName="default")["Policy"])

    copies = [(config.region, secret_arn, outputs["kms_key_arn"])]
    copies += [(region, arn, replica_keys[region]) for region, arn in replica_arns.items()]
    # Secrets Manager keeps a replica's resource policy in step with the primary's.
    secrets = [Resource(arn, secret_policy, _copy_bindings(region, arn)) for region, arn, _ in copies]
    keys = [Resource(key_arn, key(key_arn, region), _copy_bindings(region, arn)) for region, arn, key_arn in copies]
    topic_arn = outputs["alert_topic_arn"]
    topic_policy = _document(client("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"].get("Policy"))
    monitoring_arn = outputs["monitoring_kms_key_arn"]
    resources: dict[str, list[Resource]] = {
        "secret": secrets,
        "primary_secret": secrets[:1],
        "secrets_key": keys,
        "replica_key": keys[1:],
        "monitoring_key": [Resource(monitoring_arn, key(monitoring_arn, config.region))],
        "alert_topic": [Resource(topic_arn, topic_policy)],
        "rotation_function": [],
    }
    # A log group the monitoring key encrypts: the stack's own (the rotation function's, or the
    # stand-in service's); the application's own log group is not the stack's to encrypt.
    log_group = service.log_group_name if service.create_demo_resources else None
    if rotation:
        function = client("lambda").get_function(FunctionName=config.rotation_function_name)["Configuration"]
        policy = _document(client("lambda").get_policy(FunctionName=function["FunctionArn"])["Policy"])
        resources["rotation_function"] = [Resource(function["FunctionArn"], policy)]
        log_group = config.rotation_log_group_name
    arn = f"arn:{partition}:{{service}}:{config.region}:{account}:"
    bindings = {
        **_copy_bindings(config.region, secret_arn),
        "account": account,
        "topic": topic_arn,
        "other_topic": f"{arn.format(service='sns')}another-topic",
        "alarm": f"{arn.format(service='cloudwatch')}alarm:{config.alarm_name_prefix}secret-read-failed",
        "other_alarm": f"{arn.format(service='cloudwatch')}alarm:another-alarm",
        "log_group": f"{arn.format(service='logs')}log-group:{log_group}" if log_group else None,
        "other_log_group": f"{arn.format(service='logs')}log-group:/another/log-group",
    }

    named = _named_principals([secret_policy, *(r.policy for r in keys), resources["monitoring_key"][0].policy])
    named |= _named_principals([topic_policy, *(r.policy for r in resources["rotation_function"])])
    for policy_arn in (outputs.get("read_policy_arn"), outputs.get("operator_policy_arn")):
        if policy_arn:
            attached = iam.list_entities_for_policy(PolicyArn=policy_arn, EntityFilter="Role")["PolicyRoles"]
            named |= {iam.get_role(RoleName=r["RoleName"])["Role"]["Arn"] for r in attached}
    return Deployment(account, principals, resources, bindings, named)


def _copy_bindings(region: str, secret_arn: str) -> dict[str, str]:
    # Another secret, same account and region: what a stolen grant would be used on.
    other = re.sub(r":secret:.*$", ":secret:another/secret-AbCdEf", secret_arn)
    return {"region": region, "secret": secret_arn, "other_secret": other}


def _role_policies(iam: Any, name: str) -> Iterator[Document]:
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]
        yield _required(_document(document["Document"]))
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        yield _required(_document(iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]))


def _document(value: str | Document | None) -> Document | None:
    if value is None or value == "":
        return None
    return json.loads(value) if isinstance(value, str) else value


def _required(document: Document | None) -> Document:
    if document is None:
        raise ValueError("a policy attached to a role has no document")
    return document


def _named_principals(policies: Sequence[Document | None]) -> set[str]:
    named: set[str] = set()
    for policy in filter(None, policies):
        for statement in _as_list(policy.get("Statement", [])):
            principal = statement.get("Principal", {})
            if isinstance(principal, dict):
                for values in principal.values():
                    named |= set(_as_list(values))
            for operands in statement.get("Condition", {}).values():
                for key, values in operands.items():
                    if key.lower() == "aws:principalarn":
                        named |= set(_as_list(values))
    return named - {"*"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Outcome:
    row: Row
    principal: str
    resource: str
    expected: str
    evaluated: str  # "allow", "deny" or "n/a" (the env has no such principal or resource)
    explain: str

    @property
    def holds(self) -> bool:
        return self.evaluated in (self.expected, "n/a")


def evaluate(rows: Sequence[Row], deployment: Deployment) -> list[Outcome]:
    """Every row for every principal and resource of its kinds, decided by the evaluator."""
    requests: list[dict[str, Any]] = []
    cases: list[tuple[Row, str, str]] = []
    outcomes: list[Outcome] = []
    for row in rows:
        principals, resources = deployment.principals[row.who], deployment.resources[row.on]
        needed = {name for value in row.context.values() for _, name, _, _ in string.Formatter().parse(value) if name}
        if not principals or not resources or any(deployment.bindings.get(name, "") is None for name in needed):
            outcomes.append(Outcome(row, row.who, row.on, row.expect, "n/a", "the env has none"))
            continue
        for principal in principals:
            for resource in resources:
                values = {**deployment.bindings, **resource.bindings}
                context = {key: value.format(**values) for key, value in row.context.items()}
                requests.append(
                    {
                        "id": str(len(requests)),
                        "principal": principal.arn,
                        "action": row.action,
                        "resource": resource.arn,
                        "context": context,
                        "identityPolicies": list(principal.policies),
                        "resourcePolicy": resource.policy,
                    }
                )
                cases.append((row, principal.arn, resource.arn))
    results = _run_evaluator(requests)
    for (row, principal_arn, resource_arn), result in zip(cases, results, strict=True):
        evaluated = "allow" if result["decision"] == "Allowed" else "deny"
        explain = str(result.get("explain", ""))
        outcomes.append(Outcome(row, principal_arn, resource_arn, row.expect, evaluated, explain))
    return sorted(outcomes, key=lambda outcome: outcome.row.index)


def _run_evaluator(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not requests:
        return []
    result = subprocess.run(  # noqa: S603 (fixed argv)
        ["node", str(EVALUATOR)],  # noqa: S607 (node from PATH, as npm's)
        input=json.dumps({"requests": requests}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=PROJECT_ROOT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the evaluator failed (exit {result.returncode}): {result.stderr.strip()}")
    results: list[dict[str, Any]] = json.loads(result.stdout)["results"]
    return results


def unmatched(rows: Sequence[Row], deployment: Deployment) -> list[str]:
    """Principals the deployed policies name that no row covers (by their kind)."""
    covered = {row.who for row in rows}
    known = {principal.arn: kind for kind, found in deployment.principals.items() for principal in found}
    return sorted(arn for arn in deployment.named if known.get(arn) not in covered)


def render(env: str, outcomes: Sequence[Outcome], missing: Sequence[str]) -> str:
    lines = [f"authorization matrix: {env}", ""]
    width = max((len(o.row.who) for o in outcomes), default=4)
    for outcome in outcomes:
        mark = "✔" if outcome.holds else "✘"
        resource = outcome.resource.rsplit(":", 1)[-1] if outcome.resource.startswith("arn:") else outcome.resource
        lines.append(
            f"{mark} {outcome.row.guarantee:<38} {outcome.row.who:<{width}} {outcome.row.action:<38} "
            f"{resource[:40]:<40} expected {outcome.expected:<5} evaluated {outcome.evaluated}"
        )
        if not outcome.holds:
            lines.append(f"    {outcome.principal} -> {outcome.resource}: {outcome.explain}")
    lines += [f"✘ no row for a principal the policies name: {arn}" for arn in missing]
    failed = sum(not o.holds for o in outcomes) + len(missing)
    lines += ["", f"{len(outcomes)} rows, {failed} mismatches" if failed else f"{len(outcomes)} rows, all hold"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from scripts import access, local_aws, stackctl

    parser = argparse.ArgumentParser(prog="authz", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    args = parser.parse_args(argv)
    rows = load_matrix()
    config = access.environment_config(args.env)
    with local_aws.local_aws() as server:
        access.create_local_prerequisites(config, server)
        env = access.assume_locally(config, server, stackctl.local_environment(args.env, server, dict(os.environ)))
        try:
            stackctl.deploy(args.env, env, auto_approve=True)
            outputs = stackctl.outputs(args.env, env)
        except stackctl.StackError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        session = server.session(config.region)
        deployment = read_back(config, session, server.endpoint_url, outputs)
    outcomes = evaluate(rows, deployment)
    missing = unmatched(rows, deployment)
    print(render(args.env, outcomes, missing))
    return 0 if all(o.holds for o in outcomes) and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
