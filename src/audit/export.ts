import type { AuditEventBody } from "#src/audit/event.js";
import type { Sql } from "#src/store/db.js";

/** One exported line: the event as hashed, with its place in the chain. */
export interface ExportedEvent {
  readonly seq: number;
  readonly prev_hash: string;
  readonly hash: string;
  readonly event: AuditEventBody;
}

export interface ExportOptions {
  /** Only events of this ticket (our ticket id). */
  readonly ticketId?: string;
  /** Start after this sequence number. */
  readonly afterSeq?: number;
  readonly batchSize?: number;
}

/**
 * Yields audit events in chain order, read in batches. Re-hashing each
 * event's canonical JSON with its `prev_hash` gives its `hash`, so an auditor
 * can check an export without database access.
 */
export async function* exportAudit(
  sql: Sql,
  options: ExportOptions = {},
): AsyncGenerator<ExportedEvent> {
  const batchSize = options.batchSize ?? 1_000;
  let after = options.afterSeq ?? 0;
  for (;;) {
    const { rows } = await sql.query<{
      seq: number;
      body: string;
      prev_hash: string;
      hash: string;
    }>(
      `SELECT seq, body, prev_hash, hash FROM audit_events
        WHERE seq > $1::bigint AND ($2::uuid IS NULL OR ticket_id = $2::uuid)
        ORDER BY seq LIMIT $3::int`,
      [after, options.ticketId ?? null, batchSize],
    );
    for (const row of rows) {
      yield {
        seq: row.seq,
        prev_hash: row.prev_hash,
        hash: row.hash,
        event: JSON.parse(row.body) as AuditEventBody,
      };
      after = row.seq;
    }
    if (rows.length < batchSize) return;
  }
}
