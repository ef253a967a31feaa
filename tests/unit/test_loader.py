"""The loader against moto (in-process) and botocore's Stubber for the failures moto can't make."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto import mock_aws

from apikeys.events import ALARMED_EVENTS, Event
from apikeys.keyset import Client
from apikeys.loader import (
    BOTO_CONFIG,
    ApiKeyLoader,
    JsonLineFormatter,
    LoaderSettings,
    NoKeySourceError,
    SecretReadError,
)
from tests.alarm_patterns import alarms_raised, filter_matches
from tests.scripted_secretsmanager import ScriptedSecretsManager, aws_error

REGION = "us-east-1"
KEY_1 = "fake_loader_key_1111111111111111"
KEY_2 = "fake_loader_key_2222222222222222"
KEY_3 = "fake_loader_key_3333333333333333"
KEY_ENV = "fake_loader_key_envenvenvenvenv0"
ALL_KEYS = (KEY_1, KEY_2, KEY_ENV)


def secret_value(*entries: tuple[str, str]) -> str:
    return json.dumps({"apiKeys": ",".join(f"{key}:{client}:Name {client}" for key, client in entries)})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """The loader's real log lines, formatted exactly as they are written."""
    captured: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(JsonLineFormatter().format(record))

    logger = logging.getLogger("apikeys")
    handler = Capture()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield captured
    logger.removeHandler(handler)


@pytest.fixture
def secrets() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def make_secret(client: Any, value: str) -> str:
    arn: str = client.create_secret(Name="credlink/test/api-keys", SecretString=value)["ARN"]
    return arn


def events(lines: list[str]) -> list[str]:
    return [json.loads(line)["event"] for line in lines]


def test_loads_from_the_secret_and_authenticates_bearer_keys(secrets: Any, lines: list[str]) -> None:
    arn = make_secret(secrets, secret_value((KEY_1, "c1")))
    loader = ApiKeyLoader.from_environ({"API_KEYS_SECRET_ARN": arn}, client=secrets)
    assert loader.source == "secret"
    assert loader.authenticate(f"Bearer {KEY_1}") == Client("c1", "Name c1")
    assert loader.authenticate(f"bearer  {KEY_1} ") == Client("c1", "Name c1")
    assert loader.authenticate(KEY_1) is None  # no scheme
    assert loader.authenticate(f"Basic {KEY_1}") is None
    assert loader.authenticate(None) is None
    assert loader.authenticate("Bearer fake_unknown_key_000000000000") is None
    assert events(lines) == [Event.LOADED]


def test_a_short_adopted_key_works_and_its_client_is_named_in_a_warning(secrets: Any, lines: list[str]) -> None:
    short = "sk_test_FAKE14"  # 14 characters, as keys set up before the 16-character rule may be
    arn = make_secret(secrets, secret_value((short, "client-test"), (KEY_1, "c1")))
    loader = ApiKeyLoader.from_environ({"API_KEYS_SECRET_ARN": arn}, client=secrets)
    assert loader.authenticate(f"Bearer {short}") == Client("client-test", "Name client-test")
    loaded, warning = (json.loads(line) for line in lines)
    assert loaded["event"] == Event.LOADED
    assert (warning["event"], warning["level"], warning["client_ids"]) == (Event.SHORT_KEYS, "WARNING", ["client-test"])
    assert short not in "".join(lines)


def test_neither_source_fails_closed() -> None:
    with pytest.raises(NoKeySourceError):
        ApiKeyLoader.from_environ({})


def test_disabled_auth_says_so_loudly(lines: list[str]) -> None:
    loader = ApiKeyLoader.from_environ({"ENABLE_API_KEY_AUTH": "false"})
    assert loader.source == "disabled"
    assert loader.authenticate(None) == Client("anonymous", "auth disabled")
    (line,) = lines
    assert json.loads(line)["level"] == "WARNING"
    assert json.loads(line)["event"] == Event.AUTH_DISABLED


def test_missing_secret_falls_back_to_api_keys_with_a_warning(secrets: Any, lines: list[str]) -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:credlink/missing-AbCdEf"
    env = {"API_KEYS_SECRET_ARN": arn, "API_KEYS": f"{KEY_ENV}:env-client:Env"}
    loader = ApiKeyLoader.from_environ(env, client=secrets)
    assert loader.source == "env"
    assert loader.authenticate(f"Bearer {KEY_ENV}") == Client("env-client", "Env")
    failed, fallback = (json.loads(line) for line in lines)
    assert (failed["event"], failed["reason"]) == (Event.SECRET_READ_FAILED, "not_found")
    assert (fallback["event"], fallback["reason"]) == (Event.FALLBACK_TO_ENV, "not_found")
    assert fallback["level"] == "WARNING"


