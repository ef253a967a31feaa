"""The loaders' shared contract (contract/, written by `python -m scripts.contract`) is up to
date with the Python runtime, and the Python loader meets it. The Node loader's suite reads the
same files (clients/node/test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apikeys.events import ALARMED_EVENTS
from apikeys.keyset import MAX_SECRET_BYTES, ApiKeyParseError, parse_api_keys, parse_entries
from scripts import contract

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def read(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((PROJECT_ROOT / "contract" / name).read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize("name", contract.CONTRACT_FILES)
def test_the_checked_in_contract_is_what_the_python_code_says(name: str) -> None:
    assert (PROJECT_ROOT / name).read_text(encoding="utf-8") == contract.render()[name], (
        f"{name} is out of date: run make contract and commit the result"
    )


def test_check_mode_reports_a_stale_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(contract, "PROJECT_ROOT", tmp_path)
    assert contract.main(["--check"]) == contract.EXIT_OUT_OF_DATE
    assert not (tmp_path / "contract").exists()
    assert contract.main([]) == 0
    assert contract.main(["--check"]) == 0


def test_the_vectors_cover_every_field_and_both_kinds_of_list() -> None:
    vectors = read("key-format.json")
    assert {vector["field"] for vector in vectors["invalid"]} == {None, "key", "clientId", "name"}
    assert any(len(vector["entries"]) > 1 for vector in vectors["valid"])
    assert {vector["valid"] for vector in vectors["secretStrings"]} == {True, False}


@pytest.mark.parametrize("vector", read("key-format.json")["valid"], ids=lambda vector: vector["apiKeys"][:40])
def test_the_python_parser_reads_each_valid_vector(vector: dict[str, Any]) -> None:
    parsed = [{"key": key, "clientId": c.client_id, "name": c.name} for key, c in parse_entries(vector["apiKeys"])]
    assert parsed == vector["entries"]
    short = [client.client_id for client in parse_api_keys(vector["apiKeys"]).short_key_clients]
    assert short == vector["shortKeyClients"]


@pytest.mark.parametrize("vector", read("key-format.json")["invalid"], ids=lambda vector: vector["apiKeys"][:40])
def test_the_python_parser_names_the_entry_and_field_of_each_invalid_vector(vector: dict[str, Any]) -> None:
    with pytest.raises(ApiKeyParseError) as raised:
        parse_entries(vector["apiKeys"])
    assert str(raised.value) == vector["message"]
    if vector["entry"] is not None:
        assert str(raised.value).startswith(f"entry {vector['entry']}")
    if vector["field"] is not None:
        assert f'field "{vector["field"]}"' in str(raised.value)


def test_a_list_over_the_size_limit_is_refused() -> None:
    with pytest.raises(ApiKeyParseError, match="over Secrets Manager's 65536-byte limit"):
        parse_entries("k" * (read("key-format.json")["maxSecretBytes"] + 1))
    assert read("key-format.json")["maxSecretBytes"] == MAX_SECRET_BYTES


def test_the_alarm_patterns_are_the_stacks() -> None:
    alarms = read("events.json")["alarms"]
    assert [(a["name"], a["pattern"], tuple(a["textPatterns"])) for a in alarms] == [
        (event.name, event.pattern, event.text_patterns) for event in ALARMED_EVENTS
    ]


def test_the_grace_scenarios_check_both_outcomes() -> None:
    for scenario in read("grace.json")["scenarios"]:
        outcomes = {step["client"] is None for step in scenario["steps"] if "check" in step}
        assert outcomes == {True, False}, scenario["name"]
