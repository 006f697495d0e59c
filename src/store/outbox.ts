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

/**
 * What is carried out first, GitHub allowing (higher first):
 *
 * - 2: a grant's end (revoked, expired, cancelled), the warning before it, an
 *   overdue break-glass review, and closing an issue: what people must know
 *   now, and what changes the ticket;
 * - 1: everything else: requests received, grants, denials, extensions,
 *   check runs, tamper notices;
 * - 0: answers to `/status` and refused commands, which the asker can ask again.
 */
export type Priority = 0 | 1 | 2;

export function priorityOf(effect: SideEffect): Priority {
  if (effect.kind === "close_issue") return 2;
  if (effect.kind !== "comment") return 1;
  switch (effect.notice.kind) {
    case "ended":
    case "expiry_warning":
    case "review_overdue":
      return 2;
    case "status":
    case "command_refused":
      return 0;
    default:
      return 1;
  }
}

export interface ClaimedSideEffect {
  readonly id: number;
  readonly installationId: number;
  readonly ticketId: string | null;
  readonly dedupeKey: string;
  readonly auditEventId: string | null;
  readonly effect: SideEffect;
  readonly priority: Priority;
  /** Claims of it, this one included. */
  readonly attempts: number;
  /** Earlier attempts GitHub refused with a rate limit (they did nothing there). */
  readonly throttled: number;
  /**
   * Whether an earlier attempt may have carried it out on GitHub (it
   * crashed, timed out or got a server error): look before doing it again.
   */
  readonly maybeDone: boolean;
  /** Since it was queued, by the database's clock. */
  readonly ageMs: number;
}

/**
 * Queues a side effect, once per dedupe key, with its priority (`priorityOf`).
 * Call it in the state change's transaction. Text in it (a reason quoted
 * from the ticket) is stored with NUL replaced (see `storableJson`).
 */
export async function enqueue(sql: Sql, item: NewSideEffect): Promise<void> {
  await sql.query(
    `INSERT INTO outbox (installation_id, ticket_id, kind, dedupe_key, audit_event_id, payload, priority)
     VALUES ($1::bigint, $2::uuid, $3::text, $4::text, $5::uuid, $6::jsonb, $7::smallint)
     ON CONFLICT (dedupe_key) DO NOTHING`,
    [
      item.installationId,
      item.ticketId,
      item.effect.kind,
      item.dedupeKey,
      item.auditEventId,
      storableJson(item.effect),
      priorityOf(item.effect),
    ],
  );
}

/**
 * Leases up to `limit` due side effects for `leaseMs`: pending, due, not
 * leased, not of an installation GitHub has paused (`pauseInstallation`),
 * and the oldest pending one of their ticket (a ticket's side effects are
 * carried out in the order they were written). Most important first, then
 * oldest: a ticket's first side effect ranks with the most important of
 * those waiting behind it. Replicas skip each other's rows.
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
    priority: Priority;
    rank: number;
    attempts: number;
    throttled: number;
    age_ms: number;
  }>(
    `WITH due AS (
       SELECT o.id,
              CASE WHEN o.ticket_id IS NULL THEN o.priority
                   ELSE (SELECT max(l.priority) FROM outbox l
                          WHERE l.state = 'pending' AND l.ticket_id = o.ticket_id) END AS rank
         FROM outbox o
        WHERE o.state = 'pending'
          AND o.run_after <= now()
          AND (o.locked_until IS NULL OR o.locked_until < now())
          AND NOT EXISTS (
                SELECT 1 FROM outbox_installations p
                 WHERE p.installation_id = o.installation_id
                   AND (p.paused_until > now() OR p.next_write_at > now()))
          AND (o.ticket_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM outbox e
                 WHERE e.state = 'pending' AND e.ticket_id = o.ticket_id AND e.id < o.id))
        ORDER BY rank DESC, o.id
        LIMIT $1::int
        FOR UPDATE OF o SKIP LOCKED)
     UPDATE outbox o
        SET locked_until = now() + $2::int * interval '1 millisecond', attempts = o.attempts + 1
       FROM due WHERE o.id = due.id
     RETURNING o.id, o.installation_id, o.ticket_id, o.dedupe_key, o.audit_event_id, o.payload,
               o.priority, due.rank, o.attempts, o.throttled,
               (extract(epoch FROM now() - o.created_at) * 1000)::int AS age_ms`,
    [limit, leaseMs],
  );
  return rows
    .sort((a, b) => b.rank - a.rank || a.id - b.id)
    .map((r) => ({
      id: r.id,
      installationId: r.installation_id,
      ticketId: r.ticket_id,
      dedupeKey: r.dedupe_key,
      auditEventId: r.audit_event_id,
      effect: r.payload,
      priority: r.priority,
      attempts: r.attempts,
      throttled: r.throttled,
      // Every earlier claim not refused by a rate limit may have reached GitHub.
      maybeDone: r.attempts - 1 > r.throttled,
      ageMs: r.age_ms,
    }));
}

/**
 * Completes the claim `attempts` made of the row; false when the row is no
 * longer that claim's (its lease ran out and another claim took it).
 */
