"""Plan, deploy and destroy one synthesized stack against local AWS or real AWS.

    python -m scripts.stackctl plan    --env dev [--target local|aws]
    python -m scripts.stackctl apply   --env dev [--target local|aws] [--allow-replace dev]
    python -m scripts.stackctl drift   --env dev [--target local|aws]
    python -m scripts.stackctl deploy  --env dev [--target local|aws] [--auto-approve]
    python -m scripts.stackctl destroy --env dev [--target local|aws] [--auto-approve]
    python -m scripts.stackctl outputs --env dev [--target local|aws]
    python -m scripts.stackctl prereqs --env dev             # local AWS only

`--target local` (the default) points Terraform at the endpoint `scripts.local_aws` started,
through environment variables only, acting as the env's own plan role (plan) or apply role
(everything else); state for local runs is kept apart, under `.tooling/local-aws/`, so it
can never be confused with real state. `--target aws` uses the caller's own credentials and
prints the account and principal it is about to act as before it does.
Either way, before Terraform runs, every role the env file names must exist and the caller
must be one that may manage (or, to plan, read) the keys (`scripts.access.preflight`).
`prereqs` creates in local AWS the roles and log group the env file expects to exist.
The synthesized Terraform is the same for both targets.

`plan` saves the plan (plan.tfplan, plan.json) and its summary (plan-summary.md: counts, every
destroy or replace, stateful ones flagged). `apply` applies that saved plan and nothing else;
it refuses a plan that destroys or replaces a stateful resource unless `--allow-replace` names
the env, and a stale plan (state changed since) with one line. `drift` runs a refresh-only
plan and reports what changed outside Terraform by address and attribute name, never by
value: exit 0 in sync, 2 drift, 1 error. Summaries and reports also go to
$GITHUB_STEP_SUMMARY when it is set (GitHub Actions).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

from apikeys.aws import error_code
from scripts.access import (
    AccessError,
    assume_locally,
    check_account,
    check_adopted_secret,
    create_local_prerequisites,
    environment_config,
    preflight,
)
from scripts.local_aws import LocalAws, recorded
from scripts.plan_report import Drift, PlanSummary, drift, guarded_addresses, render_drift, render_summary, summarize
from stacks.config import ConfigError, EnvironmentConfig, S3BackendConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLAN_FILE, PLAN_JSON, PLAN_SUMMARY = "plan.tfplan", "plan.json", "plan-summary.md"
DRIFT_FILE, DRIFT_REPORT = "drift.tfplan", "drift-report.md"
DRIFT_EXIT = 2


class StackError(Exception):
    """A step failed; the message says which and what to do."""


def stack_dir(env: str) -> Path:
    outdir = Path(os.environ.get("CDKTF_OUTDIR", PROJECT_ROOT / "cdktf.out"))
    return outdir / "stacks" / env


def _backend(env: str) -> tuple[str, dict[str, Any]]:
    path = stack_dir(env) / "cdk.tf.json"
    if not path.exists():
        raise StackError(f"{path.relative_to(PROJECT_ROOT)} does not exist: run `make synth` first")
    backends: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["terraform"]["backend"]
    ((kind, settings),) = backends.items()
    return kind, settings


def running_local_aws() -> LocalAws:
    server = recorded()
    if server is None:
        raise StackError("local AWS is not running: run `make local-up` (or use TARGET=aws)")
    return server


def local_environment(env: str, server: LocalAws, base: Mapping[str, str]) -> dict[str, str]:
    """`base` with Terraform pointed at local AWS, and local state kept under .tooling/local-aws/."""
    kind, _ = _backend(env)
    variables = server.applied_to(base)
    if kind == "local":
        server.state_dir.mkdir(parents=True, exist_ok=True)
        backend_args = [f"-backend-config=path={server.state_dir / f'{env}.tfstate'}"]
    else:  # s3: the bucket `make bootstrap-state TARGET=local` made; path-style addressing on 127.0.0.1
        # The backend reaches local AWS through AWS_ENDPOINT_URL like everything else.
        backend_args = ["-backend-config=use_path_style=true"]
    # TF_CLI_ARGS_init reaches every `terraform init`, including the one `cdktf deploy` runs.
    variables["TF_CLI_ARGS_init"] = " ".join(["-reconfigure", *backend_args])
    return variables


def require_state_bucket(config: EnvironmentConfig, target: str, s3: S3Client) -> None:
    """An S3 backend's bucket is made once, by `make bootstrap-state`, never on the way to a plan."""
    backend = config.backend
    if not isinstance(backend, S3BackendConfig):
        return
    try:
        s3.head_bucket(Bucket=backend.bucket)
    except ClientError as error:
        code = error_code(error) or "error"
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise StackError(
                f"{config.source}: backend.bucket: state bucket {backend.bucket} does not exist: run "
                f"make bootstrap-state TARGET={target} BUCKET={backend.bucket} REGION={backend.region}"
                + (f" (or make local-prereqs ENV={config.environment})" if target == "local" else "")
            ) from None
        raise StackError(
            f"{config.source}: backend.bucket: cannot read state bucket {backend.bucket} ({code})"
        ) from None


