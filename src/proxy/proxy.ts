import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type ErrorCode, HallpassError, statusOf } from "#src/errors.js";
import type { Logger } from "#src/log.js";
import { readRequestHeaders, responseHeaders } from "#src/proxy/headers.js";
import type { ProxyMetrics } from "#src/proxy/metrics.js";
import { ClientClosed, relay } from "#src/proxy/relay.js";
import { parseTarget } from "#src/proxy/target.js";
import type { VerifiedToken, VerifiedTokens } from "#src/proxy/tokens.js";
import { type Upstream, upstreamFailure } from "#src/proxy/upstream.js";
import type { UsageWriter } from "#src/proxy/usage-writer.js";
import type { ProxySettings } from "#src/rules/operator.js";
import { matchingScope } from "#src/rules/scopes.js";
import type { Secret } from "#src/secret.js";
import type { ProxyOutcome, ProxyRequestRow } from "#src/store/usage.js";
import type { LiveGrant, LiveGrants } from "#src/tokens/live-grants.js";
import { TokenBuckets } from "#src/tokens/rate-limit.js";

/** A resource the proxy serves. */
export interface ProxyResource {
  readonly name: string;
  /** The `aud` its tokens carry. */
  readonly audience: string;
  readonly upstream: Upstream;
  readonly settings: ProxySettings;
  /** Injected into every forwarded request; `bare` is the value without its prefix. */
  readonly credential: {
    readonly header: string;
    readonly value: Secret;
    readonly bare: Secret;
  } | null;
}

/** What the proxy needs from the database-backed side; null until it is ready. */
export interface ProxyState {
  readonly tokens: VerifiedTokens;
  readonly live: LiveGrants;
  readonly usage: UsageWriter;
}

export interface ProxyOptions {
  readonly resources: ReadonlyMap<string, ProxyResource>;
  /** `host` header values the proxy answers for, lower case (`proxy.example.com`, `localhost:8080`). */
  readonly hosts: ReadonlySet<string>;
  readonly state: () => ProxyState | null;
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
  /** The clock of grant windows and token expiry (tests pin it). */
  readonly now?: () => Date;
}

/** Methods that change nothing: recorded in batches. Every other is recorded before it is forwarded. */
const READS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** The resource label of requests that name none the proxy serves (bounded cardinality). */
export const UNKNOWN_RESOURCE = "(unknown)";
const UNKNOWN = UNKNOWN_RESOURCE;

/**
 * Request ids this process gives: a random prefix, fixed per process, and a
 * counter. Unique across replicas and restarts (the prefix) and within a
 * process (the counter); they need not be unpredictable, and are cheaper
 * than a random UUID per request. Hex, so that each is an id `REQUEST_ID`
 * accepts back from a caller (base64url may start with `-` or `_`).
 */
const ID_PREFIX = randomBytes(9).toString("hex");
let idCounter = 0;
function newRequestId(): string {
  idCounter++;
  return `${ID_PREFIX}.${idCounter.toString(36)}`;
}

/**
 * The largest body limit under which a body without `Content-Length` is
 * held back in memory until it ends, so that one over the limit is refused
 * before anything is forwarded. Past it, such a body is refused (411): the
 * caller announces its length, checked before anything is forwarded.
 */
export const HOLD_BACK_MAX_BYTES = 1024 * 1024;

/** What a request of a grant's token records, once its token verified. */
class Call {
  scope: string | null = null;
  constructor(
    readonly grantId: string,
    readonly jti: string,
    readonly resource: string,
    readonly method: string,
    readonly path: string,
    readonly requestId: string,
    readonly startedAt: number,
    /** `performance.now()` when the request arrived. */
    readonly t0: number,
  ) {}

  /** The row of the request as it ended. */
  row(
    outcome: ProxyOutcome,
    status: number | null,
    bytesIn: number,
    bytesOut: number,
    reason: string | null,
    finishedAt: number,
  ): ProxyRequestRow {
    return {
      grantId: this.grantId,
      jti: this.jti,
      resource: this.resource,
      method: this.method,
      path: this.path,
      scope: this.scope,
      outcome,
      status,
      bytesIn,
      bytesOut,
      latencyUs: Math.round((performance.now() - this.t0) * 1000),
      requestId: this.requestId,
      reason,
      startedAt: this.startedAt,
      finishedAt,
    };
  }
}

