import type { Sql } from "#src/store/db.js";

export interface NewApproval {
  readonly ticketId: string;
  /**
   * The request (grant) it was given to; null only for a review given before
   * the ticket had any request, which the first request takes.
   */
  readonly grantId: string | null;
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
  readonly grantId: string | null;
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
    `INSERT INTO approvals (ticket_id, grant_id, approver_id, approver_login, channel, source_id, request_hash, commit_id, created_at)
     VALUES ($1::uuid, $9::uuid, $2::bigint, $3::text, $4::text, $5::bigint, $6::text, $7::text, $8::timestamptz)
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
      a.grantId,
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

/** The approvals in force given to one grant, oldest first. */
export async function approvalsOf(sql: Sql, grantId: string): Promise<StoredApproval[]> {
  const { rows } = await sql.query<{
    grant_id: string | null;
    approver_id: number;
    approver_login: string;
    channel: "review" | "comment";
    source_id: number;
    request_hash: string;
    commit_id: string | null;
    created_at: Date;
  }>(
    `SELECT grant_id, approver_id, approver_login, channel, source_id, request_hash, commit_id, created_at
       FROM approvals WHERE grant_id = $1::uuid AND voided_at IS NULL ORDER BY created_at, source_id`,
    [grantId],
  );
  return rows.map((r) => ({
    grantId: r.grant_id,
    approverId: r.approver_id,
    approverLogin: r.approver_login,
    channel: r.channel,
    sourceId: r.source_id,
    requestHash: r.request_hash,
    commitId: r.commit_id,
    at: r.created_at,
  }));
}

/**
 * Gives the reviews a ticket got before its first request to that request.
 * Only the first: a review never carries over to a request asked after one
 * was denied, cancelled or ended.
 */
export async function bindEarlyApprovals(
  sql: Sql,
  ticketId: string,
  grantId: string,
): Promise<number> {
  const { rowCount } = await sql.query(
    `UPDATE approvals SET grant_id = $2::uuid
      WHERE ticket_id = $1::uuid AND grant_id IS NULL AND voided_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM grants WHERE ticket_id = $1::uuid AND id <> $2::uuid)`,
    [ticketId, grantId],
  );
  return rowCount;
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
