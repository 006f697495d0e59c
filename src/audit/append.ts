import { randomUUID } from "node:crypto";
import { type AuditEventInput, canonicalJson, eventBody } from "#src/audit/event.js";
import type { Sql, Statement } from "#src/store/db.js";

export interface PendingEvent {
  /** The event's stable id; its place in the chain is known once committed. */
  readonly id: string;
  readonly at: Date;
}

export interface SealedEvent {
  readonly id: string;
  readonly seq: number;
  readonly hash: string;
  readonly prevHash: string;
}

/** Every state change and every mint runs it: prepared once per connection. */
const INSERT_EVENT: Statement = {
  name: "append_audit_event",
  text: `INSERT INTO audit_events (id, at, kind, actor, ticket_id, grant_id, body)
         VALUES ($1::uuid, $2::timestamptz, $3::text, $4::text, $5::uuid, $6::uuid, $7::text)`,
};

/**
 * Appends an event to the hash-chained audit log, in the caller's transaction.
 *
 * The row is sealed into the chain by a deferred trigger when the transaction
 * commits (see the `audit_events_seal` trigger): concurrent writers wait for
 * each other only while their commits are written, never while their
 * transactions run, and a rolled-back transaction leaves no trace. Its
 * sequence number and hash can be read with `sealedEvent` after commit.
 *
 * @example
 * await db.transaction(async (tx) => {
 *   await appendAudit(tx, { kind: "grant.approved", actor: "github:octocat", grantId: grant.id });
 *   await grants.activate(tx, grant);
 * });
 */
export async function appendAudit(
  sql: Sql,
  event: AuditEventInput,
  now: Date = new Date(),
): Promise<PendingEvent> {
  const id = randomUUID();
  const body = eventBody(event, id, now);
  await sql.query(INSERT_EVENT, [
    id,
    body.at,
    body.kind,
    body.actor,
    body.ticket_id,
    body.grant_id,
    canonicalJson(body),
  ]);
  return { id, at: now };
}

/** The chain position of a committed event, or null if it is not (yet) sealed. */
export async function sealedEvent(sql: Sql, id: string): Promise<SealedEvent | null> {
  const { rows } = await sql.query<{ seq: number; hash: string | null; prev_hash: string | null }>(
    "SELECT seq, hash, prev_hash FROM audit_events WHERE id = $1::uuid",
    [id],
  );
  const row = rows[0];
  if (!row || row.seq <= 0 || row.hash === null || row.prev_hash === null) return null;
  return { id, seq: row.seq, hash: row.hash, prevHash: row.prev_hash };
}
