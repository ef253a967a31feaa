"""`apikeys`: the operator CLI (also `python -m apikeys`).

    apikeys generate [--env prod]                 a new random key (printed once, to stdout)
    apikeys migrate  --env prod [--stdin]         API_KEYS (env or stdin, never argv) -> a new secret version
    apikeys verify   --env prod                   the deployment checklist, as a table; exit 1 on any FAIL
    apikeys doctor   --env prod | --secret-arn A  why can't the service read its keys?
    apikeys rotate   --env prod                   start a rotation now (the rotation function does it)

The secret ARN comes from `--secret-arn`, else the deployed stack's outputs
(`--outputs`, default cdktf.out/stacks/<env>/outputs.json, written by `make deploy`). Output names
clients and counts, never keys.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from apikeys.keyset import ApiKeyParseError, KeySet, new_key, parse_api_keys, parse_secret_string
from apikeys.loader import BOTO_CONFIG, LoaderSettings, version_with_label
from apikeys.rotation import CURRENT, PENDING

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):(\d{12}):secret:(.+)-[A-Za-z0-9]{6}$")
DEFAULT_OUTPUTS = "cdktf.out/stacks/{env}/outputs.json"


class CliError(Exception):
    """One line for the operator; exit code EXIT_FAILED."""


@dataclass(frozen=True)
class Target:
    env: str | None
    secret_arn: str
    outputs: dict[str, str]

    @property
    def region(self) -> str:
        match = ARN_PATTERN.match(self.secret_arn)
        return match[1] if match else os.environ.get("AWS_REGION", "us-east-1")


def resolve(args: argparse.Namespace) -> Target:
    outputs: dict[str, str] = {}
    if args.env:
        path = Path(args.outputs.format(env=args.env))
        if path.exists():
            outputs = {k: str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).get(args.env, {}).items()}
    arn = args.secret_arn or outputs.get("secret_arn")
    if not arn:
        raise CliError(
            f"no secret ARN for env {args.env!r}: pass --secret-arn, or deploy the stack (make deploy ENV=...) "
            f"so {args.outputs} has its outputs"
        )
    return Target(env=args.env, secret_arn=arn, outputs=outputs)


def client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region, config=BOTO_CONFIG)  # type: ignore[call-overload]


def _current_keys(secretsmanager: SecretsManagerClient, arn: str) -> KeySet | None:
    try:
        value = secretsmanager.get_secret_value(SecretId=arn)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException" and _exists(secretsmanager, arn):
            return None  # the container exists but holds no value yet
        raise
    return parse_secret_string(value["SecretString"]) if "SecretString" in value else None


def _exists(secretsmanager: SecretsManagerClient, arn: str) -> bool:
    secretsmanager.describe_secret(SecretId=arn)
    return True


def cmd_generate(args: argparse.Namespace) -> int:
    prefix = f"{args.env}_" if args.env else ""
    print(f"{prefix}{new_key()}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    value = sys.stdin.read() if args.stdin else os.environ.get("API_KEYS", "")
    if not value.strip():
        raise CliError("no keys given: set API_KEYS in the environment or pass --stdin (never on the command line)")
    try:
        new = parse_api_keys(value.strip())
    except ApiKeyParseError as error:
        raise CliError(f"API_KEYS is not valid: {error}") from None
    target = resolve(args)
    secretsmanager = client("secretsmanager", target.region)
    pending = _pending_versions(
        secretsmanager.describe_secret(SecretId=target.secret_arn).get("VersionIdsToStages", {})
    )
    if pending:
        # The rotation would finish on top of this write and make these keys AWSPREVIOUS.
        raise CliError(
            f"a rotation is in progress (version {pending[0]} is AWSPENDING): wait for it to finish, or cancel it with "
            f"aws secretsmanager update-secret-version-stage --secret-id {target.secret_arn} "
            f"--version-stage AWSPENDING --remove-from-version-id {pending[0]}"
        )
    try:
        old = _current_keys(secretsmanager, target.secret_arn) or KeySet()
    except ApiKeyParseError:
        old = KeySet()  # the current value is malformed: replacing it is the point
    added, removed, kept = new.diff(old)
    if not added and not removed and new == old:
        print(f"unchanged: the secret already holds these {len(new)} keys; no new version written")
        return 0
    version = secretsmanager.put_secret_value(
        SecretId=target.secret_arn, SecretString=json.dumps({"apiKeys": value.strip()})
    )["VersionId"]
    print(f"wrote version {version}: {len(new)} keys (added {len(added)}, removed {len(removed)}, kept {kept})")
    for label, clients in (("added", added), ("removed", removed)):
        if clients:
            print(f"  {label}: {', '.join(sorted(c.client_id for c in clients))}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    target = resolve(args)
    rows: list[tuple[str, str, str]] = []

    def check(name: str, ok: bool | None, detail: str) -> None:
        rows.append(("PASS" if ok else "INFO" if ok is None else "FAIL", name, detail))

    secretsmanager = client("secretsmanager", target.region)
    try:
        secret = secretsmanager.describe_secret(SecretId=target.secret_arn)
        check("secret exists", True, secret["Name"])
    except (ClientError, BotoCoreError) as error:
        check("secret exists", False, _explain(error))
        return _print_table(rows)
    expected_key = target.outputs.get("kms_key_arn")
    check(
        "uses this env's CMK",
        bool(expected_key) and secret.get("KmsKeyId") == expected_key,
        secret.get("KmsKeyId", "aws/secretsmanager"),
    )
    if secret.get("KmsKeyId"):
        try:
            rotation = client("kms", target.region).get_key_rotation_status(KeyId=secret["KmsKeyId"])[
                "KeyRotationEnabled"
            ]
            check("KMS key rotation on", rotation, "enabled" if rotation else "disabled")
        except (ClientError, BotoCoreError) as error:
            code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
            reason = code or type(error).__name__
            check(
                "KMS key rotation on",
                False,
                f"cannot read the key's rotation status: {reason} (the key policy lets the env's plan and operator "
                "roles read key metadata: run verify as an access.operator_roles role)",
            )
    for replica in secret.get("ReplicationStatus", []):
        status = replica.get("Status", "unknown")
        # A replica that is not InSync serves stale keys in its region (e.g. the writer lacks
        # kms:Encrypt on the replica region's key).
        detail = f"{replica.get('Region')}: {status}" + (
            f" ({replica['StatusMessage']})" if status != "InSync" and replica.get("StatusMessage") else ""
        )
        check("replica in sync", status == "InSync", detail)
    policy_arn = target.outputs.get("read_policy_arn")
    if policy_arn:
        roles = client("iam", target.region).list_entities_for_policy(PolicyArn=policy_arn, EntityFilter="Role")[
            "PolicyRoles"
        ]
        names = sorted(role["RoleName"] for role in roles)
        check("read policy on the task role(s)", bool(names), ", ".join(names) or "attached to no role")
    else:
        check("read policy on the task role(s)", False, "no read_policy_arn in the stack outputs")
    try:
        keys = _current_keys(secretsmanager, target.secret_arn)
        check(
            "value readable and parseable",
            keys is not None,
            "no value yet: run apikeys migrate" if keys is None else "ok",
        )
        check("key count", bool(keys), str(len(keys) if keys else 0))
    except ApiKeyParseError as error:
        check("value readable and parseable", False, str(error))
    except (ClientError, BotoCoreError) as error:
        check("value readable and parseable", False, _explain(error))
    rows.extend(rotation_rows(secret, LoaderSettings.from_environ(os.environ).previous_grace))
    return _print_table(rows)


def rotation_rows(secret: Mapping[str, Any], grace: timedelta) -> list[tuple[str, str, str]]:
    """Rotation schedule, any rotation in progress and the previous keys' grace, from DescribeSecret."""
    if not secret.get("RotationEnabled"):
        return [("INFO", "rotation", "off: set [rotation] enabled = true in the env file and deploy")]
    days = secret.get("RotationRules", {}).get("AutomaticallyAfterDays")
    last, next_ = secret.get("LastRotatedDate"), secret.get("NextRotationDate")
    schedule = f"every {days} days" if days else "on"
    schedule += f", last {last.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if last else ", never rotated yet"
    if next_:
        schedule += f", next {next_:%Y-%m-%d}"
    rows = [("PASS", "rotation", schedule)]
    stages = secret.get("VersionIdsToStages", {})
    pending = _pending_versions(stages)
    rows.append(
        ("INFO", "rotation in progress", f"version {pending[0]} is AWSPENDING; see the rotation function's log")
        if pending
        else ("INFO", "rotation in progress", "none")
    )
    previous = version_with_label(stages, "AWSPREVIOUS")
    if previous is None or not last:
        rows.append(("INFO", "previous keys", "none"))
    else:
        until = last.astimezone(UTC) + grace
        state = "still accepted" if datetime.now(UTC) < until else "no longer accepted"
        rows.append(
            (
                "INFO",
                "previous keys",
                f"version {previous}: {state} (grace {grace}, until about {until:%Y-%m-%d %H:%M} UTC plus each "
                "service's refresh interval)",
            )
        )
    return rows


