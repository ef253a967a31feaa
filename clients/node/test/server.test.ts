/** The reference server and the middleware, over HTTP on 127.0.0.1. */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { ApiKeyLoader, apiKeyMiddleware, clientOf, settingsFromEnv } from "../src/index.js";
import { createReferenceServer } from "../src/server.js";
import { ARN, capture, FakeSecrets } from "./fakes.js";

const KEY = "fake_node_server_key_1111111111";
const secret = new FakeSecrets();
secret.write(JSON.stringify({ apiKeys: `${KEY}:client-1:One` }));
const loader = new ApiKeyLoader(settingsFromEnv({ API_KEYS_SECRET_ARN: ARN }), {
  client: secret.client,
  log: capture().log,
});
const server = createReferenceServer(loader);
let base = "";

before(async () => {
  await loader.load();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((done) => server.close(() => done())));

const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

test("GET /sign without a body gets 200 with a valid key (the guide's curl check)", async () => {
  const response = await fetch(`${base}/sign`, { headers: bearer(KEY) });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), {
    clientId: "client-1",
    sha256: createHash("sha256").update("").digest("hex"),
  });
});

test("POST /sign answers with the client and the body's SHA-256", async () => {
  const response = await fetch(`${base}/sign`, { method: "POST", headers: bearer(KEY), body: "hello" });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), {
    clientId: "client-1",
    sha256: createHash("sha256").update("hello").digest("hex"),
  });
  assert.equal(response.headers.get("www-authenticate"), null);
});

test("without a valid key: 401 and WWW-Authenticate, on every route but /healthz", async () => {
  for (const [path, headers] of [
    ["/sign", {}],
    ["/sign", bearer("fake_unknown_key_0000000000000")],
    ["/sign", { Authorization: KEY }],
    ["/elsewhere", {}],
  ] as const) {
    const response = await fetch(`${base}${path}`, { headers });
    assert.equal(response.status, 401, path);
    assert.equal(response.headers.get("www-authenticate"), "Bearer");
  }
  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: "ok", keySource: "secret" });
});

test("with a valid key: 404 for an unknown route, 405 for another method", async () => {
  assert.equal((await fetch(`${base}/elsewhere`, { headers: bearer(KEY) })).status, 404);
  assert.equal((await fetch(`${base}/sign`, { method: "PUT", headers: bearer(KEY) })).status, 405);
});

test("the middleware, as an Express-style chain calls it", async () => {
  const middleware = apiKeyMiddleware(loader);
  const call = (url: string, authorization?: string) =>
    new Promise<{ next: boolean; status: number; client?: unknown }>((resolve) => {
      const req: Parameters<typeof middleware>[0] = { url, headers: authorization ? { authorization } : {} };
      const res = {
        statusCode: 200,
        setHeader: () => undefined,
        end: () => resolve({ next: false, status: res.statusCode }),
      };
      middleware(req, res, () => resolve({ next: true, status: res.statusCode, client: req.apiClient }));
    });
  assert.deepEqual(await call("/sign?x=1", `Bearer ${KEY}`), {
    next: true,
    status: 200,
    client: { clientId: "client-1", name: "One" },
  });
  assert.deepEqual(await call("/sign"), { next: false, status: 401 });
  assert.deepEqual(await call("/healthz"), { next: true, status: 200, client: undefined });
  const accepted: Parameters<typeof middleware>[0] = { url: "/sign", headers: { authorization: `Bearer ${KEY}` } };
  await new Promise<void>((done) =>
    middleware(accepted, { statusCode: 200, setHeader: () => 0, end: () => 0 }, () => done()),
  );
  assert.deepEqual(clientOf(accepted), { clientId: "client-1", name: "One" });
  assert.throws(() => clientOf({}), /is apiKeyMiddleware in front of the route/);
});
