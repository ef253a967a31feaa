"""One client at a time: read the key list, change one entry, write it back safely.

    snapshot = read_snapshot(secretsmanager, arn)           # AWSCURRENT, refused mid-rotation
    new_version = commit(secretsmanager, arn, snapshot, snapshot.with_key("acme", new_key(), "Acme"))

A change is a compare-and-swap on AWSCURRENT. The new value is written as its own version
under the `APIKEYS_EDIT` label (services never read it), then AWSCURRENT is moved to it with
`RemoveFromVersionId` naming the version the change was made from. Secrets Manager refuses
that move when AWSCURRENT is on another version ("If the label is attached and ... the version
ID does not match, then the operation fails": UpdateSecretVersionStage, RemoveFromVersionId),
so of two concurrent changes exactly one lands, and the other is refused with nothing lost.
Moving AWSCURRENT makes the replaced version AWSPREVIOUS, as a rotation does.

Keys live in memory only as long as a command runs; nothing here logs or raises one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from apikeys.aws import error_code, version_with_label
from apikeys.keyset import (
    ApiKeyParseError,
    Client,
    check_client_id,
    check_key,
    check_name,
    format_api_keys,
    parse_entries,
    secret_document,
)
from apikeys.rotation import CURRENT, PENDING, ROTATED_FROM

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = [
    "EDIT_LABEL",
    "ChangeConflictError",
    "ClientChangeError",
    "Snapshot",
    "commit",
    "pending_rotation",
    "read_snapshot",
    "refuse_during_rotation",
]

EDIT_LABEL = "APIKEYS_EDIT"


class ClientChangeError(Exception):
    """The change cannot be made (its message says why and what to do); nothing was written."""


class ChangeConflictError(ClientChangeError):
    """AWSCURRENT moved while the change was made: the other change won."""


@dataclass(frozen=True)
class Snapshot:
    """AWSCURRENT as a change starts from it: version, the JSON document's other fields, entries."""

    version: str
    document: Mapping[str, Any] = field(repr=False)
    entries: tuple[tuple[str, Client], ...] = field(repr=False)

    def find(self, client_id: str) -> tuple[str, Client]:
        found = next((entry for entry in self.entries if entry[1].client_id == client_id), None)
        if found is None:
            known = ", ".join(client.client_id for _, client in self.entries) or "none"
            raise ClientChangeError(f"no client {client_id!r} in version {self.version} (clients: {known})")
        return found

    def with_key(self, client_id: str, key: str, name: str | None = None) -> tuple[tuple[str, Client], ...]:
        """The entries with `client_id`'s key replaced (or, if it is new, appended)."""
        check_client_id(client_id, "--client-id")
        check_key(key, "the new key")
        existing = next((client for _, client in self.entries if client.client_id == client_id), None)
        client = Client(client_id=client_id, name=name or (existing.name if existing else client_id))
        check_name(client.name, "--name")
        if existing is None:
            return (*self.entries, (key, client))
        return tuple((key, client) if each.client_id == client_id else (old, each) for old, each in self.entries)

    def without(self, client_id: str) -> tuple[tuple[str, Client], ...]:
        self.find(client_id)
        remaining = tuple(entry for entry in self.entries if entry[1].client_id != client_id)
        if not remaining:
            raise ClientChangeError(
                f"{client_id!r} is the last client: a secret with no keys would fail every service's startup"
            )
        return remaining


def pending_rotation(stages: Mapping[str, Sequence[str]]) -> str | None:
    """The version labelled AWSPENDING but not AWSCURRENT: a rotation not finished."""
    return next((version for version, labels in stages.items() if PENDING in labels and CURRENT not in labels), None)


def refuse_during_rotation(arn: str, stages: Mapping[str, Sequence[str]]) -> None:
    pending = pending_rotation(stages)
    if pending is not None:
        # The rotation would finish from the value it started with and undo this change.
        raise ClientChangeError(
            f"a rotation is in progress (version {pending} is AWSPENDING): wait for it to finish, or cancel it with "
            f"aws secretsmanager update-secret-version-stage --secret-id {arn} "
            f"--version-stage AWSPENDING --remove-from-version-id {pending}"
        )


def read_snapshot(secretsmanager: SecretsManagerClient, arn: str) -> Snapshot:
    """AWSCURRENT, parsed; refused while a rotation is in progress or before any value exists."""
    refuse_during_rotation(arn, secretsmanager.describe_secret(SecretId=arn).get("VersionIdsToStages", {}))
    try:
        response = secretsmanager.get_secret_value(SecretId=arn, VersionStage=CURRENT)
    except secretsmanager.exceptions.ResourceNotFoundException:
        raise ClientChangeError(f"{arn} has no value yet: import the first keys with apikeys migrate") from None
    if "SecretString" not in response:
        raise ClientChangeError(f"{arn} holds a binary value; expected the JSON document with apiKeys")
    try:
        document = secret_document(response["SecretString"])
        entries = parse_entries(document["apiKeys"])
    except ApiKeyParseError as error:
        raise ClientChangeError(
            f"AWSCURRENT ({response['VersionId']}) is not a valid key list: {error}; fix it with apikeys migrate"
        ) from None
    return Snapshot(version=response["VersionId"], document=document, entries=tuple(entries))


def commit(
    secretsmanager: SecretsManagerClient, arn: str, base: Snapshot, entries: Sequence[tuple[str, Client]]
) -> str:
    """Write `entries` as the new AWSCURRENT if AWSCURRENT is still `base.version`; the new version id."""
    document = {name: value for name, value in base.document.items() if name != ROTATED_FROM}
    document["apiKeys"] = format_api_keys(entries)
    try:
        parse_entries(document["apiKeys"])  # what every service will parse: never write what fails there
    except ApiKeyParseError as error:
        raise ClientChangeError(f"the changed key list would not be valid: {error}") from None
    version = str(uuid.uuid4())
    secretsmanager.put_secret_value(
        SecretId=arn, ClientRequestToken=version, SecretString=json.dumps(document), VersionStages=[EDIT_LABEL]
    )
    try:
        secretsmanager.update_secret_version_stage(
            SecretId=arn, VersionStage=CURRENT, MoveToVersionId=version, RemoveFromVersionId=base.version
        )
    except ClientError as error:
        if error_code(error) != "InvalidParameterException":
            raise
        _drop_edit_label(secretsmanager, arn, version)
        stages = secretsmanager.describe_secret(SecretId=arn).get("VersionIdsToStages", {})
        now = version_with_label(stages, CURRENT) or "another version"
        raise ChangeConflictError(
            f"not applied: AWSCURRENT moved from {base.version} to {now} while this change was made (the other change "
            "won; nothing of either is lost): run the command again"
        ) from None
    _drop_edit_label(secretsmanager, arn, version)
    return version


def _drop_edit_label(secretsmanager: SecretsManagerClient, arn: str, version: str) -> None:
    """Take the edit label off `version`, unless a concurrent change has already moved it away."""
    try:
        secretsmanager.update_secret_version_stage(SecretId=arn, VersionStage=EDIT_LABEL, RemoveFromVersionId=version)
    except ClientError as error:
        if error_code(error) != "InvalidParameterException":
            raise
