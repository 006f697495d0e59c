import type { EmitterWebhookEvent } from "@octokit/webhooks";
import { jsonObject } from "#src/github/webhooks.js";
import type { Logger } from "#src/log.js";
import { type Loop, startLoop } from "#src/loop.js";
import type { Db } from "#src/store/db.js";
import {
  claimDeliveries,
  completeDelivery,
  DELIVERIES_CHANNEL,
  failDelivery,
} from "#src/store/deliveries.js";

/** Hands one stored delivery to the app (Probot's `receive`). */
export type DeliveryHandler = (event: EmitterWebhookEvent) => Promise<void>;

export interface DeliveryWorkerOptions {
  readonly db: Db;
  readonly log: Logger;
  readonly handle: DeliveryHandler;
  readonly idleMs?: number;
  /** Attempts before a delivery is given up (state `failed`). */
  readonly maxAttempts?: number;
}

const BATCH = 8;
const LEASE_MS = 60_000;

/**
 * Processes stored webhook deliveries: several tickets at once, each ticket's
 * deliveries in the order they arrived. A failing delivery is retried with
 * exponential backoff (1 s, 2 s, 4 s ... capped at 10 minutes); one whose
 * body is not a JSON object is given up at once, with the reason.
 */
export function startDeliveryWorker(options: DeliveryWorkerOptions): Loop {
  const maxAttempts = options.maxAttempts ?? 10;
  const loop = startLoop({
    name: "webhook deliveries",
    log: options.log,
    idleMs: options.idleMs ?? 1_000,
    pass: async () => {
      const claimed = await claimDeliveries(options.db, BATCH, LEASE_MS);
      await Promise.all(
        claimed.map(async (delivery) => {
          const log = options.log.child({ delivery: delivery.id, event: delivery.event });
          const payload = jsonObject(delivery.body.toString("utf8"));
          if (!payload) {
            log.error("webhook delivery is not a JSON object; given up");
            await failDelivery(options.db, delivery.id, "payload is not a JSON object", null);
            return;
          }
          try {
            await options.handle({
              id: delivery.id,
              name: delivery.event,
              payload,
            } as EmitterWebhookEvent);
            await completeDelivery(options.db, delivery.id);
          } catch (error) {
            const giveUp = delivery.attempts >= maxAttempts;
            const retryIn = giveUp ? null : Math.min(1_000 * 2 ** (delivery.attempts - 1), 600_000);
            log.error(
              { err: error, attempts: delivery.attempts, retryIn },
              "webhook delivery failed",
            );
            await failDelivery(options.db, delivery.id, errorText(error), retryIn);
          }
        }),
      );
      return claimed.length === BATCH;
    },
  });
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

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
