/**
 * Parse `key:clientId:Name,...` into a key set and check presented keys against it.
 *
 * Keys are never kept as text: the set holds SHA-256 digests. A lookup hashes the presented
 * key once, finds the candidate by its whole digest (a Map keyed by the hex digest) and confirms it with
 * `timingSafeEqual`, which takes the same time however much of the digest matches. Parse
 * errors name the entry and the field, never the key. The format and its errors are those of
 * the Python loader (contract/key-format.json holds the vectors both suites run).
 */

import { hash, timingSafeEqual } from "node:crypto";
import { MAX_SECRET_BYTES, MIN_KEY_LENGTH } from "./contract.js";

export interface Client {
  readonly clientId: string;
  readonly name: string;
}

/** The key list is malformed. The message says where (entry, field), never the key. */
export class ApiKeyParseError extends Error {
  override readonly name = "ApiKeyParseError";
}

const KEY_PATTERN = /^[A-Za-z0-9._~+/=-]+$/;
const CLIENT_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
const FIELDS = ["key", "clientId", "name"] as const;

function digest(key: string): Buffer {
  return Buffer.from(hexDigest(key), "hex");
}

function hexDigest(key: string): string {
  return hash("sha256", key, "hex");
}

/** An immutable set of API keys, each mapped to its client. */
export class KeySet {
  // hex digest -> (digest, client): the stored digest travels with its client, for the
  // constant-time confirmation.
  readonly #entries: ReadonlyMap<string, readonly [Buffer, Client]>;
  /**
   * Clients whose key is shorter than a new key may be (MIN_KEY_LENGTH): accepted, so a set
   * adopted from an older setup keeps working, and named in a warning until rotated.
   */
  readonly shortKeyClients: readonly Client[];

