/** The loader, with a Secrets Manager in memory and, for what the SDK itself does (retries,
 * timeouts, a dead endpoint), one on 127.0.0.1. */

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import {
  ApiKeyLoader,
  createSecretsClient,
  formatLine,
  type LoaderOptions,
  type LogWriter,
  NoKeySourceError,
  SecretReadError,
  settingsFromEnv,
} from "../src/index.js";
import { ARN, capture, FakeSecrets, ScriptedSecretsManager, serviceError } from "./fakes.js";

const KEY_1 = "fake_node_loader_key_1111111111";
const KEY_2 = "fake_node_loader_key_2222222222";
const KEY_ENV = "fake_node_loader_key_envenvenvenv";
const FALLBACK = `${KEY_ENV}:env-client:Env`;

function secretValue(...entries: Array<[string, string]>): string {
  return JSON.stringify({ apiKeys: entries.map(([key, client]) => `${key}:${client}:Name ${client}`).join(",") });
}

function withSecret(value: string | Uint8Array): FakeSecrets {
  const secret = new FakeSecrets();
  secret.write(value);
  return secret;
}

function options(secret: FakeSecrets, log: LogWriter): LoaderOptions {
  return { client: secret.client, clock: secret.clock, wallClock: secret.wallClock, log, random: () => 0.5 };
}

test("loads from the secret and authenticates Bearer keys", async () => {
  const secret = withSecret(secretValue([KEY_1, "c1"]));
  const { lines, log } = capture();
  const loader = await ApiKeyLoader.fromEnv({ API_KEYS_SECRET_ARN: ARN }, options(secret, log));
  assert.equal(loader.source, "secret");
  assert.deepEqual(await loader.authenticate(`Bearer ${KEY_1}`), { clientId: "c1", name: "Name c1" });
  assert.deepEqual(await loader.authenticate(`bearer  ${KEY_1} `), { clientId: "c1", name: "Name c1" });
  assert.equal(await loader.authenticate(KEY_1), null); // no scheme
  assert.equal(await loader.authenticate(`Basic ${KEY_1}`), null);
  assert.equal(await loader.authenticate(undefined), null);
  assert.equal(await loader.authenticate("Bearer fake_unknown_key_000000000000"), null);
  assert.deepEqual(lines, [
    {
      level: "INFO",
      logger: "apikeys",
      message: "API keys loaded",
      event: "apikeys.loaded",
      source: "secret",
      key_count: 1,
    },
  ]);
});

test("a short adopted key works and its client is named in a warning, never the key", async () => {
  const short = "sk_test_FAKE14"; // 14 characters, as keys set up before the 16-character rule may be
  const secret = withSecret(secretValue([short, "client-test"], [KEY_1, "c1"]));
  const { lines, log } = capture();
  const loader = await ApiKeyLoader.fromEnv({ API_KEYS_SECRET_ARN: ARN }, options(secret, log));
  assert.deepEqual(await loader.authenticate(`Bearer ${short}`), { clientId: "client-test", name: "Name client-test" });
  assert.deepEqual(
    lines.map((line) => [line.event, line.level, line.client_ids]),
    [
      ["apikeys.loaded", "INFO", undefined],
      ["apikeys.short_keys", "WARNING", ["client-test"]],
    ],
  );
  assert.ok(!JSON.stringify(lines).includes(short));
});

test("the settings come from the environment; the region from the ARN when AWS_REGION is unset", () => {
  const settings = settingsFromEnv({ API_KEYS_SECRET_ARN: ARN, API_KEYS: FALLBACK, API_KEYS_REFRESH_SECONDS: "60" });
  assert.equal(settings.region, "eu-west-1");
  assert.equal(settings.refreshIntervalSeconds, 60);
  assert.equal(settings.previousGraceSeconds, 3600);
  assert.equal(settings.fallbackKeys, FALLBACK);
  assert.equal(settingsFromEnv({ API_KEYS_SECRET_ARN: ARN, AWS_REGION: "us-east-2" }).region, "us-east-2");
  assert.throws(() => settingsFromEnv({ API_KEYS_REFRESH_SECONDS: "soon" }), /API_KEYS_REFRESH_SECONDS="soon"/);
});

