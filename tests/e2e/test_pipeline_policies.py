"""The pipeline roles' policies (iam/<env>/*.json), proven on what Terraform really calls.

Private local AWS endpoints, one per flow below so the flows run side by side, record every
API call (CREDLINK_RECORD_CALLS); each run of Terraform acts as an env's apply or plan role
(`scripts.stackctl.target_environment` assumes it), with its document attached to that role
(iam/<env>/*.json as shipped for dev and prod; generated from the env file otherwise):

- dev, as shipped (demo resources; the value written by Terraform through the write-only
  argument, so plan and apply read it back): deploy, then plan; then a day-2 change applied
  (a tag on everything, a replica region, the operator role replaced), a rotation outside
  Terraform, and destroy;
- prod, as shipped (a replica, two existing task roles): deploy, then plan;
- an env a user adds (the tests' own with S3 state and its lock file, replica regions and
  several task roles; tests/conftest.py), with a plan role: plan before anything exists, deploy.

What is proven:
1. Each call a role made (status 2xx or 404) maps to the IAM actions AWS checks for it: the
   operation's own, and those it checks with it (tag-on-create, iam:PassRole, the KMS calls
   Secrets Manager makes for the caller, lambda:InvokeFunction for RotateSecret); S3 HeadObject
   is s3:GetObject, ListObjectsV2 is s3:ListBucket; sts:GetCallerIdentity needs none.
   Every action is allowed, by evaluation (scripts/authz/evaluate.mjs), by the document
   attached to the role in that run, on every resource of this environment the operation
   acts on (the recorder keeps no resource: an operation's resources are those of its kind
   in the env, read back from local AWS), with the request context Terraform sends (read
   back too: tags, subscriptions, the function's invoke principal; or from the synthesized
   stack: the recovery window, block_public_policy), and, for KMS keys and the secret, the
   deployed key policies and secret policy. A dropped statement makes this fail.
2. The calls per role are those reviewed in iam/recorded-calls.json. A new call shows up as
   a difference; to accept it, review and refresh the file:
       CREDLINK_UPDATE_RECORDED_CALLS=1 .venv/bin/python -m pytest tests/e2e/test_pipeline_policies.py
3. Every action a document grants was checked in 1, or is in NOT_EXERCISED with the
   change that needs it (in-place updates this run does not make).
4. The plan role wrote no S3 object but the lock, and its document denies every write
   action on the deployed resources.
What is not: local AWS is moto. Calls only real AWS makes (retries, eventual-consistency
waits) are not recorded; moto enforces no policy (the evaluator decides).
"""

from __future__ import annotations

import json
import os
import re
import threading
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scripts import stackctl
from scripts.access import create_local_prerequisites
from scripts.local_aws import LocalAws, run_rotation_function, start, stop
from stacks.config import EnvironmentConfig, S3BackendConfig, load_environment, role_name
from stacks.pipeline_policies import POLICY_FILES, pipeline_policies
from tests.conftest import PROJECT_ROOT, REPLICATED_ENV, Synthesis, run_main
from tests.infra.test_pipeline_policies import (
    SERVICES,
    Request,
    evaluate,
    takes_resource,
    user_added_env,
    write_actions,
)

pytestmark = [pytest.mark.e2e, pytest.mark.synth, pytest.mark.terraform, pytest.mark.xdist_group("pipeline_policies")]

RECORD_CALLS = "CREDLINK_RECORD_CALLS"  # scripts.moto_server's; importing it would patch moto here
UPDATE_RECORDED_CALLS = "CREDLINK_UPDATE_RECORDED_CALLS"
RECORDED_CALLS = PROJECT_ROOT / "iam" / "recorded-calls.json"
VALUE = {
    "TF_VAR_api_keys_secret_version": "1",
    "TF_VAR_api_keys_secret_string": json.dumps({"apiKeys": "pipelinepolicyfakekey0123456789:client-1:One"}),
}
# The IAM prefix of a service, where the request is signed with another name.
IAM_PREFIX = {"monitoring": "cloudwatch"}
# Operations whose IAM action has another name (used in CHECKS below).
ACTION_OF = {("s3", "HeadObject"): "s3:GetObject", ("s3", "ListObjectsV2"): "s3:ListBucket"}
NO_PERMISSION = {("sts", "GetCallerIdentity")}

# Granted, but not called in this run: each is what Terraform calls for an in-place change of
# the stack or its env file that the run does not make.
NOT_EXERCISED = {
    "secretsmanager:UntagResource": "a tag removed from the env file",
    "secretsmanager:UpdateSecret": "the secret's description or KMS key changed",
    "kms:UntagResource": "a tag removed from the env file",
    "kms:UpdateAlias": "an alias moved to a replaced key",
    "kms:UpdateKeyDescription": "a key's description changed",
    "iam:UntagRole": "a tag removed from the env file",
    "iam:UntagPolicy": "a tag removed from the env file",
    "iam:UpdateRole": "a role's description or session duration changed",
    "iam:UpdateAssumeRolePolicy": "a created role's trust policy changed",
    "lambda:UpdateFunctionCode": "the rotation function's package changed (any edit to its modules)",
    "lambda:UpdateFunctionConfiguration": "its runtime, handler, memory, timeout or tracing changed",
    "lambda:GetFunctionConfiguration": "the provider's wait after updating the function",
    "lambda:DeleteFunctionConcurrency": "its reserved concurrency removed",
    "lambda:UntagResource": "a tag removed from the env file",
    "logs:AssociateKmsKey": "a log group's KMS key changed",
    "logs:DeleteRetentionPolicy": "a log group's retention removed",
    "logs:UntagResource": "a tag removed from the env file",
    "cloudwatch:UntagResource": "a tag removed from the env file",
    "sns:UntagResource": "a tag removed from the env file",
}

