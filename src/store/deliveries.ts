import type { Sql } from "#src/store/db.js";

/** Announces new deliveries to the workers of every replica. */
export const DELIVERIES_CHANNEL = "hallpass_deliveries";

export interface NewDelivery {
  readonly id: string;
  readonly event: string;
  readonly action: string | null;
  readonly installationId: number | null;
  /** `repo_id#number` when the event concerns one ticket; deliveries of one ticket run one at a time. */
  readonly ticketKey: string | null;
  /**
   * The body exactly as GitHub signed it, kept as bytes: JSON may hold a NUL
   * (`\u0000`), which neither jsonb nor text can.
   */
  readonly body: Uint8Array;
  /** Why the delivery is refused unread (stored as given up, with the reason); absent: to process. */
  readonly refused?: string;
}

export interface ClaimedDelivery {
  readonly id: string;
  readonly event: string;
  /** The body GitHub signed (rows stored before bodies were kept: their jsonb payload, as JSON). */
  readonly body: Buffer;
  readonly attempts: number;
  readonly receivedAt: Date;
}

/** Stores a delivery once; returns false when this delivery id was seen before. */
export async function recordDelivery(sql: Sql, delivery: NewDelivery): Promise<boolean> {
  const { rowCount } = await sql.query(
    `INSERT INTO webhook_deliveries (id, event, action, installation_id, ticket_key, body,
                                     state, last_error, processed_at)
     VALUES ($1::text, $2::text, $3::text, $4::bigint, $5::text, $6::bytea,
             CASE WHEN $7::text IS NULL THEN 'pending' ELSE 'failed' END, $7::text,
             CASE WHEN $7::text IS NOT NULL THEN now() END)
     ON CONFLICT (id) DO NOTHING`,
    [
      delivery.id,
      delivery.event,
      delivery.action,
      delivery.installationId,
      delivery.ticketKey,
      delivery.body,
      delivery.refused?.slice(0, 2000) ?? null,
    ],
  );
  return rowCount === 1;
}

/**
 * Leases up to `limit` due deliveries for `leaseMs`. A delivery is due when
 * it is pending, its retry time has come, nobody holds a live lease on it,
 * and no older pending delivery of the same ticket is waiting (so one
 * ticket's events are handled one at a time, oldest first). Replicas skip
 * each other's rows (`SKIP LOCKED`); a crashed worker's lease simply runs out.
 */
export async function claimDeliveries(
  sql: Sql,
  limit: number,
  leaseMs: number,
): Promise<ClaimedDelivery[]> {
  const { rows } = await sql.query<{
    id: string;
    event: string;
    body: Uint8Array;
    attempts: number;
    received_at: Date;
  }>(
    `WITH due AS (
       SELECT d.id FROM webhook_deliveries d
        WHERE d.state = 'pending'
          AND d.run_after <= now()
          AND (d.locked_until IS NULL OR d.locked_until < now())
          AND (d.ticket_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM webhook_deliveries e
                 WHERE e.state = 'pending' AND e.ticket_key = d.ticket_key
                   AND (e.received_at, e.id) < (d.received_at, d.id)))
        ORDER BY d.received_at, d.id
        LIMIT $1::int
        FOR UPDATE SKIP LOCKED)
     UPDATE webhook_deliveries w
        SET locked_until = now() + $2::int * interval '1 millisecond',
            attempts = w.attempts + 1
       FROM due WHERE w.id = due.id
     RETURNING w.id, w.event, coalesce(w.body, convert_to(w.payload::text, 'UTF8')) AS body,
               w.attempts, w.received_at`,
    [limit, leaseMs],
  );
  return rows.map(({ received_at, ...r }) => ({
    ...r,
    body: Buffer.from(r.body),
    receivedAt: received_at,
  }));
}

/** A claim of a delivery: the row, and the attempt the claim made. */
export type DeliveryClaim = Pick<ClaimedDelivery, "id" | "attempts">;

/**
 * Completes the claim. A claim whose lease ran out, and that another took,
 * changes nothing: the later claim finishes the delivery.
 */
export async function completeDelivery(sql: Sql, claim: DeliveryClaim): Promise<void> {
  await sql.query(
    `UPDATE webhook_deliveries
        SET state = 'done', processed_at = now(), locked_until = NULL, last_error = NULL
      WHERE id = $1::text AND attempts = $2::int AND state = 'pending'`,
    [claim.id, claim.attempts],
  );
}

/** Schedules a retry after `retryInMs`, or gives up (state `failed`) when it is null. */
export async function failDelivery(
  sql: Sql,
  claim: DeliveryClaim,
  error: string,
  retryInMs: number | null,
): Promise<void> {
  await sql.query(
    `UPDATE webhook_deliveries
        SET state = CASE WHEN $4::int IS NULL THEN 'failed' ELSE 'pending' END,
            run_after = now() + coalesce($4::int, 0) * interval '1 millisecond',
            locked_until = NULL,
            last_error = left($3::text, 2000),
            processed_at = CASE WHEN $4::int IS NULL THEN now() END
      WHERE id = $1::text AND attempts = $2::int AND state = 'pending'`,
    [claim.id, claim.attempts, error, retryInMs],
  );
}

/**
 * Extends the leases of claims still being handled, so that a handler
 * slower than the lease (GitHub slow to answer its reads) is not handled a
 * second time, at once, by another claim.
 */
export async function renewDeliveries(
  sql: Sql,
  claims: readonly DeliveryClaim[],
  leaseMs: number,
): Promise<void> {
  if (claims.length === 0) return;
  await sql.query(
    `UPDATE webhook_deliveries w
        SET locked_until = now() + $3::int * interval '1 millisecond'
       FROM unnest($1::text[], $2::int[]) AS c(id, attempts)
      WHERE w.id = c.id AND w.attempts = c.attempts AND w.state = 'pending'`,
    [claims.map((c) => c.id), claims.map((c) => c.attempts), leaseMs],
  );
}
