import type { Sql, Statement } from "#src/store/db.js";

/** What waits in the database, as every replica sees it: the state metrics' one read. */
export interface Backlog {
  readonly grants: { readonly pending: number; readonly active: number };
  readonly outbox: {
    readonly pending: number;
    /** Age of the oldest pending row, seconds; 0 when none. */
    readonly oldestS: number;
  };
  readonly deliveries: {
    readonly pending: number;
    /** Since the oldest unprocessed delivery was received, seconds; 0 when none. */
    readonly oldestS: number;
  };
}

/**
 * Each count reads only the rows it counts, through a partial index on
 * `state = 'pending'` or `'active'` (`grants_pending_by_age`,
 * `grants_active_by_end`, the outbox's and the deliveries' pending
 * indexes): its cost grows with what is open or waiting, never with
 * history. Ages are measured on the database's clock, the one that stamped
 * the rows, so replicas agree.
 */
const READ_BACKLOG: Statement = {
  name: "read_backlog",
  text: `SELECT (SELECT count(*)::int FROM grants WHERE state = 'pending') AS grants_pending,
                (SELECT count(*)::int FROM grants WHERE state = 'active') AS grants_active,
                o.n AS outbox_pending,
                coalesce(extract(epoch FROM now() - o.oldest), 0)::float8 AS outbox_oldest_s,
                d.n AS deliveries_pending,
                coalesce(extract(epoch FROM now() - d.oldest), 0)::float8 AS deliveries_oldest_s
           FROM (SELECT count(*)::int AS n, min(created_at) AS oldest
                   FROM outbox WHERE state = 'pending') o,
                (SELECT count(*)::int AS n, min(received_at) AS oldest
                   FROM webhook_deliveries WHERE state = 'pending') d`,
};

export async function readBacklog(sql: Sql): Promise<Backlog> {
  const { rows } = await sql.query<{
    grants_pending: number;
    grants_active: number;
    outbox_pending: number;
    outbox_oldest_s: number;
    deliveries_pending: number;
    deliveries_oldest_s: number;
  }>(READ_BACKLOG);
  const row = rows[0];
  if (!row) throw new Error("the backlog read returned no row");
  return {
    grants: { pending: row.grants_pending, active: row.grants_active },
    outbox: { pending: row.outbox_pending, oldestS: Math.max(0, row.outbox_oldest_s) },
    deliveries: {
      pending: row.deliveries_pending,
      oldestS: Math.max(0, row.deliveries_oldest_s),
    },
  };
}