def _pending_versions(stages: Mapping[str, Sequence[str]]) -> list[str]:
    """Versions labelled AWSPENDING but not AWSCURRENT: a rotation not finished."""
    return [version for version, labels in stages.items() if PENDING in labels and CURRENT not in labels]


def cmd_rotate(args: argparse.Namespace) -> int:
    """Start a rotation now: the rotation function gives every client a new key."""
    target = resolve(args)
    secretsmanager = client("secretsmanager", target.region)
    secret = secretsmanager.describe_secret(SecretId=target.secret_arn)
    if not secret.get("RotationEnabled"):
        raise CliError(f"rotation is not configured for {target.secret_arn}: set [rotation] enabled = true and deploy")
    pending = _pending_versions(secret.get("VersionIdsToStages", {}))
    if pending:
        raise CliError(
            f"a rotation is already in progress (version {pending[0]} is AWSPENDING): Secrets Manager retries it; "
            "see the rotation function's log"
        )
    version = secretsmanager.rotate_secret(SecretId=target.secret_arn)["VersionId"]
    print(f"rotation started: version {version} is AWSPENDING; the rotation function makes it AWSCURRENT")
    print("services pick the new keys up on their next refresh and accept the old ones for their grace period")
    print(f"follow it with: apikeys verify{f' --env {target.env}' if target.env else ''}")
    return 0


