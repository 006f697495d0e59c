/**
 * The simulator's HTTP vocabulary: replies, GitHub's error bodies, route
 * patterns and `Link` pagination.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { components } from "@octokit/openapi-types";
import type { Credential, Credentials } from "./auth.js";
import type { Deliveries } from "./deliveries.js";
import type { Repo } from "./model.js";
import type { OAuthApp } from "./oauth.js";
import type { View } from "./render.js";
import type { TicketModel } from "./tickets.js";

/** What route handlers work with. */
export interface Backend {
  readonly model: TicketModel;
  readonly view: View;
  readonly credentials: Credentials;
  readonly deliveries: Deliveries;
  readonly oauth: OAuthApp;
}

export type BasicError = components["schemas"]["basic-error"];
export type ValidationError = components["schemas"]["validation-error"];

export interface Reply {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RequestContext {
  readonly method: string;
  /** Path without the `/api/v3` prefix and query. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly body: unknown;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly params: Readonly<Record<string, string>>;
  readonly credential: Credential;
}

/**
 * What a route accepts: an App JWT, an installation or user token, only a
 * user token, the App's client id and secret (HTTP Basic), or anything
 * (`none`: GitHub's web endpoints of the OAuth flows, which read no header).
 */
export type Requires = "app" | "token" | "user" | "client" | "none";

export interface Route<C = RequestContext> {
  readonly method: string;
  readonly pattern: string;
  readonly requires: Requires;
  readonly handle: (ctx: C) => Reply | Promise<Reply>;
}

/** A route under `/repos/{owner}/{repo}` (or `/repositories/{id}`); the repository is resolved first. */
export type RepoRoute = Route<RequestContext & { readonly repo: Repo }>;

export const DOCS = "https://docs.github.com/rest";

/** Who a token acts as: the App's bot for an installation token, the user for a user token. */
export function actorOf(model: TicketModel, credential: Credential): string {
  if (credential.kind === "user") return credential.login;
  return model.app.bot;
}

/** A string field of a JSON request body, if it is one. */
export function field(body: unknown, name: string): unknown {
  return body !== null && typeof body === "object"
    ? (body as Record<string, unknown>)[name]
    : undefined;
}

export function json(body: unknown, status = 200, headers?: Record<string, string>): Reply {
  return headers ? { status, body, headers } : { status, body };
}

export function noContent(): Reply {
  return { status: 204 };
}

/** An error body as GitHub sends it: message, documentation_url and the status as a string. */
export function error(
  status: number,
  message: string,
  extra: Partial<ValidationError> = {},
): Reply {
  const body: BasicError & Partial<ValidationError> = {
    message,
    documentation_url: DOCS,
    status: String(status),
    ...extra,
  };
  return { status, body };
}

export const notFound = (): Reply => error(404, "Not Found");

/** A 422 for a missing or bad field, in GitHub's `errors` shape. */
export function invalid(resource: string, field: string, code = "missing_field"): Reply {
  return error(422, "Validation Failed", { errors: [{ resource, field, code }] });
}

/** Compiles `/issues/:number/comments` or `/contents/:path*` (rest of the path) into a matcher. */
export function compile(pattern: string): (path: string) => Record<string, string> | null {
  const names: string[] = [];
  const source = pattern
    .split("/")
    .map((segment) => {
      const param = /^:(\w+)(\*)?$/.exec(segment);
      if (!param?.[1]) return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      names.push(param[1]);
      return param[2] ? "(.*)" : "([^/]+)";
    })
    .join("/");
  const regex = new RegExp(`^${source.replace(/\/\(\.\*\)$/, "(?:/(.*))?")}$`);
  return (path) => {
    const match = regex.exec(path);
    if (!match) return null;
    const params: Record<string, string> = {};
    names.forEach((name, i) => {
      params[name] = decodeURIComponent(match[i + 1] ?? "");
    });
    return params;
  };
}

/**
 * One page of `items` by `per_page` (default 30, at most 100) and `page`,
 * with the `Link` header GitHub sends (first, prev, next, last).
 */
export function paginate<T>(
  ctx: RequestContext,
  apiUrl: string,
  items: readonly T[],
  wrap: (page: T[]) => unknown = (page) => page,
): Reply {
  const perPage = Math.min(100, Math.max(1, Number(ctx.query.per_page) || 30));
  const page = Math.max(1, Number(ctx.query.page) || 1);
  const last = Math.max(1, Math.ceil(items.length / perPage));
  const slice = items.slice((page - 1) * perPage, page * perPage);
  const link = (n: number, rel: string) => {
    const url = new URL(apiUrl + ctx.path);
    for (const [key, value] of Object.entries(ctx.query)) url.searchParams.set(key, value);
    url.searchParams.set("per_page", String(perPage));
    url.searchParams.set("page", String(n));
    return `<${url}>; rel="${rel}"`;
  };
  const links = [
    ...(page > 1 ? [link(page - 1, "prev")] : []),
    ...(page < last ? [link(page + 1, "next"), link(last, "last")] : []),
    ...(page > 1 ? [link(1, "first")] : []),
  ];
  return json(wrap(slice), 200, links.length > 0 ? { link: links.join(", ") } : undefined);
}

/** Decodes `%2F` and friends for readable recorded paths; leaves a malformed path as it is. */
export function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** The request body: parsed JSON, the raw text of anything else, or `undefined` when empty. */
export async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Writes a reply with the headers GitHub sends on every response (request id, API version, rate limit). */
export function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = {
    "x-github-request-id": `SIM:${Math.random().toString(16).slice(2, 10).toUpperCase()}`,
    "x-github-api-version-selected": "2022-11-28",
    "x-ratelimit-limit": "5000",
    "x-ratelimit-remaining": "4999",
    "x-ratelimit-used": "1",
    "x-ratelimit-resource": "core",
    "x-ratelimit-reset": String(Math.ceil(Date.now() / 1000) + 3600),
    ...reply.headers,
  };
  if (reply.status === 204 || reply.body === undefined) {
    res.writeHead(reply.status, headers).end();
    return;
  }
  const isText = typeof reply.body === "string";
  headers["content-type"] ??= isText
    ? "text/plain; charset=utf-8"
    : "application/json; charset=utf-8";
  res.writeHead(reply.status, headers).end(isText ? reply.body : JSON.stringify(reply.body));
}
