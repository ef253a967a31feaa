"""Local AWS for end-to-end tests: one moto server per session (per worker under pytest-xdist), stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.access import assume_locally, create_local_prerequisites
from scripts.local_aws import LocalAws, local_aws
from scripts.stackctl import local_environment
from stacks.config import load_environment
from tests.conftest import Synthesis

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class LocalDeployment:
    server: LocalAws
    synthesis: Synthesis
    terraform_env: dict[str, str]
    server_log: Path

    def environment(self, env: str, *, plan_only: bool = False) -> dict[str, str]:
        """Terraform pointed at local AWS, acting as the env's apply role (or its plan role),
        after creating what the env file expects to exist (its roles, log group, state bucket)."""
        config = load_environment(self.synthesis.envs_dir / f"{env}.toml")
        create_local_prerequisites(config, self.server)
        base = local_environment(env, self.server, self.terraform_env)
        return assume_locally(config, self.server, base, plan_only=plan_only)


@contextmanager
def local_deployment(synthesis: Synthesis, terraform_env: dict[str, str], log: Path) -> Iterator[LocalDeployment]:
    """A local AWS server of its own, with stackctl reading the synthesized stacks and env files."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CDKTF_OUTDIR", str(synthesis.outdir))
        with local_aws(log_path=log) as server:
            yield LocalDeployment(server=server, synthesis=synthesis, terraform_env=terraform_env, server_log=log)


@pytest.fixture(scope="session")
def local(
    synthesized: Synthesis, terraform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalDeployment]:
    with local_deployment(synthesized, terraform_env, tmp_path_factory.mktemp("local-aws") / "moto.log") as deployment:
        yield deployment
