import { LRUCache } from "lru-cache";
import type { Registry } from "prom-client";
import type { Logger } from "#src/log.js";
import { type Backlog, readBacklog } from "#src/store/backlog.js";
import type { Db } from "#src/store/db.js";

export interface StateMetricsOptions {
  readonly log: Logger;
  /** How long one read serves every scrape; default 5 s. */
  readonly cacheMs?: number;
  /** A read slower than this counts as failed; default 2 s. */
  readonly timeoutMs?: number;
}

type Read = { readonly ok: true; readonly backlog: Backlog } | { readonly ok: false };

interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
}

/**
 * Gauges of what the database holds, the same for every replica: open
 * grants by state, the outbox's backlog and the age of its oldest row, the
 * webhook deliveries not yet processed and how long the oldest has waited.
 * They are read when Prometheus scrapes, in one statement of partial-index
 * counts (`readBacklog`), and the read serves every scrape for `cacheMs`
 * (concurrent scrapes share it), so that several Prometheus servers
 * scraping several replicas cost the database one read per replica every
 * few seconds. A read that fails or times out (the database down, or not
 * ready yet) fails soft: `hallpass_state_up` is 0 and the state gauges have
 * no sample, while the rest of `/metrics` is served as always.
 *
 * @param db the database once ready, else null (`Runtime.db`)
 */
export function stateMetrics(
  registry: Registry,
  db: () => Db | null,
  options: StateMetricsOptions,
): void {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const cache = new LRUCache<"state", Read>({
    max: 1,
    ttl: options.cacheMs ?? 5_000,
    fetchMethod: async () => {
      const ready = db();
      if (!ready) return { ok: false };
      try {
        return { ok: true, backlog: await withTimeout(readBacklog(ready), timeoutMs) };
      } catch (error) {
        options.log.warn({ err: error }, "metrics: cannot read the database's state");
        return { ok: false };
      }
    },
  });
  const read = async (): Promise<Read> => (await cache.fetch("state")) ?? { ok: false };

  gauge(registry, read, {
    name: "hallpass_state_up",
    help: "1 when the last read of the database's state for these metrics succeeded, 0 when it failed or the database is not ready (the state gauges then have no sample)",
    always: (ok) => [{ labels: {}, value: ok ? 1 : 0 }],
  });
  gauge(registry, read, {
    name: "hallpass_grants",
    help: "Open grants in the database, by state (pending, active)",
    samples: ({ grants }) => [
      { labels: { state: "pending" }, value: grants.pending },
      { labels: { state: "active" }, value: grants.active },
    ],
  });
  gauge(registry, read, {
    name: "hallpass_outbox_backlog",
    help: "Side effects waiting in the outbox (pending rows), all replicas'",
    samples: ({ outbox }) => [{ labels: {}, value: outbox.pending }],
  });
  gauge(registry, read, {
    name: "hallpass_outbox_oldest_age_seconds",
    help: "Since the oldest pending side effect was queued; 0 when none waits",
    samples: ({ outbox }) => [{ labels: {}, value: outbox.oldestS }],
  });
  gauge(registry, read, {
    name: "hallpass_webhook_deliveries_pending",
    help: "Webhook deliveries stored and not yet processed, all replicas'",
    samples: ({ deliveries }) => [{ labels: {}, value: deliveries.pending }],
  });
  gauge(registry, read, {
    name: "hallpass_webhook_delivery_lag_seconds",
    help: "Since the oldest unprocessed webhook delivery was received; 0 when none waits",
    samples: ({ deliveries }) => [{ labels: {}, value: deliveries.oldestS }],
  });
}

/**
 * A gauge whose samples come from the scrape's read, serialised by
 * prom-client like its own (name, type and `get()`): unlike a `Gauge`, it
 * can have no sample at all when the read failed.
 */
function gauge(
  registry: Registry,
  read: () => Promise<Read>,
  spec: {
    readonly name: string;
    readonly help: string;
    readonly samples?: (backlog: Backlog) => Sample[];
    readonly always?: (ok: boolean) => Sample[];
  },
): void {
  const metric = {
    name: spec.name,
    help: spec.help,
    type: "gauge",
    aggregator: "sum",
    async get() {
      const result = await read();
      const values = spec.always
        ? spec.always(result.ok)
        : result.ok && spec.samples
          ? spec.samples(result.backlog)
          : [];
      return { name: spec.name, help: spec.help, type: "gauge", aggregator: "sum", values };
    },
  };
  registry.registerMetric(metric as unknown as Parameters<Registry["registerMetric"]>[0]);
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
