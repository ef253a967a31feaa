"""moto's server, with gaps of moto 5.2.5 closed where they would make local runs lie:

- A replica keeps the KMS key it was created with (moto reports `alias/aws/secretsmanager`
  for every replica, so every plan of a stack with replicas would show a change).
- RotateSecret on a secret with a rotation function does what Secrets Manager does before
  it invokes the function: it attaches AWSPENDING to a new, empty version and returns its
  id, keeping the configured function and schedule (moto forgets them when the call omits
  them). The invocation itself is left to the caller (moto can only run a Lambda in Docker):
  the tests invoke `apikeys.rotation` with the same events. A second RotateSecret while a
  rotation is pending is refused, as Secrets Manager does.
- RotateSecret with RotateImmediately=false (how the stack configures rotation) tests the
  configuration as Secrets Manager documents it: it creates an AWSPENDING version, runs the
  function's testSecret step, then removes the version. The function's deployed code runs
  here, in a Python subprocess calling back into this server (the Lambda runtime's part); a
  function that is not deployed, or whose step fails, fails RotateSecret with its reason.
- Each secret version remembers the KMS keys that encrypt it, and ListSecretVersionIds
  reports them as `KmsKeyIds`, as Secrets Manager does (moto reports none): a version is
  written under the secret's key; a new key on the secret also encrypts the versions
  labelled AWSCURRENT, AWSPENDING and AWSPREVIOUS, which keep the previous key as well.
- AWS managed policies exist (arn:aws:iam::aws:policy/...), as in every account: one is
  loaded from moto's copy when a call names it (moto loads all ~1,300 at once, in seconds,
  only when MOTO_IAM_LOAD_MANAGED_POLICIES is set, and none otherwise).
- UpdateSecretVersionStage moving AWSCURRENT also moves the version GetSecretValue returns
  when no stage is named (moto kept returning the old one).
- A bucket policy's TLS-only statement (Deny when aws:SecureTransport is false) does not deny
  requests to this endpoint, which stands in for AWS's HTTPS endpoints: moto evaluates bucket
  policies without their conditions, so the state bucket's policy would deny every request.
- With CREDLINK_RECORD_CALLS=<path> in its environment, the server appends one JSON line per
  request to <path>: {"access_key", "service", "region", "operation", "status"}, the access key
  id and scope from the SigV4 credential and the API operation's name (X-Amz-Target, Action,
  or for REST services the method and path matched against the botocore model, as moto
  routes them). Nothing else of a request is kept: secret values pass through this server.
  Tests derive the IAM permissions a caller needs from it; a request that matches no
  operation is kept as "UNMAPPED <METHOD> <path with its names elided>", never dropped.

Run by `scripts.local_aws`; takes moto's own arguments (-H 127.0.0.1 -p PORT).
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus
from wsgiref.types import StartResponse

import moto.server
from botocore.exceptions import DataNotFoundError
from moto.awslambda import models as lambda_models
from moto.core.request import Request
from moto.core.routing import ProtocolRouter, get_router_class
from moto.core.utils import get_service_model
from moto.iam import models as iam_models
from moto.iam.access_control import IAMPolicy
from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3 import models as s3_models
from moto.secretsmanager import models
from moto.secretsmanager.exceptions import InvalidRequestException, SecretNotFoundException
from moto.server import main
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException

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
    if not rotate_immediately:
        _test_the_configuration(self, secret, function_arn)
        return secret.to_short_dict(include_version_id=False)
    if not secret.versions:
        return secret.to_short_dict(include_version_id=False)
    token = client_request_token or str(uuid.uuid4())
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])  # e.g. left on AWSCURRENT by a finished rotation
    secret.versions[token] = {"createdate": now, "version_id": token, "version_stages": ["AWSPENDING"]}
    secret.last_rotation_date = now
    return secret.to_short_dict(version_id=token)


# Where this server listens (from -H/-p), for the function's code to call back.
_ENDPOINT: dict[str, str] = {}


def _test_the_configuration(
    backend: models.SecretsManagerBackend, secret: models.FakeSecret, function_arn: str
) -> None:
    token = str(uuid.uuid4())
    secret.versions[token] = {"createdate": int(time.time()), "version_id": token, "version_stages": ["AWSPENDING"]}
    try:
        _invoke_step(backend, function_arn, {"Step": "testSecret", "SecretId": secret.arn, "ClientRequestToken": token})
    finally:
        secret.versions.pop(token, None)


def _invoke_step(backend: models.SecretsManagerBackend, function_arn: str, event: dict[str, str]) -> None:
    """Run one step of the deployed rotation function, as Lambda would (synchronously)."""
    region = function_arn.split(":")[3]
    try:
        function = lambda_models.lambda_backends[backend.account_id][region].get_function(function_arn)
    except Exception:  # moto's UnknownFunctionException and friends
        raise InvalidRequestException(f"The rotation function {function_arn} does not exist.") from None
    with tempfile.TemporaryDirectory() as scratch:
        package = Path(scratch) / "function.zip"
        package.write_bytes(function.code_bytes)
        module, _, name = str(function.handler).rpartition(".")
        result = subprocess.run(  # noqa: S603 (fixed interpreter; the code is the function's own)
            [sys.executable, "-c", _RUN_HANDLER, str(package), module, name, json.dumps(event)],
            env={
                "PATH": os.environ.get("PATH", ""),
                "AWS_ENDPOINT_URL": _ENDPOINT.get("url", ""),
                "AWS_ACCESS_KEY_ID": "testing-local-only",
                "AWS_SECRET_ACCESS_KEY": "testing-local-only",
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InvalidRequestException(f"The rotation function failed the {event['Step']} step: {last}")


# Only the function's own package on the path, as in Lambda (boto3 comes from the runtime).
_RUN_HANDLER = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
getattr(importlib.import_module(sys.argv[2]), sys.argv[3])(json.loads(sys.argv[4]), None)
"""