export async function completeOutbox(
  sql: Sql,
  claim: { id: number; attempts: number },
  result: unknown,
): Promise<boolean> {
  const { rowCount } = await sql.query(
    `UPDATE outbox SET state = 'done', done_at = now(), locked_until = NULL, last_error = NULL,
            result = $3::jsonb
      WHERE id = $1::bigint AND attempts = $2::int AND state = 'pending'`,
    [claim.id, claim.attempts, storableJson(result ?? null)],
  );
  return rowCount > 0;
}

/**
 * Retries after `retryInMs`, or gives up (`dead`) when it is null.
 * `throttled`: GitHub refused it with a rate limit, which does not count as
 * a failed attempt (see `ClaimedSideEffect.throttled`).
 */
export async function failOutbox(
  sql: Sql,
  claim: { id: number; attempts: number },
  error: string,
  retryInMs: number | null,
  options: { throttled?: boolean } = {},
): Promise<void> {
  await sql.query(
    `UPDATE outbox
        SET state = CASE WHEN $4::int IS NULL THEN 'dead' ELSE 'pending' END,
            run_after = now() + coalesce($4::int, 0) * interval '1 millisecond',
            locked_until = NULL,
            last_error = left($3::text, 2000),
            throttled = throttled + CASE WHEN $5::boolean THEN 1 ELSE 0 END
      WHERE id = $1::bigint AND attempts = $2::int AND state = 'pending'`,
    [claim.id, claim.attempts, error, retryInMs, options.throttled === true],
  );
}

/**
 * Gives back a claimed side effect that was not attempted (its installation
 * is paused): the claim does not count, and it is due as it was, held back
 * by the pause like the installation's other rows.
 */
export async function releaseOutbox(
  sql: Sql,
  claim: { id: number; attempts: number },
): Promise<void> {
  await sql.query(
    `UPDATE outbox SET attempts = attempts - 1, locked_until = NULL
      WHERE id = $1::bigint AND attempts = $2::int AND state = 'pending'`,
    [claim.id, claim.attempts],
  );
}

/**
 * Renews the claim's lease for `leaseMs`, just before a write: false when
 * the row is no longer that claim's (its lease ran out, another took it),
 * and the write must not be made.
 */
export async function renewOutbox(
  sql: Sql,
  claim: { id: number; attempts: number },
  leaseMs: number,
): Promise<boolean> {
  const { rowCount } = await sql.query(
    `UPDATE outbox SET locked_until = now() + $3::int * interval '1 millisecond'
      WHERE id = $1::bigint AND attempts = $2::int AND state = 'pending'
        AND locked_until > now()`,
    [claim.id, claim.attempts, Math.ceil(leaseMs)],
  );
  return rowCount > 0;
}

/**
 * Stops every replica's writes for the installation for `ms` (an earlier,
 * longer pause stands): GitHub's rate limits count per installation, and
 * each request made while limited may extend the penalty.
 */
export async function pauseInstallation(
  sql: Sql,
  installationId: number,
  ms: number,
  reason: string,
): Promise<void> {
  await sql.query(
    `INSERT INTO outbox_installations AS p (installation_id, paused_until, pause_reason)
     VALUES ($1::bigint, now() + $2::int * interval '1 millisecond', left($3::text, 500))
     ON CONFLICT (installation_id) DO UPDATE
        SET paused_until = greatest(p.paused_until, EXCLUDED.paused_until),
            pause_reason = CASE WHEN p.paused_until IS NULL OR p.paused_until <= EXCLUDED.paused_until
                                THEN EXCLUDED.pause_reason ELSE p.pause_reason END`,
    [installationId, Math.ceil(ms), reason],
  );
}

/** Milliseconds until the installation's pause ends; 0 when it is not paused. */
export async function pausedFor(sql: Sql, installationId: number): Promise<number> {
  const { rows } = await sql.query<{ ms: number }>(
    `SELECT ceil(extract(epoch FROM paused_until - now()) * 1000)::int AS ms
       FROM outbox_installations
      WHERE installation_id = $1::bigint AND paused_until > now()`,
    [installationId],
  );
  return Math.max(0, rows[0]?.ms ?? 0);
}

/**
 * Reserves the installation's next write slot, `intervalMs` after the one
 * before (across replicas), and returns how many milliseconds from now it
 * starts: GitHub asks for at least a second between content-creating requests.
 */
export async function reserveWrite(
  sql: Sql,
  installationId: number,
  intervalMs: number,
): Promise<number> {
  const { rows } = await sql.query<{ wait_ms: number }>(
    `INSERT INTO outbox_installations AS p (installation_id, next_write_at)
     VALUES ($1::bigint, now() + $2::int * interval '1 millisecond')
     ON CONFLICT (installation_id) DO UPDATE
        SET next_write_at = greatest(p.next_write_at, now()) + $2::int * interval '1 millisecond'
     RETURNING ceil(extract(epoch FROM p.next_write_at - now()) * 1000)::int - $2::int AS wait_ms`,
    [installationId, Math.ceil(intervalMs)],
  );
  return Math.max(0, rows[0]?.wait_ms ?? 0);
}

/** Whether a side effect with this dedupe key was ever queued (whatever became of it). */
export async function isQueued(sql: Sql, dedupeKey: string): Promise<boolean> {
  const { rows } = await sql.query("SELECT 1 FROM outbox WHERE dedupe_key = $1::text", [dedupeKey]);
  return rows.length > 0;
}
