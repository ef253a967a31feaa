"""Parse `key:clientId:Name,...` into a key set and check presented keys against it.

Keys are never kept as text: the set holds 256-bit BLAKE2s digests. A lookup hashes the
presented key once, finds the candidate by its whole digest (one dict access: Python's
randomized hash of a digest the caller cannot choose tells an attacker nothing) and confirms
it with `hmac.compare_digest` against the stored digest, which takes the same time however
much of the digest matches. BLAKE2s rather than SHA-256 because a key check is one short
hash, and for a key this short most of a `hashlib.sha256` call is OpenSSL 3 setting up a
digest context; CPython's built-in BLAKE2s has no such setup (BENCHMARKS.md). Parse errors
name the entry and the field, never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_SECRET_BYTES",
    "MIN_KEY_LENGTH",
    "ApiKeyParseError",
    "Client",
    "KeySet",
    "check_client_id",
    "check_key",
    "check_name",
    "fingerprint",
    "format_api_keys",
    "new_key",
    "parse_api_keys",
    "parse_entries",
    "parse_secret_string",
    "secret_document",
    "short_key_clients",
]

MAX_SECRET_BYTES = 65_536  # Secrets Manager's limit for a secret value
MIN_KEY_LENGTH = 16
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._~+/=-]+$")
_CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_FIELDS = ("key", "clientId", "name")


class ApiKeyParseError(ValueError):
    """The key list is malformed. The message says where (entry, field), never the key."""


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str


def _digest(key: str) -> bytes:
    return hashlib.blake2s(key.encode()).digest()


def fingerprint(key: str) -> str:
    """A short SHA-256 prefix that tells keys apart in listings and audit lines; it cannot be
    used as the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


class KeySet:
    """An immutable set of API keys, each mapped to its client."""

    __slots__ = ("_clients", "_entries", "short_key_clients")

    def __init__(
        self, entries: Iterable[tuple[bytes, Client]] = (), *, short_key_clients: tuple[Client, ...] = ()
    ) -> None:
        self._clients: dict[bytes, Client] = dict(entries)
        self.short_key_clients = short_key_clients
        """Clients whose key is shorter than a new key may be (MIN_KEY_LENGTH): accepted, so a
        set adopted from an older setup keeps working, and named in a warning until rotated."""
        # The stored digest travels with its client, for the constant-time confirmation.
        self._entries: dict[bytes, tuple[bytes, Client]] = {
            digest: (digest, client) for digest, client in self._clients.items()
        }

    def authenticate(self, presented: str) -> Client | None:
        """The client a presented key belongs to, or None."""
        digest = hashlib.blake2s(presented.encode()).digest()  # _digest(), inlined: the hot path
        found = self._entries.get(digest)
        if found is not None and hmac.compare_digest(found[0], digest):
            return found[1]
        return None

    def merged(self, other: KeySet) -> KeySet:
        """This set plus `other`'s keys (this set wins where both name the same key)."""
        return KeySet({**other._clients, **self._clients}.items())

    def of_clients_in(self, other: KeySet) -> KeySet:
        """The keys of the clients that `other` still has: a previous version's keys, minus
        those of the clients removed since (revoked, not rotated)."""
        kept = {client.client_id for client in other._clients.values()}
        return KeySet((digest, client) for digest, client in self._clients.items() if client.client_id in kept)

    def diff(self, old: KeySet) -> tuple[tuple[Client, ...], tuple[Client, ...], int]:
        """(clients with a key only in self, clients with a key only in old, keys in both)."""
        added = tuple(client for digest, client in self._clients.items() if digest not in old._clients)
        removed = tuple(client for digest, client in old._clients.items() if digest not in self._clients)
        return added, removed, len(self._clients.keys() & old._clients.keys())

    @property
    def clients(self) -> tuple[Client, ...]:
        return tuple(sorted(self._clients.values(), key=lambda client: client.client_id))

    def __len__(self) -> int:
        return len(self._clients)

    def __iter__(self) -> Iterator[Client]:
        return iter(self.clients)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeySet) and self._clients == other._clients

    def __hash__(self) -> int:
        return hash(frozenset(self._clients))

    def __repr__(self) -> str:
        return f"KeySet({len(self)} keys)"


def new_key() -> str:
    """A new API key: 43 random URL-safe characters (256 bits from `secrets`)."""
    return secrets.token_urlsafe(32)


def format_api_keys(entries: Iterable[tuple[str, Client]]) -> str:
    """The inverse of `parse_api_keys`: `key:clientId:Name,...`."""
    return ",".join(f"{key}:{client.client_id}:{client.name}" for key, client in entries)


