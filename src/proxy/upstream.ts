import { errors, Pool } from "undici";
import type { ErrorCode } from "#src/errors.js";
import type { ProxySettings } from "#src/rules/operator.js";

/** One resource's upstream: a keep-alive pool and where its paths go. */
export interface Upstream {
  readonly pool: Pool;
  /** The URL's path without a trailing `/` (`""` for the root): prefixed to every forwarded path. */
  readonly basePath: string;
  /** The upstream's own `host`, sent instead of the caller's. */
  readonly host: string;
}

/** Connections kept per upstream; requests beyond them wait in the pool's queue. */
const CONNECTIONS = 256;

/**
 * A keep-alive connection pool to `url` (undici), trusting `ca` for TLS
 * when given, with the resource's timeouts: connect (TCP and TLS), headers
 * (request sent → response headers) and body (longest pause between body
 * chunks). Nothing is retried: a request the upstream may have acted on is
 * never sent twice.
 */
export function openUpstream(url: string, settings: ProxySettings, ca: string | null): Upstream {
  const parsed = new URL(url);
  const pool = new Pool(parsed.origin, {
    connections: CONNECTIONS,
    pipelining: 1,
    headersTimeout: settings.timeouts.headersMs,
    bodyTimeout: settings.timeouts.bodyMs,
    keepAliveTimeout: 30_000,
    connect: {
      timeout: settings.timeouts.connectMs,
      ...(ca ? { ca } : {}),
    },
  });
  return { pool, basePath: parsed.pathname.replace(/\/+$/, ""), host: parsed.host };
}

/** What the caller is told when the upstream did not answer: 504 for a timeout, else 502. */
export function upstreamFailure(error: unknown): { code: ErrorCode; message: string } {
  if (
    error instanceof errors.ConnectTimeoutError ||
    error instanceof errors.HeadersTimeoutError ||
    error instanceof errors.BodyTimeoutError
  ) {
    const phase =
      error instanceof errors.ConnectTimeoutError
        ? "connecting to"
        : error instanceof errors.HeadersTimeoutError
          ? "waiting for the answer of"
          : "reading the answer of";
    return { code: "UPSTREAM_TIMEOUT", message: `timed out ${phase} the upstream` };
  }
  return { code: "UPSTREAM_UNAVAILABLE", message: "the upstream could not be reached or failed" };
}