def test_unreadable_secret_without_fallback_refuses_to_start(secrets: Any) -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:credlink/missing-AbCdEf"
    with pytest.raises(SecretReadError) as raised:
        ApiKeyLoader.from_environ({"API_KEYS_SECRET_ARN": arn}, client=secrets)
    assert raised.value.reason == "not_found"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("AccessDeniedException", "denied"),
        ("ResourceNotFoundException", "not_found"),
        ("DecryptionFailure", "decrypt"),
        ("ThrottlingException", "throttled"),
        ("ExpiredTokenException", "denied"),
        ("InvalidRequestException", "other"),  # e.g. the secret is scheduled for deletion
    ],
)
def test_each_failure_class_is_named(code: str, reason: str, lines: list[str]) -> None:
    client = boto3.client("secretsmanager", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:credlink/test-AbCdEf"
    with Stubber(client) as stubber:
        for _ in range(5):  # botocore's retry mode may ask again for throttling
            stubber.add_client_error("get_secret_value", service_error_code=code)
        loader = ApiKeyLoader(
            LoaderSettings(secret_arn=arn, region=REGION, fallback_keys=f"{KEY_ENV}:e:E"), client=client
        )
        loader.load()
    assert loader.source == "env"
    assert json.loads(lines[0])["reason"] == reason
    assert json.loads(lines[1])["reason"] == reason  # the WARN fallback line names the class too


def test_endpoint_down_is_a_network_failure(lines: list[str]) -> None:
    client = boto3.client(
        "secretsmanager", region_name=REGION, endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )  # fmt: skip
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:credlink/test-AbCdEf"
    loader = ApiKeyLoader(LoaderSettings(secret_arn=arn, region=REGION, fallback_keys=f"{KEY_ENV}:e:E"), client=client)
    loader.load()
    assert json.loads(lines[0])["reason"] == "network"


@pytest.mark.parametrize(
    "value",
    [{"SecretString": "not json"}, {"SecretString": json.dumps({"apiKeys": "no-fields"})}, {"SecretBinary": b"\x00"}],
    ids=["not-json", "bad-entry", "binary"],
)
def test_malformed_secret_is_named_malformed(secrets: Any, value: dict[str, Any], lines: list[str]) -> None:
    arn: str = secrets.create_secret(Name="credlink/test/bad", **value)["ARN"]
    loader = ApiKeyLoader.from_environ({"API_KEYS_SECRET_ARN": arn, "API_KEYS": f"{KEY_ENV}:e:E"}, client=secrets)
    assert loader.source == "env"
    assert json.loads(lines[0])["reason"] == "malformed"


def test_refresh_checks_describe_at_most_once_per_interval_and_fetches_only_on_change(
    secrets: Any, lines: list[str]
) -> None:
    arn = make_secret(secrets, secret_value((KEY_1, "c1")))
    calls: list[str] = []
    secrets.meta.events.register("before-call.secrets-manager.*", lambda model, **_: calls.append(model.name))
    clock = Clock()
    settings = LoaderSettings(secret_arn=arn, region=REGION, refresh_jitter=0.0)
    loader = ApiKeyLoader(settings, client=secrets, clock=clock)
    loader.load()
    # AWSCURRENT, then AWSPREVIOUS (none here): the value is younger than the grace period.
    startup = ["GetSecretValue", "GetSecretValue"]
    assert calls == startup

    for _ in range(100):  # within the interval: no calls at all
        loader.authenticate(f"Bearer {KEY_1}")
    assert calls == startup

    clock.now += 301  # due, but unchanged: one DescribeSecret, no fetch
    assert loader.authenticate(f"Bearer {KEY_1}") == Client("c1", "Name c1")
    assert calls == [*startup, "DescribeSecret"]

    secrets.put_secret_value(SecretId=arn, SecretString=secret_value((KEY_2, "c1")))  # a rotation
    calls.clear()
    clock.now += 301
    assert loader.authenticate(f"Bearer {KEY_2}") == Client("c1", "Name c1")
    assert calls == ["DescribeSecret", "GetSecretValue"]
    assert loader.authenticate(f"Bearer {KEY_1}") == Client("c1", "Name c1")  # previous, in grace

    clock.now += 3601  # grace over
    assert loader.authenticate(f"Bearer {KEY_1}") is None
    assert loader.authenticate(f"Bearer {KEY_2}") == Client("c1", "Name c1")
    assert Event.REFRESHED in events(lines)


def test_failed_refresh_keeps_the_last_good_keys(secrets: Any, lines: list[str]) -> None:
    arn = make_secret(secrets, secret_value((KEY_1, "c1")))
    clock = Clock()
    loader = ApiKeyLoader(
        LoaderSettings(secret_arn=arn, region=REGION, refresh_jitter=0.0), client=secrets, clock=clock
    )
    loader.load()
    secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    clock.now += 301
    assert loader.authenticate(f"Bearer {KEY_1}") == Client("c1", "Name c1")
    failed = json.loads(lines[-1])
    assert (failed["event"], failed["reason"]) == (Event.REFRESH_FAILED, "not_found")


def test_no_key_material_in_any_log_line_or_repr(secrets: Any, lines: list[str]) -> None:
    arn = make_secret(secrets, "not json " + KEY_1)
    loader = ApiKeyLoader.from_environ({"API_KEYS_SECRET_ARN": arn, "API_KEYS": f"{KEY_ENV}:e:E"}, client=secrets)
    loader.authenticate(f"Bearer {KEY_2}")
    settings = LoaderSettings.from_environ({"API_KEYS": f"{KEY_ENV}:e:E"})
    text = "\n".join(lines) + repr(loader) + repr(settings)
    for key in ALL_KEYS:
        assert key not in text


# --- The log-line contract: the loader's real lines through the stacks' metric filter patterns.


def test_loader_lines_trigger_exactly_the_alarms_they_should(secrets: Any, lines: list[str]) -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:credlink/missing-AbCdEf"
    ApiKeyLoader.from_environ({"API_KEYS_SECRET_ARN": arn, "API_KEYS": f"{KEY_ENV}:e:E"}, client=secrets)
    failed, fallback = lines
    assert alarms_raised(failed) == {"secret_read_failed"}
    assert alarms_raised(fallback) == {"fallback_to_env"}

    lines.clear()
    good = make_secret(secrets, secret_value((KEY_1, "c1")))
    ApiKeyLoader.from_environ({"API_KEYS_SECRET_ARN": good}, client=secrets)
    (loaded,) = lines
    assert alarms_raised(loaded) == set()


@pytest.mark.parametrize(
    "line",
    [
        "Secrets Manager unavailable, falling back to environment variables",
        "2026-03-01T10:00:00.000Z WARN [keys] AccessDenied: falling back to environment variables for API keys",
    ],
)
def test_a_plain_text_fallback_line_of_a_service_without_a_loader_raises_the_fallback_alarm(line: str) -> None:
    assert alarms_raised(line) == {"fallback_to_env"}


@pytest.mark.parametrize("reason", ["throttled", "network", "malformed", "other"])
def test_failures_that_are_not_about_access_raise_no_access_alarm(lines: list[str], reason: str) -> None:
    pattern = next(event.pattern for event in ALARMED_EVENTS if event.name == "secret_read_failed")
    line = json.dumps({"event": Event.SECRET_READ_FAILED, "reason": reason})
    assert not filter_matches(pattern, line)
    assert filter_matches(pattern, json.dumps({"event": Event.REFRESH_FAILED, "reason": "decrypt"}))


def test_throttling_is_retried_by_botocore(lines: list[str]) -> None:
    """The loader's client config (botocore standard retries) turns a throttle into a retry."""
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:credlink/test-AbCdEf"
    success = {"ARN": arn, "Name": "credlink/test", "VersionId": "v" * 32, "SecretString": secret_value((KEY_1, "c1"))}
    fake = ScriptedSecretsManager([(400, aws_error("ThrottlingException", "Rate exceeded")), (200, success)])
    try:
        client = boto3.client(
            "secretsmanager", region_name=REGION, endpoint_url=fake.url,
            aws_access_key_id="x", aws_secret_access_key="x", config=BOTO_CONFIG,
        )  # fmt: skip
        loader = ApiKeyLoader(LoaderSettings(secret_arn=arn, region=REGION), client=client)
        loader.load()
    finally:
        fake.close()
    assert fake.requests == 2
    assert loader.source == "secret"
    assert events(lines) == [Event.LOADED]


def test_a_timeout_is_a_network_failure(lines: list[str]) -> None:
    """A Secrets Manager that does not answer in time: the loader's read timeout ends the wait."""
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:credlink/test-AbCdEf"
    fake = ScriptedSecretsManager([(200, {})], delay_seconds=1.5)
    try:
        client = boto3.client(
            "secretsmanager", region_name=REGION, endpoint_url=fake.url,
            aws_access_key_id="x", aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}, read_timeout=0.5),
        )  # fmt: skip
        loader = ApiKeyLoader(
            LoaderSettings(secret_arn=arn, region=REGION, fallback_keys=f"{KEY_ENV}:e:E"), client=client
        )
        loader.load()
    finally:
        fake.close()
    assert loader.source == "env"
    assert json.loads(lines[0])["reason"] == "network"


