"""Both loaders' real log lines against the stacks' metric filter patterns.

Each reference service (Python and Node) is started against local AWS, once per failure class,
with `API_KEYS` as its fallback; every line it writes to stderr goes through the patterns the
stacks deploy (`tests/alarm_patterns.py`, the same evaluator as the unit tests'). Every alarmed
event must count into its alarm's metric, and nothing else may. The failures local AWS cannot
make (access denied, KMS decrypt, throttling) come from a scripted Secrets Manager on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apikeys.events import Event, FailureReason
from scripts.demo import http_status, start_service
from scripts.local_aws import LocalAws, free_port, local_aws
from tests.alarm_patterns import alarms_raised
from tests.e2e.reference_service import SERVICES, service_command
from tests.scripted_secretsmanager import ScriptedSecretsManager, aws_error

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("loader_log_lines")]

REGION = "eu-west-1"
KEY = "fake-log-lines-key-current-0000"
FALLBACK_KEY = "fake-log-lines-key-fallback-000"
MISSING_ARN = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:credlink/log-lines-missing-AbCdEf"
ACCESS_REASONS = {FailureReason.DENIED, FailureReason.NOT_FOUND, FailureReason.DECRYPT}


def expected_alarms(line: dict[str, Any]) -> set[str]:
    """What the alarms are for, written out: a fallback, and a read refused for access."""
    event, reason = line.get("event"), line.get("reason")
    if event == Event.FALLBACK_TO_ENV:
        return {"fallback_to_env"}
    if event in (Event.SECRET_READ_FAILED, Event.REFRESH_FAILED) and reason in ACCESS_REASONS:
        return {"secret_read_failed"}
    return set()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    with local_aws(log_path=tmp_path_factory.mktemp("log-lines") / "moto.log") as local:
        yield local


@dataclass(frozen=True)
class Case:
    """Where the service's secret is (a local AWS secret, a scripted endpoint, nothing), and the
    (event, reason) lines its loader writes at startup."""

    secret: Callable[[LocalAws], tuple[str, str]]  # -> (endpoint URL, secret ARN)
    lines: tuple[tuple[str, str | None], ...]
    scripted: tuple[tuple[int, dict[str, Any]], ...] = ()


def _stored(**value: Any) -> Callable[[LocalAws], tuple[str, str]]:
    def create(local: LocalAws) -> tuple[str, str]:
        client = local.session(REGION).client("secretsmanager", endpoint_url=local.endpoint_url)
        arn: str = client.create_secret(Name=f"credlink/log-lines/{uuid.uuid4()}", **value)["ARN"]
        return local.endpoint_url, arn

    return create


def _missing(local: LocalAws) -> tuple[str, str]:
    return local.endpoint_url, MISSING_ARN


def _endpoint_down(_: LocalAws) -> tuple[str, str]:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}", MISSING_ARN


def _scripted(_: LocalAws) -> tuple[str, str]:
    return "", MISSING_ARN  # the endpoint is the case's scripted one


def _failed(reason: FailureReason) -> tuple[tuple[str, str | None], ...]:
    return ((Event.SECRET_READ_FAILED, reason), (Event.FALLBACK_TO_ENV, reason))


GOOD_VALUE = json.dumps({"apiKeys": f"{KEY}:c1:One"})
CASES = {
    "loaded": Case(_stored(SecretString=GOOD_VALUE), ((Event.LOADED, None),)),
    "denied": Case(_scripted, _failed(FailureReason.DENIED), ((400, aws_error("AccessDeniedException")),)),
    "not_found": Case(_missing, _failed(FailureReason.NOT_FOUND)),
    "decrypt": Case(_scripted, _failed(FailureReason.DECRYPT), ((400, aws_error("DecryptionFailure")),)),
    "throttled-then-loaded": Case(
        _scripted,
        ((Event.LOADED, None),),
        (
            (400, aws_error("ThrottlingException", "Rate exceeded")),
            (200, {"ARN": MISSING_ARN, "Name": "credlink/x", "VersionId": "v" * 32, "SecretString": GOOD_VALUE}),
        ),
    ),
    "endpoint-down": Case(_endpoint_down, _failed(FailureReason.NETWORK)),
    "malformed": Case(_stored(SecretString="not json"), _failed(FailureReason.MALFORMED)),
    "binary": Case(_stored(SecretBinary=b"\x00\x01"), _failed(FailureReason.MALFORMED)),
}


def run_service(kind: str, env: dict[str, str], key: str) -> list[str]:
    """Start the service, call it once with the key it should accept, stop it: its stderr lines."""
    port = free_port()
    with tempfile.TemporaryFile() as stderr:
        service = start_service(env, port, command=service_command(kind), stderr=stderr)
        try:
            assert http_status(f"http://127.0.0.1:{port}/sign", key=key) == 200
        finally:
            service.terminate()
            service.wait(timeout=10)
        stderr.seek(0)
        return stderr.read().decode().splitlines()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("service_kind", SERVICES)
def test_every_alarmed_line_raises_its_alarm_and_nothing_else_does(
    server: LocalAws, service_kind: str, case: str
) -> None:
    spec = CASES[case]
    scripted = ScriptedSecretsManager(list(spec.scripted)) if spec.scripted else None
    try:
        endpoint, arn = spec.secret(server)
        env = {
            **server.applied_to({"PATH": "/usr/bin:/bin"}),
            "AWS_ENDPOINT_URL": scripted.url if scripted else endpoint,
            "AWS_REGION": REGION,
            "API_KEYS_SECRET_ARN": arn,
            "API_KEYS": f"{FALLBACK_KEY}:fallback:Fallback",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
        lines = run_service(service_kind, env, KEY if spec.lines[0][0] == Event.LOADED else FALLBACK_KEY)
    finally:
        if scripted:
            scripted.close()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert [(line["event"], line.get("reason")) for line in events] == list(spec.lines)
    for line in lines:
        assert alarms_raised(line) == (expected_alarms(json.loads(line)) if line.startswith("{") else set()), line
    assert all(FALLBACK_KEY not in line and KEY not in line for line in lines)
    if scripted and case == "throttled-then-loaded":
        assert scripted.requests == 2  # the SDK's standard retry mode asked again
