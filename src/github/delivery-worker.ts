import { RequestError } from "@octokit/request-error";
import type { EmitterWebhookEvent } from "@octokit/webhooks";
import type { AppMetrics } from "#src/app-metrics.js";
import { whenToRetry } from "#src/github/retry.js";
import { jsonObject } from "#src/github/webhooks.js";
import type { Logger } from "#src/log.js";
import { type Loop, startLoop } from "#src/loop.js";
import type { Db } from "#src/store/db.js";
import {
  type ClaimedDelivery,
  claimDeliveries,
  completeDelivery,
  DELIVERIES_CHANNEL,
  failDelivery,
  renewDeliveries,
} from "#src/store/deliveries.js";

/** Hands one stored delivery to the app (Probot's `receive`). */
export type DeliveryHandler = (event: EmitterWebhookEvent) => Promise<void>;

export interface DeliveryWorkerOptions {
  readonly db: Db;
  readonly log: Logger;
  readonly handle: DeliveryHandler;
  readonly idleMs?: number;
  /** Attempts before a delivery is given up (state `failed`), unless it waits for GitHub. */
  readonly maxAttempts?: number;
  /** How long a claim holds a delivery unless renewed (default a minute, renewed every third of it). */
  readonly leaseMs?: number;
  /** Counts deliveries done, retried and given up. */
  readonly metrics?: AppMetrics;
}

const BATCH = 8;
const LEASE_MS = 60_000;
/**
 * A delivery that failed only because GitHub could not answer (unreachable,
 * 5xx, rate limited) is tried again, however many attempts it took, until it
 * is this old: an outage of GitHub longer than the attempts last (about
 * ten minutes) must not lose what was received meanwhile.
 */
const WAIT_FOR_GITHUB_MS = 24 * 60 * 60 * 1000;

/**
 * Processes stored webhook deliveries: several tickets at once, each ticket's
 * deliveries in the order they arrived. A failing delivery is retried with
 * exponential backoff (1 s, 2 s, 4 s ... capped at 10 minutes), and given up
 * after `maxAttempts`, unless it failed only because GitHub did not answer
 * (see {@link WAIT_FOR_GITHUB_MS}); one whose body is not a JSON object is
 * given up at once, with the reason.
 */
export function startDeliveryWorker(options: DeliveryWorkerOptions): Loop {
  const maxAttempts = options.maxAttempts ?? 10;
  const leaseMs = options.leaseMs ?? LEASE_MS;
  const loop = startLoop({
    name: "webhook deliveries",
    log: options.log,
    idleMs: options.idleMs ?? 1_000,
    pass: async () => {
      const claimed = await claimDeliveries(options.db, BATCH, leaseMs);
      // While handlers wait on GitHub, their leases are kept.
      const handling = new Set(claimed);
      const renewal = setInterval(() => {
        renewDeliveries(options.db, [...handling], leaseMs).catch((error: unknown) =>
          options.log.warn({ err: error }, "cannot renew the leases of deliveries in hand"),
        );
      }, leaseMs / 3);
      try {
        await Promise.all(
          claimed.map(async (delivery) => {
            try {
              await handleOne(delivery);
            } finally {
              handling.delete(delivery);
            }
          }),
        );
      } finally {
        clearInterval(renewal);
      }
      return claimed.length === BATCH;
    },
  });
  async function handleOne(delivery: ClaimedDelivery): Promise<void> {
    const log = options.log.child({ delivery: delivery.id, event: delivery.event });
    const payload = jsonObject(delivery.body.toString("utf8"));
    if (!payload) {
      log.error("webhook delivery is not a JSON object; given up");
      await failDelivery(options.db, delivery, "payload is not a JSON object", null);
      options.metrics?.delivery("failed");
      return;
    }
    try {
      await options.handle({
        id: delivery.id,
        name: delivery.event,
        payload,
      } as EmitterWebhookEvent);
      await completeDelivery(options.db, delivery);
      options.metrics?.delivery("done");
    } catch (error) {
      const gitHubWait = waitForGitHub(error);
      const keep =
        gitHubWait !== null && Date.now() - delivery.receivedAt.getTime() < WAIT_FOR_GITHUB_MS;
      const giveUp = delivery.attempts >= maxAttempts && !keep;
      const backoff = Math.min(1_000 * 2 ** (delivery.attempts - 1), 600_000);
      // A rate limit is waited out as long as GitHub asks, not retried sooner.
      const retryIn = giveUp ? null : Math.max(backoff, gitHubWait ?? 0);
      log.error({ err: error, attempts: delivery.attempts, retryIn }, "webhook delivery failed");
      await failDelivery(options.db, delivery, errorText(error), retryIn);
      options.metrics?.delivery(retryIn === null ? "failed" : "retry");
    }
  }
  // New deliveries wake the worker; polling stays as the fallback.
  const unlisten = options.db
    .listen(DELIVERIES_CHANNEL, () => loop.kick())
    .catch((error: unknown) => {
      options.log.warn({ err: error }, "cannot listen for new deliveries; polling only");
      return null;
    });
  return {
    kick: () => loop.kick(),
    async stop() {
      await (await unlisten)?.();
      await loop.stop();
    },
  };
}

/**
 * When every error of the handlers (Probot gathers them in an
 * AggregateError) is a GitHub request that failed for now, as the outbox
 * tells them (`whenToRetry`: no answer, a 5xx, a rate limit): how long
 * GitHub asks to wait (0 when it does not say). Null for anything else (a
 * 4xx, a fault of hallpass): those are given up after the attempts.
 */
function waitForGitHub(error: unknown): number | null {
  const errors: unknown[] = error instanceof AggregateError ? error.errors : [error];
  if (errors.length === 0) return null;
  let wait = 0;
  for (const e of errors) {
    if (!(e instanceof RequestError)) return null;
    const decision = whenToRetry(e, 1);
    if (decision.retryInMs === null) return null;
    if (decision.rateLimit) wait = Math.max(wait, decision.retryInMs);
  }
  return wait;
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