def test_grace_is_for_rotation_not_for_removal(secrets: Any, lines: list[str]) -> None:
    """A removed client's key is refused from the first refresh that sees the removal, even
    inside a grace window from an earlier rotation; a rotated client's old key stays valid
    until its grace ends."""
    arn = make_secret(secrets, secret_value((KEY_1, "c1"), (KEY_2, "c2")))
    clock = Clock()
    settings = LoaderSettings(secret_arn=arn, region=REGION, refresh_jitter=0.0)
    loader = ApiKeyLoader(settings, client=secrets, clock=clock)
    loader.load()

    secrets.put_secret_value(SecretId=arn, SecretString=secret_value((KEY_3, "c1"), (KEY_2, "c2")))  # c1 rotated
    clock.now += 301
    assert loader.authenticate(f"Bearer {KEY_3}") == Client("c1", "Name c1")
    assert loader.authenticate(f"Bearer {KEY_1}") == Client("c1", "Name c1")  # rotated: in grace

    secrets.put_secret_value(SecretId=arn, SecretString=secret_value((KEY_3, "c1")))  # c2 revoked
    clock.now += 301  # the next refresh, well inside the grace window of the rotation
    assert loader.authenticate(f"Bearer {KEY_2}") is None  # revoked: refused at once
    assert loader.authenticate(f"Bearer {KEY_3}") == Client("c1", "Name c1")
    assert loader.authenticate(f"Bearer {KEY_1}") == Client("c1", "Name c1")  # a later change keeps c1's grace

    clock.now += 3600 - 301 - 1  # one second before the rotation's grace ends
    assert loader.authenticate(f"Bearer {KEY_1}") == Client("c1", "Name c1")
    clock.now += 2
    assert loader.authenticate(f"Bearer {KEY_1}") is None  # c1's old key: grace over


