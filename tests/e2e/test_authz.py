"""The authorization matrix holds for every env file: each env deployed to local AWS, its
policies read back and every row decided by the IAM evaluator (scripts/authz.py)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from scripts import stackctl
from scripts.authz import Deployment, evaluate, load_matrix, read_back, render, unmatched
from stacks.config import load_environment
from tests.conftest import ALL_ENVS, ROTATION_OFF_ENV, Synthesis
from tests.e2e.conftest import LocalDeployment, local_deployment

pytestmark = [pytest.mark.e2e, pytest.mark.synth, pytest.mark.terraform]

# The matrix is weakened on the tests' own env whose operators and key admins are named by ARN.
WEAKENED_ENV = ROTATION_OFF_ENV


def with_its_deployment(env: str) -> pytest.MarkDecorator:
    """The tests of one env's deployment run in one worker (pytest-xdist), each env's beside the others'."""
    return pytest.mark.xdist_group(f"authz-{env}")


def deployed(local: LocalDeployment, env: str) -> Deployment:
    config = load_environment(local.synthesis.envs_dir / f"{env}.toml")
    variables = local.environment(env)
    stackctl.deploy(env, variables, auto_approve=True)
    outputs = stackctl.outputs(env, variables)
    return read_back(config, local.server.session(config.region), local.server.endpoint_url, outputs)


@pytest.fixture(scope="module")
def authz_local(
    synthesized: Synthesis, terraform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalDeployment]:
    """A server of its own: the deployments here leave no state behind for other tests."""
    with local_deployment(synthesized, terraform_env, tmp_path_factory.mktemp("authz") / "moto.log") as deployment:
        yield deployment


@pytest.fixture(scope="module")
def deployments() -> dict[str, Deployment]:
    return {}


def deployment_of(local: LocalDeployment, deployments: dict[str, Deployment], env: str) -> Deployment:
    if env not in deployments:
        deployments[env] = deployed(local, env)
    return deployments[env]


@pytest.mark.parametrize("env", [pytest.param(env, marks=with_its_deployment(env)) for env in ALL_ENVS])
def test_the_matrix_holds(authz_local: LocalDeployment, deployments: dict[str, Deployment], env: str) -> None:
    rows = load_matrix()
    deployment = deployment_of(authz_local, deployments, env)
    outcomes = evaluate(rows, deployment)
    missing = unmatched(rows, deployment)
    assert all(outcome.holds for outcome in outcomes), render(env, outcomes, missing)
    assert not missing, render(env, outcomes, missing)
    # Every kind of path is really decided somewhere, not skipped as n/a in every env.
    assert sum(outcome.evaluated != "n/a" for outcome in outcomes) > len(rows) // 2


@with_its_deployment(WEAKENED_ENV)
def test_the_matrix_catches_a_resource_policy_that_lets_everyone_read(
    authz_local: LocalDeployment, deployments: dict[str, Deployment]
) -> None:
    """Without the secret's Deny, an administrator elsewhere in the account reads the keys:
    the rows that say nobody else reads must fail."""
    weakened = copy.deepcopy(deployment_of(authz_local, deployments, WEAKENED_ENV))
    weakened.resources["secret"] = [replace(secret, policy=None) for secret in weakened.resources["secret"]]
    failed = {o.row.guarantee for o in evaluate(load_matrix(), weakened) if not o.holds}
    assert "nobody-else-reads" in failed


@with_its_deployment(WEAKENED_ENV)
def test_the_matrix_catches_a_key_policy_that_forgets_the_secret_context(
    authz_local: LocalDeployment, deployments: dict[str, Deployment]
) -> None:
    """The evaluator must honour kms:EncryptionContext:SecretARN: without it the task role could
    decrypt for another secret."""
    weakened = copy.deepcopy(deployment_of(authz_local, deployments, WEAKENED_ENV))

    weakened.resources["secrets_key"] = [
        replace(key, policy=without_secret_context(key.policy)) for key in weakened.resources["secrets_key"]
    ]
    weakened.principals["task_role"] = [
        replace(role, policies=tuple(without_secret_context(policy) for policy in role.policies))
        for role in weakened.principals["task_role"]
    ]
    failed = {o.row.guarantee for o in evaluate(load_matrix(), weakened) if not o.holds}
    assert "key-only-for-this-secret" in failed


@with_its_deployment(WEAKENED_ENV)
def test_a_principal_without_a_row_fails_the_matrix(
    authz_local: LocalDeployment, deployments: dict[str, Deployment]
) -> None:
    deployment = copy.deepcopy(deployment_of(authz_local, deployments, WEAKENED_ENV))
    stranger = "arn:aws:iam::123456789012:role/granted-by-hand"
    deployment.named.add(stranger)
    assert unmatched(load_matrix(), deployment) == [stranger]
    rows_without_operators = [row for row in load_matrix() if row.who != "operator_role"]
    operators = {p.arn for p in deployment.principals["operator_role"]}
    assert operators  # the env names operators, so the check below is not empty
    assert operators <= set(unmatched(rows_without_operators, deployment))


def without_secret_context(policy: Any) -> Any:
    """`policy` with every condition on kms:EncryptionContext:SecretARN removed."""
    policy = copy.deepcopy(policy)
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    for statement in statements:
        for operator, operands in list(statement.get("Condition", {}).items()):
            operands.pop("kms:EncryptionContext:SecretARN", None)
            if not operands:
                del statement["Condition"][operator]
    return policy
