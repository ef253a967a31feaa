"""The loaders' shared contract, written as data from the Python runtime.

    python -m scripts.contract            # rewrite contract/*.json and clients/node/src/contract.ts
    python -m scripts.contract --check    # exit 1 if any of them is out of date (make lint)

Every loader (the Python one in apikeys/, the Node one in clients/node/) must behave the same
way. What "the same" means is written here once, from the Python code, and both test suites
read it:

- `contract/events.json`: the log lines' event and reason names, which service error codes
  each reason names, and the alarms' metric filter patterns (`apikeys/events.py`);
- `contract/key-format.json`: the key format's test vectors, valid lists with the clients they
  parse into, invalid ones with the entry, field and message of the error
  (`apikeys/keyset.py` parses each input to write the expected result);
- `contract/grace.json`: rotation and revocation scenarios (a secret's versions over time, a
  loader started at some point, keys presented), each check's expected client written by
  running `apikeys.loader.ApiKeyLoader` through the scenario;
- `clients/node/src/contract.ts`: the names, error codes and limits, as TypeScript constants.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from apikeys.events import (
    ALARMED_EVENTS,
    ERROR_CODE_PREFIXES,
    ERROR_CODES,
    METRIC_NAMESPACE,
    ROTATION_FAILED,
    AlarmedEvent,
    Event,
    FailureReason,
)
from apikeys.keyset import (
    MAX_SECRET_BYTES,
    MIN_KEY_LENGTH,
    ApiKeyParseError,
    parse_entries,
    parse_secret_string,
    short_key_clients,
)
from apikeys.loader import ApiKeyLoader, LoaderSettings

__all__ = ["CONTRACT_FILES", "main", "render"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXIT_OUT_OF_DATE = 1
GENERATED_BY = "python -m scripts.contract (make contract)"

# Obviously fake keys, at least MIN_KEY_LENGTH long.
K1, K2, K3, K4 = (f"fake-contract-key-{n}{n}{n}{n}" for n in "1234")

VALID_KEY_LISTS = [
    f"{K1}:client-1:First Client",
    f"{K1}:billing:Billing Service,{K2}:search:Search: Indexer, {K3}:web:Web",  # a name may hold colons
    f"  {K1} : c1 : Padded Name  ,{K2}:c.2_-x:Two",  # whitespace around fields is ignored
    f"abcdefghijklmnop:c1:Exactly sixteen,{K2}._~+/=-:c2:Every allowed character",
    f"{K1}:c1:N",
    # Keys shorter than a new key may be, as an adopted set holds them: read, their clients listed.
    f"short-key:c1:Name,{K2}:c2:Two,s:c3:Three",
]
INVALID_KEY_LISTS = [
    "",
    "   ",
    f"{K1}:c1:One,,{K2}:c2:Two",
    f"{K1}:c1:One,",
    f"{K1}",
    f"{K1}:c1",
    f"{K1}::Name",
    f"{K1}:c1: ",
    ":c1:Name",
    f"{K1[:-2]} x:c1:Name",
    f"{K1}:c 1:Name",
    f"{K1}:{'c' * 129}:Name",
    f"{K1}:c1:One,{K1}:c2:Two",
    f"{K1}:c1:One,{K2}:c1:Two",
    f"{K1}:c1:One,{K2}:c2:Two,{K3}:c3:Three,{K4}:c1:Four",
    # (over MAX_SECRET_BYTES: each suite builds that list itself from the limit)
]
VALID_SECRETS = [
    json.dumps({"apiKeys": f"{K1}:c1:One"}),
    json.dumps({"apiKeys": f"{K1}:c1:One,{K2}:c2:Two", "owner": "team-a"}),  # other fields are kept
]
INVALID_SECRETS = [
    "not json",
    json.dumps(["apiKeys"]),
    json.dumps({"apiKeys": 1}),
    json.dumps({"keys": f"{K1}:c1:One"}),
    json.dumps({"apiKeys": "no-fields"}),
    json.dumps({"apiKeys": ""}),
]


def _entry(key: str, client: str) -> str:
    return f"{key}:{client}:Name {client}"


def _value(*entries: tuple[str, str]) -> str:
    return ",".join(_entry(key, client) for key, client in entries)


# A step is one of: {"write": <apiKeys>} (a new version becomes AWSCURRENT now, the one it
# replaces AWSPREVIOUS), {"start": true} (the loader reads the secret now), {"wait": <seconds>}
# (time passes for the secret and the loader), {"check": <key>} (a request presents the key; the
# generator adds "client": the client id the loader accepts it for, or null).
GRACE_SCENARIOS: list[dict[str, Any]] = [
    {
        "name": "a rotated key stays valid for the grace period after the loader sees the change",
        "steps": [
            {"write": _value((K1, "c1"))},
            {"start": True},
            {"wait": 100},
            {"check": K1},
            {"write": _value((K2, "c1"))},
            {"wait": 201},
            {"check": K2},  # the refresh, due: DescribeSecret, then the new value
            {"check": K1},
            {"wait": 3599},
            {"check": K1},
            {"wait": 2},
            {"check": K1},
            {"check": K2},
        ],
    },
    {
        "name": "within the refresh interval a new version is not seen yet",
        "steps": [
            {"write": _value((K1, "c1"))},
            {"start": True},
            {"write": _value((K2, "c1"))},
            {"wait": 299},
            {"check": K1},
            {"check": K2},
            {"wait": 2},
            {"check": K2},
        ],
    },
    {
        "name": "grace is for rotation, not for removal",
        "steps": [
            {"write": _value((K1, "c1"), (K2, "c2"))},
            {"start": True},
            {"write": _value((K3, "c1"), (K2, "c2"))},
            {"wait": 301},
            {"check": K3},
            {"check": K1},
            {"write": _value((K3, "c1"))},
            {"wait": 301},
            {"check": K2},
            {"check": K3},
            {"check": K1},
            {"wait": 3298},
            {"check": K1},
            {"wait": 2},
            {"check": K1},
        ],
    },
    {
        "name": "a client revoked while its old key is in grace loses both keys",
        "steps": [
            {"write": _value((K1, "c1"), (K2, "c2"))},
            {"start": True},
            {"write": _value((K1, "c1"), (K3, "c2"))},
            {"wait": 301},
            {"check": K2},
            {"write": _value((K1, "c1"))},
            {"wait": 301},
            {"check": K2},
            {"check": K3},
            {"check": K1},
        ],
    },
    {
        "name": "a process started during the grace period accepts AWSPREVIOUS until the same moment",
        "steps": [
            {"write": _value((K1, "c1"), (K2, "c2"))},
            {"wait": 50},
            {"write": _value((K3, "c1"), (K2, "c2"))},
            {"wait": 600},
            {"start": True},
            {"check": K1},
            {"check": K3},
            {"wait": 2990},
            {"check": K1},
            {"wait": 20},
            {"check": K1},
            {"check": K3},
        ],
    },
    {
        "name": "a process started during the grace period accepts no removed client",
        "steps": [
            {"write": _value((K1, "c1"), (K2, "c2"))},
            {"write": _value((K3, "c1"))},
            {"start": True},
            {"check": K1},
            {"check": K2},
            {"check": K3},
        ],
    },
    {
        "name": "a process started after the grace period accepts the current keys only",
        "steps": [
            {"write": _value((K1, "c1"))},
            {"write": _value((K2, "c1"))},
            {"wait": 3700},
            {"start": True},
            {"check": K1},
            {"check": K2},
        ],
    },
]
GRACE_SECONDS = 3600
REFRESH_SECONDS = 300


# ---------------------------------------------------------------- what the Python code says


def _error_location(message: str) -> dict[str, Any]:
    """The entry and field an error names (null for errors about the whole list)."""
    entry = re.match(r"entry (\d+)", message)
    field_name = re.search(r'field "(\w+)"', message)
    return {"entry": int(entry[1]) if entry else None, "field": field_name[1] if field_name else None}


def _key_format() -> dict[str, Any]:
    valid = [
        {
            "apiKeys": value,
            "entries": [
                {"key": key, "clientId": client.client_id, "name": client.name} for key, client in parse_entries(value)
            ],
            "shortKeyClients": [client.client_id for client in short_key_clients(parse_entries(value))],
        }
        for value in VALID_KEY_LISTS
    ]
    invalid = []
    for value in INVALID_KEY_LISTS:
        try:
            parse_entries(value)
        except ApiKeyParseError as error:
            invalid.append({"apiKeys": value, **_error_location(str(error)), "message": str(error)})
        else:
            raise AssertionError(f"an invalid key list parsed: {value[:40]!r}")
    secrets = []
    for value in [*VALID_SECRETS, *INVALID_SECRETS]:
        try:
            clients = [{"clientId": c.client_id, "name": c.name} for c in parse_secret_string(value).clients]
        except ApiKeyParseError:
            secrets.append({"secretString": value, "valid": False})
        else:
            secrets.append({"secretString": value, "valid": True, "clients": clients})
    return {
        "minKeyLength": MIN_KEY_LENGTH,
        "maxSecretBytes": MAX_SECRET_BYTES,
        "valid": valid,
        "invalid": invalid,
        "secretStrings": secrets,
    }


def _alarm(event: AlarmedEvent) -> dict[str, Any]:
    return {
        "name": event.name,
        "metricName": event.metric_name,
        "pattern": event.pattern,
        "textPatterns": list(event.text_patterns),
        "description": event.description,
    }


def _events() -> dict[str, Any]:
    return {
        "events": {member.name: member.value for member in Event},
        "reasons": {member.name: member.value for member in FailureReason},
        "errorCodes": {str(reason): sorted(codes) for reason, codes in ERROR_CODES.items()},
        "errorCodePrefixes": {str(reason): list(prefixes) for reason, prefixes in ERROR_CODE_PREFIXES.items()},
        "metricNamespace": METRIC_NAMESPACE,
        "alarms": [_alarm(event) for event in ALARMED_EVENTS],
        "rotationAlarm": _alarm(ROTATION_FAILED),
    }


@dataclass
class _Version:
    id: str
    value: str
    written_at: float
    stages: list[str] = field(default_factory=list)


class _ScenarioSecret:
    """The calls the loader makes, answered from a scenario's versions; time is the scenario's."""

    ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:credlink/contract-AbCdEf"

    def __init__(self) -> None:
        self.now = 1000.0
        self.versions: list[_Version] = []

    def write(self, value: str) -> None:
        for version in self.versions:
            version.stages = [stage for stage in version.stages if stage not in ("AWSCURRENT", "AWSPREVIOUS")] + (
                ["AWSPREVIOUS"] if "AWSCURRENT" in version.stages else []
            )
        self.versions.append(_Version(str(uuid.uuid4()), value, self.now, ["AWSCURRENT"]))

    def get_secret_value(self, *, SecretId: str, VersionStage: str) -> dict[str, Any]:
        version = next((v for v in self.versions if VersionStage in v.stages), None)
        if version is None:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "none"}}, "GetSecretValue")
        # The loader measures a version's age on the wall clock.
        created = datetime.fromtimestamp(time.time() - (self.now - version.written_at), tz=UTC)
        return {"SecretString": json.dumps({"apiKeys": version.value}), "VersionId": version.id, "CreatedDate": created}

    def describe_secret(self, *, SecretId: str) -> dict[str, Any]:
        return {"VersionIdsToStages": {v.id: list(v.stages) for v in self.versions if v.stages}}


def run_grace_scenario(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scenario's steps, each check given the client id the Python loader accepts the key for."""
    secret = _ScenarioSecret()
    settings = LoaderSettings(
        secret_arn=secret.ARN,
        region="eu-west-1",
        refresh_interval=timedelta(seconds=REFRESH_SECONDS),
        refresh_jitter=0.0,
        previous_grace=timedelta(seconds=GRACE_SECONDS),
    )
    loader: ApiKeyLoader | None = None
    result: list[dict[str, Any]] = []
    for step in steps:
        if "write" in step:
            secret.write(step["write"])
        elif "start" in step:
            loader = ApiKeyLoader(settings, client=secret, clock=lambda: secret.now)  # type: ignore[arg-type]
            loader.load()
        elif "wait" in step:
            secret.now += step["wait"]
        elif "check" in step:
            if loader is None:
                raise ValueError("a scenario checks a key before the loader starts")
            client = loader.authenticate(f"Bearer {step['check']}")
            step = {**step, "client": client.client_id if client else None}
        result.append(step)
    return result