def test_a_client_revoked_while_its_old_key_is_in_grace_loses_both_keys(secrets: Any, lines: list[str]) -> None:
    arn = make_secret(secrets, secret_value((KEY_1, "c1"), (KEY_2, "c2")))
    clock = Clock()
    loader = ApiKeyLoader(
        LoaderSettings(secret_arn=arn, region=REGION, refresh_jitter=0.0), client=secrets, clock=clock
    )
    loader.load()
    secrets.put_secret_value(SecretId=arn, SecretString=secret_value((KEY_1, "c1"), (KEY_3, "c2")))  # c2 rotated
    clock.now += 301
    assert loader.authenticate(f"Bearer {KEY_2}") == Client("c2", "Name c2")  # old key, in grace
    secrets.put_secret_value(SecretId=arn, SecretString=secret_value((KEY_1, "c1")))  # c2 revoked
    clock.now += 301
    assert loader.authenticate(f"Bearer {KEY_2}") is None
    assert loader.authenticate(f"Bearer {KEY_3}") is None
    assert loader.authenticate(f"Bearer {KEY_1}") == Client("c1", "Name c1")


def test_a_process_started_during_grace_accepts_no_removed_client(secrets: Any, lines: list[str]) -> None:
    arn = make_secret(secrets, secret_value((KEY_1, "c1"), (KEY_2, "c2")))
    secrets.put_secret_value(SecretId=arn, SecretString=secret_value((KEY_3, "c1")))  # c1 rotated, c2 revoked
    loader = ApiKeyLoader(LoaderSettings(secret_arn=arn, region=REGION), client=secrets)
    loader.load()
    assert loader.authenticate(f"Bearer {KEY_1}") == Client("c1", "Name c1")  # AWSPREVIOUS, in grace
    assert loader.authenticate(f"Bearer {KEY_2}") is None
