"""Load the service's API keys from Secrets Manager, keep them fresh, fall back loudly.

    loader = ApiKeyLoader.from_environ(os.environ)   # reads the secret at startup
    client = loader.authenticate(request.headers.get("Authorization"))

- `API_KEYS_SECRET_ARN` set: the secret is read at startup (region from `AWS_REGION`, else
  the ARN). If that fails and `API_KEYS` is set, the keys come from `API_KEYS` with a WARN
  line naming the reason class; if `API_KEYS` is not set either, startup fails.
- Neither set: `NoKeySourceError` (fail closed). `ENABLE_API_KEY_AUTH=false` turns checking
  off, with a WARN line at startup.
- Refresh: at most once per interval (default 5 min, jittered) `DescribeSecret` shows
  whether AWSCURRENT moved; only then is the value fetched. A failed refresh keeps the last
  good keys. After a rotation the previous keys stay valid for a grace period (a process
  started during it reads AWSPREVIOUS too, until the same moment), but only for clients
  still in AWSCURRENT: a client removed from the set is refused from the next refresh on.

Every log line is one JSON object whose `event`/`reason` fields are the contract in
`apikeys.events`, which the CloudWatch metric filters match. No line contains key material.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from apikeys.aws import BOTO_CONFIG, error_code, version_with_label
from apikeys.events import Event, FailureReason, reason_of_error_code
from apikeys.keyset import MIN_KEY_LENGTH, ApiKeyParseError, Client, KeySet, parse_api_keys, parse_secret_string
from apikeys.logs import JsonLineFormatter, ensure_json_logging, log_event

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = [
    "BOTO_CONFIG",
    "ApiKeyLoader",
    "JsonLineFormatter",
    "LoaderSettings",
    "NoKeySourceError",
    "SecretReadError",
    "ensure_json_logging",
    "log_event",
    "version_with_label",
]


class NoKeySourceError(RuntimeError):
    """Neither API_KEYS_SECRET_ARN nor API_KEYS is set and auth is on: refuse to start."""


class SecretReadError(RuntimeError):
    """The secret could not be read or parsed; `reason` is the failure class."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class LoaderSettings:
    secret_arn: str | None
    region: str | None
    fallback_keys: str | None = field(default=None, repr=False)  # the API_KEYS value: never printed
    auth_enabled: bool = True
    refresh_interval: timedelta = timedelta(minutes=5)
    refresh_jitter: float = 0.1
    previous_grace: timedelta = timedelta(hours=1)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LoaderSettings:
        arn = environ.get("API_KEYS_SECRET_ARN") or None
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or _region_of(arn)
        return cls(
            secret_arn=arn,
            region=region,
            fallback_keys=environ.get("API_KEYS") or None,
            auth_enabled=environ.get("ENABLE_API_KEY_AUTH", "true").strip().lower() not in ("false", "0", "no", "off"),
            refresh_interval=timedelta(seconds=float(environ.get("API_KEYS_REFRESH_SECONDS", "300"))),
            previous_grace=timedelta(seconds=float(environ.get("API_KEYS_PREVIOUS_GRACE_SECONDS", "3600"))),
        )