test("neither source fails closed", async () => {
  await assert.rejects(ApiKeyLoader.fromEnv({}, { log: capture().log }), NoKeySourceError);
});

test("disabled auth says so loudly", async () => {
  const { lines, log } = capture();
  const loader = await ApiKeyLoader.fromEnv({ ENABLE_API_KEY_AUTH: "false" }, { log });
  assert.equal(loader.source, "disabled");
  assert.deepEqual(await loader.authenticate(undefined), { clientId: "anonymous", name: "auth disabled" });
  assert.deepEqual(
    lines.map((line) => [line.level, line.event]),
    [["WARNING", "apikeys.auth_disabled"]],
  );
});

test("API_KEYS alone is a fallback too, with the reason no_secret_arn", async () => {
  const { lines, log } = capture();
  const loader = await ApiKeyLoader.fromEnv({ API_KEYS: FALLBACK }, { log });
  assert.equal(loader.source, "env");
  assert.deepEqual(await loader.authenticate(`Bearer ${KEY_ENV}`), { clientId: "env-client", name: "Env" });
  assert.deepEqual(
    lines.map((line) => [line.level, line.event, line.reason]),
    [["WARNING", "apikeys.fallback_to_env", "no_secret_arn"]],
  );
});

/** Startup against `secret` with the fallback set: the two lines, as [event, reason, level]. */
async function fallbackLines(
  loaderOptions: LoaderOptions & { log?: never },
): Promise<Array<[string, string | undefined, string]>> {
  const { lines, log } = capture();
  const settings = settingsFromEnv({ API_KEYS_SECRET_ARN: ARN, API_KEYS: FALLBACK });
  const loader = new ApiKeyLoader(settings, { ...loaderOptions, log });
  await loader.load();
  assert.equal(loader.source, "env");
  assert.deepEqual(await loader.authenticate(`Bearer ${KEY_ENV}`), { clientId: "env-client", name: "Env" });
  for (const line of lines) assert.ok(!formatLine(line).includes(KEY_ENV));
  return lines.map((line) => [line.event, line.reason, line.level]);
}

