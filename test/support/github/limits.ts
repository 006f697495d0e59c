/**
 * GitHub's REST rate limits, as the simulator enforces them when asked
 * (`GitHubSimulator.start({ limits: {} })`, or `sim.limits = {}` at any time):
 *
 * - the primary limit: every request made with an installation's tokens
 *   counts against that installation (GitHub: 5,000 an hour), in a window
 *   that starts with the first request and ends `windowMs` later
 *   (`x-ratelimit-reset`); every answer says where the count stands;
 * - the secondary limits on content creation: `POST`, `PATCH`, `PUT` and
 *   `DELETE` with an installation's tokens (GitHub: 80 a minute and 500 an
 *   hour). GitHub counts them per user or App identity; here they count per
 *   installation, like the primary limit.
 *
 * Windows are fixed, each starting with the first request after the last one
 * ended, and count in wall-clock time even when the model's `now` is pinned:
 * clients wait in wall-clock time for what `retry-after` and
 * `x-ratelimit-reset` tell them.
 */
import type { Reply } from "./http.js";

export interface RateLimits {
  readonly primary?: {
    /** Requests per window. GitHub: 5,000 (15,000 on Enterprise Cloud; more with many repositories or users). */
    readonly limit?: number;
    /** Default an hour. */
    readonly windowMs?: number;
  };
  readonly secondary?: {
    /** Content-creating requests per `minuteMs`. GitHub: 80. */
    readonly perMinute?: number;
    readonly minuteMs?: number;
    /** Content-creating requests per `hourMs`. GitHub: 500. */
    readonly perHour?: number;
    readonly hourMs?: number;
    /**
     * Whether a refusal says `retry-after` (seconds, rounded up). GitHub's
     * documentation allows for it to be absent; clients should then wait at
     * least a minute. Default true.
     */
    readonly retryAfter?: boolean;
  };
  /** The status of a refusal; GitHub documents 403 and 429. Default 403. */
  readonly status?: 403 | 429;
}

/** Where an installation's primary limit stands, as the `x-ratelimit-*` headers say it. */
export interface RateLimitState {
  readonly limit: number;
  readonly used: number;
  readonly remaining: number;
  /** Epoch seconds. */
  readonly reset: number;
}

interface Window {
  start: number;
  count: number;
}

const RATE_LIMIT_DOCS =
  "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits";

export const SECONDARY_RATE_LIMIT =
  "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.";

const CONTENT_METHODS = new Set(["POST", "PATCH", "PUT", "DELETE"]);

/** Counts requests per installation and refuses those over a limit. */
export class RateLimiter {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #perMinute: number;
  readonly #minuteMs: number;
  readonly #perHour: number;
  readonly #hourMs: number;
  readonly #retryAfter: boolean;
  readonly #status: 403 | 429;
  readonly #clock: () => number;
  readonly #primary = new Map<number, Window>();
  readonly #minute = new Map<number, Window>();
  readonly #hour = new Map<number, Window>();

  constructor(limits: RateLimits, clock: () => number = Date.now) {
    this.#limit = limits.primary?.limit ?? 5_000;
    this.#windowMs = limits.primary?.windowMs ?? 3_600_000;
    this.#perMinute = limits.secondary?.perMinute ?? 80;
    this.#minuteMs = limits.secondary?.minuteMs ?? 60_000;
    this.#perHour = limits.secondary?.perHour ?? 500;
    this.#hourMs = limits.secondary?.hourMs ?? 3_600_000;
    this.#retryAfter = limits.secondary?.retryAfter ?? true;
    this.#status = limits.status ?? 403;
    this.#clock = clock;
  }

  /**
   * Counts a request of the installation. Returns the `x-ratelimit-*`
   * headers of its answer, and the refusal to answer instead when it is
   * over a limit. A request refused by the primary limit is not counted
   * (the count stays at the limit); one refused by a secondary limit counts
   * against the primary limit, not as content.
   */
  admit(
    installationId: number,
    method: string,
  ): { headers: Record<string, string>; refused: Reply | null } {
    const now = this.#clock();
    const primary = current(this.#primary, installationId, this.#windowMs, now);
    if (primary.count >= this.#limit) {
      const headers = this.#headers(primary);
      return {
        headers,
        refused: {
          status: this.#status,
          body: {
            message: `API rate limit exceeded for installation ID ${installationId}.`,
            documentation_url: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            status: String(this.#status),
          },
          headers,
        },
      };
    }
    primary.count += 1;
    const headers = this.#headers(primary);
    if (!CONTENT_METHODS.has(method)) return { headers, refused: null };

    const minute = current(this.#minute, installationId, this.#minuteMs, now);
    const hour = current(this.#hour, installationId, this.#hourMs, now);
    const full = [
      ...(minute.count >= this.#perMinute ? [minute.start + this.#minuteMs] : []),
      ...(hour.count >= this.#perHour ? [hour.start + this.#hourMs] : []),
    ];
    if (full.length === 0) {
      minute.count += 1;
      hour.count += 1;
      return { headers, refused: null };
    }
    const retryAfter = Math.max(1, Math.ceil((Math.max(...full) - now) / 1000));
    return {
      headers,
      refused: {
        status: this.#status,
        body: { message: SECONDARY_RATE_LIMIT, documentation_url: RATE_LIMIT_DOCS },
        headers: {
          ...headers,
          ...(this.#retryAfter ? { "retry-after": String(retryAfter) } : {}),
        },
      },
    };
  }

  /** The installation's primary limit now (a fresh window when none is running). */
  state(installationId: number): RateLimitState {
    const window = current(this.#primary, installationId, this.#windowMs, this.#clock());
    return {
      limit: this.#limit,
      used: window.count,
      remaining: Math.max(0, this.#limit - window.count),
      reset: resetOf(window, this.#windowMs),
    };
  }

  /** Content-creating requests counted in the installation's current minute and hour windows. */
  content(installationId: number): { minute: number; hour: number } {
    const now = this.#clock();
    return {
      minute: current(this.#minute, installationId, this.#minuteMs, now).count,
      hour: current(this.#hour, installationId, this.#hourMs, now).count,
    };
  }

  #headers(window: Window): Record<string, string> {
    return {
      "x-ratelimit-limit": String(this.#limit),
      "x-ratelimit-remaining": String(Math.max(0, this.#limit - window.count)),
      "x-ratelimit-used": String(window.count),
      "x-ratelimit-reset": String(resetOf(window, this.#windowMs)),
      "x-ratelimit-resource": "core",
    };
  }
}

/** The installation's window, a new one once the last has ended. */
function current(windows: Map<number, Window>, id: number, ms: number, now: number): Window {
  let window = windows.get(id);
  if (!window || now >= window.start + ms) {
    window = { start: now, count: 0 };
    windows.set(id, window);
  }
  return window;
}

/** Rounded up: a client that waits until then finds the window over. */
function resetOf(window: Window, ms: number): number {
  return Math.ceil((window.start + ms) / 1000);
}
