"""The key list format: each malformed input has one defined outcome, and no error or repr
ever contains key material."""

from __future__ import annotations

import json

import pytest

from apikeys.keyset import MAX_SECRET_BYTES, ApiKeyParseError, Client, check_key, parse_api_keys, parse_secret_string

KEY_A = "fake_test_key_aaaaaaaaaaaaaaaa"
KEY_B = "fake_test_key_bbbbbbbbbbbbbbbb"
KEY_C = "fake_test_key_cccccccccccccccc"


def test_parses_entries_and_authenticates_by_key() -> None:
    keys = parse_api_keys(f"{KEY_A}:client-a:Client A,{KEY_B}:client-b:Client B: Mobile")
    assert len(keys) == 2
    assert keys.authenticate(KEY_A) == Client("client-a", "Client A")
    assert keys.authenticate(KEY_B) == Client("client-b", "Client B: Mobile")  # a name may hold colons
    assert keys.authenticate(KEY_C) is None
    assert keys.authenticate("") is None
    assert keys.authenticate(KEY_A[:-1]) is None
    assert [client.client_id for client in keys] == ["client-a", "client-b"]


def test_whitespace_around_entries_and_fields_is_ignored() -> None:
    keys = parse_api_keys(f" {KEY_A} : client-a : Client A ,\n{KEY_B}:client-b:Client B\n")
    assert keys.authenticate(KEY_A) == Client("client-a", "Client A")
    assert keys.authenticate(KEY_B) == Client("client-b", "Client B")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("", "the key list is empty", id="empty"),
        pytest.param("   ", "the key list is empty", id="blank"),
        pytest.param(f"{KEY_A}:a:A,,{KEY_B}:b:B", "entry 2 is empty", id="empty-entry"),
        pytest.param(f"{KEY_A}:a:A,", "entry 2 is empty", id="trailing-comma"),
        pytest.param(f"{KEY_A}:a:A,{KEY_B}", 'entry 2, field "clientId": missing', id="missing-client-id"),
        pytest.param(f"{KEY_A}:a", 'entry 1, field "name": missing', id="missing-name"),
        pytest.param(f"{KEY_A}::A", 'entry 1, field "clientId": empty', id="empty-client-id"),
        pytest.param(f"{KEY_A}:a: ", 'entry 1, field "name": empty', id="empty-name"),
        pytest.param("fake test key with spaces:a:A", 'entry 1, field "key"', id="space-in-key"),
        pytest.param(f"{KEY_A}:a b:A", 'entry 1, field "clientId": letters', id="space-in-client-id"),
        pytest.param(
            f"{KEY_A}:a:A,{KEY_B}:b:B,{KEY_A}:c:C", 'entry 3, field "key": the same key as entry 1', id="dup-key"
        ),
        pytest.param(
            f"{KEY_A}:a:A,{KEY_B}:a:B", 'entry 2, field "clientId": a is already used by entry 1', id="dup-client"
        ),
    ],
)
def test_malformed_key_lists_name_the_entry_and_field_never_the_key(value: str, message: str) -> None:
    with pytest.raises(ApiKeyParseError) as raised:
        parse_api_keys(value)
    assert message in str(raised.value)
    for key in (KEY_A, KEY_B, "short-key", "fake test key with spaces"):
        assert key not in str(raised.value)


def test_a_stored_key_shorter_than_a_new_key_may_be_is_accepted_and_its_client_named() -> None:
    # A key set adopted from an older setup (the guide's own example key has 14 characters).
    keys = parse_api_keys(f"sk_test_FAKE14:client-test:Test,{KEY_A}:client-a:A")
    assert keys.authenticate("sk_test_FAKE14") == Client("client-test", "Test")
    assert keys.short_key_clients == (Client("client-test", "Test"),)
    assert parse_api_keys(f"{KEY_A}:client-a:A").short_key_clients == ()
    with pytest.raises(ApiKeyParseError, match='entry 1, field "key": must be at least 16'):
        check_key("sk_test_FAKE14", "entry 1")


def test_over_the_secrets_manager_limit_is_refused() -> None:
    entries = ",".join(f"fake_test_key_{i:016d}:client-{i}:Client {i}" for i in range(2000))
    assert len(entries) > MAX_SECRET_BYTES
    with pytest.raises(ApiKeyParseError, match="65536-byte limit"):
        parse_api_keys(entries)
    with pytest.raises(ApiKeyParseError, match="65536-byte limit"):
        parse_secret_string(json.dumps({"apiKeys": entries}))


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        pytest.param(f"{KEY_A}:a:A", "not JSON", id="not-json"),
        pytest.param(json.dumps([f"{KEY_A}:a:A"]), 'string field "apiKeys"', id="json-list"),
        pytest.param(json.dumps({"keys": f"{KEY_A}:a:A"}), 'string field "apiKeys"', id="wrong-field"),
        pytest.param(json.dumps({"apiKeys": [KEY_A]}), 'string field "apiKeys"', id="apikeys-not-string"),
    ],
)
def test_malformed_secret_values(secret: str, message: str) -> None:
    with pytest.raises(ApiKeyParseError, match=message) as raised:
        parse_secret_string(secret)
    assert KEY_A not in str(raised.value)


def test_secret_string_round_trip() -> None:
    keys = parse_secret_string(json.dumps({"apiKeys": f"{KEY_A}:a:A,{KEY_B}:b:B"}))
    assert keys == parse_api_keys(f"{KEY_B}:b:B,{KEY_A}:a:A")
    assert keys.authenticate(KEY_B) == Client("b", "B")


def test_no_key_material_in_repr_or_state() -> None:
    keys = parse_api_keys(f"{KEY_A}:a:A")
    assert repr(keys) == "KeySet(1 keys)"
    assert KEY_A not in repr(keys) + str(keys) + repr(keys.clients)


def test_merged_accepts_keys_of_both_sets() -> None:
    current = parse_api_keys(f"{KEY_A}:a:A")
    previous = parse_api_keys(f"{KEY_B}:a:A")
    both = current.merged(previous)
    assert both.authenticate(KEY_A) == Client("a", "A")
    assert both.authenticate(KEY_B) == Client("a", "A")
    assert len(both) == 2