/** A refusal: the error code (also the recorded reason), what the caller is told, extra headers. */
interface Refusal {
  readonly code: ErrorCode;
  readonly message: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * The proxy's request handler. For `/<resource>/<path>`, in this order,
 * each failure answered with a JSON error and nothing sent upstream:
 *
 * 1. `host` is the proxy's (421); the target is origin-form (400); the
 *    resource exists and has an upstream (404); the database side is ready (503).
 * 2. Headers: no repeated `authorization`, `host` or `content-length` (400).
 * 3. The token, from `Authorization: Bearer` only (401): verified once per
 *    token until it expires (`VerifiedTokens`), for this resource's audience.
 * 4. Its grant is live and the token not given back (`LiveGrants`; 503 when
 *    the view cannot be sure, 401 when revoked), inside its window.
 * 5. The path, decoded and normalised once (`parseTarget`; 400), and method
 *    + path within the token's permissions (403).
 * 6. The grant's rate limit, one bucket for all its tokens (429 + Retry-After).
 * 7. The body within the resource's limit (413): announced, or held back
 *    until it ends when it came without a length (at most
 *    `HOLD_BACK_MAX_BYTES`; a resource taking more refuses it, 411).
 * 8. Recorded: a mutating request durably before it is forwarded (503 when
 *    that fails); a read only if the usage backlog has room (503).
 * 9. Forwarded with keep-alive: the caller's credentials, hop-by-hop headers
 *    and the operator's cookies removed, the resource's credential and
 *    `x-request-id` set, bodies streamed both ways, never retried.
 *
 * From step 3 on, every request, refused or not, is a `proxy_requests` row.
 */
export function proxyHandler(
  options: ProxyOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const clock = options.now;
  const nowMs = clock ? () => clock().getTime() : Date.now;
  const { metrics, log } = options;
  const buckets = new Map<string, TokenBuckets>();

  return (req, res) => {
    handle(req, res).catch((error) => {
      log.error({ err: error }, "proxy: request failed unexpectedly");
      if (!res.headersSent) {
        answer(req, res, { code: "INTERNAL", message: "internal error" }, newRequestId());
      } else res.destroy();
    });
  };

  /** Sends the JSON error of a refusal; returns its status. */
  function answer(
    req: IncomingMessage,
    res: ServerResponse,
    refusal: Refusal,
    requestId: string,
  ): number {
    const status = statusOf(refusal.code);
    res.statusCode = status;
    res.setHeader("x-request-id", requestId);
    res.setHeader("content-type", "application/json");
    res.setHeader("cache-control", "no-store");
    if (status === 401) {
      res.setHeader("www-authenticate", 'Bearer realm="hallpass", error="invalid_token"');
    } else if (refusal.code === "SCOPE_NOT_GRANTED") {
      res.setHeader("www-authenticate", 'Bearer realm="hallpass", error="insufficient_scope"');
    }
    for (const [name, value] of Object.entries(refusal.headers ?? {})) res.setHeader(name, value);
    // A body left unread cannot be skipped on a kept-alive connection.
    if (!req.complete && hasBody(req)) res.setHeader("connection", "close");
    const body = {
      error: refusal.code,
      message: refusal.message,
      request_id: requestId,
    };
    res.end(JSON.stringify(body));
    return status;
  }

  /** Refuses a request that belongs to no grant (counted, not recorded). */
  function refuse(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    resource: string,
    refusal: Refusal,
  ): void {
    const status = answer(req, res, refusal, requestId);
    metrics.refusal(resource, refusal.code);
    metrics.request(resource, "denied", status);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const startedAt = nowMs();
    const method = req.method ?? "GET";

    // 1. Where the request goes.
    const target = parseTarget(req.url ?? "");
    const resource = target.ok ? options.resources.get(target.resource) : undefined;
    const headers = readRequestHeaders(req.rawHeaders, {
      credentialHeader: resource?.credential?.header ?? null,
      stripCookies: resource?.settings.stripCookies ?? [],
    });
    const incoming = headers.ok ? headers.requestId : undefined;
    const requestId =
      incoming !== undefined && REQUEST_ID.test(incoming) ? incoming : newRequestId();
    const host = headers.ok ? headers.host?.toLowerCase() : undefined;
    if (headers.ok && (host === undefined || !options.hosts.has(host))) {
      return refuse(req, res, requestId, UNKNOWN, {
        code: "PROXY_HOST",
        message: "this proxy does not answer for that host",
      });
    }
    if (!target.ok) {
      const code = target.refusal === "unknown_resource" ? "NOT_FOUND" : "PROXY_REQUEST_TARGET";
      return refuse(req, res, requestId, UNKNOWN, { code, message: target.message });
    }
    if (!resource) {
      return refuse(req, res, requestId, UNKNOWN, {
        code: "NOT_FOUND",
        message: `no such resource: ${target.resource}`,
      });
    }
    const state = options.state();
    if (!state) {
      return refuse(req, res, requestId, resource.name, {
        code: "NOT_READY",
        message: "the proxy is starting: retry shortly",
        headers: { "retry-after": "1" },
      });
    }

    // 2–3. Headers and the token.
    if (!headers.ok) {
      return refuse(req, res, requestId, resource.name, {
        code: "PROXY_HEADERS",
        message: headers.message,
      });
    }
    const token = bearer(headers.authorization);
    if (!token) {
      return refuse(req, res, requestId, resource.name, {
        code: "TOKEN_MISSING",
        message: "send the hallpass token as Authorization: Bearer <token>",
      });
    }
    let verified: VerifiedToken;
    try {
      const found = state.tokens.get(token, req.socket);
      verified = found instanceof Promise ? await found : found;
    } catch (error) {
      const message =
        error instanceof HallpassError && error.expose ? error.message : "invalid token";
      return refuse(req, res, requestId, resource.name, { code: "INVALID_TOKEN", message });
    }

    // From here on the request belongs to a grant: it is recorded, refused or not.
    const record = new Call(
      verified.grantId,
      verified.jti,
      resource.name,
      method,
      target.path ?? printable(target.rawPath),
      requestId,
      startedAt,
      t0,
    );
    const deny = (refusal: Refusal): void => {
      const status = answer(req, res, refusal, requestId);
      metrics.refusal(resource.name, refusal.code);
      metrics.request(resource.name, "denied", status);
      state.usage.add(record.row("denied", status, 0, 0, refusal.code, nowMs()), false);
    };
    if (verified.audience !== resource.audience || verified.resource !== resource.name) {
      return deny({
        code: "INVALID_TOKEN",
        message: `invalid token: it is for another resource than ${resource.name}`,
      });
    }

    // 4. The grant, as the live view has it.
    const found = state.live.standing(verified.grantId, verified.jti);
    const standing = found instanceof Promise ? await found : found;
    if (standing.kind === "unsure") {
      return deny({
        code: "GRANT_STATUS_UNKNOWN",
        message:
          "the proxy cannot confirm that the grant is still active (its database does not answer): retry shortly",
        headers: { "retry-after": "1" },
      });
    }
    if (standing.kind === "dead") {
      return deny({
        code: "TOKEN_REVOKED",
        message:
          standing.why === "released"
            ? "this token was given back"
            : "the grant of this token is no longer active",
      });
    }
    const grant = standing.grant;
    const at = nowMs();
    if (grant.audience !== verified.audience || verified.expiresAt <= at) {
      return deny({ code: "INVALID_TOKEN", message: "invalid token: expired" });
    }
    if (at < grant.startsAt) {
      return deny({
        code: "GRANT_NOT_ACTIVE",
        message: `the grant starts at ${new Date(grant.startsAt).toISOString()}`,
      });
    }
    if (at >= grant.endsAt) {
      return deny({ code: "TOKEN_REVOKED", message: "the grant of this token has ended" });
    }

    // 5. What the request does, against what the token allows.
    if (target.path === null) {
      return deny({ code: "PROXY_PATH", message: `path refused: ${target.pathProblem}` });
    }
    const scope = matchingScope(verified.permissions, method, target.path);
    if (!scope) {
      return deny({
        code: "SCOPE_NOT_GRANTED",
        message: `${method} ${target.path} is not within this token's permissions`,
      });
    }
    record.scope = scope.text;

    // 6. The grant's rate.
    if (grant.rateLimit) {
      const taken = bucketsFor(buckets, grant.rateLimit).take(grant.id);
      if (!taken.ok) {
        return deny({
          code: "RATE_LIMITED",
          message: `this grant allows ${grant.rateLimit.count} requests per ${grant.rateLimit.perSeconds} s; retry in ${taken.retryAfterS} s`,
          headers: { "retry-after": String(taken.retryAfterS) },
        });
      }
    }

    // 7. The body's size: announced, or (chunked) held back here until it ends.
    let length = contentLength(headers.contentLength);
    const limit = resource.settings.maxRequestBodyBytes;
    if (length !== null && length > limit) {
      return deny({
        code: "PAYLOAD_TOO_LARGE",
        message: `the request body is larger than ${limit} bytes`,
      });
    }
    let held: Buffer | null = null;
    if (length === null && headers.chunked) {
      if (limit > HOLD_BACK_MAX_BYTES) {
        return deny({
          code: "LENGTH_REQUIRED",
          message: `send the body with a Content-Length: this resource takes bodies of up to ${limit} bytes, and without a Content-Length at most ${HOLD_BACK_MAX_BYTES}`,
        });
      }
      const body = await holdBack(req, limit);
      if (body === "too_large") {
        return deny({
          code: "PAYLOAD_TOO_LARGE",
          message: `the request body is larger than ${limit} bytes`,
        });
      }
      if (body === "closed") {
        metrics.request(resource.name, "failed", null);
        state.usage.add(record.row("failed", null, 0, 0, "client_closed", nowMs()), false);
        return;
      }
      held = body;
      length = body.length;
    }

    // 8. Recorded before anything is sent.
    let rowId: number | null = null;
    if (READS.has(method)) {
      if (!state.usage.reserve()) {
        return refuse(req, res, requestId, resource.name, {
          code: "USAGE_UNAVAILABLE",
          message: "the proxy cannot record more requests right now: retry shortly",
          headers: { "retry-after": "1" },
        });
      }
    } else {
      try {
        rowId = await state.usage.writeNow({
          ...record.row("forwarding", null, 0, 0, null, startedAt),
          bytesIn: null,
          bytesOut: null,
          latencyUs: null,
          finishedAt: null,
        });
      } catch (error) {
        log.warn(
          { err: error, resource: resource.name },
          "proxy: cannot record a request; refused",
        );
        return refuse(req, res, requestId, resource.name, {
          code: "USAGE_UNAVAILABLE",
          message: "the proxy cannot record this request, so it is not forwarded: retry shortly",
          headers: { "retry-after": "1" },
        });
      }
    }

    // 9. Forward, then record how it ended.
    const end = await forward(req, res, resource, {
      path: resource.upstream.basePath + target.forward,
      requestId,
      length,
      held,
      forwardHeaders: headers.forward,
    });
    metrics.request(resource.name, end.outcome, end.status);
    if (end.reason?.startsWith("UPSTREAM_")) {
      metrics.refusal(resource.name, end.reason);
    }
    const finishedAt = nowMs();
    if (rowId === null) {
      state.usage.add(
        record.row(end.outcome, end.status, end.bytesIn, end.bytesOut, end.reason, finishedAt),
        true,
      );
    } else {
      state.usage.complete({
        id: rowId,
        ...end,
        latencyUs: Math.round((performance.now() - t0) * 1000),
        finishedAt,
      });
    }
  }

  /** Sends the request upstream and streams the answer back; says how it ended. */
  async function forward(
    req: IncomingMessage,
    res: ServerResponse,
    resource: ProxyResource,
    f: {
      path: string;
      requestId: string;
      /** The announced length, or the held-back body's. */
      length: number | null;
      /** The body, when it was held back (it came without a length). */
      held: Buffer | null;
      forwardHeaders: string[];
    },
  ): Promise<{
    outcome: Exclude<ProxyOutcome, "forwarding">;
    status: number | null;
    bytesIn: number;
    bytesOut: number;
    reason: string | null;
  }> {
    const headers = f.forwardHeaders;
    headers.push("host", resource.upstream.host, "x-request-id", f.requestId);
    // A held-back body goes with its length; a chunked one never reaches here unread.
    if (f.length !== null && (f.length > 0 || f.held !== null)) {
      headers.push("content-length", String(f.length));
    }
    if (resource.credential) {
      headers.push(resource.credential.header, resource.credential.value.reveal());
    }

    let bytesIn = 0;
    let body: Transform | Buffer | null = null;
    if (f.held !== null) {
      body = f.held;
      bytesIn = f.held.length;
    } else if (f.length !== null && f.length > 0) {
      // Node's parser reads exactly the announced length: it was checked against the limit.
      body = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          bytesIn += chunk.length;
          done(null, chunk);
        },
      });
      // A failure on either side ends the upstream request; it is reported below.
      pipeline(req, body).catch(() => {});
    }
    const sentAt = performance.now();
    const bare = resource.credential?.bare.reveal() ?? null;
    const relayed = await relay(
      resource.upstream.pool,
      { path: f.path, method: req.method ?? "GET", headers, body },
      res,
      (upstream) => responseHeaders(upstream, bare, f.requestId),
      () => metrics.upstream(resource.name, performance.now() - sentAt),
    );
    const { bytesOut, error } = relayed;
    if (!error)
      return { outcome: "forwarded", status: relayed.status, bytesIn, bytesOut, reason: null };
    let status = relayed.status;
    let reason: string;
    if (error instanceof ClientClosed) {
      reason = "client_closed";
    } else if (res.headersSent) {
      // The caller has the status already: all that is left is to cut the answer short.
      reason = "upstream_interrupted";
      res.destroy();
    } else {
      const failure = upstreamFailure(error);
      reason = failure.code;
      status = answer(req, res, failure, f.requestId);
      log.warn(
        { err: error, resource: resource.name, requestId: f.requestId },
        "proxy: the upstream did not answer",
      );
    }
    return { outcome: "failed", status, bytesIn, bytesOut, reason };
  }
}

