/**
 * Load the service's API keys from Secrets Manager, keep them fresh, fall back loudly.
 *
 *     const loader = await ApiKeyLoader.fromEnv(process.env); // reads the secret at startup
 *     const client = await loader.authenticate(request.headers.authorization);
 *
 * - `API_KEYS_SECRET_ARN` set: the secret is read at startup (region from `AWS_REGION`, else
 *   the ARN). If that fails and `API_KEYS` is set, the keys come from `API_KEYS` with a WARNING
 *   line naming the reason class; if `API_KEYS` is not set either, startup fails.
 * - Neither set: `NoKeySourceError` (fail closed). `ENABLE_API_KEY_AUTH=false` turns checking
 *   off, with a WARNING line at startup.
 * - Refresh: at most once per interval (default 5 min, jittered) `DescribeSecret` shows whether
 *   AWSCURRENT moved; only then is the value fetched. A failed refresh keeps the last good keys.
 *   After a rotation the previous keys stay valid for a grace period (a process started during
 *   it reads AWSPREVIOUS too, until the same moment), but only for clients still in AWSCURRENT:
 *   a client removed from the set is refused from the next refresh on.
 *
 * The same behaviour as the Python loader (apikeys/loader.py), held to it by the scenarios and
 * vectors in contract/. Every log line is one JSON object; no line contains key material.
 */

import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  type GetSecretValueCommandOutput,
  SecretsManagerClient,
  type SecretsManagerClientConfig,
} from "@aws-sdk/client-secrets-manager";
import { ERROR_CODE_PREFIXES, ERROR_CODES, Event, FailureReason, MIN_KEY_LENGTH } from "./contract.js";
import { ApiKeyParseError, type Client, KeySet, parseApiKeys, parseSecretString } from "./keyset.js";
import { type Level, type LogLine, type LogWriter, writeToStderr } from "./logs.js";

export interface LoaderSettings {
  readonly secretArn: string | null;
  readonly region: string | null;
  /** The `API_KEYS` value. Not enumerable: never printed, never serialized. */
  readonly fallbackKeys: string | null;
  readonly authEnabled: boolean;
  readonly refreshIntervalSeconds: number;
  /** The share of the interval each check moves by at random, either way (0.1: ±10%). */
  readonly refreshJitter: number;
  readonly previousGraceSeconds: number;
}

type Environment = Readonly<Record<string, string | undefined>>;

const DISABLED_VALUES = new Set(["false", "0", "no", "off"]);

export function settingsFromEnv(env: Environment, overrides: Partial<LoaderSettings> = {}): LoaderSettings {
  const secretArn = env.API_KEYS_SECRET_ARN || null;
  const settings = {
    secretArn,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || regionOf(secretArn),
    authEnabled: !DISABLED_VALUES.has((env.ENABLE_API_KEY_AUTH ?? "true").trim().toLowerCase()),
    refreshIntervalSeconds: seconds(env, "API_KEYS_REFRESH_SECONDS", 300),
    refreshJitter: 0.1,
    previousGraceSeconds: seconds(env, "API_KEYS_PREVIOUS_GRACE_SECONDS", 3600),
    ...overrides,
  };
  const fallbackKeys = overrides.fallbackKeys !== undefined ? overrides.fallbackKeys : env.API_KEYS || null;
  Object.defineProperty(settings, "fallbackKeys", { value: fallbackKeys, enumerable: false });
  return Object.freeze(settings) as LoaderSettings;
}

