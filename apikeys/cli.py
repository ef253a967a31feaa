"""`apikeys`: the operator CLI (also `python -m apikeys`).

    apikeys generate [--env prod]                 a new random key (printed once, to stdout)
    apikeys migrate  --env prod [--stdin]         API_KEYS (env or stdin, never argv) -> a new secret version
    apikeys verify   --env prod                   the deployment checklist, as a table; exit 1 on any FAIL
    apikeys doctor   --env prod | --secret-arn A  why can't the service read its keys? (--env: and what a
                                                  hand-made setup left in the account; --fix repairs what it can)
    apikeys adopt    --env prod                   after make apply adopted a hand-made secret: AWSCURRENT re-written
                                                  under the env's CMK (same keys), then rotate
    apikeys checklist --env prod                  the migration checklist, read from the account; exit 1 while open
    apikeys rotate   --env prod                   start a rotation now (the rotation function does it)
    apikeys clients list     --env prod                         client ids, names, key fingerprints
    apikeys clients add      --env prod --client-id X --name N  a new client; its key printed once
    apikeys clients rotate   --env prod --client-id X           a new key for X only (old one in grace)
    apikeys clients revoke   --env prod --client-id X           X refused from the services' next refresh
    apikeys clients show-key --env prod --client-id X           X's current key, to hand it over

The secret ARN comes from `--secret-arn`, else the deployed stack's outputs
(`--outputs`, default cdktf.out/stacks/<env>/outputs.json, written by `make deploy`). Output names
clients and counts, never keys; the only keys printed are the one client's that `clients add`,
`clients rotate` and `clients show-key` hand over (on stdout, or in a new 0600 file with `--out`).
`adopt`, `doctor --env [--fix]` and `checklist` share the checks in `apikeys.adoption`; which IAM
actions each needs is in docs/adoption.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from apikeys.adoption import (
    AdoptionRefusedError,
    CheckDeniedError,
    Deployment,
    Finding,
    adopt,
    adoption_lines,
    run_checks,
)
from apikeys.aws import BOTO_CONFIG, error_code, version_with_label
from apikeys.clients import (
    ClientChangeError,
    Snapshot,
    commit,
    pending_rotation,
    read_snapshot,
    refuse_during_rotation,
)
from apikeys.events import Event
from apikeys.keyset import (
    ApiKeyParseError,
    Client,
    KeySet,
    check_key,
    fingerprint,
    new_key,
    parse_api_keys,
    parse_entries,
    parse_secret_string,
)
from apikeys.loader import LoaderSettings
from apikeys.logs import ensure_json_logging, log_event

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
        """The secret's region, from its ARN (a Secrets Manager ARN always names it)."""
        match = ARN_PATTERN.match(self.secret_arn)
        if match is None:
            raise CliError(
                f"{self.secret_arn!r} is not a Secrets Manager secret ARN "
                "(arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>): pass the full ARN"
            )
        return match[1]


def resolve(args: argparse.Namespace) -> Target:
    outputs: dict[str, str] = {}
    if args.env:
        path = Path(args.outputs.format(env=args.env))
        if path.exists():
            document = json.loads(path.read_text(encoding="utf-8")).get(args.env, {})
            # Lists and maps (task_role_arns, replica_secret_arns) stay JSON text.
            outputs = {k: v if isinstance(v, str) else json.dumps(v) for k, v in document.items()}
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
        if error_code(error) == "ResourceNotFoundException" and _exists(secretsmanager, arn):
            return None  # the container exists but holds no value yet
        raise
    return parse_secret_string(value["SecretString"]) if "SecretString" in value else None


def _exists(secretsmanager: SecretsManagerClient, arn: str) -> bool:
    secretsmanager.describe_secret(SecretId=arn)
    return True


