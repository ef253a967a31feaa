"""Shared fixtures. The expensive one, `synthesized`, runs the real `main.py` once per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_ENVS = tuple(sorted(path.stem for path in (PROJECT_ROOT / "envs").glob("*.toml")))
# A module asset hash that does not change with the module's content keeps snapshots about
# the stack; the module has its own tests (modules/secrets/tests).
STATIC_MODULE_ASSET_HASH = "secrets-module"

# What a user adds to get a fourth environment: one file, no code (here with S3 state, in
# the organisation's one state bucket, which may be in another region than the stack, and
# guarded to local AWS's account).
QA_ENV = """\
environment = "qa"
account_id = "123456789012"
region = "eu-west-1"
recovery_window_days = 7
kms_deletion_window_days = 7
alert_emails = ["qa-alerts@example.com"]

[access]
apply_roles = ["credlink-qa-deploy"]

[service]
task_roles = ["credlink-qa-api-task"]
log_group_name = "/credlink/qa/app"

[backend]
type = "s3"
bucket = "credlink-terraform-state"
key = "credlink/qa/terraform.tfstate"
region = "us-east-1"
"""


@dataclass(frozen=True)
class Synthesis:
    envs_dir: Path
    outdir: Path
    stacks: Mapping[str, dict[str, Any]]

    def stack_dir(self, env: str) -> Path:
        return self.outdir / "stacks" / env

    def stack_json(self, env: str) -> str:
        return (self.stack_dir(env) / "cdk.tf.json").read_text(encoding="utf-8")


def run_captured(argv: list[str], *, env: Mapping[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command from the project root with its output captured (never raises on exit code)."""
    return subprocess.run(
        argv, cwd=PROJECT_ROOT, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )


def run_main(
    envs_dir: Path,
    outdir: Path,
    *,
    extra_context: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CREDLINK_ENVS_DIR": str(envs_dir), "CDKTF_OUTDIR": str(outdir), **(extra_env or {})}
    if extra_context:
        env["CDKTF_CONTEXT_JSON"] = json.dumps(dict(extra_context))
    return run_captured([sys.executable, str(PROJECT_ROOT / "main.py")], env=env)


@pytest.fixture(scope="session")
def terraform_env() -> dict[str, str]:
    """Environment for terraform subprocesses: the project-local CLI config (mirror or registry)."""
    config = subprocess.run(
        [str(PROJECT_ROOT / "scripts" / "terraformrc.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {**os.environ, "TF_CLI_CONFIG_FILE": config, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    """The shipped environments plus a user-added `qa`, synthesized by main.py in one process."""
    envs_dir = tmp_path_factory.mktemp("envs")
    for path in (PROJECT_ROOT / "envs").glob("*.toml"):
        shutil.copy(path, envs_dir / path.name)
    (envs_dir / "qa.toml").write_text(QA_ENV, encoding="utf-8")
    outdir = tmp_path_factory.mktemp("cdktf.out")
    result = run_main(envs_dir, outdir, extra_context={"cdktfStaticModuleAssetHash": STATIC_MODULE_ASSET_HASH})
    assert result.returncode == 0, result.stderr
    stacks = {
        path.parent.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(outdir.glob("stacks/*/cdk.tf.json"))
    }
    return Synthesis(envs_dir=envs_dir, outdir=outdir, stacks=stacks)