def _grace() -> dict[str, Any]:
    return {
        "graceSeconds": GRACE_SECONDS,
        "refreshSeconds": REFRESH_SECONDS,
        "refreshJitter": 0,
        "scenarios": [
            {"name": scenario["name"], "steps": run_grace_scenario(scenario["steps"])} for scenario in GRACE_SCENARIOS
        ],
    }


def _members(lists: dict[str, list[str]]) -> list[str]:
    """`name: [...]` lines of a TypeScript object, as the package's formatter (biome) writes them:
    one line when it fits in 120 characters, else one string a line."""
    lines = []
    for name, values in lists.items():
        one_line = f"  {name}: {json.dumps(values)},"
        lines += [one_line] if len(one_line) <= 120 else [f"  {name}: [", *(f'    "{v}",' for v in values), "  ],"]
    return lines


def _typescript() -> str:
    def constants(name: str, members: dict[str, str], doc: str) -> list[str]:
        return [
            f"/** {doc} */",
            f"export const {name} = {{",
            *(f'  {key}: "{value}",' for key, value in members.items()),
            "} as const;",
            f"export type {name} = (typeof {name})[keyof typeof {name}];",
            "",
        ]

    lines = [
        f"// Generated by {GENERATED_BY} from apikeys/events.py and apikeys/keyset.py: do not edit.",
        "",
        *constants(
            "Event",
            {member.name: member.value for member in Event},
            "Values of the `event` field of the log lines, which the alarms' metric filters match.",
        ),
        *constants(
            "FailureReason",
            {member.name: member.value for member in FailureReason},
            "Values of the `reason` field: the class of a failure, never its detail.",
        ),
        "/** The service's error codes, by the failure class they are named as. */",
        "export const ERROR_CODES: Partial<Record<FailureReason, readonly string[]>> = {",
        *_members({str(reason): sorted(codes) for reason, codes in ERROR_CODES.items()}),
        "};",
        "/** Error code prefixes, by the failure class they are named as. */",
        "export const ERROR_CODE_PREFIXES: Partial<Record<FailureReason, readonly string[]>> = {",
        *_members({str(reason): list(prefixes) for reason, prefixes in ERROR_CODE_PREFIXES.items()}),
        "};",
        "",
        "/** Secrets Manager's limit for a secret value. */",
        f"export const MAX_SECRET_BYTES = {MAX_SECRET_BYTES};",
        "/** The shortest a new key may be; shorter stored keys are read and their clients named. */",
        f"export const MIN_KEY_LENGTH = {MIN_KEY_LENGTH};",
        "",
    ]
    return "\n".join(lines)


def _json(document: dict[str, Any]) -> str:
    return json.dumps({"generatedBy": GENERATED_BY, **document}, indent=2, ensure_ascii=False) + "\n"


CONTRACT_FILES = (
    "contract/events.json",
    "contract/key-format.json",
    "contract/grace.json",
    "clients/node/src/contract.ts",
)


def render() -> dict[str, str]:
    """Each contract file's content, by its path from the project root."""
    return dict(
        zip(
            CONTRACT_FILES,
            (_json(_events()), _json(_key_format()), _json(_grace()), _typescript()),
            strict=True,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = argparse.ArgumentParser(prog="python -m scripts.contract", description=__doc__.splitlines()[0])
    options.add_argument("--check", action="store_true", help="exit 1 if a file is out of date; write nothing")
    args = options.parse_args(argv)
    stale = []
    for name, content in render().items():
        path = PROJECT_ROOT / name
        if path.exists() and path.read_text(encoding="utf-8") == content:
            continue
        stale.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run: make contract", file=sys.stderr)
        return EXIT_OUT_OF_DATE
    for name in stale:
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
