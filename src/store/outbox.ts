import { type Sql, storableJson } from "#src/store/db.js";
import type { SideEffect } from "#src/tickets/notices.js";

export interface NewSideEffect {
  readonly installationId: number;
  readonly ticketId: string | null;
  /** Unique per side effect; also the hidden marker of what gets posted. */
  readonly dedupeKey: string;
  /** The audit event this side effect reports (its hash is shown). */
  readonly auditEventId: string | null;
  readonly effect: SideEffect;
}

export interface ClaimedSideEffect {
  readonly id: number;
  readonly installationId: number;
  readonly ticketId: string | null;
  readonly dedupeKey: string;
  readonly auditEventId: string | null;
  readonly effect: SideEffect;
  /** Including this one: above 1, an earlier attempt may have reached GitHub. */
  readonly attempts: number;
  /** Since it was queued, by the database's clock. */
  readonly ageMs: number;
}

/**
 * Queues a side effect, once per dedupe key. Call it in the state change's
 * transaction. Text in it (a reason quoted from the ticket) is stored with
 * NUL replaced (see `storableJson`).
 */
export async function enqueue(sql: Sql, item: NewSideEffect): Promise<void> {
  await sql.query(
    `INSERT INTO outbox (installation_id, ticket_id, kind, dedupe_key, audit_event_id, payload)
     VALUES ($1::bigint, $2::uuid, $3::text, $4::text, $5::uuid, $6::jsonb)
     ON CONFLICT (dedupe_key) DO NOTHING`,
    [
      item.installationId,
      item.ticketId,
      item.effect.kind,
      item.dedupeKey,
      item.auditEventId,
      storableJson(item.effect),
    ],
  );
}

/**
 * Leases up to `limit` due side effects for `leaseMs`: pending, due, not
 * leased, and the oldest pending one of their ticket (a ticket's comments
 * are posted in the order they were written). Replicas skip each other's rows.
 */
export async function claimOutbox(
  sql: Sql,
  limit: number,
  leaseMs: number,
): Promise<ClaimedSideEffect[]> {
  const { rows } = await sql.query<{
    id: number;
    installation_id: number;
    ticket_id: string | null;
    dedupe_key: string;
    audit_event_id: string | null;
    payload: SideEffect;
    attempts: number;
    age_ms: number;
  }>(
    `WITH due AS (
       SELECT o.id FROM outbox o
        WHERE o.state = 'pending'
          AND o.run_after <= now()
          AND (o.locked_until IS NULL OR o.locked_until < now())
          AND (o.ticket_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM outbox e
                 WHERE e.state = 'pending' AND e.ticket_id = o.ticket_id AND e.id < o.id))
        ORDER BY o.id
        LIMIT $1::int
        FOR UPDATE SKIP LOCKED)
     UPDATE outbox o
        SET locked_until = now() + $2::int * interval '1 millisecond', attempts = o.attempts + 1
       FROM due WHERE o.id = due.id
     RETURNING o.id, o.installation_id, o.ticket_id, o.dedupe_key, o.audit_event_id, o.payload, o.attempts,
               (extract(epoch FROM now() - o.created_at) * 1000)::int AS age_ms`,
    [limit, leaseMs],
  );
  return rows.map((r) => ({
    id: r.id,
    installationId: r.installation_id,
    ticketId: r.ticket_id,
    dedupeKey: r.dedupe_key,
    auditEventId: r.audit_event_id,
    effect: r.payload,
    attempts: r.attempts,
    ageMs: r.age_ms,
  }));
}

export async function completeOutbox(sql: Sql, id: number, result: unknown): Promise<void> {
  await sql.query(
    `UPDATE outbox SET state = 'done', done_at = now(), locked_until = NULL, last_error = NULL,
            result = $2::jsonb
      WHERE id = $1::bigint`,
    [id, storableJson(result ?? null)],
  );
}

/** Retries after `retryInMs`, or gives up (`dead`) when it is null. */
export async function failOutbox(
  sql: Sql,
  id: number,
  error: string,
  retryInMs: number | null,
): Promise<void> {
  await sql.query(
    `UPDATE outbox
        SET state = CASE WHEN $3::int IS NULL THEN 'dead' ELSE 'pending' END,
            run_after = now() + coalesce($3::int, 0) * interval '1 millisecond',
            locked_until = NULL,
            last_error = left($2::text, 2000)
      WHERE id = $1::bigint`,
    [id, error, retryInMs],
  );
}

/** Whether a side effect with this dedupe key was ever queued (whatever became of it). */
export async function isQueued(sql: Sql, dedupeKey: string): Promise<boolean> {
  const { rows } = await sql.query("SELECT 1 FROM outbox WHERE dedupe_key = $1::text", [dedupeKey]);
  return rows.length > 0;
}
