/**
 * The Node loader's key check, in nanoseconds per request, for `python -m bench` (make bench).
 *
 * Reads on stdin `{"cases": [{"keys": n, "chunks": ["key:clientId:Name,..."], "presented": "...",
 * "secretArn": "..." | null}]}` and writes on stdout one row per case and method. Rows:
 * `KeySet.authenticate` (the key set parsed once, from chunks: 10,000 keys do not fit one secret),
 * and `ApiKeyLoader.authenticate` (the whole per-request path: refresh-due check, `Bearer`
 * header, lookup) with the keys loaded from the secret (AWS_ENDPOINT_URL points at local AWS).
 * Each cell is the median of 5 batches of at least 0.2 s, as the Python rows are measured.
 */

import { text } from "node:stream/consumers";
import { ApiKeyLoader, KeySet, parseApiKeys, settingsFromEnv } from "../src/index.js";

interface Case {
  keys: number;
  chunks: string[];
  presented: string;
  secretArn: string | null;
}

interface Row {
  method: "KeySet.authenticate" | "ApiKeyLoader.authenticate";
  keys: number;
  nsPerOp: number;
}

const REPEATS = 5;
const MIN_BATCH_NS = 200_000_000n;

async function batchNs(operation: () => unknown | Promise<unknown>, calls: number): Promise<bigint> {
  const start = process.hrtime.bigint();
  for (let call = 0; call < calls; call += 1) await operation();
  return process.hrtime.bigint() - start;
}

async function nsPerOp(operation: () => unknown | Promise<unknown>): Promise<number> {
  let calls = 1;
  while ((await batchNs(operation, calls)) < MIN_BATCH_NS) calls *= 2;
  const batches: number[] = [];
  for (let repeat = 0; repeat < REPEATS; repeat += 1) batches.push(Number(await batchNs(operation, calls)) / calls);
  batches.sort((a, b) => a - b);
  return batches[Math.floor(REPEATS / 2)] ?? Number.NaN;
}

function accepted(found: unknown, method: string): void {
  if (found === null) throw new Error(`${method}: the presented key was not accepted`);
}

async function rows(benchCase: Case): Promise<Row[]> {
  const keys = benchCase.chunks.reduce((set, chunk) => set.merged(parseApiKeys(chunk)), new KeySet());
  accepted(keys.authenticate(benchCase.presented), "KeySet.authenticate");
  const result: Row[] = [
    {
      method: "KeySet.authenticate",
      keys: benchCase.keys,
      nsPerOp: await nsPerOp(() => keys.authenticate(benchCase.presented)),
    },
  ];
  if (benchCase.secretArn !== null) {
    const settings = settingsFromEnv({ ...process.env, API_KEYS_SECRET_ARN: benchCase.secretArn, API_KEYS: "" });
    const loader = new ApiKeyLoader(settings, { log: () => undefined });
    await loader.load(); // the refresh is not due for minutes, far beyond the timing
    const header = `Bearer ${benchCase.presented}`;
    accepted(await loader.authenticate(header), "ApiKeyLoader.authenticate");
    result.push({
      method: "ApiKeyLoader.authenticate",
      keys: benchCase.keys,
      nsPerOp: await nsPerOp(() => loader.authenticate(header)),
    });
  }
  return result;
}

const { cases } = JSON.parse(await text(process.stdin)) as { cases: Case[] };
const all: Row[] = [];
for (const benchCase of cases) all.push(...(await rows(benchCase)));
process.stdout.write(`${JSON.stringify(all)}\n`);