Json = dict[str, Any]


# ---------------------------------------------------------------- what ran


@dataclass(frozen=True)
class Phase:
    """One Terraform run as one role, with the document that role held."""

    name: str
    kind: str  # "plan" | "apply"
    env: str
    config: EnvironmentConfig
    document: Json
    stack: Json  # the synthesized stack it ran
    stack_dir: Path
    before: EnvironmentConfig | None = None  # the env file the state was applied from, when it differs


@dataclass
class Deployed:
    """An environment's resources as local AWS holds them, read with the server's own credentials."""

    config: EnvironmentConfig
    secrets: dict[str, str] = field(default_factory=dict)  # region -> secret (or replica) ARN
    secret_policy: Json | None = None
    secret_keys: dict[str, str] = field(default_factory=dict)  # region -> the key encrypting it there
    keys: dict[str, list[str]] = field(default_factory=dict)  # region -> every key of the env
    key_policies: dict[str, Json] = field(default_factory=dict)
    key_tags: dict[str, dict[str, str]] = field(default_factory=dict)  # region -> tags on its keys
    aliases: dict[str, list[str]] = field(default_factory=dict)
    policies: list[str] = field(default_factory=list)
    function: str | None = None
    rotation_role: str | None = None
    invoke_principals: list[str] = field(default_factory=list)
    created_log_groups: list[str] = field(default_factory=list)
    filtered_log_groups: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    topic: str = ""
    subscriptions: list[tuple[str, str]] = field(default_factory=list)  # (protocol, endpoint)
    roles: dict[str, str] = field(default_factory=dict)  # every role of the account then: name -> ARN


@dataclass
class Recording:
    calls: list[Json]
    phases: dict[str, Phase]  # access key -> the run it signed
    deployed: dict[str, Deployed]
    roles: dict[str, str]  # every role of the account: name -> ARN
    written: dict[str, set[str]]  # phase -> S3 objects it wrote (new versions)
    deleted: dict[str, set[str]]  # phase -> S3 objects it deleted (new delete markers)
    account: str


# ---------------------------------------------------------------- running it