describe("each failure class is named in the log lines", () => {
  const services: Array<[string, string]> = [
    ["AccessDeniedException", "denied"],
    ["ExpiredTokenException", "denied"],
    ["ResourceNotFoundException", "not_found"],
    ["DecryptionFailure", "decrypt"],
    ["KMSInvalidStateException", "decrypt"],
    ["InternalServiceError", "network"],
    ["InvalidRequestException", "other"], // e.g. the secret is scheduled for deletion
  ];
  for (const [code, reason] of services) {
    test(`${code}: ${reason}`, async () => {
      const secret = new FakeSecrets();
      secret.failWith = serviceError(code);
      assert.deepEqual(await fallbackLines({ client: secret.client }), [
        ["apikeys.secret_read_failed", reason, "ERROR"],
        ["apikeys.fallback_to_env", reason, "WARNING"],
      ]);
    });
  }

  for (const [name, value] of [
    ["not JSON", "not json"],
    ["a bad entry", JSON.stringify({ apiKeys: "no-fields" })],
    ["binary", new Uint8Array([0, 1, 2])],
  ] as const) {
    test(`a malformed secret (${name}): malformed`, async () => {
      assert.deepEqual(await fallbackLines({ client: withSecret(value).client }), [
        ["apikeys.secret_read_failed", "malformed", "ERROR"],
        ["apikeys.fallback_to_env", "malformed", "WARNING"],
      ]);
    });
  }

  test("throttled: the SDK's standard retry mode asks again and the second answer loads", async () => {
    const success = { ARN, Name: "credlink/test", VersionId: "v".repeat(32), SecretString: secretValue([KEY_1, "c1"]) };
    const endpoint = await ScriptedSecretsManager.start([
      [400, { __type: "ThrottlingException", message: "Rate exceeded" }],
      [200, success],
    ]);
    const { lines, log } = capture();
    try {
      const loader = new ApiKeyLoader(settingsFromEnv({ API_KEYS_SECRET_ARN: ARN }), {
        client: endpoint.client(),
        log,
      });
      await loader.load();
      assert.equal(loader.source, "secret");
    } finally {
      await endpoint.close();
    }
    assert.equal(endpoint.requests, 2);
    assert.deepEqual(
      lines.map((line) => line.event),
      ["apikeys.loaded"],
    );
  });

  test("throttled, every attempt: throttled", async () => {
    const endpoint = await ScriptedSecretsManager.start([
      [400, { __type: "ThrottlingException", message: "Rate exceeded" }],
    ]);
    try {
      assert.deepEqual(await fallbackLines({ client: endpoint.client({ maxAttempts: 2 }) }), [
        ["apikeys.secret_read_failed", "throttled", "ERROR"],
        ["apikeys.fallback_to_env", "throttled", "WARNING"],
      ]);
    } finally {
      await endpoint.close();
    }
  });

  test("a timeout: network", async () => {
    const endpoint = await ScriptedSecretsManager.start([[200, {}]], 1_500);
    try {
      assert.deepEqual(await fallbackLines({ client: endpoint.client({ maxAttempts: 1, requestTimeout: 300 }) }), [
        ["apikeys.secret_read_failed", "network", "ERROR"],
        ["apikeys.fallback_to_env", "network", "WARNING"],
      ]);
    } finally {
      await endpoint.close();
    }
  });

  test("the endpoint down: network", async () => {
    const closed = createServer();
    await new Promise<void>((done) => closed.listen(0, "127.0.0.1", done));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((done) => closed.close(() => done()));
    const client = createSecretsClient("eu-west-1", {
      endpoint: `http://127.0.0.1:${port}`,
      credentials: { accessKeyId: "fake", secretAccessKey: "fake" },
      maxAttempts: 1,
    });
    assert.deepEqual(await fallbackLines({ client }), [
      ["apikeys.secret_read_failed", "network", "ERROR"],
      ["apikeys.fallback_to_env", "network", "WARNING"],
    ]);
  });
});

test("an unreadable secret without a fallback refuses to start", async () => {
  const secret = new FakeSecrets();
  secret.failWith = serviceError("ResourceNotFoundException");
  const settings = settingsFromEnv({ API_KEYS_SECRET_ARN: ARN });
  await assert.rejects(new ApiKeyLoader(settings, { client: secret.client, log: capture().log }).load(), (error) => {
    assert.ok(error instanceof SecretReadError);
    assert.equal(error.reason, "not_found");
    return true;
  });
});

test("refresh: DescribeSecret at most once per interval; the value only when AWSCURRENT moved", async () => {
  const secret = withSecret(secretValue([KEY_1, "c1"]));
  const { lines, log } = capture();
  const settings = settingsFromEnv({}, { secretArn: ARN, region: "eu-west-1", refreshJitter: 0 });
  const loader = new ApiKeyLoader(settings, options(secret, log));
  await loader.load();
  // AWSCURRENT, then AWSPREVIOUS (none here): the value is younger than the grace period.
  const startup = ["GetSecretValue", "GetSecretValue"];
  assert.deepEqual(secret.calls, startup);
  for (let i = 0; i < 100; i += 1) await loader.authenticate(`Bearer ${KEY_1}`);
  assert.deepEqual(secret.calls, startup);

  secret.now += 301; // due, but unchanged: one DescribeSecret, no fetch
  assert.deepEqual(await loader.authenticate(`Bearer ${KEY_1}`), { clientId: "c1", name: "Name c1" });
  assert.deepEqual(secret.calls, [...startup, "DescribeSecret"]);

  secret.write(secretValue([KEY_2, "c1"])); // a rotation
  secret.calls.length = 0;
  secret.now += 301;
  const [first, second] = await Promise.all([
    loader.authenticate(`Bearer ${KEY_2}`),
    loader.authenticate(`Bearer ${KEY_2}`), // arrives while the first refreshes: current keys
  ]);
  assert.deepEqual(first, { clientId: "c1", name: "Name c1" });
  assert.equal(second, null);
  assert.deepEqual(secret.calls, ["DescribeSecret", "GetSecretValue"]);
  assert.deepEqual(await loader.authenticate(`Bearer ${KEY_1}`), { clientId: "c1", name: "Name c1" }); // in grace
  secret.now += 3601;
  assert.equal(await loader.authenticate(`Bearer ${KEY_1}`), null);
  assert.ok(lines.some((line) => line.event === "apikeys.refreshed"));
});

