"""The synthesized output is plain Terraform: every stack inits and validates, the HCL
module's own `terraform test` suite passes (offline, with a mocked provider), and each of its
examples inits and validates as the root module a user would copy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ALL_ENVS, PROJECT_ROOT, Synthesis

pytestmark = [pytest.mark.terraform]

SECRETS_MODULE = PROJECT_ROOT / "modules" / "secrets"
EXAMPLES = sorted(path.parent.name for path in (SECRETS_MODULE / "examples").glob("*/main.tf"))


def terraform(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["terraform", *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.synth
@pytest.mark.parametrize("env_name", ALL_ENVS)
def test_stack_inits_and_validates(
    synthesized: Synthesis, terraform_env: dict[str, str], env_name: str, tmp_path: Path
) -> None:
    stack_dir = synthesized.stack_dir(env_name)
    # Its own data dir: the e2e tests init the same stack directories with real backends.
    env = {**terraform_env, "TF_DATA_DIR": str(tmp_path / ".terraform")}
    init = terraform(["init", "-backend=false", "-input=false"], cwd=stack_dir, env=env)
    assert init.returncode == 0, init.stderr
    validate = terraform(["validate"], cwd=stack_dir, env=env)
    assert validate.returncode == 0, validate.stderr
    assert "Success! The configuration is valid." in validate.stdout
    assert "Warning" not in validate.stdout + validate.stderr


def test_module_terraform_test_suite(tmp_path: Path, terraform_env: dict[str, str]) -> None:
    # A copy, so no .terraform directory lands in modules/ (cdktf would copy it into assets).
    module = tmp_path / "secrets"
    shutil.copytree(SECRETS_MODULE, module)
    init = terraform(["init", "-backend=false", "-input=false"], cwd=module, env=terraform_env)
    assert init.returncode == 0, init.stderr
    result = terraform(["test"], cwd=module, env=terraform_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout
    assert " 0 passed" not in result.stdout


def test_module_ships_the_complete_and_write_only_examples() -> None:
    assert {"complete", "write-only"} <= set(EXAMPLES)
    for example in EXAMPLES:
        assert (SECRETS_MODULE / "examples" / example / "README.md").is_file(), example
        assert (SECRETS_MODULE / "examples" / example / "versions.tf").is_file(), example


@pytest.mark.parametrize("example", EXAMPLES)
def test_module_example_inits_and_validates(tmp_path: Path, terraform_env: dict[str, str], example: str) -> None:
    # A copy of the whole module: the examples call it as "../..", and no .terraform lands in modules/.
    module = tmp_path / "secrets"
    shutil.copytree(SECRETS_MODULE, module, ignore=shutil.ignore_patterns(".terraform*"))
    example_dir = module / "examples" / example
    init = terraform(["init", "-backend=false", "-input=false"], cwd=example_dir, env=terraform_env)
    assert init.returncode == 0, init.stderr
    validate = terraform(["validate"], cwd=example_dir, env=terraform_env)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "Success! The configuration is valid." in validate.stdout
    assert "Warning" not in validate.stdout + validate.stderr


def test_module_is_formatted(terraform_env: dict[str, str]) -> None:
    result = terraform(["fmt", "-check", "-recursive", "-diff"], cwd=PROJECT_ROOT / "modules", env=terraform_env)
    assert result.returncode == 0, result.stdout
