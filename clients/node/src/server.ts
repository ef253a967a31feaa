#!/usr/bin/env node
/**
 * A minimal reference server on node:http: the loader as middleware in front of `/sign`.
 *
 *     API_KEYS_SECRET_ARN=arn:... node dist/src/server.js --port 3001
 *     curl -H "Authorization: Bearer $KEY" http://127.0.0.1:3001/sign
 *     curl -X POST -H "Authorization: Bearer $KEY" --data 'hello' http://127.0.0.1:3001/sign
 *
 * `/sign` answers GET and POST with the caller's client id and the SHA-256 of the body (empty
 * for a GET without one). `/healthz` needs no key; every other route answers 401 without a
 * valid Bearer key. It binds 127.0.0.1 only: it is a reference, not a production server.
 */

import { createHash } from "node:crypto";
import { realpathSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ApiKeyParseError } from "./keyset.js";
import { ApiKeyLoader, NoKeySourceError, SecretReadError } from "./loader.js";
import { type AuthenticatedRequest, apiKeyMiddleware, pathOf } from "./middleware.js";

function json(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json");
  res.end(JSON.stringify(body));
}

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function createReferenceServer(loader: ApiKeyLoader): Server {
  const requireKey = apiKeyMiddleware(loader);
  return createServer((req: IncomingMessage & AuthenticatedRequest, res) => {
    const path = pathOf(req.url);
    if (path === "/healthz" && req.method === "GET") {
      json(res, 200, { status: "ok", keySource: loader.source });
      return;
    }
    requireKey(req, res, (error) => {
      if (error !== undefined) {
        json(res, 500, { error: "internal error" });
        return;
      }
      if (path !== "/sign") {
        json(res, 404, { error: "not found" });
      } else if (req.method !== "GET" && req.method !== "POST") {
        json(res, 405, { error: "GET or POST" });
      } else {
        bodyOf(req).then(
          (body) =>
            json(res, 200, {
              clientId: req.apiClient?.clientId,
              sha256: createHash("sha256").update(body).digest("hex"),
            }),
          () => json(res, 400, { error: "the request body could not be read" }),
        );
      }
    });
  });
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { port: { type: "string", default: "3001" } } });
  let loader: ApiKeyLoader;
  try {
    loader = await ApiKeyLoader.fromEnv(process.env);
  } catch (error) {
    if (error instanceof NoKeySourceError || error instanceof SecretReadError || error instanceof ApiKeyParseError) {
      process.stderr.write(`reference server: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const server = createReferenceServer(loader);
  await new Promise<void>((resolve) => server.listen(Number(values.port), "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : values.port;
  process.stderr.write(`listening on http://127.0.0.1:${port} (keys from ${loader.source})\n`);
  await new Promise<void>((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => server.close(() => resolve()));
  });
  return 0;
}

if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
