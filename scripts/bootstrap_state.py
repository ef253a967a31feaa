"""Create the Terraform state bucket (bootstrap/state, plain Terraform with local state), then
print the `[backend]` block for the env files.

    python -m scripts.bootstrap_state [--target local|aws] [--bucket NAME] [--region REGION]
                                      [--auto-approve]

Without --bucket (and --region), the bucket the env files' S3 backends name (all must name
the same one). The bootstrap stack's own state is local: for `--target aws` in
`state/bootstrap-state/<bucket>/` (git-ignored; keep it), beside a working copy of
bootstrap/state, for `--target local` under the
local AWS server's state directory (it dies with the server). Running it again changes
nothing once the bucket is as the stack describes.

`--target local` runs against the endpoint `make local-up` started, with its own fake
credentials; `--target aws` with the caller's credentials, after printing the account and
principal it is about to act as (and refusing another account than `--account-id`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from scripts.local_aws import LocalAws, recorded
from stacks.config import ConfigError, EnvironmentConfig, S3BackendConfig, load_environments

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

__all__ = [
    "BootstrapError",
    "StateBucket",
    "backend_block",
    "bootstrap",
    "ensure_local_state_bucket",
    "main",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = PROJECT_ROOT / "bootstrap" / "state"
AWS_STATE_ROOT = PROJECT_ROOT / "state" / "bootstrap-state"
TERRAFORMRC = PROJECT_ROOT / "scripts" / "terraformrc.sh"


class BootstrapError(Exception):
    """One line: what failed, where, and what to do."""


@dataclass(frozen=True)
class StateBucket:
    """The bucket to create: name and region, and where its bootstrap state lives."""

    bucket: str
    region: str

    def state_dir(self, server: LocalAws | None) -> Path:
        root = server.state_dir / "bootstrap-state" if server is not None else AWS_STATE_ROOT
        return root / self.bucket


def bucket_from_env_files(configs: Iterable[EnvironmentConfig]) -> StateBucket:
    """The one bucket the env files' S3 backends name."""
    named = {
        (config.backend.bucket, config.backend.region)
        for config in configs
        if isinstance(config.backend, S3BackendConfig)
    }
    if len(named) != 1:
        found = ", ".join(f"{bucket} ({region})" for bucket, region in sorted(named)) or "none"
        raise BootstrapError(
            f"envs/: backend: the env files name {len(named)} S3 state buckets ({found}): give BUCKET=... REGION=..."
        )
    ((bucket, region),) = named
    return StateBucket(bucket, region)


def backend_block(bucket: str, region: str, *, project_name: str = "credlink", environment: str = "<env>") -> str:
    """The `[backend]` table of an env file for this bucket."""
    return (
        "[backend]\n"
        'type = "s3"\n'
        f'bucket = "{bucket}"\n'
        f'key = "{project_name}/{environment}/terraform.tfstate"\n'
        f'region = "{region}"\n'
        "use_lockfile = true\n"
    )


