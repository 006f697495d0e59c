/** When to try a failed GitHub write again, and when to give up. */
export interface RetryPolicy {
  /** Attempts before giving up, this one included. */
  readonly maxAttempts: number;
  /** Delay after the first failure; doubles with each attempt up to `maxBackoffMs`. */
  readonly baseMs: number;
  readonly maxBackoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 10, baseMs: 2_000, maxBackoffMs: 600_000 };

/** The retry-after of a rate limit is honoured up to this; past it, GitHub is asking for too long. */
const MAX_WAIT_MS = 3_600_000;
/**
 * GitHub's advice for a secondary rate limit that says nothing of when: at
 * least a minute, longer each time it goes on.
 */
const SECONDARY_WITHOUT_RETRY_AFTER_MS = 60_000;

export type RetryDecision =
  | {
      readonly retryInMs: number;
      readonly why: string;
      /**
       * GitHub refused the request with a rate limit: nothing was done, the
       * whole installation should wait (its limits count per installation),
       * and the attempt does not count as a failure.
       */
      readonly rateLimit?: "primary" | "secondary";
    }
  | { readonly retryInMs: null; readonly why: string };

/**
 * Decides what to do after a failed attempt:
 *
 * - 429, and 403 for a secondary rate limit or an exhausted primary one: wait
 *   what `retry-after` (or `x-ratelimit-reset`) says; a secondary limit that
 *   says neither, a minute, doubling with each `throttled` before. Never
 *   given up: a backlog waits as long as GitHub asks.
 * - 5xx and network errors (no status): back off exponentially.
 * - Any other 4xx is permanent: 401/403 (installation deleted or suspended,
 *   permission missing), 404/410 (ticket or repository gone), 422 (GitHub
 *   refuses the content). Retrying would fail the same way.
 * - After `maxAttempts` (rate limits not counted), give up.
 *
 * @param attempts failed attempts, this one included, rate limits not counted
 * @param throttled earlier attempts refused by a rate limit
 */
export function whenToRetry(
  error: unknown,
  attempts: number,
  policy: RetryPolicy = DEFAULT_RETRY,
  throttled = 0,
): RetryDecision {
  const failure = describeFailure(error);
  const status = failure.status;
  if (status !== null && isRateLimited(status, failure)) {
    const secondary = /secondary rate limit/i.test(failure.message);
    const again = Math.min(SECONDARY_WITHOUT_RETRY_AFTER_MS * 2 ** throttled, MAX_WAIT_MS);
    const backoff = Math.min(Math.max(policy.baseMs * 2 ** throttled, 1_000), policy.maxBackoffMs);
    return {
      retryInMs: rateLimitWait(failure.headers) ?? (secondary ? again : backoff),
      why: secondary ? "secondary rate limit" : "rate limit",
      rateLimit: secondary ? "secondary" : "primary",
    };
  }
  const backoff = Math.min(policy.baseMs * 2 ** Math.max(0, attempts - 1), policy.maxBackoffMs);
  let decision: RetryDecision;
  if (status === null || status >= 500) {
    decision = {
      retryInMs: backoff,
      why: status === null ? "no answer from GitHub" : `GitHub answered ${status}`,
    };
  } else {
    return { retryInMs: null, why: `GitHub answered ${status}: permanent` };
  }
  if (attempts >= policy.maxAttempts)
    return { retryInMs: null, why: `${decision.why}; gave up after ${attempts} attempts` };
  return decision;
}

/**
 * When an answer says the installation's primary limit is spent
 * (`x-ratelimit-remaining: 0`): milliseconds until `x-ratelimit-reset`, so
 * that the next request is not refused. Null while requests remain.
 */
export function untilReset(headers: Failure["headers"]): number | null {
  if (String(headers["x-ratelimit-remaining"]) !== "0") return null;
  return rateLimitWait({
    "x-ratelimit-remaining": "0",
    "x-ratelimit-reset": headers["x-ratelimit-reset"],
  });
}

export interface Failure {
  readonly status: number | null;
  readonly message: string;
  readonly headers: Readonly<Record<string, string | number | undefined>>;
}

/**
 * The parts of an Octokit `RequestError` worth keeping: never its `request`,
 * which holds the body that was sent (a comment) and the authorization header.
 * An error without a `response` got no answer (a timeout, a dropped
 * connection: Octokit calls those 500): its status is null.
 */
export function describeFailure(error: unknown): Failure {
  const e = error as {
    status?: unknown;
    message?: unknown;
    response?: {
      headers?: Record<string, string | number | undefined>;
      data?: { message?: unknown };
    };
  };
  const answered = typeof e?.status === "number" && e.status >= 100 && e.response !== undefined;
  const status = answered ? (e.status as number) : null;
  const apiMessage =
    typeof e?.response?.data?.message === "string" ? e.response.data.message : null;
  const message = apiMessage ?? (typeof e?.message === "string" ? e.message : String(error));
  return { status, message: message.slice(0, 500), headers: e?.response?.headers ?? {} };
}

function isRateLimited(status: number, failure: Failure): boolean {
  if (status === 429) return true;
  if (status !== 403) return false;
  return (
    /rate limit/i.test(failure.message) || String(failure.headers["x-ratelimit-remaining"]) === "0"
  );
}

/**
 * Milliseconds to wait as GitHub asks: `retry-after` seconds, or until
 * `x-ratelimit-reset` and a second more (GitHub's clock and this one may
 * differ); never less than a second, so that a `retry-after: 0` or a reset
 * already past on this clock cannot spin.
 */
function rateLimitWait(headers: Failure["headers"]): number | null {
  const retryAfter = Number(headers["retry-after"]);
  if (headers["retry-after"] !== undefined && Number.isFinite(retryAfter) && retryAfter >= 0) {
    return Math.min(Math.max(Math.ceil(retryAfter * 1000), 1_000), MAX_WAIT_MS);
  }
  const reset = Number(headers["x-ratelimit-reset"]);
  if (String(headers["x-ratelimit-remaining"]) === "0" && Number.isFinite(reset)) {
    return Math.min(Math.max(reset * 1000 - Date.now() + 1_000, 1_000), MAX_WAIT_MS);
  }
  return null;
}