def toml_text(data: Mapping[str, Any]) -> str:
    """An env file (top-level keys, then one-level tables); JSON scalars and arrays are TOML."""
    lines = [f"{json.dumps(key)} = {json.dumps(value)}" for key, value in data.items() if not isinstance(value, dict)]
    for table, values in data.items():
        if isinstance(values, dict):
            lines += ["", f"[{table}]", *(f"{json.dumps(key)} = {json.dumps(value)}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


def day_two(path: Path) -> str:
    """The env file after a day-2 change: a new tag (every resource's tags change), a replica
    region (a new key, the secret replicated, the read policies' new versions) and the
    operator role replaced by another (detached from a role no longer named, key and secret
    policies rewritten)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    regions = {data["region"], *data.get("replica_regions", [])}
    data["replica_regions"] = [
        *data.get("replica_regions", []),
        next(r for r in ("us-west-2", "eu-west-1") if r not in regions),
    ]
    data.setdefault("tags", {})["Team"] = "secrets"
    data["access"]["operator_roles"] = [f"{data.get('project_name', 'credlink')}-{data['environment']}-operator-b"]
    return toml_text(data)


class Targets:
    """What stackctl reads for each run: the env file and synthesized output per env, and the
    local AWS endpoint of the flow (thread) the run belongs to. Each flow has its own endpoint,
    so the three flows run side by side without queueing behind one server."""

    def __init__(self) -> None:
        self._current: dict[str, tuple[EnvironmentConfig, Path]] = {}
        self._lock = threading.Lock()
        self._flow = threading.local()

    def use(self, env: str, config: EnvironmentConfig, outdir: Path) -> None:
        with self._lock:
            self._current[env] = (config, outdir)

    def config(self, env: str) -> EnvironmentConfig:
        with self._lock:
            return self._current[env][0]

    def stack_dir(self, env: str) -> Path:
        with self._lock:
            return self._current[env][1] / "stacks" / env

    def serve(self, server: LocalAws) -> None:
        self._flow.server = server

    def running(self) -> LocalAws:
        server: LocalAws = self._flow.server
        return server


def shipped_documents(config: EnvironmentConfig) -> dict[str, Json]:
    """iam/<env>/*.json as shipped, which must be what the env file gives."""
    documents = {
        kind: json.loads((PROJECT_ROOT / "iam" / config.environment / name).read_text(encoding="utf-8"))
        for kind, name in POLICY_FILES.items()
    }
    assert documents == pipeline_policies(config), f"iam/{config.environment}/ is stale: run make pipeline-policies"
    return documents


# The user-added env of the third flow (its env file: user_added_env).
ADDED = REPLICATED_ENV
FLOWS = ("dev", "prod", ADDED)


@pytest.fixture(scope="module")
def recording(
    synthesized: Synthesis, terraform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Recording]:
    work = tmp_path_factory.mktemp("pipeline-policies")
    servers: dict[str, LocalAws] = {}
    try:
        for flow in FLOWS:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv(RECORD_CALLS, str(work / f"calls-{flow}.jsonl"))  # the server inherits it; nothing else
                servers[flow] = start(log_path=work / f"moto-{flow}.log")
        with pytest.MonkeyPatch.context() as patch:
            for name in ("TF_CLI_CONFIG_FILE", "CHECKPOINT_DISABLE", "TF_IN_AUTOMATION"):
                patch.setenv(name, terraform_env[name])
            targets = Targets()
            patch.setattr(stackctl, "running_local_aws", targets.running)
            patch.setattr(stackctl, "environment_config", targets.config)
            patch.setattr(stackctl, "stack_dir", targets.stack_dir)
            yield _record(servers, targets, synthesized, work)
    finally:
        for server in servers.values():
            stop(server)


def _record(servers: Mapping[str, LocalAws], targets: Targets, synthesized: Synthesis, work: Path) -> Recording:
    envs = work / "envs"
    envs.mkdir()
    (envs / "dev.toml").write_text(day_two(synthesized.envs_dir / "dev.toml"), encoding="utf-8")
    added_file = user_added_env(envs)
    outdir = work / "cdktf.out"
    synthesis: dict[str, Any] = {}
    synthesizing = threading.Thread(target=lambda: synthesis.update(result=run_main(envs, outdir)))
    synthesizing.start()

    dev, prod = (load_environment(synthesized.envs_dir / f"{env}.toml") for env in ("dev", "prod"))
    dev2, added = load_environment(envs / "dev.toml"), load_environment(added_file)
    shipped = {"dev": shipped_documents(dev), "prod": shipped_documents(prod)}
    generated = {"dev": pipeline_policies(dev2), ADDED: pipeline_policies(added)}
    phases: dict[str, Phase] = {}
    deployed: dict[str, Deployed] = {}
    written: dict[str, set[str]] = {}
    deleted: dict[str, set[str]] = {}
    lock = threading.Lock()

    def synthesized_second() -> Path:
        synthesizing.join()
        assert synthesis["result"].returncode == 0, synthesis["result"].stderr
        return outdir

    def run(
        name: str,
        kind: str,
        config: EnvironmentConfig,
        documents: Mapping[str, Json],
        out: Path,
        action: Callable[[str, dict[str, str]], object],
        *,
        before: EnvironmentConfig | None = None,
        extra: Mapping[str, str] = VALUE,
    ) -> None:
        env, document = config.environment, documents[kind]
        iam = client(targets.running(), "iam")
        for role in config.access.plan_roles if kind == "plan" else config.access.apply_roles:
            iam.put_role_policy(
                RoleName=role_name(role), PolicyName=f"pipeline-{kind}", PolicyDocument=json.dumps(document)
            )
        targets.use(env, config, out)
        variables = stackctl.target_environment(env, "local", plan_only=kind == "plan")
        stack_dir = out / "stacks" / env
        stack = json.loads((stack_dir / "cdk.tf.json").read_text(encoding="utf-8"))
        with lock:
            phases[variables["AWS_ACCESS_KEY_ID"]] = Phase(name, kind, env, config, document, stack, stack_dir, before)
        # What the run wrote to and deleted from its S3 state (the state object, the lock).
        versions = state_versions(targets.running(), config) if isinstance(config.backend, S3BackendConfig) else None
        action(env, {**variables, **extra})
        if versions is not None:
            written[name], deleted[name] = state_changes(versions, state_versions(targets.running(), config))

    def deploy(env: str, variables: dict[str, str]) -> None:
        stackctl.deploy(env, variables, auto_approve=True)

    def destroy(env: str, variables: dict[str, str]) -> None:
        stackctl.destroy(env, variables, auto_approve=True)

    def dev_flow(server: LocalAws) -> None:
        for config in (dev, dev2):
            create_local_prerequisites(config, server)
        run("dev deploy", "apply", dev, shipped["dev"], synthesized.outdir, deploy)
        run("dev plan", "plan", dev, shipped["dev"], synthesized.outdir, stackctl.plan)
        second = synthesized_second()
        run("dev day-2 apply", "apply", dev2, generated["dev"], second, deploy, before=dev)
        deployed["dev"] = read_back(server, dev2, second)
        rotate(server, deployed["dev"].secrets[dev2.region])  # destroying then unlabels Terraform's version
        run("dev destroy", "apply", dev2, generated["dev"], second, destroy)

    def prod_flow(server: LocalAws) -> None:
        create_local_prerequisites(prod, server)
        run("prod deploy", "apply", prod, shipped["prod"], synthesized.outdir, deploy, extra={})
        run("prod plan", "plan", prod, shipped["prod"], synthesized.outdir, stackctl.plan, extra={})
        deployed["prod"] = read_back(server, prod, synthesized.outdir)

    def added_flow(server: LocalAws) -> None:
        create_local_prerequisites(added, server)
        second = synthesized_second()
        for name, kind, action in ((f"{ADDED} plan", "plan", stackctl.plan), (f"{ADDED} deploy", "apply", deploy)):
            run(name, kind, added, generated[ADDED], second, action, extra={})
        deployed[ADDED] = read_back(server, added, second)

    errors: list[BaseException] = []

    def in_thread(flow: Callable[[LocalAws], None], server: LocalAws) -> threading.Thread:
        def run_flow() -> None:
            targets.serve(server)
            try:
                flow(server)
            except BaseException as error:
                errors.append(error)

        return threading.Thread(target=run_flow)

    threads = [
        in_thread(flow, servers[name]) for name, flow in zip(FLOWS, (dev_flow, prod_flow, added_flow), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    synthesizing.join()
    if errors:
        raise errors[0]
    calls = [
        json.loads(line)
        for name in FLOWS
        for line in (work / f"calls-{name}.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    roles = {name: arn for found in deployed.values() for name, arn in found.roles.items()}
    account = next(iter(roles.values())).split(":")[4]
    return Recording(calls, phases, deployed, roles, written, deleted, account)


def client(server: LocalAws, service: str, region: str = "us-east-1") -> Any:
    return server.session(region).client(service, endpoint_url=server.endpoint_url)  # type: ignore[call-overload]


def rotate(server: LocalAws, secret_arn: str) -> None:
    secrets = client(server, "secretsmanager", secret_arn.split(":")[3])
    run_rotation_function(secrets, secret_arn, secrets.rotate_secret(SecretId=secret_arn)["VersionId"])


def state_versions(server: LocalAws, config: EnvironmentConfig) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(object versions, delete markers) under the state key, as (key, version id)."""
    backend = config.backend
    assert isinstance(backend, S3BackendConfig)
    s3 = client(server, "s3", backend.region)
    if backend.bucket not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}:
        return set(), set()
    listed = s3.list_object_versions(Bucket=backend.bucket, Prefix=backend.key)
    versions = {(v["Key"], v["VersionId"]) for v in listed.get("Versions", [])}
    markers = {(m["Key"], m["VersionId"]) for m in listed.get("DeleteMarkers", [])}
    return versions, markers


def state_changes(
    before: tuple[set[tuple[str, str]], set[tuple[str, str]]], after: tuple[set[tuple[str, str]], set[tuple[str, str]]]
) -> tuple[set[str], set[str]]:
    return {key for key, _ in after[0] - before[0]}, {key for key, _ in after[1] - before[1]}


def read_back(server: LocalAws, config: EnvironmentConfig, outdir: Path) -> Deployed:
    """The env's deployed resources, from its outputs and from local AWS."""
    outputs = json.loads((outdir / "stacks" / config.environment / "outputs.json").read_text(encoding="utf-8"))
    outputs = outputs[config.environment]
    region = config.region
    found = Deployed(config)
    secret = client(server, "secretsmanager", region).describe_secret(SecretId=outputs["secret_arn"])
    found.secrets[region], found.secret_keys[region] = secret["ARN"], secret["KmsKeyId"]
    found.keys[region] = [outputs["kms_key_arn"], outputs["monitoring_kms_key_arn"]]
    for replica in secret.get("ReplicationStatus", []):
        replica_region = replica["Region"]
        described = client(server, "secretsmanager", replica_region).describe_secret(SecretId=config.secret_name)
        found.secrets[replica_region], found.secret_keys[replica_region] = described["ARN"], replica["KmsKeyId"]
        found.keys[replica_region] = [replica["KmsKeyId"]]
    found.secret_policy = json.loads(
        client(server, "secretsmanager", region).get_resource_policy(SecretId=secret["ARN"])["ResourcePolicy"]
    )
    for key_region, keys in found.keys.items():
        kms = client(server, "kms", key_region)
        for key in keys:
            found.key_policies[key] = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
        found.key_tags[key_region] = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=keys[0])["Tags"]}
        key_ids = {key.rsplit("/", 1)[1] for key in keys}
        found.aliases[key_region] = [
            a["AliasArn"] for a in kms.list_aliases()["Aliases"] if a.get("TargetKeyId") in key_ids
        ]
    found.policies = [outputs[name] for name in ("read_policy_arn", "operator_policy_arn") if name in outputs]
    if secret.get("RotationLambdaARN"):
        functions = client(server, "lambda", region)
        found.function = secret["RotationLambdaARN"]
        found.rotation_role = functions.get_function(FunctionName=found.function)["Configuration"]["Role"]
        statements = json.loads(functions.get_policy(FunctionName=found.function)["Policy"])["Statement"]
        found.invoke_principals = sorted({s["Principal"]["Service"] for s in statements})
    logs = client(server, "logs", region)
    account = outputs["secret_arn"].split(":")[4]
    rotation_group = [f"/aws/lambda/{found.function.rsplit(':', 1)[1]}"] if found.function else []
    demo_group = [config.service.log_group_name] if config.service.create_demo_resources else []
    for name in [config.service.log_group_name, *rotation_group]:
        arn = f"arn:aws:logs:{region}:{account}:log-group:{name}"
        if name in (*rotation_group, *demo_group):
            found.created_log_groups.append(arn)
        if logs.describe_metric_filters(logGroupName=name)["metricFilters"]:
            found.filtered_log_groups.append(arn)
    found.topic = outputs["alert_topic_arn"]
    alarms = client(server, "cloudwatch", region).describe_alarms()["MetricAlarms"]
    found.alarms = [alarm["AlarmArn"] for alarm in alarms if found.topic in alarm.get("AlarmActions", [])]
    subscriptions = client(server, "sns", region).list_subscriptions_by_topic(TopicArn=found.topic)["Subscriptions"]
    found.subscriptions = [(s["Protocol"], s["Endpoint"]) for s in subscriptions]
    found.roles = {role["RoleName"]: role["Arn"] for role in client(server, "iam").list_roles()["Roles"]}
    return found


# ---------------------------------------------------------------- what each call needs


@dataclass(frozen=True)
class Target:
    resource: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict)
    resource_policy: Json | None = None


Resolver = Callable[["Call"], list[Target]]


@dataclass(frozen=True)
class Call:
    """One recorded call, with what the run and the deployment tell about it."""

    phase: Phase
    service: str
    operation: str
    region: str
    recording: Recording

    @property
    def deployed(self) -> Deployed:
        return self.recording.deployed[self.phase.env]

    def role(self, name: str) -> str:
        return self.recording.roles[role_name(name)]

    def principal(self) -> str:
        roles = (
            self.phase.config.access.plan_roles if self.phase.kind == "plan" else self.phase.config.access.apply_roles
        )
        return self.role(roles[0])


def secret(call: Call) -> list[Target]:
    d = call.deployed
    return [Target(d.secrets[call.region], resource_policy=d.secret_policy)]


def secret_delete(call: Call) -> list[Target]:
    window = str(call.phase.stack["module"]["secrets"]["recovery_window_days"])
    return [
        Target(t.resource, {"secretsmanager:RecoveryWindowInDays": window}, t.resource_policy) for t in secret(call)
    ]


def secret_policy(call: Call) -> list[Target]:
    module = call.phase.stack["module"]["secrets"]
    source = (call.phase.stack_dir / module["source"] / "main.tf").read_text(encoding="utf-8")
    assert re.search(r"block_public_policy\s*=\s*true", source)
    return [Target(t.resource, {"secretsmanager:BlockPublicPolicy": "true"}, t.resource_policy) for t in secret(call)]


def via_secrets_manager(regions: Callable[[Call], list[str]]) -> Resolver:
    """The key encrypting the secret in each region, used by Secrets Manager for this secret."""

    def targets(call: Call) -> list[Target]:
        d = call.deployed
        return [
            Target(
                d.secret_keys[region],
                {
                    "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
                    "kms:EncryptionContext:SecretARN": d.secrets[region],
                },
                d.key_policies[d.secret_keys[region]],
            )
            for region in regions(call)
        ]

    return targets


primary_key = via_secrets_manager(lambda call: [call.phase.config.region])
replica_keys = via_secrets_manager(lambda call: list(call.phase.config.replica_regions))


def keys(call: Call) -> list[Target]:
    d = call.deployed
    return [Target(key, resource_policy=d.key_policies[key]) for key in d.keys.get(call.region, [])]


def aliases(call: Call) -> list[Target]:
    return [Target(alias) for alias in call.deployed.aliases.get(call.region, [])]


def anything(call: Call) -> list[Target]:
    return [Target("*")]


def tagged_key(call: Call) -> list[Target]:
    tags = call.deployed.key_tags[call.region]
    context: dict[str, str | list[str]] = {f"aws:RequestTag/{key}": value for key, value in tags.items()}
    return [Target("*", {**context, "aws:TagKeys": list(tags)})]


def created_roles(call: Call) -> list[Target]:
    config, d = call.phase.config, call.deployed
    demo = config.service.task_roles if config.service.create_demo_resources else ()
    return [Target(arn) for arn in (*([d.rotation_role] if d.rotation_role else []), *map(call.role, demo))]


def named_roles(call: Call) -> list[Target]:
    access, service = call.phase.config.access, call.phase.config.service
    task_roles = () if service.create_demo_resources else service.task_roles
    names = (*access.apply_roles, *access.plan_roles, *access.key_admin_roles, *access.operator_roles, *task_roles)
    return [*created_roles(call), *(Target(call.role(name)) for name in names)]


def _attachment_targets(config: EnvironmentConfig) -> tuple[str, ...]:
    return (*config.service.task_roles, *config.access.operator_roles)


def with_policies(call: Call, roles: Iterable[str]) -> list[Target]:
    return [Target(call.role(role), {"iam:PolicyARN": policy}) for role in roles for policy in call.deployed.policies]


def attach_targets(call: Call) -> list[Target]:
    return with_policies(call, _attachment_targets(call.phase.config))


def attached_roles(call: Call) -> list[Target]:
    """Attachment targets in the state (the env file it was applied from) or in the env file."""
    before = _attachment_targets(call.phase.before) if call.phase.before else ()
    return with_policies(call, dict.fromkeys((*before, *_attachment_targets(call.phase.config))))


def roles_with_attachments(call: Call) -> list[Target]:
    attached = dict.fromkeys(target.resource for target in attached_roles(call))
    return [*created_roles(call), *(Target(role) for role in attached)]


def policies(call: Call) -> list[Target]:
    return [Target(policy) for policy in call.deployed.policies]


def rotation_role_to_lambda(call: Call) -> list[Target]:
    role = call.deployed.rotation_role
    return [Target(role, {"iam:PassedToService": "lambda.amazonaws.com"})] if role else []


def function(call: Call) -> list[Target]:
    return [Target(call.deployed.function)] if call.deployed.function else []


def invoke_permission(call: Call) -> list[Target]:
    d = call.deployed
    return [Target(d.function, {"lambda:Principal": p}) for p in d.invoke_principals] if d.function else []


def created_log_groups(call: Call) -> list[Target]:
    return [Target(group) for group in call.deployed.created_log_groups]


def filtered_log_groups(call: Call) -> list[Target]:
    return [Target(group) for group in call.deployed.filtered_log_groups]


def alarms(call: Call) -> list[Target]:
    return [Target(alarm) for alarm in call.deployed.alarms]


def topic(call: Call) -> list[Target]:
    return [Target(call.deployed.topic)]


def subscribed(call: Call) -> list[Target]:
    d = call.deployed
    return [
        Target(d.topic, {"sns:Protocol": protocol, "sns:Endpoint": endpoint}) for protocol, endpoint in d.subscriptions
    ]


def _state(call: Call) -> tuple[str, str, str]:
    backend = call.phase.config.backend
    assert isinstance(backend, S3BackendConfig)
    return f"arn:aws:s3:::{backend.bucket}", backend.bucket, backend.key


def bucket(call: Call) -> list[Target]:
    return [Target(_state(call)[0])]


def state_objects(call: Call) -> list[Target]:
    arn, _, key = _state(call)
    return [Target(f"{arn}/{key}"), Target(f"{arn}/{key}.tflock")]


def written_objects(call: Call) -> list[Target]:
    arn = _state(call)[0]
    return [Target(f"{arn}/{key}") for key in sorted(call.recording.written[call.phase.name])]


def deleted_objects(call: Call) -> list[Target]:
    arn = _state(call)[0]
    return [Target(f"{arn}/{key}") for key in sorted(call.recording.deleted[call.phase.name])]


def replicated(action: str, resolver: Resolver) -> tuple[str, Resolver]:
    """A check that applies only with replica regions."""
    return action, lambda call: resolver(call) if call.phase.config.replica_regions else []


_SECRET_TAGGED = (("secretsmanager:TagResource", secret),)
_WRITE_VERSION = (
    ("kms:GenerateDataKey", primary_key),
    ("kms:Decrypt", primary_key),
    replicated("kms:GenerateDataKey", replica_keys),
    replicated("kms:Encrypt", replica_keys),
)
# (signing service, operation) -> (IAM action, the resources it is checked on), the
# operation's own first. Sources: each API's "Required permissions" in its API reference, the
# Service Authorization Reference, Terraform's S3 backend documentation.
CHECKS: dict[tuple[str, str], tuple[tuple[str, Resolver], ...]] = {
    ("secretsmanager", "CreateSecret"): (
        ("secretsmanager:CreateSecret", secret),
        *_SECRET_TAGGED,
        *_WRITE_VERSION,
        replicated("secretsmanager:ReplicateSecretToRegions", secret),
    ),
    ("secretsmanager", "PutSecretValue"): (("secretsmanager:PutSecretValue", secret), *_WRITE_VERSION),
    ("secretsmanager", "GetSecretValue"): (("secretsmanager:GetSecretValue", secret), ("kms:Decrypt", primary_key)),
    ("secretsmanager", "ReplicateSecretToRegions"): (
        ("secretsmanager:ReplicateSecretToRegions", secret),
        ("kms:Decrypt", primary_key),
        ("kms:GenerateDataKey", replica_keys),
        ("kms:Encrypt", replica_keys),
    ),
    ("secretsmanager", "RotateSecret"): (("secretsmanager:RotateSecret", secret), ("lambda:InvokeFunction", function)),
    ("secretsmanager", "DeleteSecret"): (("secretsmanager:DeleteSecret", secret_delete),),
    ("secretsmanager", "PutResourcePolicy"): (("secretsmanager:PutResourcePolicy", secret_policy),),
    ("kms", "CreateKey"): (("kms:CreateKey", tagged_key), ("kms:TagResource", keys)),
    ("iam", "GetRole"): (("iam:GetRole", named_roles),),
    ("iam", "CreateRole"): (("iam:CreateRole", created_roles), ("iam:TagRole", created_roles)),
    ("iam", "ListAttachedRolePolicies"): (("iam:ListAttachedRolePolicies", roles_with_attachments),),
    ("iam", "AttachRolePolicy"): (("iam:AttachRolePolicy", attach_targets),),
    ("iam", "DetachRolePolicy"): (("iam:DetachRolePolicy", attached_roles),),
    ("iam", "CreatePolicy"): (("iam:CreatePolicy", policies), ("iam:TagPolicy", policies)),
    ("lambda", "CreateFunction"): (
        ("lambda:CreateFunction", function),
        ("lambda:TagResource", function),
        ("iam:PassRole", rotation_role_to_lambda),
    ),
    ("lambda", "UpdateFunctionConfiguration"): (
        ("lambda:UpdateFunctionConfiguration", function),
        ("iam:PassRole", rotation_role_to_lambda),
    ),
    ("lambda", "AddPermission"): (("lambda:AddPermission", invoke_permission),),
    ("logs", "CreateLogGroup"): (("logs:CreateLogGroup", created_log_groups), ("logs:TagResource", created_log_groups)),
    ("logs", "DescribeLogGroups"): (("logs:DescribeLogGroups", anything),),
    ("monitoring", "PutMetricAlarm"): (("cloudwatch:PutMetricAlarm", alarms), ("cloudwatch:TagResource", alarms)),
    ("sns", "CreateTopic"): (("sns:CreateTopic", topic), ("sns:TagResource", topic)),
    ("sns", "Subscribe"): (("sns:Subscribe", subscribed),),
    ("s3", "HeadObject"): ((ACTION_OF["s3", "HeadObject"], state_objects),),
    ("s3", "GetObject"): (("s3:GetObject", state_objects),),
    ("s3", "PutObject"): (("s3:PutObject", written_objects),),
    ("s3", "DeleteObject"): (("s3:DeleteObject", deleted_objects),),
    ("s3", "ListObjectsV2"): ((ACTION_OF["s3", "ListObjectsV2"], bucket),),
}
# Every other operation: its own action, on the resources of its service's kind below.
RESOURCES_OF: dict[str, Resolver] = {
    "secretsmanager": secret,
    "kms": keys,
    "lambda": function,
    "monitoring": alarms,
    "sns": topic,
}
RESOURCES_OF_OPERATION: dict[tuple[str, str], Resolver] = {
    **{("kms", op): anything for op in ("ListAliases",)},
    **{("kms", op): lambda call: [*aliases(call), *keys(call)] for op in ("CreateAlias", "DeleteAlias", "UpdateAlias")},
    **{
        ("iam", op): created_roles
        for op in (
            "DeleteRole", "DeleteRolePolicy", "GetRolePolicy", "ListInstanceProfilesForRole", "ListRolePolicies",
            "PutRolePolicy", "TagRole", "UntagRole", "UpdateRole", "UpdateAssumeRolePolicy",
        )
    },
    **{
        ("iam", op): policies
        for op in ("CreatePolicyVersion", "DeletePolicy", "DeletePolicyVersion", "GetPolicy", "GetPolicyVersion",
                   "ListPolicyVersions", "TagPolicy", "UntagPolicy")
    },
    **{("logs", op): filtered_log_groups for op in ("DeleteMetricFilter", "DescribeMetricFilters", "PutMetricFilter")},
    **{
        ("logs", op): created_log_groups
        for op in ("AssociateKmsKey", "DeleteLogGroup", "DeleteRetentionPolicy", "ListTagsForResource",
                   "PutRetentionPolicy", "TagResource", "UntagResource")
    },
}  # fmt: skip


class Unmapped(Exception):
    """A recorded operation this test does not know the IAM action or resources of."""


def checks(call: Call) -> list[tuple[str, Target]]:
    """(action, target) pairs the call needs allowed; an operation nobody mapped raises."""
    key = (call.service, call.operation)
    if key in NO_PERMISSION:
        return []
    if key in CHECKS:
        needed = CHECKS[key]
    else:
        resolver = RESOURCES_OF_OPERATION.get(key) or RESOURCES_OF.get(call.service)
        if resolver is None or call.operation.startswith("UNMAPPED"):
            raise Unmapped(f"{call.service}:{call.operation}: no IAM action and resource known for it")
        action = f"{IAM_PREFIX.get(call.service, call.service)}:{call.operation}"
        needed = ((action, resolver),)
    return [(action, target) for action, resolver in needed for target in resolver(call)]


# ---------------------------------------------------------------- proving it


def role_calls(recording: Recording) -> list[Call]:
    """Distinct (run, service, operation, region) of the roles' calls with status 2xx or 404."""
    seen: dict[tuple[str, str, str, str], Call] = {}
    for record in recording.calls:
        phase = recording.phases.get(record["access_key"])
        if phase is None or not (200 <= record["status"] < 300 or record["status"] == 404):
            continue
        key = (phase.name, record["service"], record["operation"], record["region"])
        seen.setdefault(key, Call(phase, record["service"], record["operation"], record["region"], recording))
    return list(seen.values())


@dataclass(frozen=True)
class Coverage:
    requests: list[Request]
    decisions: Mapping[str, Any]
    unmapped: list[str]

    def uncovered(self) -> list[str]:
        return sorted(
            f"{request.id} ({self.decisions[request.id].explain})"
            for request in self.requests
            if not self.decisions[request.id].allowed
        )


def coverage(recording: Recording, documents: Mapping[str, Json] | None = None) -> Coverage:
    """Every recorded call's checks, evaluated against each run's document (or, by run name,
    the ones given instead)."""
    requests: dict[str, Request] = {}
    unmapped: list[str] = []
    for call in role_calls(recording):
        try:
            needed = checks(call)
        except Unmapped as error:
            unmapped.append(str(error))
            continue
        document = (documents or {}).get(call.phase.name, call.phase.document)
        for action, target in needed:
            request_id = f"{call.phase.name}: {call.service}:{call.operation} needs {action} on {target.resource}"
            if target.context:
                request_id += f" {json.dumps(dict(target.context), sort_keys=True)}"
            requests[request_id] = Request(
                request_id, call.principal(), action, target.resource, document, target.context, target.resource_policy
            )
    return Coverage(list(requests.values()), evaluate(list(requests.values())), sorted(set(unmapped)))


def test_every_call_each_role_made_is_allowed_by_its_document(recording: Recording) -> None:
    covered = coverage(recording)
    assert covered.unmapped == []
    assert len(covered.requests) > 150
    assert {recording.phases[key].name for key in recording.phases} >= {
        "dev deploy",
        "dev plan",
        "prod plan",
        f"{ADDED} plan",
    }
    assert covered.uncovered() == []


def test_a_dropped_statement_is_reported(recording: Recording) -> None:
    """The coverage check can fail: without the statement that allows creating the alert
    topic, the deploy runs' CreateTopic and TagResource checks are reported."""
    mutated: dict[str, Json] = {}
    for phase in recording.phases.values():
        if phase.kind == "apply":
            statements = [s for s in phase.document["Statement"] if "sns:CreateTopic" not in s["Action"]]
            assert len(statements) == len(phase.document["Statement"]) - 1
            mutated[phase.name] = {**phase.document, "Statement": statements}
    reported = coverage(recording, mutated).uncovered()
    assert reported
    assert any("sns:CreateTopic needs sns:CreateTopic" in line for line in reported)
    assert any("sns:CreateTopic needs sns:TagResource" in line for line in reported)
    assert all(line.split(": ", 1)[0] in mutated for line in reported)


def recorded_calls(recording: Recording) -> dict[str, list[str]]:
    calls: dict[str, set[str]] = {kind: set() for kind in POLICY_FILES}
    for call in role_calls(recording):
        calls[call.phase.kind].add(f"{call.service}:{call.operation}")
    return {kind: sorted(operations) for kind, operations in sorted(calls.items())}


def test_the_recorded_calls_are_the_reviewed_ones(recording: Recording) -> None:
    fresh = recorded_calls(recording)
    if os.environ.get(UPDATE_RECORDED_CALLS) == "1":
        RECORDED_CALLS.write_text(json.dumps(fresh, indent=2) + "\n", encoding="utf-8")
    reviewed = json.loads(RECORDED_CALLS.read_text(encoding="utf-8"))
    for kind in POLICY_FILES:
        new, gone = sorted(set(fresh[kind]) - set(reviewed[kind])), sorted(set(reviewed[kind]) - set(fresh[kind]))
        assert (new, gone) == ([], []), (
            f"{kind}: new calls {new}, no longer made {gone}: review, then {UPDATE_RECORDED_CALLS}=1"
        )
    assert fresh == reviewed


def test_every_granted_action_was_exercised_or_is_explained(recording: Recording) -> None:
    granted = {
        action
        for phase in recording.phases.values()
        for statement in phase.document["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    exercised = {request.action for request in coverage(recording).requests}
    assert sorted(granted - exercised) == sorted(NOT_EXERCISED)
    assert exercised <= granted


def test_the_plan_role_wrote_only_the_lock(recording: Recording) -> None:
    backend = recording.deployed[ADDED].config.backend
    assert isinstance(backend, S3BackendConfig)
    lock = f"{backend.key}.tflock"
    assert recording.written[f"{ADDED} plan"] == {lock}
    assert recording.deleted[f"{ADDED} plan"] == {lock}
    assert recording.written[f"{ADDED} deploy"] == {backend.key, lock}


def test_the_plan_documents_deny_every_write_on_the_deployed_resources(recording: Recording) -> None:
    """As tests/infra/test_pipeline_policies.py does on names, here on the deployed ARNs and
    with the deployed key and secret policies."""
    requests: list[Request] = []
    for phase in {p.name: p for p in recording.phases.values() if p.kind == "plan"}.values():
        d = recording.deployed[phase.env]
        principal = recording.roles[role_name(phase.config.access.plan_roles[0])]
        state = (
            [f"arn:aws:s3:::{b.bucket}", f"arn:aws:s3:::{b.bucket}/{b.key}"]
            if isinstance(b := phase.config.backend, S3BackendConfig)
            else []
        )
        targets = [
            *(Target(s, resource_policy=d.secret_policy) for s in d.secrets.values()),
            *(Target(k, resource_policy=d.key_policies[k]) for ks in d.keys.values() for k in ks),
            *(Target(a) for aliases_ in d.aliases.values() for a in aliases_),
            *(Target(r) for r in recording.roles.values()),
            *(Target(p) for p in d.policies),
            *(Target(x) for x in [d.function, d.topic, *d.alarms, *d.created_log_groups, *d.filtered_log_groups] if x),
            *(Target(s) for s in state),
            Target("*"),
        ]
        for service in SERVICES:
            for action in write_actions(service):
                for target in {target.resource: target for target in targets}.values():
                    if takes_resource(action, target.resource):
                        request_id = f"{phase.name}: {action} {target.resource}"
                        requests.append(
                            Request(
                                request_id,
                                principal,
                                action,
                                target.resource,
                                phase.document,
                                {},
                                target.resource_policy,
                            )
                        )
    decisions = evaluate(requests)
    assert [request.id for request in requests if decisions[request.id].allowed] == []