test("a failed refresh keeps the last good keys", async () => {
  const secret = withSecret(secretValue([KEY_1, "c1"]));
  const { lines, log } = capture();
  const settings = settingsFromEnv({}, { secretArn: ARN, region: "eu-west-1", refreshJitter: 0 });
  const loader = new ApiKeyLoader(settings, options(secret, log));
  await loader.load();
  secret.failWith = serviceError("ResourceNotFoundException");
  secret.now += 301;
  assert.deepEqual(await loader.authenticate(`Bearer ${KEY_1}`), { clientId: "c1", name: "Name c1" });
  assert.deepEqual(lines.at(-1), {
    level: "WARNING",
    logger: "apikeys",
    message: "refresh failed; keeping the last good keys",
    event: "apikeys.refresh_failed",
    reason: "not_found",
  });
});

test("a new value that does not parse is a failed refresh: malformed, the last good keys kept", async () => {
  const secret = withSecret(secretValue([KEY_1, "c1"]));
  const { lines, log } = capture();
  const loader = new ApiKeyLoader(settingsFromEnv({}, { secretArn: ARN, refreshJitter: 0 }), options(secret, log));
  await loader.load();
  secret.write("not json");
  secret.now += 301;
  assert.deepEqual(await loader.authenticate(`Bearer ${KEY_1}`), { clientId: "c1", name: "Name c1" });
  assert.deepEqual([lines.at(-1)?.event, lines.at(-1)?.reason], ["apikeys.refresh_failed", "malformed"]);
});

test("the jitter moves the next check either way, within its share of the interval", async () => {
  for (const [random, due] of [
    [0, 270],
    [0.999999, 330],
  ] as const) {
    const secret = withSecret(secretValue([KEY_1, "c1"]));
    const loader = new ApiKeyLoader(settingsFromEnv({}, { secretArn: ARN }), {
      ...options(secret, capture().log),
      random: () => random,
    });
    await loader.load();
    secret.calls.length = 0;
    secret.now += due - 1;
    await loader.authenticate(`Bearer ${KEY_1}`);
    assert.deepEqual(secret.calls, []);
    secret.now += 1;
    await loader.authenticate(`Bearer ${KEY_1}`);
    assert.deepEqual(secret.calls, ["DescribeSecret"]);
  }
});

test("no key material in any log line, in the settings or the loader's description", async () => {
  const secret = withSecret(`not json ${KEY_1}`);
  const { lines, log } = capture();
  const loader = await ApiKeyLoader.fromEnv(
    { API_KEYS_SECRET_ARN: ARN, API_KEYS: FALLBACK },
    { client: secret.client, log },
  );
  await loader.authenticate(`Bearer ${KEY_2}`);
  const settings = settingsFromEnv({ API_KEYS: FALLBACK });
  const { inspect } = await import("node:util");
  const text = [
    ...lines.map(formatLine),
    String(loader),
    inspect(loader),
    JSON.stringify(settings),
    inspect(settings),
  ].join("\n");
  for (const key of [KEY_1, KEY_2, KEY_ENV]) assert.ok(!text.includes(key), key);
});

test("log lines are written as the Python loader writes them: one JSON object, keys sorted", () => {
  const line = formatLine({
    level: "WARNING",
    logger: "apikeys",
    message: "m",
    event: "apikeys.fallback_to_env",
    reason: "denied",
    key_count: 2,
  });
  assert.equal(
    line,
    '{"event":"apikeys.fallback_to_env","key_count":2,"level":"WARNING","logger":"apikeys","message":"m","reason":"denied"}',
  );
});
