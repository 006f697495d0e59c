import { GaveUp, NotGrantedInTime, Refusal } from "./errors.js";

/** What a refused exchange is still waiting for, when a later exchange may succeed. */
export type NotYet =
  /** The grant is pending: it needs its approvals. */
  | { readonly kind: "approval" }
  /** The ticket has no grant: no request hallpass could read on it yet. */
  | { readonly kind: "request" }
  /** The grant's scheduled window has not started; `at` when the server said when. */
  | { readonly kind: "start"; readonly at: Date | null };

/**
 * Whether a refusal may still turn into a token without the job changing
 * anything: the grant waits for approval, its window for its start, or the
 * ticket for a request hallpass can read. The server has one code for every
 * grant that is not active (`GRANT_NOT_ACTIVE`); its message says which
 * state (`checkActive` in `src/rules/grant-use.ts` and the mint's refusals;
 * a test keeps them in step). Everything else is final (revoked, expired,
 * denied, another resource, a fork, another commit...): another exchange
 * would get the same answer.
 */
export function notYet(error: unknown): NotYet | null {
  if (!(error instanceof Refusal)) return null;
  if (error.code === "GRANT_NOT_FOUND") return { kind: "request" };
  if (error.code !== "GRANT_NOT_ACTIVE") return null;
  if (/\bis pending\b/.test(error.serverMessage)) return { kind: "approval" };
  const start = /\bstarts at (\S+)/.exec(error.serverMessage)?.[1];
  if (start === undefined) return null;
  const at = Date.parse(start);
  return { kind: "start", at: Number.isNaN(at) ? null : new Date(at) };
}

/** Pauses between exchanges while waiting: 10 s, then half as long again each time, up to 30 s. */
export const POLL = { firstMs: 10_000, factor: 1.5, maxMs: 30_000 } as const;

export interface WaitOptions {
  /** How long to keep asking; 0: one exchange, its refusal as it is. */
  readonly waitS: number;
  /** The ticket as the job names it (`ticketOf`), for the final refusal. */
  readonly ticket: string;
  /** Told when what the ticket still needs changes, the first time included. */
  readonly onWaiting?: (refusal: Refusal, leftMs: number) => void;
  /** Told before each pause: the refusal that caused it. */
  readonly onPause?: (refusal: Refusal, pauseMs: number) => void;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

/**
 * Runs `exchange` until it succeeds, or until `waitS` is up while its
 * refusals say the grant is not active yet (`notYet`). Each call must ask
 * with a fresh ID token: the server spends each one once, and they expire.
 * Pauses grow from 10 s to 30 s (±10 %), and a scheduled start is waited
 * for; a `429` that outlasted the exchange's own retries is waited out when
 * its `retry-after` ends before the time is up. The last exchange is made
 * when the time is up.
 *
 * @throws the first refusal that is final, as it is
 * @throws NotGrantedInTime, with the last refusal, when the time is up
 */
export async function waitForGrant<T>(
  exchange: () => Promise<T>,
  options: WaitOptions,
): Promise<T> {
  if (options.waitS <= 0) return exchange();
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  const deadline = now() + options.waitS * 1000;
  let interval: number = POLL.firstMs;
  let told: string | null = null;
  for (;;) {
    let refusal: Refusal;
    let pauseMs: number;
    try {
      return await exchange();
    } catch (error) {
      const waiting = notYet(error);
      if (waiting && error instanceof Refusal) {
        const startsAt = waiting.kind === "start" ? (waiting.at?.getTime() ?? null) : null;
        // A window that opens after the wait would only be waited for in vain.
        if (startsAt !== null && startsAt > deadline) throw error;
        if (now() >= deadline) throw new NotGrantedInTime(options.ticket, options.waitS, error);
        if (error.serverMessage !== told) {
          told = error.serverMessage;
          options.onWaiting?.(error, deadline - now());
        }
        refusal = error;
        pauseMs = interval * (0.9 + random() * 0.2);
        if (startsAt !== null) pauseMs = Math.max(pauseMs, startsAt - now() + 1_000);
        interval = Math.min(interval * POLL.factor, POLL.maxMs);
      } else if (error instanceof GaveUp && isRateLimited(error.last)) {
        pauseMs = (error.last.retryAfterS ?? 0) * 1000;
        if (now() + pauseMs > deadline) throw error;
        refusal = error.last;
      } else {
        throw error;
      }
    }
    pauseMs = Math.round(Math.max(0, Math.min(pauseMs, deadline - now())));
    options.onPause?.(refusal, pauseMs);
    await sleep(pauseMs);
  }
}

function isRateLimited(error: unknown): error is Refusal {
  return error instanceof Refusal && error.status === 429 && error.retryAfterS !== undefined;
}
