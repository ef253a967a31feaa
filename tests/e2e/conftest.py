"""Local AWS for end-to-end tests: one moto server per session, stopped at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.local_aws import LocalAws, local_aws
from scripts.stackctl import local_environment
from tests.conftest import Synthesis

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class LocalDeployment:
    server: LocalAws
    synthesis: Synthesis
    terraform_env: dict[str, str]
    server_log: Path

    def environment(self, env: str) -> dict[str, str]:
        return local_environment(env, self.server, self.terraform_env)


@pytest.fixture(scope="session")
def local(
    synthesized: Synthesis, terraform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalDeployment]:
    log = tmp_path_factory.mktemp("local-aws") / "moto.log"
    previous_outdir = os.environ.get("CDKTF_OUTDIR")
    os.environ["CDKTF_OUTDIR"] = str(synthesized.outdir)  # stackctl reads the stacks from here
    try:
        with local_aws(log_path=log) as server:
            yield LocalDeployment(server=server, synthesis=synthesized, terraform_env=terraform_env, server_log=log)
    finally:
        if previous_outdir is None:
            os.environ.pop("CDKTF_OUTDIR", None)
        else:
            os.environ["CDKTF_OUTDIR"] = previous_outdir


def make_task_roles(deployment: LocalDeployment, region: str, *names: str) -> None:
    """The service's own task roles, which the stacks of non-demo environments expect to exist."""
    iam = deployment.server.session(region).client("iam", endpoint_url=deployment.server.endpoint_url)
    for name in names:
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
            '"Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
        )


def make_log_group(deployment: LocalDeployment, region: str, name: str) -> None:
    logs = deployment.server.session(region).client("logs", endpoint_url=deployment.server.endpoint_url)
    logs.create_log_group(logGroupName=name)
