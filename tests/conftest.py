"""Shared fixtures. The expensive one, `synthesized`, runs the real `main.py` once per session.

The session's child processes get a temp directory of their own; the run fails if a
synthesis left anything in it."""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from main import use_project_runtime
from stacks.config import EnvironmentConfig, load_environments

# Test modules import the stacks' constructs, which starts jsii's Node runtime in this process:
# on the project's Node, with the project's package cache, as main.py does.
use_project_runtime()

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The env files a user keeps in envs/ (a file's stem is its environment: tests/infra/test_workflow.py).
# Read, never written: the tests work on copies.
SHIPPED_ENVS = tuple(sorted(path.stem for path in (PROJECT_ROOT / "envs").glob("*.toml")))
# A module asset hash that does not change with the module's content keeps snapshots about
# the stack; the module has its own tests (modules/secrets/tests).
STATIC_MODULE_ASSET_HASH = "secrets-module"

# The tests' own environments, synthesized next to whatever envs/ holds. They are fixed, so
# the snapshots are taken of them, and between them they take the shapes the shipped files do
# not: every test that runs over "each env" runs over these too. Named `pytest-*`, a name no
# user gives an environment; a file of that name in envs/ stops the session (never overwritten).
REPLICATED_ENV = "pytest-s3-replicas"
ROTATION_OFF_ENV = "pytest-rotation-off"
TEST_ENV_FILES: Mapping[str, str] = {
    # S3 state outside us-east-1, two replica regions (each with its own key), three existing
    # task roles (one by ARN under a path), the destroy guard on, an apply role and nobody else,
    # guarded to local AWS's account.
    REPLICATED_ENV: f"""\
environment = "{REPLICATED_ENV}"
account_id = "123456789012"
region = "eu-west-1"
replica_regions = ["eu-central-1", "us-east-2"]
recovery_window_days = 21
kms_deletion_window_days = 10
deletion_protection = true
alert_emails = ["replicas-alerts@example.com", "replicas-oncall@example.com"]

[access]
apply_roles = ["{REPLICATED_ENV}-deploy"]

[service]
task_roles = [
  "{REPLICATED_ENV}-api-task",
  "{REPLICATED_ENV}-worker-task",
  "arn:aws:iam::123456789012:role/service-role/{REPLICATED_ENV}-cron-task",
]
log_group_name = "/pytest/s3-replicas/app"

[rotation]
days = 45

[tags]
Owner = "tests"

[backend]
type = "s3"
bucket = "pytest-credlink-state"
key = "pytest/s3-replicas/terraform.tfstate"
region = "eu-west-1"
""",
    # Rotation off, local state, a project name of its own, and the plan, key-admin and
    # operator roles given as full ARNs (in local AWS's account; one under SSO's path).
    ROTATION_OFF_ENV: f"""\
project_name = "credtest"
environment = "{ROTATION_OFF_ENV}"
region = "us-west-2"
recovery_window_days = 9
kms_deletion_window_days = 28
alert_emails = ["rotation-off-alerts@example.com"]

[access]
apply_roles = ["{ROTATION_OFF_ENV}-deploy"]
plan_roles = ["arn:aws:iam::123456789012:role/{ROTATION_OFF_ENV}-plan"]
key_admin_roles = ["arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/{ROTATION_OFF_ENV}-key-admin"]
operator_roles = ["arn:aws:iam::123456789012:role/ops/{ROTATION_OFF_ENV}-operator"]

[service]
task_roles = ["{ROTATION_OFF_ENV}-api-task"]
log_group_name = "/pytest/rotation-off/app"

[rotation]
enabled = false

[backend]
type = "local"
""",
}
TEST_ENVS = tuple(TEST_ENV_FILES)
# Every environment the session synthesizes: what envs/ holds, then the tests' own.
ALL_ENVS = (*SHIPPED_ENVS, *TEST_ENVS)


# What a synthesis must never leave in the temp directory: cdktf's copy of a local module per
# stack and jsii's runtime directories (main.py gives them a private directory it removes).
LEFTOVER_PATTERNS = ("cdktf-module-asset-*", "jsii-*")
SESSION_TEMP = pytest.StashKey[Path]()
# Its entries once the tests are collected: collecting imports the constructs, which starts
# this process's own jsii runtime, whose directory there lives until this process exits.
SESSION_TEMP_AT_START = pytest.StashKey[frozenset[str]]()


def pytest_configure(config: pytest.Config) -> None:
    """Point the session's child processes (synthesis, Node, Terraform, local AWS) at a temp
    directory of their own, so whatever is found there at the end is theirs and not another
    process's on the machine. pytest's own tmp_path stays in the system temp directory."""
    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: it inherits the directory its controller made
    system_temp = tempfile.gettempdir()  # fixed for this process before TMPDIR changes
    session_temp = Path(tempfile.mkdtemp(prefix="credlink-pytest-", dir=system_temp))
    # Registered before this process starts jsii, so it runs after jsii's exit handler has
    # stopped Node (exit handlers run last-registered first).
    atexit.register(shutil.rmtree, session_temp, ignore_errors=True)
    config.stash[SESSION_TEMP] = session_temp
    os.environ["TMPDIR"] = str(session_temp)


def pytest_collection_finish(session: pytest.Session) -> None:
    session_temp = session.config.stash.get(SESSION_TEMP, None)
    if session_temp is not None:
        session.config.stash[SESSION_TEMP_AT_START] = frozenset(path.name for path in session_temp.iterdir())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run, visibly, when the tests' processes left a synthesis's temp files behind."""
    session_temp = session.config.stash.get(SESSION_TEMP, None)
    if session_temp is None:
        return
    at_start = session.config.stash.get(SESSION_TEMP_AT_START, frozenset())
    found = {path.name for pattern in LEFTOVER_PATTERNS for path in session_temp.glob(pattern)}
    leftovers = sorted(found - at_start)
    if leftovers:
        message = f"left in the temp directory by the tests' processes: {', '.join(leftovers)}"
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", f"FAILED: {message}", red=True, bold=True)
        else:
            print(f"FAILED: {message}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def write_env_file(directory: Path, name: str, text: str) -> Path:
    """`directory/<name>.toml`, created: a file already there (a user's) stops the test, untouched."""
    path = directory / f"{name}.toml"
    try:
        file = path.open("x", encoding="utf-8")
    except FileExistsError:
        file = None
    if file is None:
        pytest.fail(
            f"{path.name} is already in {directory} (copied from envs/): the tests write their own env "
            f"file of that name (tests/conftest.py) and never overwrite one; rename envs/{path.name} "
            "(env names starting with pytest- are the tests')",
            pytrace=False,
        )
    with file:
        file.write(text)
    return path


def write_test_envs(directory: Path) -> dict[str, Path]:
    """The tests' own env files, written into `directory` beside whatever it holds."""
    return {name: write_env_file(directory, name, text) for name, text in TEST_ENV_FILES.items()}


@dataclass(frozen=True)
class Synthesis:
    envs_dir: Path
    outdir: Path
    stacks: Mapping[str, dict[str, Any]]
    configs: Mapping[str, EnvironmentConfig]  # environment -> its env file, as main.py read it

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


def _synthesize(directory: Path) -> tuple[Path, Path]:
    """Copies of envs/*.toml plus the tests' own env files in `directory`/envs, synthesized by
    main.py in one process into `directory`/cdktf.out."""
    envs_dir = directory / "envs"
    envs_dir.mkdir()
    for path in (PROJECT_ROOT / "envs").glob("*.toml"):
        shutil.copy(path, envs_dir / path.name)
    write_test_envs(envs_dir)
    outdir = directory / "cdktf.out"
    result = run_main(envs_dir, outdir, extra_context={"cdktfStaticModuleAssetHash": STATIC_MODULE_ASSET_HASH})
    assert result.returncode == 0, result.stderr
    return envs_dir, outdir


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Synthesis:
    """The session's synthesis (`_synthesize`). Under pytest-xdist the first worker to need it
    makes it and the others wait for it; each worker then works on a copy of its output (plans,
    state and outputs files are written into the stack directories), beside one envs directory."""
    if worker_id == "master":  # one process
        envs_dir, outdir = _synthesize(tmp_path_factory.mktemp("synthesis"))
    else:
        shared = tmp_path_factory.getbasetemp().parent  # this run's, shared by its workers
        with (shared / "synthesis.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            made = shared / "synthesis" / "complete"  # stack JSON names its env files' paths: made in place
            if not made.exists():
                shutil.rmtree(shared / "synthesis", ignore_errors=True)
                (shared / "synthesis").mkdir()
                _synthesize(shared / "synthesis")
                made.touch()
        envs_dir = shared / "synthesis" / "envs"
        outdir = tmp_path_factory.mktemp("synthesis") / "cdktf.out"
        shutil.copytree(shared / "synthesis" / "cdktf.out", outdir, symlinks=True)
    stacks = {
        path.parent.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(outdir.glob("stacks/*/cdk.tf.json"))
    }
    configs = {config.environment: config for config in load_environments(envs_dir.glob("*.toml"))}
    return Synthesis(envs_dir=envs_dir, outdir=outdir, stacks=stacks, configs=configs)
