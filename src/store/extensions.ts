import type { Sql } from "#src/store/db.js";

export interface Extension {
  readonly id: string;
  readonly grantId: string;
  readonly extendByS: number;
  readonly requestHash: string;
  readonly requestedByLogin: string;
}

/** The grant's extension waiting for approval, if any. */
export async function pendingExtension(sql: Sql, grantId: string): Promise<Extension | null> {
  const { rows } = await sql.query<{
    id: string;
    grant_id: string;
    extend_by_s: number;
    request_hash: string;
    requested_by_login: string;
  }>(
    `SELECT id, grant_id, extend_by_s, request_hash, requested_by_login
       FROM grant_extensions WHERE grant_id = $1::uuid AND state = 'pending'`,
    [grantId],
  );
  const r = rows[0];
  return r
    ? {
        id: r.id,
        grantId: r.grant_id,
        extendByS: r.extend_by_s,
        requestHash: r.request_hash,
        requestedByLogin: r.requested_by_login,
      }
    : null;
}

/** Asks for more time; a pending extension of the same grant is replaced. */
export async function requestExtension(
  sql: Sql,
  e: {
    grantId: string;
    extendByS: number;
    requestHash: string;
    by: { id: number; login: string };
    commentId: number;
  },
): Promise<Extension> {
  await sql.query(
    "UPDATE grant_extensions SET state = 'cancelled', decided_at = now() WHERE grant_id = $1::uuid AND state = 'pending'",
    [e.grantId],
  );
  const { rows } = await sql.query<{ id: string }>(
    `INSERT INTO grant_extensions (grant_id, extend_by_s, request_hash, requested_by_id, requested_by_login, source_comment_id)
     VALUES ($1::uuid, $2::int, $3::text, $4::bigint, $5::text, $6::bigint) RETURNING id`,
    [e.grantId, e.extendByS, e.requestHash, e.by.id, e.by.login, e.commentId],
  );
  return {
    id: (rows[0] as { id: string }).id,
    grantId: e.grantId,
    extendByS: e.extendByS,
    requestHash: e.requestHash,
    requestedByLogin: e.by.login,
  };
}

export async function closeExtension(
  sql: Sql,
  id: string,
  state: "approved" | "denied" | "cancelled",
): Promise<boolean> {
  const { rowCount } = await sql.query(
    "UPDATE grant_extensions SET state = $2::text, decided_at = now() WHERE id = $1::uuid AND state = 'pending'",
    [id, state],
  );
  return rowCount === 1;
}