_add_secret = models.SecretsManagerBackend._add_secret  # every write of a value goes through it


def _add_secret_remembering_its_key(
    self: models.SecretsManagerBackend, secret_id: str, *args: Any, **kwargs: Any
) -> tuple[models.FakeSecret, bool]:
    existing = self.secrets.get(secret_id)
    previous_key = _key_of(existing) if isinstance(existing, models.FakeSecret) else None
    secret, new_version = _add_secret(self, secret_id, *args, **kwargs)
    key = _key_of(secret)
    if previous_key is not None and previous_key != key:
        # "When you change the encryption key, Secrets Manager re-encrypts AWSCURRENT, AWSPENDING,
        # and AWSPREVIOUS versions with the new key ... [and] keeps all existing versions
        # encrypted with the previous key" (Secrets Manager user guide, "Change the encryption
        # key for an AWS Secrets Manager secret"). Only a new version has the new key alone.
        for version in secret.versions.values():
            if (
                KMS_KEY_IDS in version
                and _LABELLED & set(version["version_stages"])
                and key not in version[KMS_KEY_IDS]
            ):
                version[KMS_KEY_IDS].append(key)
    for version in secret.versions.values():
        version.setdefault(KMS_KEY_IDS, [key])  # the version just written, under the secret's key
    return secret, new_version


def _key_of(secret: models.FakeSecret) -> str:
    return secret.kms_key_id or models.SecretsManagerBackend.DEFAULT_KMS_KEY_ALIAS


_LABELLED = frozenset({"AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"})


_list_secret_version_ids = models.SecretsManagerBackend.list_secret_version_ids


def _list_versions_with_their_keys(self: models.SecretsManagerBackend, secret_id: str) -> str:
    listing = json.loads(_list_secret_version_ids(self, secret_id))
    versions = self.secrets[secret_id].versions
    for entry in listing["Versions"]:
        keys = versions.get(entry["VersionId"], {}).get(KMS_KEY_IDS)
        if keys:
            entry["KmsKeyIds"] = keys
    return json.dumps(listing)


KMS_KEY_IDS = "kms_key_ids"
_AWS_MANAGED_POLICY = re.compile(r"^arn:aws:iam::aws:policy(?P<path>/(?:[^/]+/)*)(?P<name>[^/]+)$")


@functools.cache
def _aws_managed_policy_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(aws_managed_policies_data)
    return data


def _with_aws_managed_policy(method: Any) -> Any:
    """`method` of the IAM backend, first loading the AWS managed policy its `policy_arn` names."""

    @functools.wraps(method)
    def call(self: iam_models.IAMBackend, *args: Any, **kwargs: Any) -> Any:
        arn = kwargs.get("policy_arn", args[0] if args else "")
        match = _AWS_MANAGED_POLICY.match(arn)
        data = _aws_managed_policy_data().get(match["name"]) if match else None
        if match and data and data.get("Path", "/") == match["path"] and arn not in self.managed_policies:
            policy = iam_models.AWSManagedPolicy.from_data(match["name"], self.account_id, self.region_name, data)
            self.aws_managed_policies.append(policy)
            self.managed_policies[policy.arn] = policy
        return method(self, *args, **kwargs)

    return call


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


