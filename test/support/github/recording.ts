/**
 * What the simulator remembers of the requests it answered, and the faults
 * tests ask it to answer with instead.
 */
import type { AuthKind } from "./auth.js";
import { error, type Reply } from "./http.js";
import { SECONDARY_RATE_LIMIT } from "./limits.js";

export interface RecordedRequest {
  readonly method: string;
  /** Without the `/api/v3` prefix and the query string: `/repos/acme/payments/issues/7`. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** The parsed JSON body, the raw text of any other body, or `undefined`. */
  readonly body: unknown;
  readonly auth: AuthKind;
  readonly installationId: number | null;
  /** The status answered; 0 when no answer was sent (`noAnswer`). */
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
   * The error answered instead of the endpoint's answer. 500, 502, 503 and
   * 504 are server errors. 403 and 429 are rate limits: a secondary one
   * (GitHub's message and `retry-after`) unless `rateLimit: "primary"`
   * (`x-ratelimit-remaining: 0` and `x-ratelimit-reset`). Absent: the
   * endpoint's own answer, late (`delayMs`) or never (`noAnswer`).
   */
  readonly status?: 500 | 502 | 503 | 504 | 403 | 429;
  /** Seconds, sent as `retry-after` (secondary) or used for `x-ratelimit-reset` (primary). Default 1. */
  readonly retryAfter?: number;
  readonly rateLimit?: "secondary" | "primary";
  /** The answer leaves this many milliseconds late: a slow GitHub. */
  readonly delayMs?: number;
  /**
   * No answer at all: `"hang"` keeps the connection open until the client
   * gives up (or the simulator closes), `"close"` closes it at once. Recorded
   * with status 0.
   */
  readonly noAnswer?: "hang" | "close";
  /**
   * Whether the endpoint does its work (a comment is created) although the
   * client gets the fault: default false with a `status`, true without (a
   * write that happened though its answer came late or never). With a
   * `status`, true is GitHub timing out after the work was done.
   */
  readonly applied?: boolean;
}

/** Faults waiting for their requests, first added first used. */
export class Faults {
  readonly #pending: (Fault & { remaining: number })[] = [];

  add(fault: Fault): void {
    if (fault.status === undefined && fault.delayMs === undefined && !fault.noAnswer) {
      throw new Error("simulator: a fault needs a status, delayMs or noAnswer");
    }
    if (fault.applied === false && fault.status === undefined && !fault.noAnswer) {
      throw new Error(
        "simulator: a fault that does not apply the request needs a status or noAnswer",
      );
    }
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

/**
 * GitHub's answer for a fault: a server error, or a secondary or primary
 * rate limit (of the installation whose token was used, if any).
 */
export function faultReply(
  fault: Fault & { status: number },
  now: Date,
  installationId: number | null,
): Reply {
  const retryAfter = fault.retryAfter ?? 1;
  if (fault.status >= 500)
    return error(fault.status, SERVER_ERRORS[fault.status] ?? "Server Error");
  if (fault.rateLimit === "primary") {
    const reset = Math.ceil(now.getTime() / 1000 + retryAfter);
    return {
      ...error(fault.status, `API rate limit exceeded for installation ID ${installationId ?? 0}.`),
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

const SERVER_ERRORS: Record<number, string> = {
  500: "Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "We couldn't respond to your request in time. Sorry about that. Please try resubmitting your request and contact us if the problem persists.",
};
