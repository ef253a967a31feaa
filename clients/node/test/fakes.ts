/** Stand-ins for the tests: a Secrets Manager in memory, one on 127.0.0.1, a log capture. */

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  type SecretsManagerClient,
  SecretsManagerServiceException,
} from "@aws-sdk/client-secrets-manager";
import { createSecretsClient, type LogLine, REQUEST_HANDLER, type SecretsClient } from "../src/index.js";

export const ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:credlink/test-AbCdEf";

/** A file of the shared contract (contract/ at the project's root). */
export function contract<T>(name: string): T {
  const path = resolve(import.meta.dirname, "..", "..", "..", "..", "contract", name);
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

/** An error as the SDK raises it for a service's error answer. */
export function serviceError(code: string): SecretsManagerServiceException {
  return new SecretsManagerServiceException({ name: code, $fault: "client", $metadata: {}, message: "fake" });
}

interface Version {
  id: string;
  value: string | Uint8Array;
  writtenAt: number;
  stages: string[];
}

/** A secret's versions over a scenario's time (seconds), answering the loader's two calls. */
export class FakeSecrets {
  now = 1000;
  readonly versions: Version[] = [];
  readonly calls: string[] = [];
  failWith: Error | undefined;

  /** A new version becomes AWSCURRENT now; the one it replaces, AWSPREVIOUS. */
  write(value: string | Uint8Array): void {
    for (const version of this.versions) {
      const wasCurrent = version.stages.includes("AWSCURRENT");
      version.stages = version.stages.filter((stage) => stage !== "AWSCURRENT" && stage !== "AWSPREVIOUS");
      if (wasCurrent) version.stages.push("AWSPREVIOUS");
    }
    this.versions.push({ id: randomUUID(), value, writtenAt: this.now, stages: ["AWSCURRENT"] });
  }

  /** The loader's wall clock, in step with `now`. */
  readonly wallClock = (): number => 1_700_000_000_000 + this.now * 1000;
  readonly clock = (): number => this.now;

  readonly client: SecretsClient = {
    send: (async (command: unknown) => {
      const name = (command as { constructor: { name: string } }).constructor.name.replace(/Command$/, "");
      this.calls.push(name);
      if (this.failWith !== undefined) throw this.failWith;
      if (command instanceof DescribeSecretCommand) {
        return {
          VersionIdsToStages: Object.fromEntries(
            this.versions.filter((v) => v.stages.length).map((v) => [v.id, v.stages]),
          ),
        };
      }
      if (command instanceof GetSecretValueCommand) {
        const stage = command.input.VersionStage ?? "AWSCURRENT";
        const version = this.versions.find((v) => v.stages.includes(stage));
        if (version === undefined) throw serviceError("ResourceNotFoundException");
        const value =
          typeof version.value === "string" ? { SecretString: version.value } : { SecretBinary: version.value };
        return {
          ...value,
          VersionId: version.id,
          CreatedDate: new Date(this.wallClock() - (this.now - version.writtenAt) * 1000),
        };
      }
      throw new Error(`unexpected command ${name}`);
    }) as SecretsClient["send"],
  };
}

/** The loader's log lines, as it writes them. */
export function capture(): { lines: LogLine[]; log: (line: LogLine) => void } {
  const lines: LogLine[] = [];
  return { lines, log: (line) => lines.push(line) };
}

/** A Secrets Manager on 127.0.0.1 that answers every request from a script of (status, body). */
export class ScriptedSecretsManager {
  requests = 0;
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(responses: Array<[number, unknown]>, delayMs = 0): Promise<ScriptedSecretsManager> {
    let scripted: ScriptedSecretsManager | undefined;
    const server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        const index = Math.min(scripted?.requests ?? 0, responses.length - 1);
        if (scripted) scripted.requests += 1;
        const [status, body] = responses[index] ?? [500, {}];
        setTimeout(() => {
          if (res.destroyed) return;
          res.writeHead(status, { "Content-Type": "application/x-amz-json-1.1" });
          res.end(JSON.stringify(body));
        }, delayMs);
      });
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    scripted = new ScriptedSecretsManager(server);
    return scripted;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** The loader's SDK client, pointed at this endpoint; `maxAttempts` and `requestTimeout` (ms) as given. */
  client(overrides: { maxAttempts?: number; requestTimeout?: number } = {}): SecretsManagerClient {
    return createSecretsClient("eu-west-1", {
      endpoint: this.url,
      credentials: { accessKeyId: "fake", secretAccessKey: "fake" },
      ...(overrides.maxAttempts ? { maxAttempts: overrides.maxAttempts } : {}),
      ...(overrides.requestTimeout
        ? { requestHandler: { ...REQUEST_HANDLER, requestTimeout: overrides.requestTimeout } }
        : {}),
    });
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((done) => this.#server.close(() => done()));
  }
}
