"""Key check: nanoseconds per request to decide whether a presented key is valid.

Ours: `KeySet.authenticate` (the key set parsed once) and `ApiKeyLoader.authenticate` (the
whole per-request path: refresh-due check, `Bearer` header, lookup), for the Python loader and,
measured the same way by clients/node/bench/keycheck.ts, the Node loader. Next to them, the same
decision made per request through aws-secretsmanager-caching's cached `get_secret_string`,
Powertools' cached `get_secret` (both followed by our parser and lookup, since neither keeps
a parsed key set) and an uncached boto3 `get_secret_value` against the local endpoint. The
cached libraries are also timed for the fetch alone. Every presented key is a hit.

10,000 keys do not fit one secret (Secrets Manager's 64 KB limit, enforced by our parser):
that key set is built from parsed chunks, and the secret-backed rows say n/a.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.parameters import SecretsProvider, get_secret
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

from apikeys.keyset import MAX_SECRET_BYTES, KeySet, parse_api_keys, parse_secret_string
from apikeys.loader import ApiKeyLoader, LoaderSettings
from bench.common import REGION, fake_key, fake_key_list, secret_string, secrets_client
from scripts.local_aws import LocalAws
from scripts.node_client import built, node_binary

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["KEY_COUNTS", "METHODS", "SHORT_NAMES", "KeyCheckResult", "keycheck_results"]

KEY_COUNTS = (10, 1_000, 10_000)
CHUNK_KEYS = 1_000  # one chunk's key list stays under the secret size limit
REPEATS = 5
MIN_BATCH_SECONDS = 0.2
UNCACHED_CALLS = 40  # per repeat: each is a real HTTP round trip

KEYSET = "KeySet.authenticate (parsed once)"
LOADER = "ApiKeyLoader.authenticate (per request)"
NODE_KEYSET = "Node KeySet.authenticate (parsed once)"
NODE_LOADER = "Node ApiKeyLoader.authenticate (per request)"
CACHING_GET = "caching: get_secret_string"
CACHING_FULL = "caching: get_secret_string + parse + authenticate"
POWERTOOLS_GET = "Powertools: get_secret"
POWERTOOLS_FULL = "Powertools: get_secret + parse + authenticate"
UNCACHED_FULL = "boto3 uncached: get_secret_value + parse + authenticate"
METHODS = (
    KEYSET,
    LOADER,
    NODE_KEYSET,
    NODE_LOADER,
    CACHING_GET,
    CACHING_FULL,
    POWERTOOLS_GET,
    POWERTOOLS_FULL,
    UNCACHED_FULL,
)
SHORT_NAMES = {
    KEYSET: "KeySet.authenticate",
    LOADER: "ApiKeyLoader.authenticate",
    NODE_KEYSET: "Node KeySet.authenticate",
    NODE_LOADER: "Node ApiKeyLoader.authenticate",
    CACHING_GET: "caching: get",
    CACHING_FULL: "caching: get+parse+auth",
    POWERTOOLS_GET: "Powertools: get",
    POWERTOOLS_FULL: "Powertools: get+parse+auth",
    UNCACHED_FULL: "boto3 uncached: get+parse+auth",
}


@dataclass(frozen=True)
class KeyCheckResult:
    method: str
    keys: int
    ns_per_op: float | None  # None: not applicable (see note)
    note: str = ""


def ns_per_op(operation: Callable[[], object], *, calls: int | None = None) -> float:
    """Median over REPEATS batches; a batch is `calls` calls, or as many as take MIN_BATCH_SECONDS."""
    timer = timeit.Timer(operation)
    if calls is None:
        calls = 1
        while timer.timeit(calls) < MIN_BATCH_SECONDS:
            calls *= 2
    return statistics.median(timer.repeat(repeat=REPEATS, number=calls)) / calls * 1e9


def _check(found: object, method: str) -> None:
    if found is None:
        raise RuntimeError(f"{method}: the presented key was not accepted (or nothing was read)")


def _keyset(count: int) -> KeySet:
    keys = KeySet()
    for chunk in _chunks(count):
        keys = keys.merged(parse_api_keys(chunk))
    return keys


def keycheck_results(server: LocalAws, key_counts: tuple[int, ...] = KEY_COUNTS) -> list[KeyCheckResult]:
    results: list[KeyCheckResult] = []
    node_cases: list[dict[str, object]] = []
    client = secrets_client(server)
    for count in key_counts:
        presented = fake_key(count // 2)
        results.append(KeyCheckResult(KEYSET, count, _time_keyset(_keyset(count), presented)))
        value = secret_string(fake_key_list(count))
        arn: str | None = None
        if len(value.encode("utf-8")) > MAX_SECRET_BYTES:
            note = f"{count:,} keys do not fit one secret ({MAX_SECRET_BYTES // 1024} KB limit)"
            results.extend(
                KeyCheckResult(method, count, None, note) for method in METHODS if method not in (KEYSET, NODE_KEYSET)
            )
        else:
            arn = client.create_secret(Name=f"credlink/bench-keycheck-{count}/api-keys", SecretString=value)["ARN"]
            results.extend(_secret_backed(client, arn, count, presented))
        node_cases.append({"keys": count, "chunks": _chunks(count), "presented": presented, "secretArn": arn})
        print(f"  key check: {count:,} keys done", file=sys.stderr, flush=True)
    results.extend(_node_results(server, node_cases))
    print("  key check: the Node loader done", file=sys.stderr, flush=True)
    return sorted(results, key=lambda result: (METHODS.index(result.method), result.keys))


def _chunks(count: int) -> list[str]:
    return [fake_key_list(min(CHUNK_KEYS, count - start), start=start) for start in range(0, count, CHUNK_KEYS)]


def _node_results(server: LocalAws, cases: list[dict[str, object]]) -> list[KeyCheckResult]:
    """The Node loader's rows, measured by its own script on the same key sets and secrets."""
    script = built() / "bench" / "keycheck.js"
    env = {**server.applied_to(os.environ), "AWS_REGION": REGION}
    completed = subprocess.run(  # noqa: S603 (argv built here)
        [node_binary(), str(script)],
        input=json.dumps({"cases": cases}),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the Node key check failed:\n{completed.stderr}")
    method_of = {"KeySet.authenticate": NODE_KEYSET, "ApiKeyLoader.authenticate": NODE_LOADER}
    return [
        KeyCheckResult(method_of[row["method"]], int(row["keys"]), float(row["nsPerOp"]))
        for row in json.loads(completed.stdout)
    ]


def _time_keyset(keys: KeySet, presented: str) -> float:
    _check(keys.authenticate(presented), KEYSET)
    return ns_per_op(lambda: keys.authenticate(presented))


def _secret_backed(client: SecretsManagerClient, arn: str, count: int, presented: str) -> list[KeyCheckResult]:
    header = f"Bearer {presented}"
    loader = ApiKeyLoader(LoaderSettings(secret_arn=arn, region=REGION), client=client)
    loader.load()  # one GetSecretValue; the refresh is not due for minutes, far beyond the timing

    cache = SecretCache(SecretCacheConfig(), client=client)  # defaults: refresh every 30-60 min

    def caching_get() -> str:
        value: str = cache.get_secret_string(arn)
        return value

    # get_secret() uses the provider registered under "secrets", creating one from the
    # environment on first use; registering one on our client points it at the local endpoint.
    DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=client)

    def powertools_get() -> str:
        return get_secret(arn)  # default max_age: 300 s

    def uncached_get() -> str:
        return client.get_secret_value(SecretId=arn)["SecretString"]

    def full(fetch: Callable[[], str]) -> Callable[[], object]:
        return lambda: parse_secret_string(fetch()).authenticate(presented)

    try:
        timed: list[tuple[str, Callable[[], object], int | None]] = [
            (LOADER, lambda: loader.authenticate(header), None),
            (CACHING_GET, caching_get, None),
            (CACHING_FULL, full(caching_get), None),
            (POWERTOOLS_GET, powertools_get, None),
            (POWERTOOLS_FULL, full(powertools_get), None),
            (UNCACHED_FULL, full(uncached_get), UNCACHED_CALLS),
        ]
        results = []
        for method, operation, calls in timed:
            _check(operation(), method)  # also the caches' first (uncached) read, outside the timing
            results.append(KeyCheckResult(method, count, ns_per_op(operation, calls=calls)))
        return results
    finally:
        DEFAULT_PROVIDERS.pop("secrets", None)