def parse_api_keys(value: str) -> KeySet:
    """Parse `key:clientId:Name,key:clientId:Name`. Whitespace around entries and fields is
    ignored; a name may contain spaces and colons; keys and client ids must be unique. A key
    shorter than MIN_KEY_LENGTH is accepted and its client listed in `short_key_clients`."""
    entries = parse_entries(value)
    return KeySet(((_digest(key), client) for key, client in entries), short_key_clients=short_key_clients(entries))


def short_key_clients(entries: Iterable[tuple[str, Client]]) -> tuple[Client, ...]:
    """The clients whose key is shorter than MIN_KEY_LENGTH, which no new key may be."""
    return tuple(client for key, client in entries if len(key) < MIN_KEY_LENGTH)


def parse_entries(value: str) -> list[tuple[str, Client]]:
    """`parse_api_keys`, keeping each key and the entries' order: for the operator's tools,
    which write the list back."""
    if len(value.encode("utf-8")) > MAX_SECRET_BYTES:
        raise ApiKeyParseError(f"the key list is over Secrets Manager's {MAX_SECRET_BYTES}-byte limit")
    if not value.strip():
        raise ApiKeyParseError("the key list is empty")
    entries: list[tuple[str, Client]] = []
    entry_of_key: dict[bytes, int] = {}
    entry_of_client: dict[str, int] = {}
    for number, entry in enumerate(value.split(","), start=1):
        if not entry.strip():
            raise ApiKeyParseError(f"entry {number} is empty")
        fields = [field.strip() for field in entry.split(":", 2)]
        if len(fields) < len(_FIELDS):
            raise ApiKeyParseError(f'entry {number}, field "{_FIELDS[len(fields)]}": missing')
        key, client_id, name = fields
        for field_name, field in zip(_FIELDS, fields, strict=True):
            if not field:
                raise ApiKeyParseError(f'entry {number}, field "{field_name}": empty')
        _check_key_characters(key, f"entry {number}")
        check_client_id(client_id, f"entry {number}")
        digest = _digest(key)
        if digest in entry_of_key:
            raise ApiKeyParseError(f'entry {number}, field "key": the same key as entry {entry_of_key[digest]}')
        if client_id in entry_of_client:
            raise ApiKeyParseError(
                f'entry {number}, field "clientId": {client_id} is already used by entry {entry_of_client[client_id]}'
            )
        entry_of_key[digest] = number
        entry_of_client[client_id] = number
        entries.append((key, Client(client_id=client_id, name=name)))
    return entries


def check_key(key: str, where: str) -> None:
    """The rule for a new key: at least MIN_KEY_LENGTH characters of the key alphabet."""
    if len(key) < MIN_KEY_LENGTH or not _KEY_PATTERN.match(key):
        raise ApiKeyParseError(
            f'{where}, field "key": must be at least {MIN_KEY_LENGTH} characters of '
            "letters, digits and ._~+/=- (no spaces)"
        )


def _check_key_characters(key: str, where: str) -> None:
    """The rule for a stored key: the key alphabet. Shorter keys than a new one may be are
    read (they predate the rule) and reported by `short_key_clients`."""
    if not _KEY_PATTERN.match(key):
        raise ApiKeyParseError(f'{where}, field "key": letters, digits and ._~+/=- only (no spaces)')


def check_client_id(client_id: str, where: str) -> None:
    if not _CLIENT_ID_PATTERN.match(client_id):
        raise ApiKeyParseError(f'{where}, field "clientId": letters, digits and ._- only, at most 128 characters')


def check_name(name: str, where: str) -> None:
    """A name is free text up to the entry's end: no comma (it separates entries), no edge spaces."""
    if not name.strip() or "," in name or name != name.strip():
        raise ApiKeyParseError(f'{where}, field "name": must be non-empty, without commas or leading/trailing spaces')


def parse_secret_string(secret_string: str) -> KeySet:
    """Parse the secret's value: `{"apiKeys": "key:clientId:Name,..."}`."""
    return parse_api_keys(secret_document(secret_string)["apiKeys"])


def secret_document(secret_string: str) -> dict[str, Any]:
    """The secret's JSON object, checked to hold a string `apiKeys` (other fields are kept by
    whoever writes it back)."""
    if len(secret_string.encode("utf-8")) > MAX_SECRET_BYTES:
        raise ApiKeyParseError(f"the secret is over Secrets Manager's {MAX_SECRET_BYTES}-byte limit")
    try:
        document = json.loads(secret_string)
    except json.JSONDecodeError as error:
        raise ApiKeyParseError(f"the secret is not JSON (line {error.lineno}, column {error.colno})") from None
    if not isinstance(document, dict) or not isinstance(document.get("apiKeys"), str):
        raise ApiKeyParseError('the secret must be a JSON object with a string field "apiKeys"')
    return document