function seconds(env: Environment, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${name}=${JSON.stringify(text)}: expected a number of seconds, 0 or more`);
  }
  return value;
}

function regionOf(arn: string | null): string | null {
  return (arn ?? "").split(":")[3] || null;
}

/** Neither API_KEYS_SECRET_ARN nor API_KEYS is set and auth is on: refuse to start. */
export class NoKeySourceError extends Error {
  override readonly name = "NoKeySourceError";
}

/** The secret could not be read or parsed; `reason` is the failure class. */
export class SecretReadError extends Error {
  override readonly name = "SecretReadError";
  constructor(
    readonly reason: FailureReason,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

// Unreachable, timed out, connection dropped (Node's socket error codes).
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/** The failure class of a service error code (contract/events.json's `errorCodes`). */
export function reasonOfErrorCode(code: string): FailureReason {
  for (const [reason, codes] of Object.entries(ERROR_CODES)) {
    if (codes.includes(code)) return reason as FailureReason;
  }
  for (const [reason, prefixes] of Object.entries(ERROR_CODE_PREFIXES)) {
    if (prefixes.some((prefix) => code.startsWith(prefix))) return reason as FailureReason;
  }
  return FailureReason.OTHER;
}

/** The failure class of an SDK error; what is not known to be one of the others is `other`. */
export function classify(error: unknown): FailureReason {
  if (!(error instanceof Error)) return FailureReason.OTHER;
  if ("$fault" in error) return reasonOfErrorCode(error.name); // the service's answer: its code is the name
  const code = (error as { code?: unknown }).code;
  if (error.name === "TimeoutError" || (typeof code === "string" && NETWORK_CODES.has(code))) {
    return FailureReason.NETWORK;
  }
  return FailureReason.OTHER;
}

/** The SDK client's part the loader uses: tests pass a stand-in. */
export type SecretsClient = Pick<SecretsManagerClient, "send">;

/**
 * The SDK's standard retry mode (exponential backoff with jitter on throttling and transient
 * errors) and short timeouts, so a dead endpoint fails startup fast: the Python loader's
 * botocore configuration.
 */
/** Short timeouts; a request over its time is an error (by default the SDK only warns). */
export const REQUEST_HANDLER = {
  connectionTimeout: 2_000,
  requestTimeout: 5_000,
  throwOnRequestTimeout: true,
} as const;

export function createSecretsClient(
  region: string | null,
  overrides: SecretsManagerClientConfig = {},
): SecretsManagerClient {
  return new SecretsManagerClient({
    ...(region ? { region } : {}),
    retryMode: "standard",
    maxAttempts: 4,
    requestHandler: REQUEST_HANDLER,
    ...overrides,
  });
}

export interface LoaderOptions {
  /** The Secrets Manager client; by default one is created on first use, with the settings' region. */
  readonly client?: SecretsClient;
  /** Where log lines go; by default one JSON line each on stderr. */
  readonly log?: LogWriter;
  /** Monotonic seconds, for refresh and grace bookkeeping. */
  readonly clock?: () => number;
  /** Milliseconds since the epoch, to tell how old the secret's current version is. */
  readonly wallClock?: () => number;
  /** Uniform in [0, 1), for the refresh jitter. */
  readonly random?: () => number;
}

export type KeySource = "none" | "secret" | "env" | "disabled";

const ANONYMOUS: Client = Object.freeze({ clientId: "anonymous", name: "auth disabled" });

export class ApiKeyLoader {
  readonly #settings: LoaderSettings;
  readonly #log: LogWriter;
  readonly #clock: () => number;
  readonly #wallClock: () => number;
  readonly #random: () => number;
  #client: SecretsClient | undefined;
  #current = new KeySet();
  // Keys replaced by recent changes, each set with the loader-clock time its grace ends.
  #inGrace: ReadonlyArray<readonly [KeySet, number]> = [];
  #version: string | undefined;
  #nextCheck = 0;
  #source: KeySource = "none";

  constructor(settings: LoaderSettings, options: LoaderOptions = {}) {
    this.#settings = settings;
    this.#client = options.client;
    this.#log = options.log ?? writeToStderr;
    this.#clock = options.clock ?? (() => performance.now() / 1000);
    this.#wallClock = options.wallClock ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  /** The settings from the environment (`process.env`), and the keys loaded. */
  static async fromEnv(env: Environment, options: LoaderOptions = {}): Promise<ApiKeyLoader> {
    const loader = new ApiKeyLoader(settingsFromEnv(env), options);
    await loader.load();
    return loader;
  }

  /** Where the keys came from: "secret", "env", "disabled" ("none" before `load`). */
  get source(): KeySource {
    return this.#source;
  }

  #secretsClient(): SecretsClient {
    this.#client ??= createSecretsClient(this.#settings.region);
    return this.#client;
  }

  #emit(level: Level, event: Event, message: string, fields: Omit<LogLine, "level" | "logger" | "message" | "event">) {
    this.#log({ level, logger: "apikeys", message, event, ...fields });
  }

  /** Startup: the secret, else API_KEYS with a warning, else fail closed. */
  async load(): Promise<void> {
    const settings = this.#settings;
    let failure: FailureReason | undefined;
    if (!settings.authEnabled) {
      this.#source = "disabled";
      this.#emit("WARNING", Event.AUTH_DISABLED, "ENABLE_API_KEY_AUTH=false: API key checking is OFF", {});
      return;
    }
    if (settings.secretArn) {
      try {
        const { keys, version, written } = await this.#fetch(settings.secretArn);
        const [previous, previousUntil] = await this.#previousInGrace(settings.secretArn, written);
        this.#current = keys;
        this.#version = version;
        this.#source = "secret";
        this.#inGrace = previous.size > 0 ? [[previous.ofClientsIn(keys), previousUntil]] : [];
        this.#scheduleNextCheck();
        this.#emit("INFO", Event.LOADED, "API keys loaded", { source: "secret", key_count: keys.size });
        this.#warnOfShortKeys(keys);
        return;
      } catch (error) {
        if (!(error instanceof SecretReadError)) throw error;
        failure = error.reason;
        this.#emit("ERROR", Event.SECRET_READ_FAILED, "could not read the API keys secret", { reason: failure });
        if (!settings.fallbackKeys) throw error;
      }
    }
    if (settings.fallbackKeys) {
      const keys = parseApiKeys(settings.fallbackKeys);
      this.#current = keys;
      this.#source = "env";
      this.#emit(
        "WARNING",
        Event.FALLBACK_TO_ENV,
        "API keys come from the API_KEYS environment variable: move them to Secrets Manager",
        { reason: failure ?? "no_secret_arn", key_count: keys.size },
      );
      this.#warnOfShortKeys(keys);
      return;
    }
    throw new NoKeySourceError(
      "no API keys: set API_KEYS_SECRET_ARN (or API_KEYS), or ENABLE_API_KEY_AUTH=false to disable checking",
    );
  }

  /** The stage's keys, version id, and when that version was written. */
  async #fetch(secretId: string, stage = "AWSCURRENT"): Promise<{ keys: KeySet; version: string; written?: Date }> {
    let response: GetSecretValueCommandOutput;
    try {
      response = await this.#secretsClient().send(
        new GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }),
      );
    } catch (error) {
      throw new SecretReadError(classify(error), error instanceof Error ? error.name : "unknown error");
    }
    if (response.SecretString === undefined) {
      throw new SecretReadError(FailureReason.MALFORMED, "the secret is binary; expected a JSON string");
    }
    try {
      const keys = parseSecretString(response.SecretString);
      return {
        keys,
        version: response.VersionId ?? "",
        ...(response.CreatedDate ? { written: response.CreatedDate } : {}),
      };
    } catch (error) {
      if (error instanceof ApiKeyParseError) throw new SecretReadError(FailureReason.MALFORMED, error.message);
      throw error;
    }
  }

  /**
   * At startup: AWSPREVIOUS's keys, and until when (on the loader's clock) they are valid. The
   * grace period counts from when AWSCURRENT was written, so a process started in the middle
   * of a hand-over accepts the previous keys as long as one that saw the rotation.
   */
  async #previousInGrace(secretId: string, currentWritten: Date | undefined): Promise<readonly [KeySet, number]> {
    if (currentWritten === undefined) return [new KeySet(), 0];
    const remaining = (currentWritten.getTime() - this.#wallClock()) / 1000 + this.#settings.previousGraceSeconds;
    if (remaining <= 0) return [new KeySet(), 0]; // no rotation within the grace period: nothing more to read
    try {
      const { keys } = await this.#fetch(secretId, "AWSPREVIOUS");
      return [keys, this.#clock() + remaining];
    } catch (error) {
      if (error instanceof SecretReadError) return [new KeySet(), 0]; // no previous version, or unreadable
      throw error;
    }
  }

  #scheduleNextCheck(): void {
    const interval = this.#settings.refreshIntervalSeconds;
    const jitter = interval * this.#settings.refreshJitter;
    this.#nextCheck = this.#clock() + interval + (this.#random() * 2 - 1) * jitter;
  }

  /** At most once per interval: DescribeSecret; fetch only when AWSCURRENT moved. */
  async refreshIfDue(): Promise<void> {
    const arn = this.#settings.secretArn;
    if (this.#source !== "secret" || !arn) return;
    if (this.#clock() < this.#nextCheck) return;
    this.#scheduleNextCheck(); // one caller refreshes; the others go on with the current keys
    let fetched: { keys: KeySet; version: string };
    try {
      const described = await this.#secretsClient().send(new DescribeSecretCommand({ SecretId: arn }));
      const stages = described.VersionIdsToStages ?? {};
      const current = Object.keys(stages).find((version) => stages[version]?.includes("AWSCURRENT"));
      if (current === undefined || current === this.#version) return;
      fetched = await this.#fetch(arn);
    } catch (error) {
      const reason = error instanceof SecretReadError ? error.reason : classify(error);
      this.#emit("WARNING", Event.REFRESH_FAILED, "refresh failed; keeping the last good keys", { reason });
      return;
    }
    // Grace is for rotation: a client no longer in AWSCURRENT is refused from now on,
    // including its keys still in grace from earlier changes.
    const { keys, version } = fetched;
    const now = this.#clock();
    const replaced = [this.#current.ofClientsIn(keys), now + this.#settings.previousGraceSeconds] as const;
    const still = this.#inGrace
      .filter(([, until]) => until > now)
      .map(([previous, until]) => [previous.ofClientsIn(keys), until] as const);
    this.#inGrace = [replaced, ...still].filter(([previous]) => previous.size > 0);
    this.#current = keys;
    this.#version = version;
    this.#emit("INFO", Event.REFRESHED, "API keys refreshed after a new version", { key_count: keys.size });
    this.#warnOfShortKeys(keys);
  }

  /**
   * Name (never show) the clients whose keys are shorter than a new key may be: they are
   * accepted, as an adopted key set holds them, until a rotation replaces them.
   */
  #warnOfShortKeys(keys: KeySet): void {
    if (keys.shortKeyClients.length === 0) return;
    this.#emit(
      "WARNING",
      Event.SHORT_KEYS,
      `keys shorter than ${MIN_KEY_LENGTH} characters are accepted until rotated: rotate them ` +
        "(apikeys rotate, or apikeys clients rotate per client)",
      { client_ids: keys.shortKeyClients.map((client) => client.clientId).sort() },
    );
  }

  /**
   * `Authorization: Bearer <key>` -> the client, or null. With auth disabled, an anonymous
   * client. The request that finds a refresh due waits for it; the others do not.
   */
  async authenticate(authorization: string | null | undefined): Promise<Client | null> {
    if (this.#source === "disabled") return ANONYMOUS;
    await this.refreshIfDue();
    return this.check(authorization);
  }

  /** `authenticate` without the refresh: the keys held now. */
  check(authorization: string | null | undefined): Client | null {
    if (this.#source === "disabled") return ANONYMOUS;
    if (!authorization) return null;
    const space = authorization.indexOf(" ");
    const scheme = space < 0 ? authorization : authorization.slice(0, space);
    const key = space < 0 ? "" : authorization.slice(space + 1).trim();
    if (scheme.toLowerCase() !== "bearer" || key === "") return null;
    const client = this.#current.authenticate(key);
    if (client !== null || this.#inGrace.length === 0) return client;
    const now = this.#clock();
    for (const [keys, until] of this.#inGrace) {
      const found = now < until ? keys.authenticate(key) : null;
      if (found !== null) return found;
    }
    return null;
  }

  toString(): string {
    return `ApiKeyLoader(source=${this.#source}, keys=${this.#current.size})`;
  }
}
