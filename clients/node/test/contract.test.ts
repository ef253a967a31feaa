/** The shared contract (contract/, written from the Python runtime): the Node loader meets it. */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ApiKeyLoader,
  ApiKeyParseError,
  classify,
  Event,
  FailureReason,
  MAX_SECRET_BYTES,
  parseApiKeys,
  parseEntries,
  parseSecretString,
  settingsFromEnv,
} from "../src/index.js";
import { ARN, capture, contract, FakeSecrets, serviceError } from "./fakes.js";

interface KeyFormat {
  maxSecretBytes: number;
  valid: Array<{
    apiKeys: string;
    entries: Array<{ key: string; clientId: string; name: string }>;
    shortKeyClients: string[];
  }>;
  invalid: Array<{ apiKeys: string; entry: number | null; field: string | null; message: string }>;
  secretStrings: Array<{ secretString: string; valid: boolean; clients?: Array<{ clientId: string; name: string }> }>;
}

type Step = { write: string } | { start: true } | { wait: number } | { check: string; client: string | null };

interface Grace {
  graceSeconds: number;
  refreshSeconds: number;
  refreshJitter: number;
  scenarios: Array<{ name: string; steps: Step[] }>;
}

const keyFormat = contract<KeyFormat>("key-format.json");
const grace = contract<Grace>("grace.json");
const events = contract<{
  events: Record<string, string>;
  reasons: Record<string, string>;
  errorCodes: Record<string, string[]>;
  errorCodePrefixes: Record<string, string[]>;
}>("events.json");

describe("the key format", () => {
  for (const vector of keyFormat.valid) {
    test(`parses ${JSON.stringify(vector.apiKeys.slice(0, 60))}`, () => {
      const entries = parseEntries(vector.apiKeys).map(({ key, client }) => ({ key, ...client }));
      assert.deepEqual(entries, vector.entries);
      const shortKeys = parseApiKeys(vector.apiKeys).shortKeyClients.map((client) => client.clientId);
      assert.deepEqual(shortKeys, vector.shortKeyClients);
    });
  }

  for (const vector of keyFormat.invalid) {
    test(`refuses ${JSON.stringify(vector.apiKeys.slice(0, 60))}: entry ${vector.entry}, field ${vector.field}`, () => {
      assert.throws(
        () => parseEntries(vector.apiKeys),
        (error: unknown) => {
          assert.ok(error instanceof ApiKeyParseError);
          assert.equal(error.message, vector.message);
          if (vector.entry !== null) assert.match(error.message, new RegExp(`^entry ${vector.entry}\\b`));
          if (vector.field !== null) assert.ok(error.message.includes(`field "${vector.field}"`));
          return true;
        },
      );
    });
  }

  test("refuses a list over the size limit", () => {
    assert.equal(keyFormat.maxSecretBytes, MAX_SECRET_BYTES);
    assert.throws(() => parseEntries("k".repeat(MAX_SECRET_BYTES + 1)), /over Secrets Manager's 65536-byte limit/);
  });

  for (const vector of keyFormat.secretStrings) {
    test(`reads the secret ${vector.secretString.slice(0, 60)}`, () => {
      if (vector.valid) {
        assert.deepEqual(parseSecretString(vector.secretString).clients, vector.clients);
      } else {
        assert.throws(() => parseSecretString(vector.secretString), ApiKeyParseError);
      }
    });
  }
});

test("the event and reason names are the contract's", () => {
  assert.deepEqual({ ...Event }, events.events);
  assert.deepEqual({ ...FailureReason }, events.reasons);
});

test("each service error code is named as the contract's failure class", () => {
  for (const [reason, codes] of Object.entries(events.errorCodes)) {
    for (const code of codes) assert.equal(classify(serviceError(code)), reason, code);
  }
  for (const [reason, prefixes] of Object.entries(events.errorCodePrefixes)) {
    for (const prefix of prefixes) assert.equal(classify(serviceError(`${prefix}Error`)), reason, prefix);
  }
  assert.equal(classify(serviceError("InvalidRequestException")), "other");
});

describe("grace for rotation, not for removal", () => {
  for (const scenario of grace.scenarios) {
    test(scenario.name, async () => {
      const secret = new FakeSecrets();
      const settings = settingsFromEnv(
        {},
        {
          secretArn: ARN,
          region: "eu-west-1",
          refreshIntervalSeconds: grace.refreshSeconds,
          refreshJitter: grace.refreshJitter,
          previousGraceSeconds: grace.graceSeconds,
        },
      );
      let loader: ApiKeyLoader | undefined;
      for (const [index, step] of scenario.steps.entries()) {
        if ("write" in step) {
          secret.write(JSON.stringify({ apiKeys: step.write }));
        } else if ("start" in step) {
          const options = {
            client: secret.client,
            clock: secret.clock,
            wallClock: secret.wallClock,
            log: capture().log,
          };
          loader = new ApiKeyLoader(settings, options);
          await loader.load();
        } else if ("wait" in step) {
          secret.now += step.wait;
        } else {
          assert.ok(loader, "a check before the start");
          const client = await loader.authenticate(`Bearer ${step.check}`);
          assert.equal(client?.clientId ?? null, step.client, `step ${index + 1}`);
        }
      }
    });
  }
});
