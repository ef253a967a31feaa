"""moto's server, with gaps of moto 5.2.5 closed where they would make local runs lie:

- A replica keeps the KMS key it was created with (moto reports `alias/aws/secretsmanager`
  for every replica, so every plan of a stack with replicas would show a change).
- RotateSecret on a secret with a rotation function does what Secrets Manager does before
  it invokes the function: it attaches AWSPENDING to a new, empty version and returns its
  id, keeping the configured function and schedule (moto forgets them when the call omits
  them). The invocation itself is left to the caller (moto can only run a Lambda in Docker):
  the tests invoke `apikeys.rotation` with the same events. RotateImmediately=false (how
  the stack configures rotation) only records the schedule. A second RotateSecret while a
  rotation is pending is refused, as Secrets Manager does.
- UpdateSecretVersionStage moving AWSCURRENT also moves the version GetSecretValue returns
  when no stage is named (moto kept returning the old one).
- A Lambda function keeps its DeadLetterConfig (moto drops it, so every plan of a stack
  with the rotation function would show the queue being attached again).

Run by `scripts.local_aws`; takes moto's own arguments (-H 127.0.0.1 -p PORT).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from moto.awslambda import models as lambda_models
from moto.secretsmanager import models
from moto.secretsmanager.exceptions import InvalidRequestException, SecretNotFoundException
from moto.server import main

_create_replicas = models.FakeSecret.create_replicas


def _create_replicas_keeping_their_keys(
    self: models.FakeSecret, replica_regions: list[dict[str, str]], force_overwrite: bool
) -> Any:
    replicas = _create_replicas(self, replica_regions, force_overwrite)
    for replica, requested in zip(replicas, replica_regions or [], strict=True):
        if "KmsKeyId" in requested:
            replica.config["KmsKeyId"] = requested["KmsKeyId"]
    return replicas


_rotate_secret = models.SecretsManagerBackend.rotate_secret


def _rotate_secret_as_secrets_manager_does(
    self: models.SecretsManagerBackend,
    secret_id: str,
    client_request_token: str | None = None,
    rotation_lambda_arn: str | None = None,
    rotation_rules: dict[str, Any] | None = None,
    rotate_immediately: bool = True,
) -> str:
    if not self._is_valid_identifier(secret_id):
        raise SecretNotFoundException()
    secret = self.secrets[secret_id]
    function_arn = rotation_lambda_arn or getattr(secret, "rotation_lambda_arn", "")
    if not function_arn or isinstance(secret, models.ReplicaSecret) or secret.is_deleted():
        return _rotate_secret(
            self, secret_id, client_request_token, rotation_lambda_arn, rotation_rules, rotate_immediately
        )
    if any(
        "AWSPENDING" in version["version_stages"] and "AWSCURRENT" not in version["version_stages"]
        for version in secret.versions.values()
    ):
        raise InvalidRequestException("A previous rotation isn't complete. That rotation will be reattempted.")
    secret.rotation_lambda_arn = function_arn
    secret.rotation_requested = True
    if rotation_rules and "AutomaticallyAfterDays" in rotation_rules:
        secret.auto_rotate_after_days = int(rotation_rules["AutomaticallyAfterDays"])
    secret.rotation_enabled = secret.auto_rotate_after_days > 0
    now = int(time.time())
    if secret.rotation_enabled:
        secret.next_rotation_date = now + secret.auto_rotate_after_days * 86400
    if not rotate_immediately or not secret.versions:
        return secret.to_short_dict(include_version_id=False)
    token = client_request_token or str(uuid.uuid4())
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])  # e.g. left on AWSCURRENT by a finished rotation
    secret.versions[token] = {"createdate": now, "version_id": token, "version_stages": ["AWSPENDING"]}
    secret.last_rotation_date = now
    return secret.to_short_dict(version_id=token)


_update_secret_version_stage = models.SecretsManagerBackend.update_secret_version_stage


def _update_stage_moving_the_default(
    self: models.SecretsManagerBackend,
    secret_id: str,
    version_stage: str,
    remove_from_version_id: str,
    move_to_version_id: str,
) -> tuple[str, str]:
    result = _update_secret_version_stage(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
    secret = self.secrets[secret_id]
    if version_stage == "AWSCURRENT" and move_to_version_id and isinstance(secret, models.FakeSecret):
        secret.set_default_version_id(move_to_version_id)
    return result


_DEAD_LETTERS = "credlink_dead_letter_config"
_function_init = lambda_models.LambdaFunction.__init__
_function_configuration = lambda_models.LambdaFunction.get_configuration
_function_update = lambda_models.LambdaFunction.update_configuration


def _function_init_keeping_dead_letters(
    self: lambda_models.LambdaFunction, account_id: str, spec: dict[str, Any], region: str, version: str | int = 1
) -> None:
    _function_init(self, account_id, spec, region, version)
    setattr(self, _DEAD_LETTERS, spec.get("DeadLetterConfig"))


def _function_configuration_with_dead_letters(
    self: lambda_models.LambdaFunction, on_create: bool = False
) -> dict[str, Any]:
    configuration = _function_configuration(self, on_create)
    if getattr(self, _DEAD_LETTERS, None):
        configuration["DeadLetterConfig"] = getattr(self, _DEAD_LETTERS)
    return configuration


def _function_update_keeping_dead_letters(
    self: lambda_models.LambdaFunction, config_updates: dict[str, Any]
) -> dict[str, Any]:
    if "DeadLetterConfig" in config_updates:
        setattr(self, _DEAD_LETTERS, config_updates["DeadLetterConfig"])
    return _function_update(self, config_updates)


lambda_models.LambdaFunction.__init__ = _function_init_keeping_dead_letters  # type: ignore[method-assign]
lambda_models.LambdaFunction.get_configuration = _function_configuration_with_dead_letters  # type: ignore[method-assign]
lambda_models.LambdaFunction.update_configuration = _function_update_keeping_dead_letters  # type: ignore[method-assign]
models.FakeSecret.create_replicas = _create_replicas_keeping_their_keys  # type: ignore[method-assign]
models.SecretsManagerBackend.rotate_secret = _rotate_secret_as_secrets_manager_does  # type: ignore[method-assign]
models.SecretsManagerBackend.update_secret_version_stage = _update_stage_moving_the_default  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