function bucketsFor(
  buckets: Map<string, TokenBuckets>,
  limit: NonNullable<LiveGrant["rateLimit"]>,
): TokenBuckets {
  const key = `${limit.count}/${limit.perSeconds}`;
  let found = buckets.get(key);
  if (!found) {
    found = new TokenBuckets({ count: limit.count, perSeconds: limit.perSeconds });
    buckets.set(key, found);
  }
  return found;
}

/**
 * The token of `Authorization: Bearer <token>`, or null. Its form is left to
 * the verification (a malformed token is refused there, once).
 */
function bearer(authorization: string | undefined): string | null {
  if (authorization === undefined || authorization.length < 8) return null;
  if (authorization.slice(0, 7).toLowerCase() !== "bearer ") return null;
  return authorization.slice(7);
}

/**
 * Reads a body that came without a length, at most `limit` bytes of it:
 * the body, `too_large` as soon as it grows past the limit (the rest is left
 * unread, and the connection closed after the answer), or `closed` when the
 * caller went away first.
 */
function holdBack(req: IncomingMessage, limit: number): Promise<Buffer | "too_large" | "closed"> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (result: Buffer | "too_large" | "closed") => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onClose);
      req.off("close", onClose);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        done("too_large");
      } else chunks.push(chunk);
    };
    const onEnd = () => done(Buffer.concat(chunks, size));
    const onClose = () => done("closed");
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onClose);
    req.on("close", onClose);
  });
}

/** Whether the request comes with a body (announced, or chunked). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
}

/** The announced body length; null when there is none (chunked, or no body). */
function contentLength(value: string | undefined): number | null {
  if (value === undefined) return null;
  return /^\d{1,15}$/.test(value) ? Number(value) : null;
}

/** The path as sent, made safe to store: anything but printable ASCII percent-encoded. */
function printable(raw: string): string {
  return /^[\x21-\x7e]*$/.test(raw)
    ? raw
    : raw.replace(/[^\x21-\x7e]/gu, (c) =>
        encodeURIComponent(c).replace(/%(?![0-9A-F]{2})/g, "%25"),
      );
}
