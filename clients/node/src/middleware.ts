/**
 * The loader in front of a Node server: `(req, res, next)` middleware, as Express (and Fastify
 * through @fastify/middie) take it. A request without a valid Bearer key gets 401 and never
 * reaches the route; an accepted one carries its client as `req.apiClient`.
 */

import type { IncomingHttpHeaders } from "node:http";
import type { Client } from "./keyset.js";
import type { ApiKeyLoader } from "./loader.js";

export interface AuthenticatedRequest {
  headers: IncomingHttpHeaders;
  url?: string | undefined;
  apiClient?: Client;
}

export interface Response {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body?: string): unknown;
}

export type Next = (error?: unknown) => void;

export interface MiddlewareOptions {
  /** Paths that need no key (default: `/healthz`). */
  readonly openPaths?: Iterable<string>;
}

/** 401 with a JSON body and `WWW-Authenticate: Bearer`. */
export function refuse(res: Response): void {
  res.statusCode = 401;
  res.setHeader("WWW-Authenticate", "Bearer");
  res.setHeader("Content-Type", "application/json");
  res.end(JSON.stringify({ error: "a valid API key is required: Authorization: Bearer <key>" }));
}

export function pathOf(url: string | undefined): string {
  return new URL(url ?? "/", "http://localhost").pathname;
}

/** The client the middleware accepted for this request (any framework's request object). */
export function clientOf(req: object): Client {
  const client = (req as AuthenticatedRequest).apiClient;
  if (client === undefined)
    throw new Error("no API client on this request: is apiKeyMiddleware in front of the route?");
  return client;
}

export function apiKeyMiddleware(loader: ApiKeyLoader, options: MiddlewareOptions = {}) {
  const open = new Set(options.openPaths ?? ["/healthz"]);
  return (req: AuthenticatedRequest, res: Response, next: Next): void => {
    if (open.has(pathOf(req.url))) {
      next();
      return;
    }
    loader.authenticate(req.headers.authorization).then((client) => {
      if (client === null) {
        refuse(res);
        return;
      }
      req.apiClient = client;
      next();
    }, next);
  };
}
