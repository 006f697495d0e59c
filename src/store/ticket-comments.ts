import { createHash } from "node:crypto";
import type { Sql } from "#src/store/db.js";

/** A comment hallpass posted on a ticket, as posted: what edits and deletions are compared with. */
export interface TicketComment {
  readonly commentId: number;
  readonly ticketId: string;
  readonly outboxId: number | null;
  readonly auditEventId: string | null;
  readonly body: string;
  readonly bodySha256: string;
  readonly tamperedAt: Date | null;
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** Remembers a posted comment; posting the same comment again changes nothing. */
export async function recordComment(
  sql: Sql,
  comment: {
    readonly commentId: number;
    readonly ticketId: string;
    readonly outboxId: number | null;
    readonly auditEventId: string | null;
    readonly body: string;
  },
): Promise<void> {
  await sql.query(
    `INSERT INTO ticket_comments (comment_id, ticket_id, outbox_id, audit_event_id, body, body_sha256)
     VALUES ($1::bigint, $2::uuid, $3::bigint, $4::uuid, $5::text, $6::text)
     ON CONFLICT (comment_id) DO NOTHING`,
    [
      comment.commentId,
      comment.ticketId,
      comment.outboxId,
      comment.auditEventId,
      comment.body,
      sha256Hex(comment.body),
    ],
  );
}

export async function getComment(sql: Sql, commentId: number): Promise<TicketComment | null> {
  const { rows } = await sql.query<{
    comment_id: number;
    ticket_id: string;
    outbox_id: number | null;
    audit_event_id: string | null;
    body: string;
    body_sha256: string;
    tampered_at: Date | null;
  }>(
    `SELECT comment_id, ticket_id, outbox_id, audit_event_id, body, body_sha256, tampered_at
       FROM ticket_comments WHERE comment_id = $1::bigint`,
    [commentId],
  );
  const row = rows[0];
  if (!row) return null;
  return {
    commentId: row.comment_id,
    ticketId: row.ticket_id,
    outboxId: row.outbox_id,
    auditEventId: row.audit_event_id,
    body: row.body,
    bodySha256: row.body_sha256,
    tamperedAt: row.tampered_at,
  };
}

/** Marks the comment as changed by someone else (the first time only). */
export async function markTampered(sql: Sql, commentId: number): Promise<void> {
  await sql.query(
    "UPDATE ticket_comments SET tampered_at = coalesce(tampered_at, now()) WHERE comment_id = $1::bigint",
    [commentId],
  );
}
