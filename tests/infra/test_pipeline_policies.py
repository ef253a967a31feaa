"""The pipeline roles' IAM policies (stacks/pipeline_policies.py) for every env file.

The files in iam/ are current (`--check`), and each document, decided by the offline IAM
evaluator (scripts/authz/evaluate.mjs) on resources named from the env file:
- allows what the stack creates, under the names the synthesized stack really uses;
- confines its conditions (PassRole to Lambda, env policies only, the alert emails, tags...);
- for the plan role, denies every write action the Service Authorization Reference lists for
  the services involved, except the S3 state lock object;
- grants nothing on another environment's resources beyond what the key policies gate.
Nothing here names an environment: a user-added env file is checked like the shipped ones.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stacks.config import EnvironmentConfig, S3BackendConfig, load_environment, load_environments, role_name
from stacks.pipeline_policies import ACCOUNT, POLICY_FILES, RESOURCE_ACCOUNT, WILDCARD_ONLY, pipeline_policies, render
from tests.conftest import (
    PROJECT_ROOT,
    REPLICATED_ENV,
    ROTATION_OFF_ENV,
    TEST_ENV_FILES,
    Synthesis,
    write_env_file,
)

# One worker runs this module's tests (pytest-xdist): the configs are made once.
pytestmark = pytest.mark.xdist_group("infra_pipeline_policies")

EVALUATOR = PROJECT_ROOT / "scripts" / "authz" / "evaluate.mjs"
IAM_DATA = PROJECT_ROOT / "node_modules" / "@cloud-copilot" / "iam-data" / "data"
LOCAL_ACCOUNT = "123456789012"  # moto's, and the evaluator's principal account here
OTHER_ACCOUNT = "210987654321"
INLINE_POLICY_QUOTA = 10_240  # characters, whitespace not counted: a role's inline policies together
SERVICES = ("cloudwatch", "iam", "kms", "lambda", "logs", "s3", "secretsmanager", "sns", "sts")
WRITE_LEVELS = ("Write", "Permissions management", "Tagging")

Json = dict[str, Any]
Context = Mapping[str, str | list[str]]


# ---------------------------------------------------------------- evaluator


@dataclass(frozen=True)
class Request:
    """One question for the evaluator: may `principal`, holding `document`, do this?"""

    id: str
    principal: str
    action: str
    resource: str
    document: Json
    context: Context = field(default_factory=dict)
    resource_policy: Json | None = None

    def as_input(self) -> Json:
        resource_policy = self.resource_policy
        if resource_policy is None and self.action.startswith("kms:") and ":key/" in self.resource:
            resource_policy = key_policy_delegating_to_iam(self.resource.split(":")[4])
        return {
            "id": self.id,
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "context": dict(self.context),
            "identityPolicies": [{"name": "pipeline", "policy": self.document}],
            "resourcePolicy": resource_policy,
        }


def key_policy_delegating_to_iam(account: str) -> Json:
    """A key policy that leaves every decision to IAM policies (KMS's default key policy), so
    a KMS request is decided by the pipeline document alone. The deployed key policies,
    narrower, are evaluated in tests/e2e/test_pipeline_policies.py."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EnableIamPolicies",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


@dataclass(frozen=True)
class Decision:
    decision: str
    explain: str

    @property
    def allowed(self) -> bool:
        return self.decision == "Allowed"


def evaluate(requests: Sequence[Request]) -> dict[str, Decision]:
    """All requests in one evaluator run; a refused input fails the test with its one line."""
    if not requests:
        return {}
    ids = [request.id for request in requests]
    duplicates = sorted({request_id for request_id in ids if ids.count(request_id) > 1})
    assert not duplicates, f"duplicate request ids: {duplicates[:5]}"
    completed = subprocess.run(
        ["node", str(EVALUATOR)],
        input=json.dumps({"requests": [request.as_input() for request in requests]}),
        cwd=PROJECT_ROOT,
        env={key: value for key, value in os.environ.items() if key != "AUTHZ_ENCRYPTION_CONTEXT"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return {
        result["id"]: Decision(result["decision"], result["explain"])
        for result in json.loads(completed.stdout)["results"]
    }


# ---------------------------------------------------------------- Service Authorization Reference


@functools.cache
def service_actions(service: str) -> dict[str, Json]:
    """The Service Authorization Reference's actions of a service, as the evaluator's library has it."""
    data: dict[str, Json] = json.loads((IAM_DATA / "actions" / f"{service}.json").read_text(encoding="utf-8"))
    return data


@functools.cache
def _resource_type_patterns(service: str) -> dict[str, tuple[re.Pattern[str], str]]:
    """Resource type -> (its ARN template as a regex, the template's literal text)."""
    types: dict[str, Json] = json.loads((IAM_DATA / "resourceTypes" / f"{service}.json").read_text(encoding="utf-8"))
    patterns = {}
    for key, resource_type in types.items():
        parts = re.split(r"(\$\{[^}]+\})", resource_type["arn"])
        # A variable stands for text without ':' (the evaluator's library matches ARN parts).
        regex = "".join("[^:]+" if part.startswith("${") else re.escape(part) for part in parts)
        literal = "".join(part for part in parts if not part.startswith("${"))
        patterns[key] = (re.compile(f"^{regex}$"), literal)
    return patterns


def resource_types_of(service: str, resource: str) -> set[str]:
    """The resource types an ARN is, as the evaluator's library decides: of the templates it
    matches, the most specific (arn:...:s3:::b/k is an object, not also a bucket)."""
    matching = {
        name: literal for name, (regex, literal) in _resource_type_patterns(service).items() if regex.match(resource)
    }
    return {
        name
        for name, literal in matching.items()
        if not any(len(other) > len(literal) and other.startswith(literal) for other in matching.values())
    }


def action_details(action: str) -> Json:
    service, name = action.split(":")
    details = service_actions(service).get(name.lower())
    assert details is not None, f"{action} is not in the Service Authorization Reference"
    return details


def takes_resource(action: str, resource: str) -> bool:
    """Whether `resource` is of a type `action` acts on ("*" only for actions with no type)."""
    types = {resource_type["name"].lower() for resource_type in action_details(action)["resourceTypes"]}
    if not types:
        return resource == "*"
    return resource != "*" and bool(types & resource_types_of(action.split(":")[0], resource))


def write_actions(service: str) -> list[str]:
    return sorted(
        f"{service}:{details['name']}"
        for details in service_actions(service).values()
        if any(level in details["accessLevel"] for level in WRITE_LEVELS)
    )


# ---------------------------------------------------------------- the environments


def env_files() -> list[Path]:
    """Every env file the project synthesizes (CREDLINK_ENVS_DIR or envs/)."""
    return sorted(Path(os.environ.get("CREDLINK_ENVS_DIR", PROJECT_ROOT / "envs")).glob("*.toml"))


def user_added_env(directory: Path) -> Path:
    """An env a user adds next to the others: the tests' own with S3 state (tests/conftest.py),
    given a plan role, so the plan document's S3 lock object is exercised."""
    text = TEST_ENV_FILES[REPLICATED_ENV]
    apply_roles = f'apply_roles = ["{REPLICATED_ENV}-deploy"]'
    assert apply_roles in text
    return write_env_file(directory, REPLICATED_ENV, text.replace(apply_roles, f"{apply_roles}\n{_PLAN_ROLES}"))


_PLAN_ROLES = f'plan_roles = ["{REPLICATED_ENV}-plan"]'


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> list[EnvironmentConfig]:
    """envs/ and the tests' own env files, the one with S3 state given a plan role."""
    directory = tmp_path_factory.mktemp("test-envs")
    added = user_added_env(directory)
    assert _PLAN_ROLES in added.read_text(encoding="utf-8")
    others = [write_env_file(directory, name, text) for name, text in TEST_ENV_FILES.items() if name != REPLICATED_ENV]
    return [*load_environments(env_files()), *load_environments([added, *others])]


def role_arn(role: str, account: str = LOCAL_ACCOUNT) -> str:
    return role if role != role_name(role) else f"arn:aws:iam::{account}:role/{role}"


@dataclass(frozen=True)
class Resources:
    """One concrete ARN per resource of an environment, as the stack names them."""

    config: EnvironmentConfig
    account: str = LOCAL_ACCOUNT

    @property
    def prefix(self) -> str:
        return f"{self.config.name_prefix}-api-keys"

    def arn(self, service: str, resource: str, region: str | None = None) -> str:
        return f"arn:aws:{service}:{region or self.config.region}:{self.account}:{resource}"

    def secret(self, region: str | None = None) -> str:
        return self.arn("secretsmanager", f"secret:{self.config.secret_name}-AbCdEf", region)

    def key(self, region: str | None = None) -> str:
        return self.arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab", region)

    @property
    def regions(self) -> tuple[str, ...]:
        return (self.config.region, *self.config.replica_regions)

    @property
    def created_roles(self) -> list[str]:
        service = self.config.service
        demo = service.task_roles if service.create_demo_resources else ()
        rotation = [f"{self.prefix}-rotation"] if self.config.rotation.enabled else []
        return [role_arn(name, self.account) for name in (*rotation, *demo)]

    @property
    def named_roles(self) -> list[str]:
        access, service = self.config.access, self.config.service
        task_roles = () if service.create_demo_resources else service.task_roles
        roles = (*access.apply_roles, *access.plan_roles, *access.key_admin_roles, *access.operator_roles, *task_roles)
        return [role_arn(role, self.account) for role in roles]

    @property
    def policies(self) -> list[str]:
        return [f"arn:aws:iam::{self.account}:policy/{self.prefix}-{name}" for name in ("read", "operate")]

    @property
    def function(self) -> str:
        return self.arn("lambda", f"function:{self.prefix}-rotation")

    def log_group(self, name: str) -> str:
        return self.arn("logs", f"log-group:{name}")

    @property
    def log_groups(self) -> list[str]:
        rotation = [f"/aws/lambda/{self.prefix}-rotation"] if self.config.rotation.enabled else []
        return [self.log_group(name) for name in (self.config.service.log_group_name, *rotation)]

    @property
    def topic(self) -> str:
        return self.arn("sns", f"{self.prefix}-alerts")

    def s3(self) -> tuple[str, str, str] | None:
        backend = self.config.backend
        if not isinstance(backend, S3BackendConfig):
            return None
        bucket = f"arn:aws:s3:::{backend.bucket}"
        return bucket, f"{bucket}/{backend.key}", f"{bucket}/{backend.key}.tflock"

    def all(self) -> list[str]:
        s3 = self.s3()
        return [
            *(self.secret(region) for region in self.regions),
            *(self.key(region) for region in self.regions),
            *(self.arn("kms", f"alias/{self.prefix}", region) for region in self.regions),
            *self.created_roles,
            *self.named_roles,
            *self.policies,
            *([self.function] if self.config.rotation.enabled else []),
            *self.log_groups,
            self.arn("cloudwatch", f"alarm:{self.prefix}-rotation-errors"),
            self.topic,
            f"{self.topic}:6a7c4e6e-7a7d-4cb4-9d0b-3b9f1b2c0d11",
            *(s3 or ()),
        ]


def other_environment(config: EnvironmentConfig) -> EnvironmentConfig:
    """The same env file under another environment name (a neighbour in the same account)."""
    other = config.model_copy(update={"environment": f"{config.environment}x"})
    renamed = json.loads(json.dumps(config.model_dump(mode="json")).replace(config.environment, other.environment))
    return EnvironmentConfig.model_validate(renamed)


def plan_principal(config: EnvironmentConfig) -> str:
    return role_arn(config.access.plan_roles[0]) if config.access.plan_roles else role_arn("pipeline-plan")


def apply_principal(config: EnvironmentConfig) -> str:
    return role_arn(config.access.apply_roles[0])


def ids(configs: Iterable[EnvironmentConfig]) -> list[str]:
    return [config.environment for config in configs]


# ---------------------------------------------------------------- the files


def run_module(*args: str, envs_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"CREDLINK_ENVS_DIR": str(envs_dir)} if envs_dir else {})}
    return subprocess.run(
        [sys.executable, "-m", "stacks.pipeline_policies", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_iam_files_are_current() -> None:
    """iam/<env>/*.json are what the env files give: `make pipeline-policies` rewrites them."""
    result = run_module("--check")
    assert result.returncode == 0, result.stderr
    for path in env_files():
        for name in POLICY_FILES.values():
            assert (PROJECT_ROOT / "iam" / path.stem / name).is_file()


def test_check_names_every_stale_or_missing_file_and_writes_nothing(tmp_path: Path) -> None:
    envs, out = tmp_path / "envs", tmp_path / "iam"
    envs.mkdir()
    for path in env_files():
        (envs / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    kept = write_env_file(envs, ROTATION_OFF_ENV, TEST_ENV_FILES[ROTATION_OFF_ENV])
    added = user_added_env(envs)
    written = run_module("--out", str(out), envs_dir=envs)
    assert written.returncode == 0, written.stderr
    assert run_module("--check", "--out", str(out), envs_dir=envs).returncode == 0

    stale, missing = out / kept.stem / POLICY_FILES["apply"], out / kept.stem / POLICY_FILES["plan"]
    stale.write_text(stale.read_text(encoding="utf-8").replace('"Allow"', '"Deny"', 1), encoding="utf-8")
    missing.unlink()
    added.unlink()  # its files now belong to no env file
    before = {path: path.read_bytes() for path in out.rglob("*.json")}

    checked = run_module("--check", "--out", str(out), envs_dir=envs)

    assert checked.returncode == 1
    problems = [line for line in checked.stderr.splitlines() if line.startswith(str(out))]
    assert sorted(problems) == sorted(
        [
            f"{stale}: stale",
            f"{missing}: missing",
            *(f"{out / added.stem / name}: no env file for it" for name in POLICY_FILES.values()),
        ]
    )
    assert {path: path.read_bytes() for path in out.rglob("*.json")} == before

    rewritten = run_module("--out", str(out), envs_dir=envs)
    assert rewritten.returncode == 0, rewritten.stderr
    assert run_module("--check", "--out", str(out), envs_dir=envs).returncode == 0
    assert not list((out / added.stem).glob("*.json"))


def test_files_are_pretty_printed_with_a_trailing_newline(configs: list[EnvironmentConfig]) -> None:
    for config in configs:
        for document in pipeline_policies(config).values():
            text = render(document)
            assert text.endswith("}\n")
            assert json.loads(text) == document
            assert text == json.dumps(document, indent=2) + "\n"


# ---------------------------------------------------------------- the documents


def test_every_document_fits_a_roles_inline_policy_quota(configs: list[EnvironmentConfig]) -> None:
    """Attached with put-role-policy; IAM counts the characters without whitespace."""
    for config in configs:
        for kind, document in pipeline_policies(config).items():
            size = len(json.dumps(document, separators=(",", ":")))
            assert size <= INLINE_POLICY_QUOTA, f"{config.environment} {kind}: {size} characters"


def statements(config: EnvironmentConfig, kind: str) -> list[Json]:
    return list(pipeline_policies(config)[kind]["Statement"])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_star_only_where_the_action_has_no_resource_type(configs: list[EnvironmentConfig]) -> None:
    for config in configs:
        for kind in POLICY_FILES:
            for statement in statements(config, kind):
                actions = as_list(statement["Action"])
                assert all("*" not in action for action in actions), statement["Sid"]
                if statement["Resource"] == "*":
                    for action in actions:
                        assert action in WILDCARD_ONLY, f"{action}: Resource '*' without a reason"
                        assert action_details(action)["resourceTypes"] == [], f"{action} has a resource type"
                else:
                    for action in actions:
                        assert action_details(action)["resourceTypes"], f"{action} accepts only '*'"


def test_accounts_are_left_to_the_principals_account(configs: list[EnvironmentConfig]) -> None:
    """No account id is in the env file: a Resource ARN's account field is "*" (IAM refuses a
    variable there), unless the env file gives the role's full ARN; an ARN in a condition
    value names the principal's own account through `${aws:PrincipalAccount}`."""
    for config in configs:
        access, service = config.access, config.service
        roles = (*access.apply_roles, *access.plan_roles, *access.key_admin_roles, *access.operator_roles)
        given = {role for role in (*roles, *service.task_roles) if role != role_name(role)}
        for kind in POLICY_FILES:
            for statement in statements(config, kind):
                for resource in as_list(statement["Resource"]):
                    assert "${" not in resource, resource
                    if resource == "*" or resource in given or resource.startswith("arn:aws:s3:::"):
                        continue
                    assert resource.split(":")[4] == RESOURCE_ACCOUNT, resource
                arns = re.findall(r"arn:aws:[^\"]*", json.dumps(statement.get("Condition", {})))
                for arn in arns:
                    assert re.match(rf"^arn:aws:[a-z0-9-]+:[a-z0-9-]*:{re.escape(ACCOUNT)}:", arn), arn


def test_the_key_actions_are_those_the_key_policies_grant_these_roles(configs: list[EnvironmentConfig]) -> None:
    """An IAM allow on a key counts only with a key policy allow: no grant the key policies
    would refuse, and none of their grants missing."""
    from stacks.kms import KEY_ADMIN_ACTIONS, KEY_METADATA_ACTIONS

    for config in configs:
        for kind, granted in (("apply", set(KEY_ADMIN_ACTIONS)), ("plan", set(KEY_METADATA_ACTIONS))):
            on_keys = {
                action
                for statement in statements(config, kind)
                if "Condition" not in statement and statement["Resource"] != "*"
                for action in as_list(statement["Action"])
                if action.startswith("kms:")
            }
            assert on_keys <= granted, sorted(on_keys - granted)
            if kind == "plan":
                assert on_keys == granted


# Verbs of the actions that change something. kms:Decrypt is none of them: the plan role may
# decrypt through Secrets Manager only, to read back a value Terraform writes.
_WRITE_VERBS = re.compile(
    r":(Create|Put|Update|Delete|Tag|Untag|Attach|Detach|Schedule|Enable|Disable|Pass|Invoke|Rotate|Replicate|"
    r"Remove|Cancel|Add|Set|Subscribe|Unsubscribe|Associate|Disassociate|Encrypt|GenerateDataKey)"
)


def test_the_plan_document_names_no_write_action_but_the_lock(configs: list[EnvironmentConfig]) -> None:
    for config in configs:
        for statement in statements(config, "plan"):
            writes = [action for action in as_list(statement["Action"]) if _WRITE_VERBS.search(action)]
            if writes:
                assert statement["Sid"] == "StateLockObject", statement["Sid"]
                assert sorted(writes) == ["s3:DeleteObject", "s3:PutObject"]
                assert all(resource.endswith(".tflock") for resource in as_list(statement["Resource"]))


@pytest.mark.parametrize("kind", ["plan", "apply"])
def test_the_documents_allow_this_environment_and_deny_its_neighbours(
    configs: list[EnvironmentConfig], kind: str
) -> None:
    """Read actions both roles need, and their conditions, on this env's resources; the same
    requests on the neighbouring env's and another account's resources are denied."""
    requests: list[Request] = []
    expected: dict[str, bool] = {}
    for config in configs:
        document = pipeline_policies(config)[kind]
        principal = apply_principal(config) if kind == "apply" else plan_principal(config)
        own = {resource for _, resource, _ in _reads(Resources(config))}
        for label, resources, allowed in (
            ("this", Resources(config), True),
            ("neighbour", Resources(other_environment(config)), False),
            ("foreign", Resources(config, account=OTHER_ACCOUNT), False),
        ):
            for action, resource, context in _reads(resources):
                if not allowed and resource in own:  # shared by both (a role or state bucket named alike)
                    continue
                request_id = f"{config.environment} {label} {action} {resource}"
                requests.append(Request(request_id, principal, action, resource, document, context))
                expected[request_id] = allowed
    decisions = evaluate(requests)
    wrong = [
        f"{i}: {decisions[i].decision} ({decisions[i].explain})"
        for i in expected
        if decisions[i].allowed != expected[i]
    ]
    assert wrong == []


def _reads(resources: Resources) -> list[tuple[str, str, Context]]:
    config = resources.config
    reads: list[tuple[str, str, Context]] = [
        ("secretsmanager:DescribeSecret", resources.secret(), {}),
        ("secretsmanager:GetSecretValue", resources.secret(), {}),
        (
            "kms:Decrypt",
            resources.key(),
            {
                "kms:ViaService": f"secretsmanager.{config.region}.amazonaws.com",
                "kms:EncryptionContext:SecretARN": resources.secret(),
            },
        ),
        *(("iam:GetRole", role, {}) for role in (*resources.created_roles, *resources.named_roles)),
        *(("iam:GetPolicy", policy, {}) for policy in resources.policies),
        *(("logs:DescribeMetricFilters", group, {}) for group in resources.log_groups),
        ("cloudwatch:ListTagsForResource", resources.arn("cloudwatch", f"alarm:{resources.prefix}-x"), {}),
        ("sns:GetTopicAttributes", resources.topic, {}),
    ]
    if config.rotation.enabled:
        reads.append(("lambda:GetFunction", resources.function, {}))
    state = resources.s3()
    if state:
        reads += [("s3:GetObject", state[1], {}), ("s3:ListBucket", state[0], {})]
    return reads


def test_the_apply_documents_conditions_hold(configs: list[EnvironmentConfig]) -> None:
    """Each condition allows what Terraform sends and denies its nearest misuse."""
    requests: list[Request] = []
    expected: dict[str, bool] = {}

    def case(config: EnvironmentConfig, name: str, allowed: bool, action: str, resource: str, **context: Any) -> None:
        request_id = f"{config.environment}: {name}"
        document = pipeline_policies(config)["apply"]
        requests.append(Request(request_id, apply_principal(config), action, resource, document, context))
        expected[request_id] = allowed

    for config in configs:
        r = Resources(config)
        tags = {"Project": config.project_name, "Environment": config.environment, "ManagedBy": "cdktf", **config.tags}
        request_tags = {f"aws:RequestTag/{key}": value for key, value in tags.items()} | {"aws:TagKeys": list(tags)}
        case(config, "CreateKey with its tags", True, "kms:CreateKey", "*", **request_tags)
        case(config, "CreateKey without tags", False, "kms:CreateKey", "*")
        wrong_env = {**request_tags, "aws:RequestTag/Environment": f"{config.environment}x"}
        case(config, "CreateKey tagged for another env", False, "kms:CreateKey", "*", **wrong_env)
        via = {"kms:ViaService": f"secretsmanager.{config.region}.amazonaws.com"}
        this_secret = {**via, "kms:EncryptionContext:SecretARN": r.secret()}
        case(config, "GenerateDataKey for this secret", True, "kms:GenerateDataKey", r.key(), **this_secret)
        neighbour = {**via, "kms:EncryptionContext:SecretARN": Resources(other_environment(config)).secret()}
        case(config, "GenerateDataKey for another secret", False, "kms:GenerateDataKey", r.key(), **neighbour)
        case(config, "Decrypt directly", False, "kms:Decrypt", r.key())
        case(config, "Encrypt with the primary key", False, "kms:Encrypt", r.key(), **this_secret)
        for region in config.replica_regions:
            replica = {
                "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
                "kms:EncryptionContext:SecretARN": r.secret(region),
            }
            case(config, f"Encrypt the {region} replica", True, "kms:Encrypt", r.key(region), **replica)
        window = {"secretsmanager:RecoveryWindowInDays": str(config.recovery_window_days)}
        case(config, "DeleteSecret with a recovery window", True, "secretsmanager:DeleteSecret", r.secret(), **window)
        forced = {"secretsmanager:ForceDeleteWithoutRecovery": "true"}
        case(config, "DeleteSecret without recovery", False, "secretsmanager:DeleteSecret", r.secret(), **forced)
        blocked = {"secretsmanager:BlockPublicPolicy": "true"}
        case(
            config, "PutResourcePolicy blocking public", True, "secretsmanager:PutResourcePolicy", r.secret(), **blocked
        )
        case(config, "PutResourcePolicy without the block", False, "secretsmanager:PutResourcePolicy", r.secret())
        targets = [role_arn(role) for role in (*config.service.task_roles, *config.access.operator_roles)]
        for policy in r.policies:
            for target in targets:
                attach = {"iam:PolicyARN": policy}
                case(config, f"attach {policy} to {target}", True, "iam:AttachRolePolicy", target, **attach)
        admin = {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}
        case(
            config,
            "attach AdministratorAccess",
            False,
            "iam:AttachRolePolicy",
            role_arn(config.access.apply_roles[0]),
            **admin,
        )
        case(
            config,
            "attach to an apply role",
            False,
            "iam:AttachRolePolicy",
            role_arn(config.access.apply_roles[0]),
            **{"iam:PolicyARN": r.policies[0]},
        )
        case(
            config,
            "detach its policy from any role",
            True,
            "iam:DetachRolePolicy",
            role_arn("someone"),
            **{"iam:PolicyARN": r.policies[0]},
        )
        case(config, "detach another policy", False, "iam:DetachRolePolicy", role_arn("someone"), **admin)
        case(config, "create a role it does not own", False, "iam:CreateRole", role_arn(f"{r.prefix}-other"))
        if config.rotation.enabled:
            rotation_role = r.created_roles[0]
            case(
                config,
                "pass the rotation role to Lambda",
                True,
                "iam:PassRole",
                rotation_role,
                **{"iam:PassedToService": "lambda.amazonaws.com"},
            )
            case(
                config,
                "pass it to EC2",
                False,
                "iam:PassRole",
                rotation_role,
                **{"iam:PassedToService": "ec2.amazonaws.com"},
            )
            case(
                config,
                "pass an apply role",
                False,
                "iam:PassRole",
                role_arn(config.access.apply_roles[0]),
                **{"iam:PassedToService": "lambda.amazonaws.com"},
            )
            case(
                config,
                "let Secrets Manager invoke",
                True,
                "lambda:AddPermission",
                r.function,
                **{"lambda:Principal": "secretsmanager.amazonaws.com"},
            )
            case(config, "let anyone invoke", False, "lambda:AddPermission", r.function, **{"lambda:Principal": "*"})
        for email in config.alert_emails:
            case(
                config,
                f"subscribe {email}",
                True,
                "sns:Subscribe",
                r.topic,
                **{"sns:Protocol": "email", "sns:Endpoint": email},
            )
        case(
            config,
            "subscribe another address",
            False,
            "sns:Subscribe",
            r.topic,
            **{"sns:Protocol": "email", "sns:Endpoint": "someone@example.net"},
        )
        case(
            config,
            "subscribe over HTTPS",
            False,
            "sns:Subscribe",
            r.topic,
            **{"sns:Protocol": "https", "sns:Endpoint": config.alert_emails[0]},
        )
        state = r.s3()
        if state:
            bucket, key, lock = state
            case(config, "write the state", True, "s3:PutObject", key)
            case(config, "delete the state", False, "s3:DeleteObject", key)
            case(config, "write another object", False, "s3:PutObject", f"{bucket}/other")
            if isinstance(config.backend, S3BackendConfig) and config.backend.use_lockfile:
                case(config, "take the lock", True, "s3:PutObject", lock)
                case(config, "release the lock", True, "s3:DeleteObject", lock)
    decisions = evaluate(requests)
    wrong = [
        f"{i}: {decisions[i].decision} ({decisions[i].explain})"
        for i in expected
        if decisions[i].allowed != expected[i]
    ]
    assert wrong == []


def test_the_plan_document_denies_every_write_action(configs: list[EnvironmentConfig]) -> None:
    """Every action the Service Authorization Reference classes Write, Permissions management
    or Tagging, for every service the stacks use, on every resource of the environment (and
    "*" for actions without a resource type), is denied: reading the value needs
    kms:Decrypt only through Secrets Manager for this secret (denied here, without that
    context), and taking the S3 state lock writes and deletes the lock object, nothing else."""
    requests: list[Request] = []
    for config in configs:
        document = pipeline_policies(config)["plan"]
        resources = Resources(config)
        for service in SERVICES:
            for action in write_actions(service):
                for resource in ["*", *resources.all()]:
                    if takes_resource(action, resource):
                        request_id = f"{config.environment} {action} {resource}"
                        requests.append(Request(request_id, plan_principal(config), action, resource, document))
    assert len(requests) > 1000
    decisions = evaluate(requests)
    allowed = sorted(request.id for request in requests if decisions[request.id].allowed)
    expected = sorted(
        f"{config.environment} {action} {lock}"
        for config in configs
        if isinstance(config.backend, S3BackendConfig) and config.backend.use_lockfile
        for lock in [f"arn:aws:s3:::{config.backend.bucket}/{config.backend.key}.tflock"]
        for action in ("s3:DeleteObject", "s3:PutObject")
    )
    assert allowed == expected


def test_nothing_written_on_a_neighbours_resources_but_what_key_policies_gate(configs: list[EnvironmentConfig]) -> None:
    """Every action of the apply document, on every resource of the neighbouring environment
    in the same account, without conditions' context: denied, except the key actions (named by
    region: the key policies decide) and the reads that are authorized on every resource."""
    gated = {"iam:ListAttachedRolePolicies", "cloudwatch:DescribeAlarms"}
    requests: list[Request] = []
    for config in configs:
        document = pipeline_policies(config)["apply"]
        actions = sorted({action for s in document["Statement"] for action in as_list(s["Action"])})
        own = set(Resources(config).all())
        neighbours = [resource for resource in Resources(other_environment(config)).all() if resource not in own]
        for action in actions:
            for resource in neighbours:
                if takes_resource(action, resource):
                    request_id = f"{config.environment} {action} {resource}"
                    requests.append(Request(request_id, apply_principal(config), action, resource, document))
    decisions = evaluate(requests)
    allowed = [request for request in requests if decisions[request.id].allowed]
    unexpected = sorted(
        request.id
        for request in allowed
        if request.action not in gated and not (request.action.startswith("kms:") and ":key/" in request.resource)
    )
    assert unexpected == []


# ---------------------------------------------------------------- the synthesized stacks


# Resource and data types that make no AWS call of their own, or whose calls are covered by
# the statements for the data source named alongside.
_NO_CALL = {"terraform_data"}
_NO_CALL_DATA = {
    "aws_caller_identity",  # sts:GetCallerIdentity needs no permission
    "aws_iam_policy_document",
    "aws_iam_session_context",  # iam:GetRole on the caller: an apply or plan role (data aws_iam_role)
    "aws_partition",
    "aws_region",
}


@pytest.mark.synth
def test_the_names_the_synthesized_stacks_use_are_the_ones_allowed(synthesized: Synthesis) -> None:
    """For every resource and data source of every synthesized stack (a user-added env
    included), the call that creates or reads it, on the name the stack gives it, is allowed
    by the env's apply document (data sources: by its plan document too). A new resource type
    fails here until its permissions are decided."""
    requests: list[Request] = []
    unknown: list[str] = []
    for env, stack in synthesized.stacks.items():
        config = load_environment(synthesized.envs_dir / f"{env}.toml")
        for request in _stack_requests(config, stack, synthesized.stack_dir(env), unknown):
            requests.append(request)
    assert unknown == []
    decisions = evaluate(requests)
    denied = [f"{r.id}: {decisions[r.id].explain}" for r in requests if not decisions[r.id].allowed]
    assert denied == []


def _stack_requests(config: EnvironmentConfig, stack: Json, stack_dir: Path, unknown: list[str]) -> list[Request]:
    policies = pipeline_policies(config)
    r = Resources(config)
    requests: list[Request] = []
    resources: dict[str, dict[str, Json]] = stack.get("resource", {})
    regions = {f"aws.{p['alias']}": p["region"] for p in stack["provider"]["aws"] if "alias" in p}
    default_tags = next(p for p in stack["provider"]["aws"] if "alias" not in p)["default_tags"][0]["tags"]

    # A role the env file names by ARN keeps that ARN's path; the others are named without one.
    given_arns = {role_name(arn): arn for arn in r.named_roles}

    def arn_of_role(name: str) -> str:
        return given_arns.get(name, role_arn(name))

    def name_of(reference: str, attribute: str = "name") -> str:
        """A literal, or the named attribute of the resource a `${type.name.attr}` reference points to."""
        match = re.fullmatch(r"\$\{(\w+)\.(\w+)\.\w+\}", reference)
        if match is None:
            return reference
        return str(resources[match[1]][match[2]][attribute])

    def ask(kind: str, what: str, action: str, resource: str, **context: Any) -> None:
        principal = apply_principal(config) if kind == "apply" else plan_principal(config)
        request_id = f"{config.environment} {kind} {what}: {action} {resource}"
        requests.append(Request(request_id, principal, action, resource, policies[kind], context))

    for resource_type, instances in resources.items():
        for name, body in instances.items():
            region = regions.get(str(body.get("provider")), config.region)
            what = f"{resource_type}.{name}"
            if resource_type == "aws_cloudwatch_log_group":
                ask("apply", what, "logs:CreateLogGroup", r.arn("logs", f"log-group:{body['name']}", region))
            elif resource_type == "aws_cloudwatch_log_metric_filter":
                group = name_of(body["log_group_name"])
                ask("apply", what, "logs:PutMetricFilter", r.arn("logs", f"log-group:{group}", region))
            elif resource_type == "aws_cloudwatch_metric_alarm":
                ask(
                    "apply",
                    what,
                    "cloudwatch:PutMetricAlarm",
                    r.arn("cloudwatch", f"alarm:{body['alarm_name']}", region),
                )
            elif resource_type == "aws_iam_policy":
                ask("apply", what, "iam:CreatePolicy", f"arn:aws:iam::{LOCAL_ACCOUNT}:policy/{body['name']}")
            elif resource_type == "aws_iam_role":
                ask("apply", what, "iam:CreateRole", role_arn(body["name"]))
            elif resource_type == "aws_iam_role_policy":
                ask("apply", what, "iam:PutRolePolicy", arn_of_role(name_of(body["role"])))
            elif resource_type == "aws_iam_role_policy_attachment":
                policy = f"arn:aws:iam::{LOCAL_ACCOUNT}:policy/{name_of(body['policy_arn'])}"
                ask(
                    "apply",
                    what,
                    "iam:AttachRolePolicy",
                    arn_of_role(name_of(body["role"])),
                    **{"iam:PolicyARN": policy},
                )
            elif resource_type == "aws_kms_alias":
                ask("apply", what, "kms:CreateAlias", r.arn("kms", body["name"], region))
            elif resource_type == "aws_kms_key":
                tags = {f"aws:RequestTag/{key}": value for key, value in default_tags.items()}
                ask("apply", what, "kms:CreateKey", "*", **tags, **{"aws:TagKeys": list(default_tags)})
            elif resource_type == "aws_lambda_function":
                function = r.arn("lambda", f"function:{body['function_name']}", region)
                ask("apply", what, "lambda:CreateFunction", function)
                passed = {"iam:PassedToService": "lambda.amazonaws.com"}
                ask("apply", what, "iam:PassRole", arn_of_role(name_of(body["role"])), **passed)
            elif resource_type == "aws_lambda_permission":
                function = r.arn("lambda", f"function:{name_of(body['function_name'], 'function_name')}", region)
                ask("apply", what, "lambda:AddPermission", function, **{"lambda:Principal": body["principal"]})
            elif resource_type == "aws_sns_topic":
                ask("apply", what, "sns:CreateTopic", r.arn("sns", body["name"], region))
            elif resource_type == "aws_sns_topic_policy":
                ask("apply", what, "sns:SetTopicAttributes", r.arn("sns", name_of(body["arn"]), region))
            elif resource_type == "aws_sns_topic_subscription":
                topic = r.arn("sns", name_of(body["topic_arn"]), region)
                subscribed = {"sns:Protocol": body["protocol"], "sns:Endpoint": body["endpoint"]}
                ask("apply", what, "sns:Subscribe", topic, **subscribed)
            elif resource_type not in _NO_CALL:
                unknown.append(f"{config.environment}: resource {resource_type}")

    for data_type, instances in stack.get("data", {}).items():
        for name, body in instances.items():
            if data_type == "aws_iam_role":
                for kind in POLICY_FILES:
                    ask(kind, f"data.{data_type}.{name}", "iam:GetRole", arn_of_role(body["name"]))
            elif data_type not in _NO_CALL_DATA:
                unknown.append(f"{config.environment}: data source {data_type}")

    (module,) = stack["module"].values()
    module_source = (stack_dir / module["source"] / "main.tf").read_text(encoding="utf-8")
    assert re.search(r"block_public_policy\s*=\s*true", module_source), (
        "the secret's policy no longer blocks public access"
    )
    for region in (config.region, *config.replica_regions):
        ask(
            "apply",
            "module.secrets",
            "secretsmanager:CreateSecret",
            r.arn("secretsmanager", f"secret:{module['name']}-AbCdEf", region),
        )
    window = {"secretsmanager:RecoveryWindowInDays": str(module["recovery_window_days"])}
    ask("apply", "module.secrets", "secretsmanager:DeleteSecret", r.secret(), **window)
    ask(
        "apply",
        "module.secrets",
        "secretsmanager:PutResourcePolicy",
        r.secret(),
        **{"secretsmanager:BlockPublicPolicy": "true"},
    )
    return requests
