import { HallpassError } from "#src/errors.js";

export type TokenBucketsOptions = (
  | {
      /** Requests per minute, sustained; also the burst a quiet key may spend at once. */
      readonly perMinute: number;
    }
  | {
      /** `count` requests per `perSeconds` seconds, sustained; `count` is also the burst. */
      readonly count: number;
      readonly perSeconds: number;
    }
) & {
  /** Most keys tracked; past it, full buckets (which hold no information) are dropped. */
  readonly maxKeys?: number;
  readonly now?: () => number;
};

/**
 * Token buckets by key (a repository, user or grant id), in this process's
 * memory: with several replicas, each allows the full rate, so the limit a
 * caller meets is the rate times the replicas it reaches.
 *
 * Why not `@fastify/rate-limit`: its key is computed from the request before
 * the handler runs, and the keys here (repository id, user id) are known only
 * after the caller's token was verified; keyed by an unverified claim, anyone
 * could spend another repository's budget.
 */
export class TokenBuckets {
  readonly #capacity: number;
  readonly #perMs: number;
  readonly #per: string;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: TokenBucketsOptions) {
    const [count, perSeconds] =
      "perMinute" in options ? [options.perMinute, 60] : [options.count, options.perSeconds];
    if (!(count > 0) || !(perSeconds > 0)) throw new RangeError("the rate must be positive");
    this.#capacity = count;
    this.#perMs = count / (perSeconds * 1000);
    this.#per =
      perSeconds === 60 ? "a minute" : perSeconds === 1 ? "a second" : `per ${perSeconds} s`;
    this.#maxKeys = options.maxKeys ?? 100_000;
    this.#now = options.now ?? Date.now;
  }

  /** Spends one token of `key`'s bucket; when it is empty, how long until one is back. */
  take(key: string): { ok: true } | { ok: false; retryAfterS: number } {
    const now = this.#now();
    const bucket = this.#buckets.get(key);
    const tokens = bucket
      ? Math.min(this.#capacity, bucket.tokens + (now - bucket.at) * this.#perMs)
      : this.#capacity;
    if (tokens < 1) {
      if (bucket) {
        bucket.tokens = tokens;
        bucket.at = now;
      }
      return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - tokens) / this.#perMs / 1000)) };
    }
    if (bucket) {
      bucket.tokens = tokens - 1;
      bucket.at = now;
    } else {
      this.#buckets.set(key, { tokens: tokens - 1, at: now });
      if (this.#buckets.size > this.#maxKeys) this.#prune(now);
    }
    return { ok: true };
  }

  /** Seconds until `key` has a token again, or 0 when it has one now; spends nothing. */
  waitFor(key: string): number {
    const bucket = this.#buckets.get(key);
    if (!bucket) return 0;
    const tokens = Math.min(
      this.#capacity,
      bucket.tokens + (this.#now() - bucket.at) * this.#perMs,
    );
    return tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / this.#perMs / 1000));
  }

  /**
   * Spends one token or throws RATE_LIMITED (429); `onLimited` receives the
   * seconds to wait (for `retry-after`).
   */
  spend(key: string, what: string, onLimited?: (retryAfterS: number) => void): void {
    const outcome = this.take(key);
    if (outcome.ok) return;
    onLimited?.(outcome.retryAfterS);
    throw new HallpassError(
      "RATE_LIMITED",
      `too many token requests for ${what}: at most ${this.#capacity} ${this.#per}; retry in ${outcome.retryAfterS} s`,
    );
  }

  #prune(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + (now - bucket.at) * this.#perMs >= this.#capacity) {
        this.#buckets.delete(key);
      }
    }
    // Still too many: every key is busy; forget the oldest.
    for (const key of this.#buckets.keys()) {
      if (this.#buckets.size <= this.#maxKeys) break;
      this.#buckets.delete(key);
    }
  }
}
