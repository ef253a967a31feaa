"""Secrets Manager calls per process per hour: our loader vs aws-secretsmanager-caching (and
Powertools), counted on each one's client, on a simulated clock.

Each contender gets its own secret on the local endpoint and its own client with a
`CallCounter`, then serves simulated traffic for three hours: the startup hour, a steady
hour, and an hour in which the secret is rotated (a new version written by a separate, not
counted, admin client about 10 minutes in). Time is simulated, so three hours take seconds:

- the loader takes the clock as an argument (`ApiKeyLoader(clock=...)`);
- aws-secretsmanager-caching and Powertools read `datetime.now()` in one module each
  (`aws_secretsmanager_caching.cache.items`, `aws_lambda_powertools.utilities.parameters.base`);
  that name is patched with a `datetime` whose `now()` reads the same simulated clock.

Refresh jitter (the loader's ±10 %, the caching library's random TTL between half and all of
its interval) comes from `random`, seeded, so a run is reproducible. Every contender runs with
its defaults. Counts do not depend on the request rate once there is at least one request per
second (a refresh happens on the first request after it is due), so the simulation sends
SIM_REQUESTS_PER_SECOND requests per simulated second rather than the cost model's 100.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Self
from unittest import mock

from aws_lambda_powertools.utilities.parameters import SecretsProvider, get_secret
from aws_lambda_powertools.utilities.parameters import base as powertools_base
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_MAX_AGE_SECS, DEFAULT_PROVIDERS
from aws_secretsmanager_caching import SecretCache, SecretCacheConfig
from aws_secretsmanager_caching.cache import items as caching_items

from apikeys.loader import ApiKeyLoader, LoaderSettings
from bench.common import REGION, CallCounter, fake_key, fake_key_list, secret_string, secrets_client
from scripts.local_aws import LocalAws

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["HOUR_S", "ROTATION_AT_S", "SIM_REQUESTS_PER_SECOND", "CallCounts", "call_counts"]

HOUR_S = 3600.0
ROTATION_AT_S = 2 * HOUR_S + 617  # ~10 minutes into the third hour, off any refresh period's multiple
SIM_REQUESTS_PER_SECOND = 10
SEED = 20_260_101
EPOCH_S = 1_800_000_000.0  # the simulated clock's zero, as a Unix time
KEYS = 10

LOADER = "credlink ApiKeyLoader"
LOADER_REFRESH_ALTERNATIVES = (timedelta(seconds=60), timedelta(seconds=15))
CACHING = "aws-secretsmanager-caching SecretCache"
POWERTOOLS = "Powertools get_secret"


@dataclass(frozen=True)
class CallCounts:
    contender: str
    policy: str
    startup_hour: dict[str, int]
    steady_hour: dict[str, int]
    rotation_hour: dict[str, int]
    calls_until_new_value: int | None  # after the rotation, up to the first request served the new value
    seconds_until_new_value: float | None
    expected_steady_per_hour: float  # from the refresh policy (mean interval)
    staleness_bound_s: float  # the longest a rotated value can go unserved


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def _libraries_on(clock: SimClock) -> Iterator[None]:
    class SimulatedDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Self:
            return cls.fromtimestamp(EPOCH_S + clock.now, tz)

    with (
        mock.patch.object(caching_items, "datetime", SimulatedDatetime),
        mock.patch.object(powertools_base, "datetime", SimulatedDatetime),
    ):
        yield


@dataclass(frozen=True)
class _Rotation:
    new_key: str
    new_value: str


Request = Callable[[], bool]  # one request; True when it was served the rotated value
Starter = Callable[["SecretsManagerClient", str, SimClock, _Rotation], Request]


def _loader_refreshing_every(interval: timedelta) -> Starter:
    def start(client: SecretsManagerClient, arn: str, clock: SimClock, rotation: _Rotation) -> Request:
        settings = LoaderSettings(secret_arn=arn, region=REGION, refresh_interval=interval)
        loader = ApiKeyLoader(settings, client=client, clock=clock)
        loader.load()
        header = f"Bearer {rotation.new_key}"
        return lambda: loader.authenticate(header) is not None

    return start


def _start_caching(client: SecretsManagerClient, arn: str, clock: SimClock, rotation: _Rotation) -> Request:
    cache = SecretCache(SecretCacheConfig(), client=client)
    return lambda: bool(cache.get_secret_string(arn) == rotation.new_value)


def _start_powertools(client: SecretsManagerClient, arn: str, clock: SimClock, rotation: _Rotation) -> Request:
    DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=client)  # what get_secret() uses
    return lambda: get_secret(arn) == rotation.new_value


@dataclass(frozen=True)
class _Contender:
    name: str
    policy: str
    expected_steady_per_hour: float
    staleness_bound_s: float
    start: Starter


def _loader(defaults: LoaderSettings, interval: timedelta) -> _Contender:
    seconds = interval.total_seconds()
    return _Contender(
        LOADER if interval == defaults.refresh_interval else f"{LOADER}, refresh {seconds:.0f} s",
        f"DescribeSecret every {seconds:.0f} s ±{defaults.refresh_jitter:.0%}; GetSecretValue only on a new version",
        HOUR_S / seconds,
        seconds * (1 + defaults.refresh_jitter),
        _loader_refreshing_every(interval),
    )


def _contenders() -> list[_Contender]:
    """Each contender with its default refresh policy; the loader also with shorter refresh
    intervals (API_KEYS_REFRESH_SECONDS), which bound how long a revoked client is accepted."""
    settings = LoaderSettings(secret_arn=None, region=None)
    caching_ttl = float(SecretCacheConfig().secret_refresh_interval)
    max_age = float(DEFAULT_MAX_AGE_SECS)
    return [
        *(_loader(settings, interval) for interval in (settings.refresh_interval, *LOADER_REFRESH_ALTERNATIVES)),
        _Contender(
            CACHING,
            f"DescribeSecret every {caching_ttl / 2:.0f}-{caching_ttl:.0f} s (random); GetSecretValue on a new version",
            HOUR_S / (0.75 * caching_ttl),
            caching_ttl,
            _start_caching,
        ),
        _Contender(
            POWERTOOLS,
            f"GetSecretValue when the cached value is older than max_age ({max_age:.0f} s)",
            HOUR_S / max_age,
            max_age,
            _start_powertools,
        ),
    ]


def _simulate(server: LocalAws, number: int, contender: _Contender) -> CallCounts:
    random.seed(SEED)
    clock = SimClock()
    counter = CallCounter(clock)
    admin = secrets_client(server)  # creates and rotates the secret; not counted
    client = counter.attach(secrets_client(server))
    rotation = _Rotation(  # the new version: other keys, the first of them the one presented
        new_key=fake_key(KEYS, prefix="fake-rotated-key"),
        new_value=secret_string(fake_key_list(KEYS, start=KEYS, prefix="fake-rotated-key")),
    )
    old_value = secret_string(fake_key_list(KEYS))
    arn = admin.create_secret(Name=f"credlink/bench-calls-{number}/api-keys", SecretString=old_value)["ARN"]
    served_at: float | None = None
    rotated = False
    try:
        with _libraries_on(clock):
            request = contender.start(client, arn, clock, rotation)
            for tick in range(int(3 * HOUR_S * SIM_REQUESTS_PER_SECOND)):
                clock.now = tick / SIM_REQUESTS_PER_SECOND
                if not rotated and clock.now >= ROTATION_AT_S:
                    admin.put_secret_value(SecretId=arn, SecretString=rotation.new_value)
                    rotated = True
                if request() and served_at is None:
                    served_at = clock.now
    finally:
        DEFAULT_PROVIDERS.pop("secrets", None)
    print(f"  calls: {contender.name} simulated", file=sys.stderr, flush=True)
    return CallCounts(
        contender=contender.name,
        policy=contender.policy,
        startup_hour=counter.between(0, HOUR_S),
        steady_hour=counter.between(HOUR_S, 2 * HOUR_S),
        rotation_hour=counter.between(2 * HOUR_S, 3 * HOUR_S),
        calls_until_new_value=None
        if served_at is None
        else sum(counter.between(ROTATION_AT_S, served_at + 1e-9).values()),
        seconds_until_new_value=None if served_at is None else served_at - ROTATION_AT_S,
        expected_steady_per_hour=contender.expected_steady_per_hour,
        staleness_bound_s=contender.staleness_bound_s,
    )


def call_counts(server: LocalAws) -> list[CallCounts]:
    return [_simulate(server, number, contender) for number, contender in enumerate(_contenders())]