def cmd_generate(args: argparse.Namespace) -> int:
    """Print a new random key (43 URL-safe characters, prefixed with the env name if given)."""
    prefix = f"{args.env}_" if args.env else ""
    print(f"{prefix}{new_key()}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Write a whole key list (API_KEYS or stdin, never argv) as a new secret version."""
    value = sys.stdin.read() if args.stdin else os.environ.get("API_KEYS", "")
    if not value.strip():
        raise CliError("no keys given: set API_KEYS in the environment or pass --stdin (never on the command line)")
    try:
        entries = parse_entries(value.strip())
        for number, (key, _) in enumerate(entries, start=1):
            check_key(key, f"entry {number}")  # new keys meet today's rule; adopted ones are read as they are
    except ApiKeyParseError as error:
        raise CliError(f"API_KEYS is not valid: {error}") from None
    new = parse_api_keys(value.strip())
    target = resolve(args)
    secretsmanager = client("secretsmanager", target.region)
    # A rotation would finish on top of this write and make these keys AWSPREVIOUS.
    refuse_during_rotation(
        target.secret_arn, secretsmanager.describe_secret(SecretId=target.secret_arn).get("VersionIdsToStages", {})
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
    """Check the deployment (key, replicas, read policy, value, rotation); exit 1 on any FAIL."""
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
            code = error_code(error) if isinstance(error, ClientError) else ""
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
    pending = pending_rotation(stages)
    rows.append(
        ("INFO", "rotation in progress", f"version {pending} is AWSPENDING; see the rotation function's log")
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


def cmd_rotate(args: argparse.Namespace) -> int:
    """Start a rotation now: the rotation function gives every client a new key."""
    target = resolve(args)
    secretsmanager = client("secretsmanager", target.region)
    secret = secretsmanager.describe_secret(SecretId=target.secret_arn)
    if not secret.get("RotationEnabled"):
        raise CliError(f"rotation is not configured for {target.secret_arn}: set [rotation] enabled = true and deploy")
    pending = pending_rotation(secret.get("VersionIdsToStages", {}))
    if pending:
        raise CliError(
            f"a rotation is already in progress (version {pending} is AWSPENDING): Secrets Manager retries it; "
            "see the rotation function's log"
        )
    version = secretsmanager.rotate_secret(SecretId=target.secret_arn)["VersionId"]
    print(f"rotation started: version {version} is AWSPENDING; the rotation function makes it AWSCURRENT")
    print("services pick the new keys up on their next refresh and accept the old ones for their grace period")
    print(f"follow it with: apikeys verify{f' --env {target.env}' if target.env else ''}")
    return 0


def cmd_clients_list(args: argparse.Namespace) -> int:
    """Client ids, names and key fingerprints (never a key)."""
    target = resolve(args)
    snapshot = read_snapshot(client("secretsmanager", target.region), target.secret_arn)
    print(f"version {snapshot.version}: {len(snapshot.entries)} clients")
    rows = [("CLIENT ID", "NAME", "KEY FINGERPRINT")]
    rows += [(each.client_id, each.name, f"sha256:{fingerprint(key)}") for key, each in snapshot.entries]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for client_id, name, print_ in rows:
        print(f"{client_id:<{widths[0]}}  {name:<{widths[1]}}  {print_}")
    return 0


def cmd_clients_add(args: argparse.Namespace) -> int:
    """Add a client with a new key; the key is printed once."""

    def change(snapshot: Snapshot) -> tuple[str, tuple[tuple[str, Client], ...]]:
        if any(each.client_id == args.client_id for _, each in snapshot.entries):
            raise CliError(
                f"client {args.client_id!r} already exists in version {snapshot.version}: "
                "use apikeys clients rotate to give it a new key"
            )
        key = new_key()
        return key, snapshot.with_key(args.client_id, key, args.name)

    return _change_one_client(args, "add", change)


def cmd_clients_rotate(args: argparse.Namespace) -> int:
    """Give one client a new key; its old key stays valid for the services' grace period."""

    def change(snapshot: Snapshot) -> tuple[str, tuple[tuple[str, Client], ...]]:
        snapshot.find(args.client_id)
        key = new_key()
        return key, snapshot.with_key(args.client_id, key)

    return _change_one_client(args, "rotate", change)


def cmd_clients_revoke(args: argparse.Namespace) -> int:
    """Remove a client: the services refuse its key from their next refresh."""
    return _change_one_client(args, "revoke", lambda snapshot: (None, snapshot.without(args.client_id)))


def cmd_clients_show_key(args: argparse.Namespace) -> int:
    """Print one client's current key, to hand it over."""
    target = resolve(args)
    caller = _caller_arn(target)
    with _KeyOutput(args.out) as output:
        snapshot = read_snapshot(client("secretsmanager", target.region), target.secret_arn)
        key, found = snapshot.find(args.client_id)
        output.write(key)
    _audit(output, "show-key", found, snapshot.version, caller, key=key)
    return 0


Change = Callable[[Snapshot], tuple[str | None, Sequence[tuple[str, Client]]]]


def _change_one_client(args: argparse.Namespace, action: str, change: Change) -> int:
    """Read AWSCURRENT, change one client, write it back if AWSCURRENT has not moved, then
    hand over the new key (if any) and say who did what."""
    target = resolve(args)
    caller = _caller_arn(target)
    secretsmanager = client("secretsmanager", target.region)
    with _KeyOutput(getattr(args, "out", None)) as output:
        snapshot = read_snapshot(secretsmanager, target.secret_arn)
        key, entries = change(snapshot)
        version = commit(secretsmanager, target.secret_arn, snapshot, entries)
        if key is not None:
            output.write(key)
    changed = next((each for _, each in entries if each.client_id == args.client_id), None)
    _audit(output, action, changed or snapshot.find(args.client_id)[1], version, caller, key=key, base=snapshot)
    return 0


def _caller_arn(target: Target) -> str:
    """Who is making the change, for the audit line. GetCallerIdentity needs no permission and
    works even when denied (STS API reference, GetCallerIdentity)."""
    return str(client("sts", target.region).get_caller_identity()["Arn"])


class _KeyOutput:
    """Where a handed-over key goes: stdout, or a new file created 0600 before anything is
    changed (an existing file is refused) and removed again if the change fails."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._fd: int | None = None
        self.written = False

    def __enter__(self) -> _KeyOutput:
        if self.path is not None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as error:
                raise CliError(f"--out {self.path}: {error.strerror}; give a new file's path") from None
        return self

    def write(self, key: str) -> None:
        if self._fd is None:
            print(key, flush=True)
        else:
            os.write(self._fd, f"{key}\n".encode())
        self.written = True

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            if kind is not None and self.path is not None:
                self.path.unlink(missing_ok=True)

    def tell(self) -> str:
        if not self.written:
            return ""
        return f"; the key is in {self.path} (mode 0600)" if self.path else "; the key is on stdout, shown once"


def _audit(
    output: _KeyOutput,
    action: str,
    changed: Client,
    version: str,
    caller: str,
    *,
    key: str | None,
    base: Snapshot | None = None,
) -> None:
    """One line for the operator and one JSON log line: who, what, which version; never a key."""
    headline, note = {
        "add": (f"added client {changed.client_id} ({changed.name})", "services accept it from their next refresh"),
        "rotate": (
            f"rotated client {changed.client_id}'s key",
            "services accept the new key from their next refresh, and the old one for their grace period "
            "(API_KEYS_PREVIOUS_GRACE_SECONDS) after that",
        ),
        "revoke": (
            f"revoked client {changed.client_id}",
            "services refuse its keys from their next refresh (API_KEYS_REFRESH_SECONDS). To give it a key again, "
            "wait that long or use a new client id: a service that sees a client's key replaced between two "
            "refreshes takes that for a rotation",
        ),
        "show-key": (f"read client {changed.client_id}'s key", ""),
    }[action]
    written = f"version {version}" + (f" (was {base.version})" if base else "")
    line = f"{headline}: {written}, by {caller}{output.tell()}" + (f"\n  {note}" if note else "")
    print(line, file=sys.stderr if output.written and output.path is None else sys.stdout)
    ensure_json_logging()
    log_event(
        logging.INFO,
        Event.CLIENT_READ if action == "show-key" else Event.CLIENT_CHANGED,
        "API key client " + ("key read" if action == "show-key" else "changed"),
        action=action,
        client_id=changed.client_id,
        version=version,
        **({"previous_version": base.version} if base else {}),
        caller=caller,
        **({"key_fingerprint": fingerprint(key)} if key else {}),
    )


def _print_table(rows: list[tuple[str, str, str]]) -> int:
    width = max(len(name) for _, name, _ in rows)
    for status, name, detail in rows:
        first, *more = detail.splitlines() or [""]
        print(f"{status:<4}  {name:<{width}}  {first}")
        for line in more:  # a fix, under the detail it belongs to
            print(f"{'':<4}  {'':<{width}}  {line}")
    return EXIT_FAILED if any(status == "FAIL" for status, _, _ in rows) else 0


def _explain(error: Exception) -> str:
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found: configure a profile, SSO or the task role"
    if isinstance(error, ClientError):
        code = error_code(error)
        return {
            "AccessDeniedException": "AccessDenied: the caller lacks secretsmanager:GetSecretValue/DescribeSecret on "
            "this secret, or the secret's resource policy denies it. Attach the read policy to the *task* role (not "
            "the execution role), and check the role is in the env file's service.task_roles.",
            "ResourceNotFoundException": "NotFound: no secret with this ARN in this region/account. Check "
            "API_KEYS_SECRET_ARN against the stack output secret_arn, and that AWS_REGION matches the ARN's region.",
            "DecryptionFailure": "KMS decrypt failed: the caller lacks kms:Decrypt on the secret's key (via Secrets "
            "Manager), or the key is disabled.",
        }.get(code, f"{code}: {error.response.get('Error', {}).get('Message', '')}")
    return f"{type(error).__name__}: cannot reach AWS (network, endpoint or timeout)"


def cmd_doctor(args: argparse.Namespace) -> int:
    """Explain why a service cannot read its keys; with --env, what a hand-made setup left behind."""
    target = resolve(args)
    if args.fix and not target.env:
        raise CliError("--fix needs --env: the fixes come from the env's stack outputs")
    rows = _access_rows(target)
    if not target.env or any(status == "FAIL" and name == "ARN shape" for status, name, _ in rows):
        return _print_table(rows)
    deployment = _deployment(target)
    if args.fix:
        for _, findings in run_checks(deployment):
            for finding in findings:
                if finding.open and finding.repair is not None:
                    _repair(finding, finding.repair)
        deployment = deployment.fresh()
    rows += [_row(finding) for _, findings in run_checks(deployment) for finding in findings]
    return _print_table(rows)


def cmd_checklist(args: argparse.Namespace) -> int:
    """The migration checklist, each item read from the account; exit 1 while any is open."""
    deployment = _deployment(resolve(args))
    results = run_checks(deployment)
    for number, (check, findings) in enumerate(results, start=1):
        print(f"[{' ' if any(f.open for f in findings) else 'x'}] {number}. {check.item}")
        for finding in findings:
            print(f"       {finding.status:<4}  {finding.detail}")
            if finding.open and finding.fix:
                print(f"             next: {finding.fix}")
    done = sum(not any(f.open for f in findings) for _, findings in results)
    print(
        f"{done} of {len(results)} done"
        + ("" if done == len(results) else f"; doctor {deployment.env_flag} --fix repairs some")
    )
    return 0 if done == len(results) else EXIT_FAILED


def cmd_adopt(args: argparse.Namespace) -> int:
    """Re-write AWSCURRENT, same keys, so only the env's CMK encrypts it (after make apply adopted the secret)."""
    deployment = _deployment(resolve(args))
    try:
        adoption = adopt(deployment)
    except AdoptionRefusedError as error:
        raise CliError(str(error)) from None
    for line in adoption_lines(adoption, deployment):
        print(line)
    return 0


def _deployment(target: Target) -> Deployment:
    return Deployment(
        secret_arn=target.secret_arn,
        region=target.region,
        env=target.env,
        outputs=target.outputs,
        client=lambda service, region: client(service, region),  # looked up per call: tests replace it
    )


def _row(finding: Finding) -> tuple[str, str, str]:
    fix = f"\nfix: {finding.fix}" if finding.fix and finding.open else ""
    return finding.status, finding.name, finding.detail + fix


def _repair(finding: Finding, repair: Callable[[], Sequence[str]]) -> None:
    """Apply one finding's fix and say what changed; a fix that fails is said and skipped."""
    try:
        lines = repair()
    except (ClientChangeError, AdoptionRefusedError) as error:
        lines = [f"not fixed: {error}"]
    except CheckDeniedError as error:
        lines = [f"not fixed: needs {error.action}"]
    except (ClientError, BotoCoreError) as error:
        lines = [f"not fixed: {_explain(error)}"]
    for line in lines:
        print(f"fix   {finding.name}: {line}")


def _access_rows(target: Target) -> list[tuple[str, str, str]]:
    """Identity, region, account, ARN shape and a read: why a service cannot read its keys."""
    rows: list[tuple[str, str, str]] = [("PASS", "AWS SDK", f"boto3 {boto3.__version__}")]
    match = ARN_PATTERN.match(target.secret_arn)
    rows.append(
        ("PASS" if match else "FAIL", "ARN shape", target.secret_arn if match else "not a Secrets Manager secret ARN")
    )
    if match is None:
        return rows  # no region, account or secret to check without one
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region and region != match[1]:
        rows.append(("FAIL", "region", f"AWS_REGION={region} but the ARN is in {match[1]}: the SDK would look there"))
    else:
        rows.append(("PASS", "region", region or f"(from the ARN) {target.region}"))
    try:
        identity = client("sts", target.region).get_caller_identity()
        rows.append(("PASS", "caller identity", f"{identity['Arn']} (account {identity['Account']})"))
        if identity["Account"] != match[2]:
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
    return rows


class _CommandsFormatter(argparse.HelpFormatter):
    """Aligns each command's help beside its name: argparse measures the command names without
    the indent it then prints them with, so a name of nine letters (checklist) would wrap."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            longest = max(len(name) for name in action.choices)
            self._action_max_length = max(
                self._action_max_length, longest + self._current_indent + self._indent_increment
            )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="apikeys",
        description="Operate the service's API keys in Secrets Manager. Output names clients and counts, never keys.",
        epilog="The secret's ARN comes from --secret-arn, else from the stack outputs of --env (make deploy).",
        formatter_class=_CommandsFormatter,
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, handler, example in (
        ("generate", cmd_generate, "--env prod"),
        ("migrate", cmd_migrate, "--env prod --stdin < keys.txt"),
        ("verify", cmd_verify, "--env prod"),
        ("doctor", cmd_doctor, "--env prod --fix"),
        ("rotate", cmd_rotate, "--env prod"),
        ("adopt", cmd_adopt, "--env prod"),
        ("checklist", cmd_checklist, "--env prod"),
    ):
        command = _command(commands, name, handler, f"apikeys {name} {example}")
        command.add_argument("--env", help="environment name (stack)")
        if name != "generate":
            _target_arguments(command)
        if name == "doctor":
            command.add_argument(
                "--fix",
                action="store_true",
                help="with --env: apply the fixes that are safe from here, print each change, then check again",
            )
        if name == "migrate":
            command.add_argument(
                "--stdin", action="store_true", help="read the key list from stdin instead of API_KEYS"
            )
    _clients_parser(commands)
    return root


def _command(commands: Any, name: str, handler: Callable[..., int], example: str) -> argparse.ArgumentParser:
    summary = _summary(handler)
    command: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=summary, epilog=f"example: {example}"
    )
    command.set_defaults(handler=handler)
    return command


def _clients_parser(commands: Any) -> None:
    clients = commands.add_parser(
        "clients",
        help="List, add, rotate or revoke one client; show one client's key.",
        description="Change one client at a time. Each change is written only if AWSCURRENT has not moved since it "
        "was read, and is refused while a rotation is in progress. No command needs or prints another client's key.",
    )
    actions = clients.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, handler, example, hands_over_a_key in (
        ("list", cmd_clients_list, "", False),
        ("add", cmd_clients_add, "--client-id acme --name 'Acme Corp' --out acme.key", True),
        ("rotate", cmd_clients_rotate, "--client-id acme --out acme.key", True),
        ("revoke", cmd_clients_revoke, "--client-id acme", False),
        ("show-key", cmd_clients_show_key, "--client-id acme --out acme.key", True),
    ):
        command = _command(actions, name, handler, f"apikeys clients {name} --env prod {example}".rstrip())
        command.add_argument("--env", help="environment name (stack)")
        _target_arguments(command)
        if name != "list":
            command.add_argument("--client-id", required=True, help="the client's id (letters, digits, ._-)")
        if name == "add":
            command.add_argument("--name", required=True, help="the client's display name (no commas)")
        if hands_over_a_key:
            command.add_argument(
                "--out", metavar="FILE", help="write the key to this new file (mode 0600) instead of stdout"
            )


def _target_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--secret-arn", help="the secret's ARN (default: from the stack outputs)")
    command.add_argument("--outputs", default=str(DEFAULT_OUTPUTS), help="stack outputs JSON (cdktf --outputs-file)")


def _summary(handler: Callable[..., int]) -> str:
    return (handler.__doc__ or "").strip().splitlines()[0] if handler.__doc__ else handler.__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (CliError, ClientChangeError, CheckDeniedError) as error:
        print(f"apikeys: {error}", file=sys.stderr)
        return EXIT_FAILED
    except ApiKeyParseError as error:  # an argument (client id, name) the key list cannot hold
        print(f"apikeys: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (ClientError, BotoCoreError) as error:
        print(f"apikeys: {_explain(error)}", file=sys.stderr)
        return EXIT_FAILED
    return code