def target_environment(env: str, target: str, *, plan_only: bool = False) -> dict[str, str]:
    """The environment Terraform runs with, after the preflight checks passed."""
    import boto3

    config = environment_config(env)
    base = {**os.environ, "CHECKPOINT_DISABLE": "1"}
    if target == "local":
        server = running_local_aws()
        endpoint: dict[str, Any] = {"endpoint_url": server.endpoint_url}
        # The account first, as the endpoint's own caller: nothing is assumed or read before it.
        check_account(config, server.session(config.region).client("sts", **endpoint))
        # Whether local AWS has the state bucket is the endpoint's business, not the role's.
        state_session = server.session(config.region)
        variables = assume_locally(config, server, local_environment(env, server, base), plan_only=plan_only)
        session = boto3.Session(
            aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=variables["AWS_SESSION_TOKEN"],
            region_name=config.region,
        )
    else:
        variables, session, endpoint = base, boto3.Session(region_name=config.region), {}
        state_session = session
    try:
        preflight(config, session.client("iam", **endpoint), session.client("sts", **endpoint))
        check_adopted_secret(config, session.client("secretsmanager", **endpoint))
        if isinstance(config.backend, S3BackendConfig):
            state_region = config.backend.region
            require_state_bucket(config, target, state_session.client("s3", region_name=state_region, **endpoint))
    except (BotoCoreError, ClientError) as error:
        raise StackError(
            f"TARGET={target}: cannot find AWS credentials or call IAM/STS/S3/Secrets Manager ({type(error).__name__})"
        ) from None
    return variables


def run(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None, step: str) -> None:
    print(f"$ {' '.join(argv)}", file=sys.stderr)
    result = subprocess.run(list(argv), env=dict(env), cwd=cwd, check=False)  # noqa: S603 (argv built here, no shell)
    if result.returncode != 0:
        raise StackError(f"{step} failed (exit {result.returncode})")


def terraform(env_name: str, *args: str, env: Mapping[str, str], step: str) -> None:
    run(["terraform", f"-chdir={stack_dir(env_name)}", *args], env=env, step=step)


