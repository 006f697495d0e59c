import type { Sql } from "#src/store/db.js";

/**
 * Records that an ID token was used; false when it was used before (a
 * replay). The row must outlive every moment the token could still be
 * accepted: `expiresAt` is its `exp` plus the verifier's clock leeway.
 */
export async function recordOidcTokenUse(
  sql: Sql,
  tokenKey: string,
  expiresAt: Date,
  at: Date,
): Promise<boolean> {
  const { rowCount } = await sql.query(
    `INSERT INTO oidc_token_uses (token_key, expires_at, used_at)
     VALUES ($1::text, $2::timestamptz, $3::timestamptz)
     ON CONFLICT (token_key) DO NOTHING`,
    [tokenKey, expiresAt, at],
  );
  return rowCount === 1;
}

/** Deletes up to `limit` rows of tokens that can no longer be accepted; returns how many. */
export async function deleteExpiredOidcTokenUses(
  sql: Sql,
  now: Date,
  limit: number,
): Promise<number> {
  const { rowCount } = await sql.query(
    `DELETE FROM oidc_token_uses
      WHERE token_key IN (SELECT token_key FROM oidc_token_uses
                           WHERE expires_at < $1::timestamptz
                           ORDER BY expires_at LIMIT $2::int)`,
    [now, limit],
  );
  return rowCount;
}
