import type { IncomingHttpHeaders } from "node:http";

/**
 * What of the caller's headers reaches the upstream, and what of the
 * upstream's reaches the caller (RFC 9110 §7.6.1 for hop-by-hop headers).
 */

/** Hop-by-hop: meaningful for one connection only, never forwarded either way. */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Never forwarded to the upstream: the caller's credential, headers the
 * proxy sets itself, and `expect` (the proxy answers `100-continue` itself).
 */
const NOT_FORWARDED: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  "authorization",
  "host",
  "content-length",
  "expect",
  "x-request-id",
]);

export interface RequestHeadersOptions {
  /** The header the resource's credential is injected in (lower case); the caller's copy goes. */
  readonly credentialHeader: string | null;
  /** Cookie names (lower case) removed from the caller's `cookie` header. */
  readonly stripCookies: readonly string[];
}

export type ReadHeaders =
  | {
      readonly ok: true;
      /** Name/value pairs to forward, flat: `[name, value, name, value, ...]`. */
      readonly forward: string[];
      readonly authorization: string | undefined;
      readonly host: string | undefined;
      /** The caller's `x-request-id`, if it sent exactly one. */
      readonly requestId: string | undefined;
      readonly contentLength: string | undefined;
      /** Whether it sent `transfer-encoding: chunked` (the only one accepted). */
      readonly chunked: boolean;
    }
  | { readonly ok: false; readonly message: string };

/**
 * One pass over the caller's raw headers (the proxy never builds Node's
 * `req.headers`): refuses repeated single-valued headers (Node keeps only
 * the first `authorization`, an upstream might take the last), reads the
 * few the proxy needs, and keeps those to forward: all but the hop-by-hop
 * ones and every header `connection` names, the caller's credential, the
 * header the resource's credential goes in, and the cookies the operator
 * named.
 */
export function readRequestHeaders(
  rawHeaders: readonly string[],
  options: RequestHeadersOptions,
): ReadHeaders {
  let authorization: string | undefined;
  let host: string | undefined;
  let contentLength: string | undefined;
  let requestId: string | undefined;
  let requestIds = 0;
  let chunked = false;
  let named: string[] | null = null;
  const forward: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const raw = rawHeaders[i] as string;
    const name = raw.toLowerCase();
    let value = rawHeaders[i + 1] as string;
    if (name === "authorization") {
      if (authorization !== undefined) return repeated(name);
      authorization = value;
      continue;
    }
    if (name === "host") {
      if (host !== undefined) return repeated(name);
      host = value;
      continue;
    }
    if (name === "content-length") {
      if (contentLength !== undefined) return repeated(name);
      contentLength = value;
      continue;
    }
    if (name === "x-request-id") {
      requestId = value;
      requestIds++;
      continue;
    }
    if (name === "transfer-encoding") {
      // Any other coding (or a list) is read differently by different parsers (RFC 9112 §6.3).
      if (chunked || value.trim().toLowerCase() !== "chunked") {
        return { ok: false, message: "the request's transfer-encoding is not chunked alone" };
      }
      chunked = true;
    }
    if (name === "connection") {
      named = listed(value, named);
      continue;
    }
    if (NOT_FORWARDED.has(name) || name === options.credentialHeader) {
      continue;
    }
    if (name === "cookie" && options.stripCookies.length > 0) {
      value = stripCookies(value, options.stripCookies);
      if (value === "") continue;
    }
    forward.push(raw, value);
  }
  // Headers `connection` names are hop-by-hop too (rare beyond keep-alive and close).
  if (named !== null) {
    for (let i = forward.length - 2; i >= 0; i -= 2) {
      if (named.includes((forward[i] as string).toLowerCase())) forward.splice(i, 2);
    }
  }
  return {
    ok: true,
    forward,
    authorization,
    host,
    requestId: requestIds === 1 ? requestId : undefined,
    contentLength,
    chunked,
  };
}

function repeated(name: string): ReadHeaders {
  return { ok: false, message: `the request repeats the ${name} header` };
}

/** Adds the header names a `connection` value lists, beyond `keep-alive` and `close`. */
function listed(value: string, into: string[] | null): string[] | null {
  if (value === "keep-alive" || value === "close") return into;
  let names = into;
  for (const token of value.split(",")) {
    const name = token.trim().toLowerCase();
    if (name === "" || name === "keep-alive" || name === "close") continue;
    names ??= [];
    names.push(name);
  }
  return names;
}

/** The `cookie` header without the named cookies (names compared case-insensitively). */
export function stripCookies(header: string, names: readonly string[]): string {
  return header
    .split(";")
    .filter((pair) => {
      const name = pair.slice(0, pair.indexOf("=") === -1 ? undefined : pair.indexOf("=")).trim();
      return name !== "" && !names.includes(name.toLowerCase());
    })
    .map((pair) => pair.trim())
    .join("; ");
}

/**
 * The upstream's response headers for the caller: without hop-by-hop ones
 * (and those its `connection` names), without any header whose value
 * carries the injected credential (an upstream echoing it back), and with
 * the request's id.
 */
export function responseHeaders(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  credential: string | null,
  requestId: string,
): Record<string, string | string[]> {
  const connection = headers.connection;
  const named =
    connection === undefined
      ? null
      : listed(Array.isArray(connection) ? connection.join(",") : connection, null);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || name === "x-request-id") continue;
    if (named?.includes(name) || (credential !== null && carries(value, credential))) continue;
    out[name] = value;
  }
  out["x-request-id"] = requestId;
  return out;
}

function carries(value: string | string[], credential: string): boolean {
  return Array.isArray(value)
    ? value.some((v) => v.includes(credential))
    : value.includes(credential);
}
