import { setTimeout as sleep } from "node:timers/promises";
import type { GitHub } from "#src/github/api.js";
import type { Logger } from "#src/log.js";
import { type Loop, startLoop } from "#src/loop.js";
import type { Db } from "#src/store/db.js";
import { releaseLease, takeLease } from "#src/store/leases.js";

export interface RedeliveryOptions {
  readonly db: Db;
  readonly log: Logger;
  /** The App-authenticated client (JWT), which may read and replay the App's deliveries. */
  readonly app: () => Promise<GitHub>;
  readonly now?: () => Date;
  /** How far back to look; GitHub keeps deliveries for 3 days. */
  readonly windowMs?: number;
  readonly intervalMs?: number;
  /**
   * At least this long between two redelivery requests (GitHub asks for a
   * second between content-creating requests). Default 1 s.
   */
  readonly requestIntervalMs?: number;
}

const WINDOW_MS = 6 * 60 * 60 * 1000;
/** A replica that died mid-pass holds the lease no longer than this. */
export const LEASE_MS = 10 * 60 * 1000;

/**
 * Finds webhook deliveries GitHub made that never reached hallpass (the
 * server was down, the network failed) and asks GitHub to deliver them
 * again. A delivery is missed when its GUID is not in `webhook_deliveries`,
 * whatever GitHub recorded: the table holds every verified delivery any
 * replica received, those it refused (not a JSON object) too, so a refused
 * one is not asked for again and again. One replica at a time does it
 * (a lease, given back at the end or after {@link LEASE_MS}).
 *
 * @returns how many redeliveries were requested
 */
export async function redeliverMissed(options: RedeliveryOptions): Promise<number> {
  const { db } = options;
  const since = (options.now?.() ?? new Date()).getTime() - (options.windowMs ?? WINDOW_MS);
  // A lease, not a lock: GitHub may take long to answer (or not at all), and
  // no database lock or transaction may be held while it does.
  const lease = await takeLease(db, "redeliver", LEASE_MS);
  if (!lease) return 0;
  try {
    const gh = await options.app();
    // Newest first: stop at the window's start. Keep the newest attempt per GUID.
    const latest = new Map<string, { id: number; ok: boolean }>();
    for await (const page of gh.paginate.iterator("GET /app/hook/deliveries", { per_page: 100 })) {
      let older = false;
      for (const d of page.data as Array<{
        id: number;
        guid: string;
        delivered_at: string;
        status_code: number;
      }>) {
        if (Date.parse(d.delivered_at) < since) {
          older = true;
          continue;
        }
        if (!latest.has(d.guid))
          latest.set(d.guid, { id: d.id, ok: d.status_code >= 200 && d.status_code < 300 });
      }
      if (older) break;
    }
    if (latest.size === 0) return 0;
    const known = await db.query<{ id: string }>(
      "SELECT id FROM webhook_deliveries WHERE id = ANY($1::text[])",
      [[...latest.keys()]],
    );
    const seen = new Set(known.rows.map((r) => r.id));
    let requested = 0;
    for (const [guid, attempt] of latest) {
      if (seen.has(guid)) continue;
      if (requested > 0) await sleep(options.requestIntervalMs ?? 1_000);
      await gh.request("POST /app/hook/deliveries/{delivery_id}/attempts", {
        delivery_id: attempt.id,
      });
      options.log.info(
        { delivery: guid, githubStatus: attempt.ok ? "ok" : "failed" },
        "requested redelivery of a missed webhook",
      );
      requested++;
    }
    return requested;
  } finally {
    await releaseLease(db, lease).catch(() => {});
  }
}

/** Looks for missed deliveries at start and then every `intervalMs` (default 5 minutes). */
export function startRedelivery(options: RedeliveryOptions): Loop {
  return startLoop({
    name: "webhook redelivery",
    log: options.log,
    idleMs: options.intervalMs ?? 5 * 60 * 1000,
    maxBackoffMs: 10 * 60 * 1000,
    pass: async () => {
      await redeliverMissed(options);
      return false;
    },
  });
}
