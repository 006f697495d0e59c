import { GaveUp, Refusal, Unreachable } from "./errors.js";

export interface RetryOptions {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  /** Wait before the second attempt; doubled before each next one. */
  readonly baseMs: number;
  /** A `retry-after` longer than this is not waited for: the failure stands. */
  readonly maxWaitMs: number;
  /** Told before each wait. */
  readonly onRetry?: (error: Refusal | Unreachable, attempt: number, waitMs: number) => void;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Statuses a later attempt may get past: rate limit, not ready, proxies between runner and server. */
const TRANSIENT_STATUSES = new Set([429, 502, 503, 504]);

export function isTransient(error: unknown): error is Refusal | Unreachable {
  return (
    error instanceof Unreachable ||
    (error instanceof Refusal && TRANSIENT_STATUSES.has(error.status))
  );
}

/**
 * Runs `work` until it succeeds, fails for good, or `attempts` run out.
 * Only transient failures are retried, after an exponential backoff with
 * jitter, or the server's `retry-after` when that is longer. `work` gets the
 * attempt number and must be safe to run again (the exchange asks GitHub for
 * a fresh ID token each time: the server spends each one once).
 *
 * @throws the first non-transient error as it is
 * @throws GaveUp with the last error when the attempts run out, or when the
 *   server asks for a wait longer than `maxWaitMs`
 */
export async function withRetry<T>(
  work: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(attempt);
    } catch (error) {
      if (!isTransient(error)) throw error;
      if (attempt >= options.attempts) throw new GaveUp(attempt, error);
      const backoff = options.baseMs * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4);
      const asked = error instanceof Refusal ? (error.retryAfterS ?? 0) * 1000 : 0;
      if (asked > options.maxWaitMs) throw new GaveUp(attempt, error);
      const waitMs = Math.round(Math.max(backoff, asked));
      options.onRetry?.(error, attempt, waitMs);
      await sleep(waitMs);
    }
  }
}