def terraform_stdout(env_name: str, *args: str, env: Mapping[str, str], step: str) -> str:
    result = subprocess.run(  # noqa: S603 (argv built here, no shell)
        ["terraform", f"-chdir={stack_dir(env_name)}", *args],  # noqa: S607 (terraform from PATH)
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"{step} failed (exit {result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout


def init(env_name: str, env: Mapping[str, str]) -> None:
    terraform(env_name, "init", "-input=false", env=env, step=f"terraform init ({env_name})")


def _shown(path: Path) -> str:
    """`path` relative to the project when it is inside it (error messages), else as is."""
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def _write(path: Path, text: str) -> None:
    """Write whole or not at all: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def publish(markdown: str) -> None:
    """Print a summary, and add it to the GitHub Actions job summary when running there."""
    print(markdown)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as file:
            file.write(markdown + "\n")


def plan_summary(env_name: str, plan_json: str) -> PlanSummary:
    stack = json.loads((stack_dir(env_name) / "cdk.tf.json").read_text(encoding="utf-8"))
    return summarize(json.loads(plan_json), guarded_addresses(stack))


def plan(env_name: str, env: Mapping[str, str]) -> Path:
    """`terraform plan` into plan.tfplan, its JSON (for policy scans) into plan.json and its
    summary into plan-summary.md. A failed plan leaves no earlier plan behind to apply."""
    directory = stack_dir(env_name)
    for name in (PLAN_FILE, PLAN_JSON, PLAN_SUMMARY):
        (directory / name).unlink(missing_ok=True)
    init(env_name, env)
    terraform(env_name, "plan", "-input=false", f"-out={PLAN_FILE}", env=env, step=f"terraform plan ({env_name})")
    try:
        plan_json = terraform_stdout(env_name, "show", "-json", PLAN_FILE, env=env, step=f"terraform show ({env_name})")
    except StackError:
        (directory / PLAN_FILE).unlink(missing_ok=True)
        raise
    _write(directory / PLAN_JSON, plan_json)
    summary = render_summary(env_name, plan_summary(env_name, plan_json))
    _write(directory / PLAN_SUMMARY, summary)
    publish(summary)
    return directory / PLAN_FILE


def apply(env_name: str, env: Mapping[str, str], *, allow_replace: bool) -> PlanSummary:
    """`terraform apply plan.tfplan`: the saved plan and nothing else, never a new plan."""
    plan_file = stack_dir(env_name) / PLAN_FILE
    if not plan_file.is_file():
        raise StackError(f"{_shown(plan_file)} does not exist: run `make plan ENV={env_name}` first")
    init(env_name, env)
    # The plan file itself, not plan.json beside it, decides what is applied and so what is checked.
    saved = terraform_stdout(env_name, "show", "-json", PLAN_FILE, env=env, step=f"terraform show {_shown(plan_file)}")
    summary = plan_summary(env_name, saved)
    if summary.stateful and not allow_replace:
        named = ", ".join(f"{change.action} {change.address}" for change in summary.stateful)
        raise StackError(
            f"{_shown(plan_file)} would {named} (stateful): not applied; to go ahead, name the env: "
            f"make apply ENV={env_name} ALLOW_REPLACE={env_name}"
        )
    argv = ["terraform", f"-chdir={stack_dir(env_name)}", "apply", "-input=false", PLAN_FILE]
    print(f"$ {' '.join(argv)}", file=sys.stderr)
    result = subprocess.run(argv, env=dict(env), stderr=subprocess.PIPE, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        if "Saved plan is stale" in result.stderr:
            raise StackError(
                f"{_shown(plan_file)}: the saved plan is stale: plan again (state changed since it was made)"
            )
        sys.stderr.write(result.stderr)
        raise StackError(f"terraform apply {_shown(plan_file)} failed (exit {result.returncode})")
    print(f"applied {_shown(plan_file)}: {summary.counts}", file=sys.stderr)
    _write_outputs_file(env_name, env)
    return summary


def _write_outputs_file(env_name: str, env: Mapping[str, str]) -> None:
    """outputs.json as `cdktf deploy --outputs-file` writes it, read by `apikeys verify` etc."""
    values = json.loads(terraform_stdout(env_name, "output", "-json", env=env, step=f"terraform output ({env_name})"))
    document = {env_name: {name: value["value"] for name, value in values.items()}}
    _write(stack_dir(env_name) / "outputs.json", json.dumps(document, indent=2) + "\n")


def drift_check(env_name: str, env: Mapping[str, str]) -> tuple[Drift, ...]:
    """A refresh-only plan: what changed outside Terraform. Terraform's own output shows values
    (policy text), so it is kept from the terminal; the report names addresses and attributes."""
    directory = stack_dir(env_name)
    for name in (DRIFT_FILE, DRIFT_REPORT):
        (directory / name).unlink(missing_ok=True)
    init(env_name, env)
    argv = ["terraform", f"-chdir={directory}", "plan", "-refresh-only", "-detailed-exitcode", "-input=false",
            "-no-color", f"-out={DRIFT_FILE}"]  # fmt: skip
    print(f"$ {' '.join(argv)}", file=sys.stderr)
    result = subprocess.run(argv, env=dict(env), capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode not in (0, DRIFT_EXIT):
        errors = [line.strip() for line in result.stderr.splitlines() if line.startswith(("Error:", "│ Error:"))]
        reason = errors[0].lstrip("│ ") if errors else f"exit {result.returncode}"
        raise StackError(f"terraform plan -refresh-only ({env_name}) failed: {reason}")
    shown = terraform_stdout(env_name, "show", "-json", DRIFT_FILE, env=env, step=f"terraform show ({env_name})")
    drifted = drift(json.loads(shown))
    report = render_drift(env_name, drifted)
    _write(directory / DRIFT_REPORT, report)
    publish(report)
    return drifted


def deploy(env_name: str, env: Mapping[str, str], *, auto_approve: bool) -> None:
    """`cdktf deploy <env>` on the already-synthesized stack."""
    cdktf = PROJECT_ROOT / "node_modules" / ".bin" / "cdktf"
    outdir = stack_dir(env_name).parent.parent
    argv = [
        str(cdktf),
        "deploy",
        env_name,
        "--skip-synth",
        "--skip-provider-lock",
        "--output",
        str(outdir),
        "--outputs-file",
        str(stack_dir(env_name) / "outputs.json"),
    ]  # read by `apikeys verify` etc.
    if auto_approve:
        argv.append("--auto-approve")
    run(argv, env={**env, "CI": env.get("CI", "1")}, cwd=PROJECT_ROOT, step=f"cdktf deploy {env_name}")


def destroy(env_name: str, env: Mapping[str, str], *, auto_approve: bool) -> None:
    init(env_name, env)
    args = ["destroy", "-input=false"] + (["-auto-approve"] if auto_approve else [])
    terraform(env_name, *args, env=env, step=f"terraform destroy ({env_name})")


def outputs(env_name: str, env: Mapping[str, str]) -> dict[str, str]:
    init(env_name, env)
    values = json.loads(terraform_stdout(env_name, "output", "-json", env=env, step=f"terraform output ({env_name})"))
    if not values:
        raise StackError(f"stack {env_name} has no outputs: is it deployed?")
    # Maps (replica_secret_arns) stay JSON, as `cdktf deploy --outputs-file` writes them.
    return {
        name: value["value"] if isinstance(value["value"], str) else json.dumps(value["value"])
        for name, value in values.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackctl", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["plan", "apply", "drift", "deploy", "destroy", "outputs", "prereqs"])
    parser.add_argument("--env", required=True)
    parser.add_argument("--target", choices=["local", "aws"], default="local")
    parser.add_argument("--auto-approve", action="store_true")
    parser.add_argument(
        "--allow-replace",
        default="",
        metavar="ENVS",
        help="apply: comma-separated envs whose saved plan may destroy or replace stateful resources",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "prereqs":
            if args.target != "local":
                raise StackError("prereqs creates roles in local AWS only: on AWS, create them with your IAM tooling")
            created = create_local_prerequisites(environment_config(args.env), running_local_aws())
            print(f"local AWS: {', '.join(created) or 'nothing to create'}", file=sys.stderr)
            return 0
        env = target_environment(args.env, args.target, plan_only=args.action in ("plan", "drift"))
        auto_approve = args.auto_approve or args.target == "local"
        if args.action == "plan":
            print(f"plan written to {_shown(plan(args.env, env))}", file=sys.stderr)
        elif args.action == "apply":
            allowed = {name.strip() for name in args.allow_replace.split(",")}
            apply(args.env, env, allow_replace=args.env in allowed)
        elif args.action == "drift":
            return DRIFT_EXIT if drift_check(args.env, env) else 0
        elif args.action == "deploy":
            deploy(args.env, env, auto_approve=auto_approve)
        elif args.action == "destroy":
            destroy(args.env, env, auto_approve=auto_approve)
        else:
            print(json.dumps(outputs(args.env, env), indent=2))
    except (StackError, AccessError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
