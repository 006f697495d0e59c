import type { Sql } from "#src/store/db.js";

export interface NewApproval {
  readonly ticketId: string;
  readonly approverId: number;
  readonly approverLogin: string;
  readonly channel: "review" | "comment";
  /** The review id or the comment id. */
  readonly sourceId: number;
  /** The request as it read when approved. */
  readonly requestHash: string;
  /** Reviews: the commit reviewed. */
  readonly commitId: string | null;
  readonly at: Date;
}

export interface StoredApproval {
  readonly approverId: number;
  readonly approverLogin: string;
  readonly channel: "review" | "comment";
  readonly sourceId: number;
  readonly requestHash: string;
  readonly commitId: string | null;
  readonly at: Date;
}

/** Records an approval once per review or comment; returns false when it was already known. */
export async function recordApproval(sql: Sql, a: NewApproval): Promise<boolean> {
  const { rowCount } = await sql.query(
    `INSERT INTO approvals (ticket_id, approver_id, approver_login, channel, source_id, request_hash, commit_id, created_at)
     VALUES ($1::uuid, $2::bigint, $3::text, $4::text, $5::bigint, $6::text, $7::text, $8::timestamptz)
     ON CONFLICT (channel, source_id) DO NOTHING`,
    [
      a.ticketId,
      a.approverId,
      a.approverLogin,
      a.channel,
      a.sourceId,
      a.requestHash,
      a.commitId,
      a.at,
    ],
  );
  return rowCount === 1;
}

/** Voids a review's approval (dismissed); returns the approver when it was in force. */
export async function voidReviewApproval(
  sql: Sql,
  reviewId: number,
  reason: string,
): Promise<{ approverId: number; approverLogin: string; ticketId: string } | null> {
  const { rows } = await sql.query<{
    approver_id: number;
    approver_login: string;
    ticket_id: string;
  }>(
    `UPDATE approvals SET voided_at = now(), void_reason = $2::text
      WHERE channel = 'review' AND source_id = $1::bigint AND voided_at IS NULL
      RETURNING approver_id, approver_login, ticket_id`,
    [reviewId, reason],
  );
  const row = rows[0];
  return row
    ? { approverId: row.approver_id, approverLogin: row.approver_login, ticketId: row.ticket_id }
    : null;
}

/**
 * Voids every approval of the ticket still in force: they were given to a
 * grant that has now ended, and asking again needs approving again.
 */
export async function voidTicketApprovals(
  sql: Sql,
  ticketId: string,
  reason: string,
): Promise<number> {
  const { rowCount } = await sql.query(
    `UPDATE approvals SET voided_at = now(), void_reason = left($2::text, 500)
      WHERE ticket_id = $1::uuid AND voided_at IS NULL`,
    [ticketId, reason],
  );
  return rowCount;
}

/** The ticket's approvals in force, oldest first. */
export async function approvalsOf(sql: Sql, ticketId: string): Promise<StoredApproval[]> {
  const { rows } = await sql.query<{
    approver_id: number;
    approver_login: string;
    channel: "review" | "comment";
    source_id: number;
    request_hash: string;
    commit_id: string | null;
    created_at: Date;
  }>(
    `SELECT approver_id, approver_login, channel, source_id, request_hash, commit_id, created_at
       FROM approvals WHERE ticket_id = $1::uuid AND voided_at IS NULL ORDER BY created_at, source_id`,
    [ticketId],
  );
  return rows.map((r) => ({
    approverId: r.approver_id,
    approverLogin: r.approver_login,
    channel: r.channel,
    sourceId: r.source_id,
    requestHash: r.request_hash,
    commitId: r.commit_id,
    at: r.created_at,
  }));
}

/** Voids one person's approvals of a ticket (a later review requesting changes); returns how many. */
export async function voidApprovalsBy(
  sql: Sql,
  ticketId: string,
  login: string,
  reason: string,
): Promise<number> {
  const { rowCount } = await sql.query(
    `UPDATE approvals SET voided_at = now(), void_reason = $3::text
      WHERE ticket_id = $1::uuid AND lower(approver_login) = lower($2::text) AND voided_at IS NULL`,
    [ticketId, login, reason],
  );
  return rowCount;
}
