"""The authorization matrix holds for every env file: each env deployed to local AWS, its
policies read back and every row decided by the IAM evaluator (scripts/authz.py)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from scripts import stackctl
from scripts.authz import Deployment, evaluate, load_matrix, read_back, render, unmatched
from stacks.config import load_environment
from tests.e2e.conftest import LocalDeployment
from tests.infra.test_stacks import ALL_ENVS

pytestmark = [pytest.mark.e2e, pytest.mark.synth, pytest.mark.terraform]


def deployed(local: LocalDeployment, env: str) -> Deployment:
    config = load_environment(local.synthesis.envs_dir / f"{env}.toml")
    variables = local.environment(env)
    stackctl.deploy(env, variables, auto_approve=True)
    outputs = stackctl.outputs(env, variables)
    return read_back(config, local.server.session(config.region), local.server.endpoint_url, outputs)


@pytest.fixture(scope="module")
def deployments(local: LocalDeployment) -> dict[str, Deployment]:
    return {}


def deployment_of(local: LocalDeployment, deployments: dict[str, Deployment], env: str) -> Deployment:
    if env not in deployments:
        deployments[env] = deployed(local, env)
    return deployments[env]


@pytest.mark.parametrize("env", ALL_ENVS)
def test_the_matrix_holds(local: LocalDeployment, deployments: dict[str, Deployment], env: str) -> None:
    rows = load_matrix()
    deployment = deployment_of(local, deployments, env)
    outcomes = evaluate(rows, deployment)
    missing = unmatched(rows, deployment)
    assert all(outcome.holds for outcome in outcomes), render(env, outcomes, missing)
    assert not missing, render(env, outcomes, missing)
    # Every kind of path is really decided somewhere, not skipped as n/a in every env.
    assert sum(outcome.evaluated != "n/a" for outcome in outcomes) > len(rows) // 2


def test_the_matrix_catches_a_resource_policy_that_lets_everyone_read(
    local: LocalDeployment, deployments: dict[str, Deployment]
) -> None:
    """Without the secret's Deny, an administrator elsewhere in the account reads the keys:
    the rows that say nobody else reads must fail."""
    weakened = copy.deepcopy(deployment_of(local, deployments, "prod"))
    weakened.resources["secret"] = [replace(secret, policy=None) for secret in weakened.resources["secret"]]
    failed = {o.row.guarantee for o in evaluate(load_matrix(), weakened) if not o.holds}
    assert "nobody-else-reads" in failed


def test_the_matrix_catches_a_key_policy_that_forgets_the_secret_context(
    local: LocalDeployment, deployments: dict[str, Deployment]
) -> None:
    """The evaluator must honour kms:EncryptionContext:SecretARN: without it the task role could
    decrypt for another secret."""
    weakened = copy.deepcopy(deployment_of(local, deployments, "prod"))

    def without_context(document: Any) -> Any:
        return json.loads(
            json.dumps(document).replace("kms:EncryptionContext:SecretARN", "kms:EncryptionContext:Unused")
        )

    weakened.resources["secrets_key"] = [
        replace(key, policy=without_context(key.policy)) for key in weakened.resources["secrets_key"]
    ]
    weakened.principals["task_role"] = [
        replace(role, policies=tuple(without_context(list(role.policies)))) for role in weakened.principals["task_role"]
    ]
    failed = {o.row.guarantee for o in evaluate(load_matrix(), weakened) if not o.holds}
    assert "key-only-for-this-secret" in failed


def test_a_principal_without_a_row_fails_the_matrix(local: LocalDeployment, deployments: dict[str, Deployment]) -> None:
    deployment = copy.deepcopy(deployment_of(local, deployments, "prod"))
    stranger = "arn:aws:iam::123456789012:role/granted-by-hand"
    deployment.named.add(stranger)
    assert unmatched(load_matrix(), deployment) == [stranger]
    rows_without_operators = [row for row in load_matrix() if row.who != "operator_role"]
    operators = {p.arn for p in deployment.principals["operator_role"]}
    assert operators <= set(unmatched(rows_without_operators, deployment))
