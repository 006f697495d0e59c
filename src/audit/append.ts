import { type AuditEventInput, canonicalJson, eventBody } from "#src/audit/event.js";
import type { Sql } from "#src/store/db.js";

export interface AppendedEvent {
  readonly seq: number;
  readonly hash: string;
  readonly prevHash: string;
  readonly at: Date;
}

/**
 * One statement does the whole append: it advances the chain tip in
 * `audit_head` (the row lock serialises concurrent writers, across
 * connections and processes) and inserts the event with the hash computed by
 * PostgreSQL from the previous tip. In a SET list every expression sees the
 * old row, so `prev_hash = hash` captures the previous tip.
 */
const APPEND = `
  WITH tip AS (
    UPDATE audit_head
       SET seq = seq + 1,
           prev_hash = hash,
           hash = encode(sha256(decode(hash, 'hex') || convert_to($1::text, 'UTF8')), 'hex')
     WHERE id = 1
    RETURNING seq, prev_hash, hash
  )
  INSERT INTO audit_events (seq, at, kind, actor, ticket_id, grant_id, body, prev_hash, hash)
  SELECT tip.seq, $2::timestamptz, $3::text, $4::text, $5::uuid, $6::uuid, $1::text, tip.prev_hash, tip.hash
    FROM tip
  RETURNING seq, prev_hash, hash`;

/**
 * Appends an event to the hash-chained audit log.
 *
 * Call it inside the transaction of the state change it records, as the last
 * statement before commit: the chain tip stays locked until commit, so the
 * later it is taken the less writers wait, and taking it last keeps the lock
 * order the same everywhere (no deadlocks).
 *
 * @example
 * await db.transaction(async (tx) => {
 *   await grants.activate(tx, grant);
 *   await appendAudit(tx, { kind: "grant.approved", actor: "github:octocat", grantId: grant.id });
 * });
 */
export async function appendAudit(
  sql: Sql,
  event: AuditEventInput,
  now: Date = new Date(),
): Promise<AppendedEvent> {
  const body = eventBody(event, now);
  const { rows } = await sql.query<{ seq: number; prev_hash: string; hash: string }>(APPEND, [
    canonicalJson(body),
    body.at,
    body.kind,
    body.actor,
    body.ticket_id,
    body.grant_id,
  ]);
  const row = rows[0];
  if (!row) throw new Error("audit append returned no row");
  return { seq: row.seq, hash: row.hash, prevHash: row.prev_hash, at: now };
}