def _print_table(rows: list[tuple[str, str, str]]) -> int:
    width = max(len(name) for _, name, _ in rows)
    for status, name, detail in rows:
        print(f"{status:<4}  {name:<{width}}  {detail}")
    return EXIT_FAILED if any(status == "FAIL" for status, _, _ in rows) else 0


def _explain(error: Exception) -> str:
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found: configure a profile, SSO or the task role"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        return {
            "AccessDeniedException": "AccessDenied: the caller lacks secretsmanager:GetSecretValue/DescribeSecret on "
            "this secret, or the secret's resource policy denies it. Attach the read policy to the *task* role (not "
            "the execution role), and check the role is in the stack's task_role_names.",
            "ResourceNotFoundException": "NotFound: no secret with this ARN in this region/account. Check "
            "API_KEYS_SECRET_ARN against the stack output secret_arn, and that AWS_REGION matches the ARN's region.",
            "DecryptionFailure": "KMS decrypt failed: the caller lacks kms:Decrypt on the secret's key (via Secrets "
            "Manager), or the key is disabled.",
        }.get(code, f"{code}: {error.response.get('Error', {}).get('Message', '')}")
    return f"{type(error).__name__}: cannot reach AWS (network, endpoint or timeout)"


def cmd_doctor(args: argparse.Namespace) -> int:
    rows: list[tuple[str, str, str]] = [("PASS", "AWS SDK", f"boto3 {boto3.__version__}")]
    target = resolve(args)
    match = ARN_PATTERN.match(target.secret_arn)
    rows.append(
        ("PASS" if match else "FAIL", "ARN shape", target.secret_arn if match else "not a Secrets Manager secret ARN")
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if match and region and region != match[1]:
        rows.append(("FAIL", "region", f"AWS_REGION={region} but the ARN is in {match[1]}: the SDK would look there"))
    else:
        rows.append(("PASS", "region", region or f"(from the ARN) {target.region}"))
    try:
        identity = client("sts", target.region).get_caller_identity()
        rows.append(("PASS", "caller identity", f"{identity['Arn']} (account {identity['Account']})"))
        if match and identity["Account"] != match[2]:
            rows.append(
                ("FAIL", "account", f"the secret is in account {match[2]}, the caller in {identity['Account']}")
            )
    except (ClientError, BotoCoreError) as error:
        rows.append(("FAIL", "caller identity", _explain(error)))
    try:
        keys = _current_keys(client("secretsmanager", target.region), target.secret_arn)
        rows.append(("PASS" if keys else "FAIL", "read the secret", f"{len(keys)} keys" if keys else "no value yet"))
    except ApiKeyParseError as error:
        rows.append(("FAIL", "read the secret", f"malformed: {error}"))
    except (ClientError, BotoCoreError) as error:
        rows.append(("FAIL", "read the secret", _explain(error)))
    return _print_table(rows)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="apikeys", description="Operate the service's API keys in Secrets Manager.")
    commands = root.add_subparsers(dest="command", required=True)
    for name, handler, needs_target in (
        ("generate", cmd_generate, False),
        ("migrate", cmd_migrate, True),
        ("verify", cmd_verify, True),
        ("doctor", cmd_doctor, True),
        ("rotate", cmd_rotate, True),
    ):
        command = commands.add_parser(
            name, help=(handler.__doc__ or name).strip().splitlines()[0] if handler.__doc__ else name
        )
        command.set_defaults(handler=handler)
        command.add_argument("--env", help="environment name (stack)")
        if needs_target:
            command.add_argument("--secret-arn", help="the secret's ARN (default: from the stack outputs)")
            command.add_argument(
                "--outputs", default=str(DEFAULT_OUTPUTS), help="stack outputs JSON (cdktf --outputs-file)"
            )
        if name == "migrate":
            command.add_argument(
                "--stdin", action="store_true", help="read the key list from stdin instead of API_KEYS"
            )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except CliError as error:
        print(f"apikeys: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (ClientError, BotoCoreError) as error:
        print(f"apikeys: {_explain(error)}", file=sys.stderr)
        return EXIT_FAILED
    return code
