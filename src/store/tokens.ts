import type { Sql } from "#src/store/db.js";
import {
  GRANT_FOR_TOKEN_COLUMNS,
  type GrantForToken,
  type GrantForTokenRow,
  type GrantState,
  grantForTokenFromRow,
} from "#src/store/grants.js";

export type TokenChannel = "actions" | "cli";

export interface RunFields {
  readonly id: number;
  readonly attempt: number;
  readonly workflowRef: string;
  readonly sha: string;
}

export interface NewToken {
  readonly jti: string;
  readonly grantId: string;
  readonly kid: string;
  readonly channel: TokenChannel;
  readonly subject: string;
  readonly actor: string | null;
  /** Null: all of the grant's scopes. */
  readonly scopes: readonly string[] | null;
  readonly run: RunFields | null;
  /** Whole seconds: the token's `iat`. */
  readonly issuedAt: Date;
  /** The exact time the grant's window is checked against. */
  readonly now: Date;
}

/** Why a grant gave no token. */
export type MintRefusal =
  | "not_found"
  | "not_active"
  | "not_started"
  | "ended"
  | "scope_not_granted"
  | "scope_unmapped"
  | "key_retired";

export type TokenInsert =
  | {
      readonly inserted: true;
      readonly grant: GrantForToken;
      readonly scopes: string[];
      readonly expiresAt: Date;
    }
  | {
      readonly inserted: false;
      readonly grant: GrantForToken | null;
      readonly refusal: MintRefusal;
    };

/**
 * One statement reads the grant (`FOR SHARE`: a revocation waits for this
 * transaction, and one that committed first is seen), checks it can give this
 * token, and records the token's jti:
 *
 * - the grant is active and its window has started and not ended;
 * - the scopes asked for are the grant's, or some of them whose permissions
 *   the grant recorded (`scope_permissions`);
 * - the signing key is still the active one (`FOR KEY SHARE`: a promotion
 *   waits for this transaction before it computes the old key's last expiry;
 *   one that committed first leaves the key retired and nothing inserted).
 *
 * `expires_at` = min(iat + token_ttl_s, grant end), in whole seconds.
 */
const INSERT_FOR_GRANT = `
  WITH g AS (
    SELECT ${GRANT_FOR_TOKEN_COLUMNS}
      FROM grants g JOIN tickets t ON t.id = g.ticket_id
     WHERE g.id = $1::uuid
       FOR SHARE OF g
  ), k AS (
    SELECT kid FROM signing_keys WHERE kid = $2::text AND state = 'active' FOR KEY SHARE
  ), d AS (
    SELECT g.*,
           coalesce($5::text[], g.scopes) AS token_scopes,
           least($4::timestamptz + g.token_ttl_s * interval '1 second',
                 date_trunc('second', g.ends_at)) AS expires_at,
           CASE
             WHEN g.state <> 'active' THEN 'not_active'
             WHEN g.starts_at > $3::timestamptz THEN 'not_started'
             WHEN date_trunc('second', g.ends_at) <= $4::timestamptz THEN 'ended'
             WHEN NOT (coalesce($5::text[], g.scopes) <@ g.scopes) THEN 'scope_not_granted'
             WHEN $5::text[] IS NOT NULL AND NOT (g.scopes <@ $5::text[])
                  AND NOT (g.scope_permissions ?& $5::text[]) THEN 'scope_unmapped'
             WHEN NOT EXISTS (SELECT 1 FROM k) THEN 'key_retired'
           END AS refusal
      FROM g
  ), ins AS (
    INSERT INTO tokens (jti, grant_id, kid, channel, subject, actor, scopes,
                        run_id, run_attempt, workflow_ref, sha, issued_at, expires_at)
    SELECT $6::uuid, d.id, $2::text, $7::text, $8::text, $9::text, d.token_scopes,
           $10::bigint, $11::int, $12::text, $13::text, $4::timestamptz, d.expires_at
      FROM d WHERE d.refusal IS NULL
    RETURNING jti
  )
  SELECT d.*, EXISTS (SELECT 1 FROM ins) AS inserted FROM d`;

/** Records a token for a grant if the grant can give it (see INSERT_FOR_GRANT), in one round trip. */
export async function insertTokenForGrant(sql: Sql, token: NewToken): Promise<TokenInsert> {
  const { rows } = await sql.query<
    GrantForTokenRow & {
      token_scopes: string[];
      expires_at: Date;
      refusal: MintRefusal | null;
      inserted: boolean;
    }
  >(INSERT_FOR_GRANT, [
    token.grantId,
    token.kid,
    token.now,
    token.issuedAt,
    token.scopes,
    token.jti,
    token.channel,
    token.subject,
    token.actor,
    token.run?.id ?? null,
    token.run?.attempt ?? null,
    token.run?.workflowRef ?? null,
    token.run?.sha ?? null,
  ]);
  const row = rows[0];
  if (!row) return { inserted: false, grant: null, refusal: "not_found" };
  const grant = grantForTokenFromRow(row);
  if (!row.inserted) {
    return { inserted: false, grant, refusal: row.refusal ?? "not_active" };
  }
  return { inserted: true, grant, scopes: row.token_scopes, expiresAt: row.expires_at };
}

/** What introspection needs to know about a token beyond its signature. */
export interface TokenStanding {
  readonly releasedAt: Date | null;
  readonly expiresAt: Date;
  readonly grantState: GrantState;
  readonly grantEndsAt: Date | null;
  readonly resource: string;
  readonly audience: string;
  /** Whether the key that signed it is still published at `now`. */
  readonly keyPublished: boolean;
}

/** Read fresh on every call: revocations must show on the very next request. */
export async function tokenStanding(
  sql: Sql,
  jti: string,
  now: Date,
): Promise<TokenStanding | null> {
  const { rows } = await sql.query<TokenStanding>(
    `SELECT t.released_at AS "releasedAt", t.expires_at AS "expiresAt",
            g.state AS "grantState", g.ends_at AS "grantEndsAt",
            g.resource, g.audience,
            (k.state <> 'retired' OR k.verify_until > $2::timestamptz) AS "keyPublished"
       FROM tokens t
       JOIN grants g ON g.id = t.grant_id
       JOIN signing_keys k ON k.kid = t.kid
      WHERE t.jti = $1::uuid`,
    [jti, now],
  );
  return rows[0] ?? null;
}

export interface ReleasedToken {
  readonly grantId: string;
  readonly ticketId: string;
  readonly subject: string;
}

/**
 * Marks a token released; returns null when it was released before (or is
 * unknown), so a repeated release changes nothing.
 */
export async function releaseToken(sql: Sql, jti: string, at: Date): Promise<ReleasedToken | null> {
  const { rows } = await sql.query<ReleasedToken>(
    `UPDATE tokens t SET released_at = $2::timestamptz
       FROM grants g
      WHERE t.jti = $1::uuid AND t.released_at IS NULL AND g.id = t.grant_id
     RETURNING t.grant_id AS "grantId", g.ticket_id AS "ticketId", t.subject`,
    [jti, at],
  );
  return rows[0] ?? null;
}

export async function tokenExists(sql: Sql, jti: string): Promise<boolean> {
  const { rows } = await sql.query("SELECT 1 FROM tokens WHERE jti = $1::uuid", [jti]);
  return rows.length > 0;
}
