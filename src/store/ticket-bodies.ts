import { createHash } from "node:crypto";
import type { Sql } from "#src/store/db.js";

/** A ticket's body as an `opened` or body `edited` webhook gave it, and who set it. */
export interface BodySet {
  readonly body: string;
  readonly by: { readonly id: number; readonly login: string };
  /** GitHub's `updated_at` of the event. */
  readonly at: Date;
}

/** The SHA-256 of a body's text, as recorded (the text itself is not kept). */
export function bodySha(body: string): string {
  return createHash("sha256").update(body, "utf8").digest("hex");
}

/**
 * Records who set the ticket's body, unless a newer setting is recorded
 * already (deliveries may arrive out of order).
 */
export async function recordBodySet(sql: Sql, ticketId: string, set: BodySet): Promise<void> {
  await sql.query(
    `INSERT INTO ticket_bodies (ticket_id, body_sha, set_by_id, set_by_login, set_at)
     VALUES ($1::uuid, $2::text, $3::bigint, $4::text, $5::timestamptz)
     ON CONFLICT (ticket_id) DO UPDATE SET
       body_sha = EXCLUDED.body_sha, set_by_id = EXCLUDED.set_by_id,
       set_by_login = EXCLUDED.set_by_login, set_at = EXCLUDED.set_at
     WHERE ticket_bodies.set_at <= EXCLUDED.set_at`,
    [ticketId, bodySha(set.body), set.by.id, set.by.login, set.at],
  );
}

/**
 * Who set `body` on the ticket, as recorded; null when the recorded setting
 * is of another body (a later edit not seen yet, or never recorded).
 */
export async function bodySetter(
  sql: Sql,
  ticketId: string,
  body: string,
): Promise<{ id: number; login: string } | null> {
  const { rows } = await sql.query<{ set_by_id: string; set_by_login: string }>(
    `SELECT set_by_id::text AS set_by_id, set_by_login FROM ticket_bodies
      WHERE ticket_id = $1::uuid AND body_sha = $2::text`,
    [ticketId, bodySha(body)],
  );
  const row = rows[0];
  return row ? { id: Number(row.set_by_id), login: row.set_by_login } : null;
}
