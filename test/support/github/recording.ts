/**
 * What the simulator remembers of the requests it answered, and the faults
 * tests ask it to answer with instead.
 */
import type { AuthKind } from "./auth.js";
import { error, type Reply } from "./http.js";

export interface RecordedRequest {
  readonly method: string;
  /** Without the `/api/v3` prefix and the query string: `/repos/acme/payments/issues/7`. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** The parsed JSON body, the raw text of any other body, or `undefined`. */
  readonly body: unknown;
  readonly auth: AuthKind;
  readonly installationId: number | null;
  readonly status: number;
  /** Answered by `failNext`, not by the endpoint. */
  readonly fault: boolean;
  /** No endpoint of the simulator serves it (answered 404). */
  readonly unexpected: boolean;
  /** Wall-clock time the request arrived (ms since epoch), for measuring retry delays. */
  readonly at: number;
}

export interface RequestFilter {
  readonly method?: string;
  /** The exact path (without `/api/v3` and query), or a pattern. */
  readonly path?: string | RegExp;
  readonly status?: number;
}

export interface Fault {
  readonly method?: string;
  /** The exact path (without `/api/v3` and query), or a pattern. */
  readonly path: string | RegExp;
  /** How many matching requests fail (default 1). */
  readonly times?: number;
  /**
   * 500 and 502 are server errors. 403 and 429 are rate limits: a secondary
   * one (GitHub's message and `retry-after`) unless `rateLimit: "primary"`
   * (`x-ratelimit-remaining: 0` and `x-ratelimit-reset`).
   */
  readonly status: 500 | 502 | 403 | 429;
  /** Seconds, sent as `retry-after` (secondary) or used for `x-ratelimit-reset` (primary). Default 1. */
  readonly retryAfter?: number;
  readonly rateLimit?: "secondary" | "primary";
}

/** Faults waiting for their requests, first added first used. */
export class Faults {
  readonly #pending: (Fault & { remaining: number })[] = [];

  add(fault: Fault): void {
    this.#pending.push({ ...fault, remaining: fault.times ?? 1 });
  }

  clear(): void {
    this.#pending.length = 0;
  }

  /** The fault this request meets, if any; each use counts against its `times`. */
  take(method: string, path: string): Fault | null {
    const fault = this.#pending.find((f) =>
      matches({ method: f.method, path: f.path }, { method, path }),
    );
    if (!fault) return null;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.#pending.splice(this.#pending.indexOf(fault), 1);
    return fault;
  }
}

export function matches(
  filter: RequestFilter,
  request: { method: string; path: string; status?: number },
): boolean {
  if (filter.method && filter.method.toUpperCase() !== request.method) return false;
  if (filter.status !== undefined && filter.status !== request.status) return false;
  if (filter.path === undefined) return true;
  return typeof filter.path === "string"
    ? filter.path === request.path
    : filter.path.test(request.path);
}

const SECONDARY_RATE_LIMIT =
  "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.";

/** GitHub's answer for a fault: a server error, or a secondary or primary rate limit. */
export function faultReply(fault: Fault, now: Date): Reply {
  const retryAfter = fault.retryAfter ?? 1;
  if (fault.status === 500 || fault.status === 502) {
    return error(fault.status, fault.status === 500 ? "Server Error" : "Bad Gateway");
  }
  if (fault.rateLimit === "primary") {
    const reset = Math.ceil(now.getTime() / 1000 + retryAfter);
    return {
      ...error(fault.status, "API rate limit exceeded for installation."),
      headers: {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-used": "5000",
        "x-ratelimit-reset": String(reset),
        "x-ratelimit-resource": "core",
      },
    };
  }
  return {
    status: fault.status,
    body: {
      message: SECONDARY_RATE_LIMIT,
      documentation_url:
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
    },
    headers: { "retry-after": String(retryAfter) },
  };
}