  constructor(entries: Iterable<readonly [Buffer, Client]> = [], shortKeyClients: readonly Client[] = []) {
    this.#entries = new Map(
      [...entries].map(([stored, client]) => [stored.toString("hex"), [stored, client] as const]),
    );
    this.shortKeyClients = shortKeyClients;
  }

  /** The client a presented key belongs to, or null. */
  authenticate(presented: string): Client | null {
    const hex = hexDigest(presented);
    const found = this.#entries.get(hex);
    return found !== undefined && timingSafeEqual(found[0], Buffer.from(hex, "hex")) ? found[1] : null;
  }

  /** This set plus `other`'s keys (this set wins where both name the same key). */
  merged(other: KeySet): KeySet {
    return new KeySet(new Map([...other.#entries, ...this.#entries]).values());
  }

  /**
   * The keys of the clients that `other` still has: a previous version's keys, minus those of
   * the clients removed since (revoked, not rotated).
   */
  ofClientsIn(other: KeySet): KeySet {
    const kept = new Set([...other.#entries.values()].map(([, client]) => client.clientId));
    return new KeySet([...this.#entries.values()].filter(([, client]) => kept.has(client.clientId)));
  }

  get clients(): Client[] {
    return [...this.#entries.values()]
      .map(([, client]) => client)
      .sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
  }

  get size(): number {
    return this.#entries.size;
  }

  toString(): string {
    return `KeySet(${this.size} keys)`;
  }

  toJSON(): string {
    return this.toString();
  }
}

/** One parsed entry, key included: for tests and operator tools, never for logs. */
export interface Entry {
  readonly key: string;
  readonly client: Client;
}

/**
 * Parse `key:clientId:Name,key:clientId:Name`. Whitespace around entries and fields is ignored;
 * a name may contain spaces and colons; keys and client ids must be unique. A key shorter than
 * MIN_KEY_LENGTH is accepted and its client listed in `shortKeyClients`.
 */
export function parseApiKeys(value: string): KeySet {
  const entries = parseEntries(value);
  return new KeySet(
    entries.map(({ key, client }) => [digest(key), client] as const),
    shortKeyClients(entries),
  );
}

/** The clients whose key is shorter than MIN_KEY_LENGTH, which no new key may be. */
export function shortKeyClients(entries: readonly Entry[]): Client[] {
  return entries.filter(({ key }) => key.length < MIN_KEY_LENGTH).map(({ client }) => client);
}

/** `parseApiKeys`, keeping each key and the entries' order. */
export function parseEntries(value: string): Entry[] {
  if (Buffer.byteLength(value, "utf8") > MAX_SECRET_BYTES) {
    throw new ApiKeyParseError(`the key list is over Secrets Manager's ${MAX_SECRET_BYTES}-byte limit`);
  }
  if (value.trim() === "") {
    throw new ApiKeyParseError("the key list is empty");
  }
  const entries: Entry[] = [];
  const entryOfKey = new Map<string, number>();
  const entryOfClient = new Map<string, number>();
  value.split(",").forEach((entry, index) => {
    const number = index + 1;
    if (entry.trim() === "") {
      throw new ApiKeyParseError(`entry ${number} is empty`);
    }
    const fields = splitFields(entry).map((field) => field.trim());
    const missing = FIELDS[fields.length];
    if (missing !== undefined) {
      throw new ApiKeyParseError(`entry ${number}, field "${missing}": missing`);
    }
    const [key = "", clientId = "", name = ""] = fields;
    FIELDS.forEach((fieldName, position) => {
      if (fields[position] === "") {
        throw new ApiKeyParseError(`entry ${number}, field "${fieldName}": empty`);
      }
    });
    checkKeyCharacters(key, `entry ${number}`);
    checkClientId(clientId, `entry ${number}`);
    const hex = hexDigest(key);
    const sameKey = entryOfKey.get(hex);
    if (sameKey !== undefined) {
      throw new ApiKeyParseError(`entry ${number}, field "key": the same key as entry ${sameKey}`);
    }
    const sameClient = entryOfClient.get(clientId);
    if (sameClient !== undefined) {
      throw new ApiKeyParseError(
        `entry ${number}, field "clientId": ${clientId} is already used by entry ${sameClient}`,
      );
    }
    entryOfKey.set(hex, number);
    entryOfClient.set(clientId, number);
    entries.push({ key, client: { clientId, name } });
  });
  return entries;
}

/** `entry.split(":", 2)` as Python does it: at most three fields, the last one keeps its colons. */
function splitFields(entry: string): string[] {
  const first = entry.indexOf(":");
  if (first < 0) return [entry];
  const second = entry.indexOf(":", first + 1);
  if (second < 0) return [entry.slice(0, first), entry.slice(first + 1)];
  return [entry.slice(0, first), entry.slice(first + 1, second), entry.slice(second + 1)];
}

/** The rule for a new key: at least MIN_KEY_LENGTH characters of the key alphabet. */
export function checkKey(key: string, where: string): void {
  if (key.length < MIN_KEY_LENGTH || !KEY_PATTERN.test(key)) {
    throw new ApiKeyParseError(
      `${where}, field "key": must be at least ${MIN_KEY_LENGTH} characters of letters, digits and ._~+/=- (no spaces)`,
    );
  }
}

/**
 * The rule for a stored key: the key alphabet. Keys shorter than a new one may be are read
 * (they predate the rule) and reported by `shortKeyClients`.
 */
function checkKeyCharacters(key: string, where: string): void {
  if (!KEY_PATTERN.test(key)) {
    throw new ApiKeyParseError(`${where}, field "key": letters, digits and ._~+/=- only (no spaces)`);
  }
}

export function checkClientId(clientId: string, where: string): void {
  if (!CLIENT_ID_PATTERN.test(clientId)) {
    throw new ApiKeyParseError(`${where}, field "clientId": letters, digits and ._- only, at most 128 characters`);
  }
}

/** Parse the secret's value: `{"apiKeys": "key:clientId:Name,..."}`. */
export function parseSecretString(secretString: string): KeySet {
  if (Buffer.byteLength(secretString, "utf8") > MAX_SECRET_BYTES) {
    throw new ApiKeyParseError(`the secret is over Secrets Manager's ${MAX_SECRET_BYTES}-byte limit`);
  }
  let document: unknown;
  try {
    document = JSON.parse(secretString);
  } catch {
    throw new ApiKeyParseError("the secret is not JSON");
  }
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new ApiKeyParseError('the secret must be a JSON object with a string field "apiKeys"');
  }
  const apiKeys = (document as Record<string, unknown>).apiKeys;
  if (typeof apiKeys !== "string") {
    throw new ApiKeyParseError('the secret must be a JSON object with a string field "apiKeys"');
  }
  return parseApiKeys(apiKeys);
}