def terraform_environment(base: Mapping[str, str]) -> dict[str, str]:
    """`base` with the project's Terraform CLI config (the provider mirror), as `make` sets it."""
    variables = {**base, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    if not variables.get("TF_CLI_CONFIG_FILE"):
        config = subprocess.run(  # noqa: S603 (fixed argv)
            [str(TERRAFORMRC)], capture_output=True, text=True, check=False
        )
        if config.returncode != 0:
            raise BootstrapError(f"{TERRAFORMRC.relative_to(PROJECT_ROOT)} failed: {config.stderr.strip()}")
        variables["TF_CLI_CONFIG_FILE"] = config.stdout.strip()
    return variables


def _terraform(working: Path, args: Sequence[str], *, env: Mapping[str, str], step: str, capture: bool = False) -> str:
    result = subprocess.run(  # noqa: S603 (argv built here, no shell)
        ["terraform", f"-chdir={working}", *args],  # noqa: S607 (terraform from PATH)
        env=dict(env),
        # Terraform's progress (and approval prompt) to our stderr, file descriptor 2: stdout
        # carries only the [backend] block.
        stdout=subprocess.PIPE if capture else 2,
        stderr=subprocess.PIPE if capture else None,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-1:] if capture else []
        raise BootstrapError(
            f"bootstrap/state: {step} failed (exit {result.returncode}){': ' + detail[0] if detail else ''}"
        )
    return result.stdout or ""


def _caller(sts: STSClient, account_id: str | None) -> str:
    try:
        arn = sts.get_caller_identity()["Arn"]
    except (BotoCoreError, ClientError) as error:
        raise BootstrapError(f"cannot tell who is calling: no AWS credentials? ({type(error).__name__})") from None
    account = arn.split(":")[4]
    if account_id is not None and account != account_id:
        raise BootstrapError(
            f"--account-id: expected account {account_id}, but the credentials are for account {account} ({arn})"
        )
    return arn


def bootstrap(
    bucket: StateBucket,
    *,
    server: LocalAws | None,
    base: Mapping[str, str],
    account_id: str | None = None,
    auto_approve: bool = False,
) -> dict[str, str]:
    """Apply bootstrap/state for `bucket`: on local AWS when `server` is given, else on AWS with
    the caller's credentials. Returns the stack's outputs."""
    import boto3

    if server is not None:
        variables = terraform_environment(server.applied_to(base))
        session = server.session(bucket.region)
        sts = session.client("sts", endpoint_url=server.endpoint_url)
        auto_approve = True  # local AWS: nothing to protect
        target = "local"
    else:
        variables = terraform_environment(base)
        sts = boto3.Session(region_name=bucket.region).client("sts")
        target = "aws"
    caller = _caller(sts, account_id)
    print(f"bootstrap-state TARGET={target}: account {caller.split(':')[4]} as {caller}", file=sys.stderr)
    state_dir = bucket.state_dir(server)
    # A working copy per target and bucket: init's .terraform and lock file stay beside the
    # state, and runs against two local servers never share a directory.
    working = state_dir / "stack"
    for stale in working.glob("*.tf"):
        stale.unlink()
    shutil.copytree(STACK_DIR, working, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".terraform*"))
    tf_vars = [f"-var=bucket_name={bucket.bucket}", f"-var=region={bucket.region}"]
    if account_id is not None:
        tf_vars.append(f"-var=account_id={account_id}")
    init = ["init", "-input=false", "-reconfigure", f"-backend-config=path={state_dir / 'terraform.tfstate'}"]
    _terraform(working, init, env=variables, step="terraform init")
    _terraform(
        working,
        # Without -auto-approve Terraform asks on the terminal (it needs input for that).
        ["apply", *(["-input=false", "-auto-approve"] if auto_approve else []), *tf_vars],
        env=variables,
        step="terraform apply",
    )
    outputs = json.loads(_terraform(working, ["output", "-json"], env=variables, step="terraform output", capture=True))
    return {name: str(value["value"]) for name, value in outputs.items()}


def ensure_local_state_bucket(config: EnvironmentConfig, server: LocalAws, base: Mapping[str, str]) -> str | None:
    """Bootstrap the env file's S3 state bucket in local AWS unless it exists; the bucket's
    name if it was made."""
    backend = config.backend
    if not isinstance(backend, S3BackendConfig):
        return None
    s3 = server.session(backend.region).client("s3", endpoint_url=server.endpoint_url)
    if any(b.get("Name") == backend.bucket for b in s3.list_buckets().get("Buckets", [])):
        return None
    bootstrap(StateBucket(backend.bucket, backend.region), server=server, base=base)
    return backend.bucket


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bootstrap_state", description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["local", "aws"], default="local")
    parser.add_argument("--bucket", help="the bucket's name (default: the one the env files' backends name)")
    parser.add_argument("--region", help="the bucket's region (default: the env files' backend region)")
    parser.add_argument("--account-id", help="refuse credentials of any other account (12 digits)")
    parser.add_argument("--auto-approve", action="store_true", help="apply without asking (TARGET=aws)")
    args = parser.parse_args(argv)
    try:
        if args.account_id is not None and not re.fullmatch(r"[0-9]{12}", args.account_id):
            raise BootstrapError("--account-id: a 12-digit AWS account id")
        if args.bucket and args.region:
            bucket = StateBucket(args.bucket, args.region)
        else:
            envs_dir = Path(os.environ.get("CREDLINK_ENVS_DIR", PROJECT_ROOT / "envs"))
            named = bucket_from_env_files(load_environments(envs_dir.glob("*.toml")))
            bucket = StateBucket(args.bucket or named.bucket, args.region or named.region)
        server = None
        if args.target == "local":
            server = recorded()
            if server is None:
                raise BootstrapError("local AWS is not running: run `make local-up` (or use TARGET=aws)")
        outputs = bootstrap(
            bucket, server=server, base=os.environ, account_id=args.account_id, auto_approve=args.auto_approve
        )
    except (BootstrapError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"# state bucket {outputs['bucket']} ready; in envs/<env>.toml:", file=sys.stderr)
    print(backend_block(outputs["bucket"], outputs["region"]), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
