"""The rotation function: Secrets Manager's four-step protocol for the API keys secret.

Secrets Manager starts a rotation by attaching AWSPENDING to a new, empty version (its id
is the `ClientRequestToken`) and then invokes this function once per step:

- createSecret: a new key for every client (same ids and names) written under the token as
  AWSPENDING. Skipped if that version already has a value, so a retry writes nothing twice.
- setSecret: nothing to do. These are inbound keys: no database or third party holds a copy
  to update; our own services read the secret and pick the new keys up on their refresh.
- testSecret: the pending value parses with the loader's own parser, keeps every client and
  shares no key with AWSCURRENT. Secrets Manager also runs this step alone, to test the
  configuration, when rotation is set up without rotating at once (RotateImmediately=false):
  it creates an AWSPENDING version and removes it afterwards. That test passes when the
  pending version holds no value or a copy of AWSCURRENT, or when the secret has no value
  yet (a new environment, before `apikeys migrate`); a real rotation cannot reach this step
  in those states, because createSecret writes a new value and refuses an empty secret.
- finishSecret: AWSCURRENT moves to the token (Secrets Manager moves AWSPREVIOUS to the old
  version, whose keys the loader keeps accepting for its grace period), then AWSPENDING is
  removed so no label is left dangling. The pending value records the version it was made
  from (`rotatedFrom`); if AWSCURRENT has moved since (an `apikeys clients` change landed
  while the rotation ran), the step fails rather than undo that change.

Every step first checks the stages: rotation must be enabled and the token known; a token
that is already AWSCURRENT means there is nothing left to do; a token that is not
AWSPENDING is an error. Each step is idempotent, so a retried invocation is safe. Log lines
name the step, the version and the client count, never a key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from apikeys.aws import BOTO_CONFIG, version_with_label
from apikeys.events import Event
from apikeys.keyset import ApiKeyParseError, format_api_keys, new_key, parse_secret_string
from apikeys.logs import ensure_json_logging, log_event

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["CURRENT", "PENDING", "ROTATED_FROM", "STEPS", "RotationError", "handler", "rotate"]

CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"
ROTATED_FROM = "rotatedFrom"  # the field of a rotated value naming the version its clients came from


class RotationError(RuntimeError):
    """The rotation cannot go on (its message names the secret, the version and why)."""


def create_secret(client: SecretsManagerClient, arn: str, token: str) -> None:
    try:
        client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)
        return  # an earlier attempt wrote it
    except client.exceptions.ResourceNotFoundException:
        pass
    try:
        current = client.get_secret_value(SecretId=arn, VersionStage=CURRENT)
    except client.exceptions.ResourceNotFoundException:
        raise RotationError(
            f"{arn}: no AWSCURRENT value to rotate yet: put the keys in first (apikeys migrate)"
        ) from None
    document = _document(current["SecretString"], arn, CURRENT)
    clients = parse_secret_string(current["SecretString"]).clients
    document["apiKeys"] = format_api_keys((new_key(), client) for client in clients)
    document[ROTATED_FROM] = current["VersionId"]
    client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(document), VersionStages=[PENDING]
    )
    _step_done("createSecret", token, key_count=len(clients))


def set_secret(client: SecretsManagerClient, arn: str, token: str) -> None:
    # Inbound API keys live only in this secret: there is no external system to update.
    _step_done("setSecret", token)


def check_secret(client: SecretsManagerClient, arn: str, token: str) -> None:
    """The testSecret step."""
    try:
        current_value = client.get_secret_value(SecretId=arn, VersionStage=CURRENT)["SecretString"]
    except client.exceptions.ResourceNotFoundException:
        current_value = None
    try:
        pending_value = client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)["SecretString"]
    except client.exceptions.ResourceNotFoundException:
        pending_value = None
    if current_value is None or pending_value is None or pending_value == current_value:
        # Secrets Manager's configuration test (see the module docstring): no new keys to compare.
        _step_done("testSecret", token, configuration_test=True)
        return
    try:
        pending = parse_secret_string(pending_value)
    except ApiKeyParseError as error:
        raise RotationError(f"{arn}: the pending version {token} does not parse: {error}") from None
    current = parse_secret_string(current_value)
    if set(pending.clients) != set(current.clients):
        raise RotationError(f"{arn}: the pending version {token} does not keep the same clients as AWSCURRENT")
    _, _, unchanged = pending.diff(current)
    if unchanged:
        raise RotationError(f"{arn}: the pending version {token} reuses {unchanged} key(s) of AWSCURRENT")
    _step_done("testSecret", token, key_count=len(pending))


def finish_secret(client: SecretsManagerClient, arn: str, token: str) -> None:
    stages = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = version_with_label(stages, CURRENT)
    if current is None:
        raise RotationError(f"{arn}: no version is AWSCURRENT")
    pending = client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)["SecretString"]
    made_from = _document(pending, arn, PENDING).get(ROTATED_FROM, current)
    if made_from != current:
        raise RotationError(
            f"{arn}: AWSCURRENT moved from {made_from} to {current} while version {token} was made; finishing "
            f"would undo that change. Cancel this rotation (remove AWSPENDING from {token}) and rotate again"
        )
    client.update_secret_version_stage(
        SecretId=arn, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current
    )
    client.update_secret_version_stage(SecretId=arn, VersionStage=PENDING, RemoveFromVersionId=token)
    _step_done("finishSecret", token, previous_version=current)


Step = Callable[["SecretsManagerClient", str, str], None]
STEPS: Mapping[str, Step] = {
    "createSecret": create_secret,
    "setSecret": set_secret,
    "testSecret": check_secret,
    "finishSecret": finish_secret,
}


def rotate(client: SecretsManagerClient, event: Mapping[str, Any]) -> None:
    """Run one step of the protocol for a Secrets Manager rotation event."""
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    try:
        if step not in STEPS:
            raise RotationError(f"{arn}: unknown rotation step {step!r}")
        metadata = client.describe_secret(SecretId=arn)
        if not metadata.get("RotationEnabled"):
            raise RotationError(f"{arn}: rotation is not enabled for this secret")
        stages = metadata.get("VersionIdsToStages", {})
        if token not in stages:
            raise RotationError(f"{arn}: version {token} has no stage for rotation")
        if CURRENT in stages[token]:
            if PENDING in stages[token]:  # a finishSecret that stopped between its two calls
                client.update_secret_version_stage(SecretId=arn, VersionStage=PENDING, RemoveFromVersionId=token)
            log_event(logging.INFO, Event.ROTATION_STEP, "version is already AWSCURRENT", step=step, version=token)
            return
        if PENDING not in stages[token]:
            raise RotationError(f"{arn}: version {token} is not AWSPENDING")
        STEPS[step](client, arn, token)
    except (RotationError, ClientError, BotoCoreError, ApiKeyParseError) as error:
        log_event(
            logging.ERROR,
            Event.ROTATION_FAILED,
            "rotation step failed",
            step=step,
            version=token,
            error=type(error).__name__,
        )
        raise


_client: SecretsManagerClient | None = None


def handler(event: Mapping[str, Any], context: object) -> None:
    """The Lambda entry point (`apikeys.rotation.handler`)."""
    global _client  # one client per execution environment: boto3 clients are thread-safe and costly to build
    if _client is None:
        ensure_json_logging()
        _client = boto3.client("secretsmanager", config=BOTO_CONFIG)
    rotate(_client, event)


def _document(secret_string: str, arn: str, stage: str) -> dict[str, Any]:
    try:
        document = json.loads(secret_string)
    except json.JSONDecodeError:
        raise RotationError(f"{arn}: the {stage} value is not JSON") from None
    if not isinstance(document, dict):
        raise RotationError(f"{arn}: the {stage} value is not a JSON object")
    return document


def _step_done(step: str, token: str, **fields: object) -> None:
    log_event(logging.INFO, Event.ROTATION_STEP, "rotation step done", step=step, version=token, **fields)
