"""What the key-check and call-count sections share: fake key lists, local AWS clients, a call counter."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scripts.local_aws import LocalAws

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["REGION", "CallCounter", "fake_key", "fake_key_list", "secret_string", "secrets_client"]

REGION = "us-east-1"


def fake_key(number: int, *, prefix: str = "fake-bench-key") -> str:
    """An obviously fake key, e.g. `fake-bench-key-000123` (21 characters; 16 is the minimum)."""
    return f"{prefix}-{number:06d}"


def fake_key_list(count: int, *, start: int = 0, prefix: str = "fake-bench-key") -> str:
    """`key:clientId:Name,...` with `count` entries numbered from `start`."""
    return ",".join(
        f"{fake_key(number, prefix=prefix)}:bench-{number:06d}:Bench {number}" for number in range(start, start + count)
    )


def secret_string(key_list: str) -> str:
    """The secret's value: `{"apiKeys": "..."}`."""
    return json.dumps({"apiKeys": key_list})


def secrets_client(server: LocalAws) -> SecretsManagerClient:
    """A Secrets Manager client on the local endpoint (fake credentials, loopback only)."""
    return server.session(REGION).client("secretsmanager", endpoint_url=server.endpoint_url)


class CallCounter:
    """Counts the API calls a client makes (botocore's `before-call` event: once per call, before
    any retry), each with the time `clock` reads then."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.calls: list[tuple[float, str]] = []

    def attach(self, client: SecretsManagerClient) -> SecretsManagerClient:
        client.meta.events.register("before-call.secrets-manager", self._count)
        return client

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append((self._clock(), str(model.name)))

    def between(self, start: float, end: float) -> dict[str, int]:
        """Calls per operation with start <= time < end."""
        counts: dict[str, int] = {}
        for at, operation in self.calls:
            if start <= at < end:
                counts[operation] = counts.get(operation, 0) + 1
        return counts