def _region_of(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None


def _classify(error: Exception) -> FailureReason:
    """The failure class of an SDK error; what is not known to be one of the others is `other`."""
    if isinstance(error, ClientError):
        return reason_of_error_code(error_code(error))
    if isinstance(error, BotoConnectionError | HTTPClientError):  # unreachable, timed out, connection dropped
        return FailureReason.NETWORK
    return FailureReason.OTHER


class ApiKeyLoader:
    """Thread-safe: one lock guards the key sets and the refresh bookkeeping."""

    def __init__(
        self,
        settings: LoaderSettings,
        *,
        client: SecretsManagerClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._client = client
        self._current = KeySet()
        # Keys replaced by recent changes, each set with the loader-clock time its grace ends.
        self._in_grace: tuple[tuple[KeySet, float], ...] = ()
        self._version: str | None = None
        self._next_check = 0.0
        self._source = "none"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, client: SecretsManagerClient | None = None) -> ApiKeyLoader:
        ensure_json_logging()
        loader = cls(LoaderSettings.from_environ(environ), client=client)
        loader.load()
        return loader

    @property
    def source(self) -> str:
        """Where the keys came from: "secret", "env", "disabled"."""
        return self._source

    def _secrets_client(self) -> SecretsManagerClient:
        if self._client is None:
            self._client = boto3.client("secretsmanager", region_name=self._settings.region, config=BOTO_CONFIG)
        return self._client

    def load(self) -> None:
        """Startup: the secret, else API_KEYS with a warning, else fail closed."""
        settings = self._settings
        failure: FailureReason | None = None
        if not settings.auth_enabled:
            self._source = "disabled"
            log_event(logging.WARNING, Event.AUTH_DISABLED, "ENABLE_API_KEY_AUTH=false: API key checking is OFF")
            return
        if settings.secret_arn:
            try:
                keys, version, written = self._fetch(settings.secret_arn)
                previous, previous_until = self._previous_in_grace(settings.secret_arn, written)
            except SecretReadError as error:
                failure = error.reason
                log_event(
                    logging.ERROR, Event.SECRET_READ_FAILED, "could not read the API keys secret", reason=str(failure)
                )
                if not settings.fallback_keys:
                    raise
            else:
                with self._lock:
                    self._current, self._version, self._source = keys, version, "secret"
                    self._in_grace = ((previous.of_clients_in(keys), previous_until),) if len(previous) else ()
                    self._schedule_next_check()
                log_event(logging.INFO, Event.LOADED, "API keys loaded", source="secret", key_count=len(keys))
                _warn_of_short_keys(keys)
                return
        if settings.fallback_keys:
            keys = parse_api_keys(settings.fallback_keys)
            with self._lock:
                self._current, self._source = keys, "env"
            reason = str(failure) if failure is not None else "no_secret_arn"
            log_event(
                logging.WARNING,
                Event.FALLBACK_TO_ENV,
                "API keys come from the API_KEYS environment variable: move them to Secrets Manager",
                reason=reason,
                key_count=len(keys),
            )
            _warn_of_short_keys(keys)
            return
        raise NoKeySourceError(
            "no API keys: set API_KEYS_SECRET_ARN (or API_KEYS), or ENABLE_API_KEY_AUTH=false to disable checking"
        )

    def _fetch(self, secret_id: str, stage: str = "AWSCURRENT") -> tuple[KeySet, str, datetime | None]:
        """The stage's keys, version id, and when that version was written."""
        try:
            response = self._secrets_client().get_secret_value(SecretId=secret_id, VersionStage=stage)
        except (ClientError, BotoCoreError) as error:
            raise SecretReadError(_classify(error), type(error).__name__) from None
        if "SecretString" not in response:
            raise SecretReadError(FailureReason.MALFORMED, "the secret is binary; expected a JSON string")
        try:
            return parse_secret_string(response["SecretString"]), response["VersionId"], response.get("CreatedDate")
        except ApiKeyParseError as error:
            raise SecretReadError(FailureReason.MALFORMED, str(error)) from None

    def _previous_in_grace(self, secret_id: str, current_written: datetime | None) -> tuple[KeySet, float]:
        """At startup: AWSPREVIOUS's keys, and until when (on the loader's clock) they are valid.

        The grace period counts from when AWSCURRENT was written, so a process started in the
        middle of a hand-over accepts the previous keys as long as one that saw the rotation."""
        if current_written is None:
            return KeySet(), 0.0
        remaining = current_written.timestamp() + self._settings.previous_grace.total_seconds() - time.time()
        if remaining <= 0:
            return KeySet(), 0.0  # no rotation within the grace period: nothing more to read
        try:
            keys, _, _ = self._fetch(secret_id, "AWSPREVIOUS")
        except SecretReadError:
            return KeySet(), 0.0  # no previous version (the first value), or unreadable: accept none
        return keys, self._clock() + remaining

    def _schedule_next_check(self) -> None:
        interval = self._settings.refresh_interval.total_seconds()
        jitter = interval * self._settings.refresh_jitter
        self._next_check = self._clock() + interval + random.uniform(-jitter, jitter)  # noqa: S311 (not crypto)

    def refresh_if_due(self) -> None:
        """At most once per interval: DescribeSecret; fetch only when AWSCURRENT moved."""
        arn = self._settings.secret_arn
        if self._source != "secret" or arn is None:
            return
        with self._lock:
            if self._clock() < self._next_check:
                return
            self._schedule_next_check()  # one caller refreshes; the others go on with the current keys
        try:
            stages = self._secrets_client().describe_secret(SecretId=arn).get("VersionIdsToStages", {})
            current = version_with_label(stages, "AWSCURRENT")
            if current is None or current == self._version:
                return
            keys, version, _ = self._fetch(arn)
        except (ClientError, BotoCoreError) as error:
            log_event(
                logging.WARNING,
                Event.REFRESH_FAILED,
                "refresh failed; keeping the last good keys",
                reason=str(_classify(error)),
            )
            return
        except SecretReadError as error:
            log_event(
                logging.WARNING,
                Event.REFRESH_FAILED,
                "refresh failed; keeping the last good keys",
                reason=str(error.reason),
            )
            return
        with self._lock:
            # Grace is for rotation: a client no longer in AWSCURRENT is refused from now on,
            # including its keys still in grace from earlier changes.
            now = self._clock()
            replaced = (self._current.of_clients_in(keys), now + self._settings.previous_grace.total_seconds())
            still = ((previous.of_clients_in(keys), until) for previous, until in self._in_grace if until > now)
            self._in_grace = tuple(grace for grace in (replaced, *still) if len(grace[0]))
            self._current, self._version = keys, version
        log_event(logging.INFO, Event.REFRESHED, "API keys refreshed after a new version", key_count=len(keys))
        _warn_of_short_keys(keys)

    def authenticate(self, authorization: str | None) -> Client | None:
        """`Authorization: Bearer <key>` → the client, or None. With auth disabled, an anonymous client."""
        if self._source == "disabled":
            return Client(client_id="anonymous", name="auth disabled")
        self.refresh_if_due()
        if not authorization:
            return None
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        key = key.strip()
        with self._lock:
            current, in_grace = self._current, self._in_grace
        client = current.authenticate(key)
        if client is None and in_grace:
            now = self._clock()
            client = next(
                (found for keys, until in in_grace if now < until and (found := keys.authenticate(key))), None
            )
        return client

    def __repr__(self) -> str:
        return f"ApiKeyLoader(source={self._source}, keys={len(self._current)})"


def _warn_of_short_keys(keys: KeySet) -> None:
    """Name (never show) the clients whose keys are shorter than a new key may be: they are
    accepted, as an adopted key set holds them, until a rotation replaces them."""
    if keys.short_key_clients:
        log_event(
            logging.WARNING,
            Event.SHORT_KEYS,
            f"keys shorter than {MIN_KEY_LENGTH} characters are accepted until rotated: rotate them "
            "(apikeys rotate, or apikeys clients rotate per client)",
            client_ids=sorted(client.client_id for client in keys.short_key_clients),
        )