def _bucket_permission_over_tls(self: s3_models.FakeBucket, action: str, resource: str) -> Any:
    """moto evaluates a bucket policy's `Principal: *` statements without their conditions, so
    a TLS-only statement (Deny unless aws:SecureTransport) would deny every request. This
    endpoint stands in for AWS's HTTPS endpoints: requests count as TLS, and such statements
    (Deny, its only condition aws:SecureTransport false) do not apply; the rest is as moto has it."""
    if self.policy is None:
        return _bucket_get_permission(self, action, resource)
    document = json.loads(self.policy)
    listed = document.get("Statement", [])
    statements = listed if isinstance(listed, list) else [listed]
    kept = [statement for statement in statements if not _denies_only_plain_http(statement)]
    return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(action, resource)


def _denies_only_plain_http(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition")
    if statement.get("Effect") != "Deny" or not isinstance(condition, dict) or list(condition) != ["Bool"]:
        return False
    tested = condition["Bool"]
    values = tested.get("aws:SecureTransport") if isinstance(tested, dict) and len(tested) == 1 else None
    return values in ("false", ["false"])


_bucket_get_permission = s3_models.FakeBucket.get_permission

models.FakeSecret.create_replicas = _create_replicas_keeping_their_keys  # type: ignore[method-assign]
s3_models.FakeBucket.get_permission = _bucket_permission_over_tls  # type: ignore[method-assign]
models.SecretsManagerBackend.rotate_secret = _rotate_secret_as_secrets_manager_does  # type: ignore[method-assign]
models.SecretsManagerBackend.update_secret_version_stage = _update_stage_moving_the_default  # type: ignore[method-assign]
models.SecretsManagerBackend._add_secret = _add_secret_remembering_its_key  # type: ignore[method-assign]
models.SecretsManagerBackend.list_secret_version_ids = _list_versions_with_their_keys  # type: ignore[method-assign]
for _name in ("attach_role_policy", "get_policy", "get_policy_version"):
    setattr(iam_models.IAMBackend, _name, _with_aws_managed_policy(getattr(iam_models.IAMBackend, _name)))


RECORD_CALLS = "CREDLINK_RECORD_CALLS"

# Credential=AKID/20250101/us-east-1/secretsmanager/aws4_request (SigV4a scopes have no region).
_CREDENTIAL = re.compile(
    r"Credential=(?P<access_key>[^/,\s]+)/\d{8}/(?:(?P<region>[^/,\s]+)/)?(?P<service>[^/,\s]+)/aws4_request"
)
# https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html: the target is in the path.
_RPC_V2_PATH = re.compile(r"/service/[^/]+/operation/(?P<operation>[^/]+)")
# API versions in REST paths (/2015-03-31/functions/...) say which operation, never whose resource.
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")


def _query_parameter(query: str, name: str) -> str | None:
    """One parameter's value, without decoding the others (they can be secret values)."""
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if unquote_plus(key) == name:
            return unquote_plus(value)
    return None


def _credential_scope(environ: dict[str, Any]) -> tuple[str, str, str]:
    """(access key id, region, signing name) of a SigV4 request, header-signed or presigned."""
    credential = environ.get("HTTP_AUTHORIZATION", "")
    if not credential:
        presigned = _query_parameter(environ.get("QUERY_STRING", ""), "X-Amz-Credential")
        credential = f"Credential={presigned}" if presigned else ""
    match = _CREDENTIAL.search(credential)
    if match is None:
        return "", "", ""
    return match["access_key"], match["region"] or "", match["service"].lower()


@functools.cache
def _rest_model(signing_name: str) -> tuple[ProtocolRouter, frozenset[str]] | None:
    """The router moto itself dispatches a REST service's requests with (its rules are the
    botocore model's HTTP bindings), and the literal path segments of that model."""
    try:
        model = get_service_model(signing_name)
    except DataNotFoundError:
        return None
    router_class = get_router_class(model.service_name, model.protocol)
    if model.protocol not in ("rest-json", "rest-xml") or router_class is None:
        return None
    literals = frozenset(
        segment
        for name in model.operation_names
        for segment in model.operation_model(name).http_trait.path.split("/")
        if segment and "{" not in segment
    )
    return router_class(model), literals


def _rest_operation(router: ProtocolRouter, environ: dict[str, Any]) -> str | None:
    # shallow: matching reads the method, path, query and headers; reading the body would raise.
    request = Request(environ, populate_request=False, shallow=True)
    try:
        operation, _ = router.match(request)
    except (HTTPException, RoutingException, NotImplementedError):
        return None
    return str(operation.name)


def _form_action(environ: dict[str, Any]) -> str | None:
    """The Action of a query-protocol request sent as a form; the body is put back for moto."""
    if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0:
        return None
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return _query_parameter(body.decode("latin-1"), "Action")


def _elided(environ: dict[str, Any], literals: frozenset[str]) -> str:
    """Method, path and query parameter names, with every name or id in the path replaced."""
    path = "/".join(
        segment if not segment or segment in literals or _API_VERSION.fullmatch(segment) else "{id}"
        for segment in environ.get("PATH_INFO", "/").split("/")
    )
    names = dict.fromkeys(
        unquote_plus(pair.partition("=")[0]) for pair in environ.get("QUERY_STRING", "").split("&") if pair
    )
    query = f"?{'&'.join(names)}" if names else ""
    return f"{environ.get('REQUEST_METHOD', '')} {path}{query}"


def _operation(environ: dict[str, Any], service: str) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:  # JSON protocols: secretsmanager.DescribeSecret, TrentService.GetKeyPolicy, ...
        return str(target.rpartition(".")[2])
    if environ.get("HTTP_SMITHY_PROTOCOL"):
        rpc = _RPC_V2_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if rpc is not None:
            return rpc["operation"]
    rest = _rest_model(service) if service else None
    if rest is not None:
        router, literals = rest
        return _rest_operation(router, environ) or f"UNMAPPED {_elided(environ, literals)}"
    action = _query_parameter(environ.get("QUERY_STRING", ""), "Action") or _form_action(environ)
    return action or f"UNMAPPED {_elided(environ, frozenset())}"


def _call(environ: dict[str, Any]) -> dict[str, Any]:
    path = environ.get("PATH_INFO", "")
    if path.startswith("/moto-api"):  # moto's own control API (e.g. the readiness probe), not AWS's
        access_key, region, service, operation = "", "", "moto-api", f"{environ.get('REQUEST_METHOD', '')} {path}"
    else:
        access_key, region, service = _credential_scope(environ)
        operation = _operation(environ, service)
    return {"access_key": access_key, "service": service, "region": region, "operation": operation}


class _CallLog:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        path.open("a", encoding="utf-8").close()  # an unwritable path stops the server at once

    def append(self, call: dict[str, Any]) -> None:
        line = json.dumps(call) + "\n"
        # Opened per line, so a test may move the file aside between phases (plan, apply, destroy).
        with self._lock, self._path.open("a", encoding="utf-8") as log:
            log.write(line)
            log.flush()


class _RecordingDispatcher(DomainDispatcherApplication):
    log: _CallLog

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        call = _call(environ)  # before moto reads the request: a form body is read here first
        statuses: list[int] = []

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            statuses.append(int(status.split(" ", 1)[0]))
            return start_response(status, headers, exc_info)

        try:
            response: Iterable[bytes] = super().__call__(environ, recording_start_response)
        finally:
            # No status means moto raised: the server answers 500.
            self.log.append({**call, "status": statuses[-1] if statuses else 500})
        return response


def _record_calls(path: str) -> None:
    _RecordingDispatcher.log = _CallLog(Path(path))
    moto.server.DomainDispatcherApplication = _RecordingDispatcher  # type: ignore[attr-defined]


def _remember_endpoint(argv: list[str]) -> None:
    host, port = "127.0.0.1", "5000"
    for flag, value in itertools.pairwise(argv):
        if flag in ("-H", "--host"):
            host = value
        elif flag in ("-p", "--port"):
            port = value
    _ENDPOINT["url"] = f"http://{host}:{port}"


if __name__ == "__main__":
    _remember_endpoint(sys.argv)
    if os.environ.get(RECORD_CALLS):
        _record_calls(os.environ[RECORD_CALLS])
    main()
