import type { Sql, Statement } from "#src/store/db.js";
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
  readonly channel: TokenChannel;
  readonly subject: string;
  readonly actor: string | null;
  /** Null: all of the grant's scopes. */
  readonly scopes: readonly string[] | null;
  readonly run: RunFields | null;
  /**
   * The GitHub Actions ID token exchanged for this token, spent in the same
   * statement: its key in `oidc_token_uses` and how long to keep the record.
   */
  readonly idToken: IdTokenUse | null;
}

/** One use of an ID token: see `idTokenUse` in `tokens/oidc.ts`. */
export interface IdTokenUse {
  readonly key: string;
  readonly keepUntil: Date;
}

/** Why a grant gave no token. */
export type MintRefusal =
  | "not_found"
  | "not_active"
  | "not_started"
  | "ended"
  | "scope_not_granted"
  | "scope_unmapped"
  | "key_retired"
  | "id_token_replay";

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
 * One statement, for any number of tokens at once, reads their grants
 * (`FOR SHARE`: a revocation waits for this transaction, and one that
 * committed first is seen), checks each grant can give its token, and records
 * the tokens' jtis:
 *
 * - the grant is active and its window has started and not ended;
 * - the scopes asked for are the grant's, or some of them whose permissions
 *   the grant recorded (`scope_permissions`);
 * - the signing key is still the active one (`FOR KEY SHARE`: a promotion
 *   waits for this transaction before it computes the old key's last expiry;
 *   one that committed first leaves the key retired and nothing inserted);
 * - the ID token it is exchanged for, if any, was never used: it is recorded
 *   in `oidc_token_uses` only when every other check passed, so a refused
 *   mint leaves it unspent. A key already recorded (committed, or inserted
 *   by a concurrent transaction that then commits), or used by an earlier
 *   token of the same batch, refuses the mint as a replay.
 *
 * `expires_at` = min(iat + token_ttl_s, grant end), in whole seconds.
 * Scopes travel space-separated (scope names have no spaces).
 */
const INSERT_FOR_GRANTS_TEXT = `
  WITH req AS (
    SELECT r.*, string_to_array(r.asked_text, ' ') AS asked
      FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                  $7::bigint[], $8::int[], $9::text[], $10::text[], $14::text[],
                  $15::timestamptz[])
           WITH ORDINALITY AS r(jti, grant_id, channel, subject, actor, asked_text,
                                run_id, run_attempt, workflow_ref, sha, id_token_key,
                                id_token_until, n)
  ), g AS (
    SELECT ${GRANT_FOR_TOKEN_COLUMNS}
      FROM grants g JOIN tickets t ON t.id = g.ticket_id
     WHERE g.id IN (SELECT grant_id FROM req)
       FOR SHARE OF g
  ), k AS (
    SELECT kid FROM signing_keys WHERE kid = $11::text AND state = 'active' FOR KEY SHARE
  ), d AS (
    SELECT req.n, req.jti, req.channel, req.subject, req.actor, req.run_id, req.run_attempt,
           req.workflow_ref, req.sha, req.id_token_key, req.id_token_until, g.*,
           coalesce(req.asked, g.scopes) AS token_scopes,
           least($13::timestamptz + g.token_ttl_s * interval '1 second',
                 date_trunc('second', g.ends_at)) AS expires_at,
           CASE
             WHEN g.id IS NULL THEN 'not_found'
             WHEN g.state <> 'active' THEN 'not_active'
             WHEN g.starts_at > $12::timestamptz THEN 'not_started'
             WHEN date_trunc('second', g.ends_at) <= $13::timestamptz THEN 'ended'
             WHEN NOT (coalesce(req.asked, g.scopes) <@ g.scopes) THEN 'scope_not_granted'
             WHEN req.asked IS NOT NULL AND NOT (g.scopes <@ req.asked)
                  AND NOT (g.scope_permissions ?& req.asked) THEN 'scope_unmapped'
             WHEN NOT EXISTS (SELECT 1 FROM k) THEN 'key_retired'
           END AS check_refusal
      FROM req LEFT JOIN g ON g.id = req.grant_id
  ), first_use AS (
    SELECT id_token_key, min(n) AS n FROM d
     WHERE check_refusal IS NULL AND id_token_key IS NOT NULL GROUP BY id_token_key
  ), spent AS (
    INSERT INTO oidc_token_uses (token_key, expires_at, used_at)
    SELECT d.id_token_key, d.id_token_until, $12::timestamptz
      FROM d JOIN first_use f ON f.n = d.n
    ON CONFLICT (token_key) DO NOTHING
    RETURNING token_key
  ), e AS (
    SELECT d.*,
           coalesce(d.check_refusal,
                    CASE WHEN d.id_token_key IS NOT NULL
                          AND (d.n NOT IN (SELECT n FROM first_use)
                               OR d.id_token_key NOT IN (SELECT token_key FROM spent))
                         THEN 'id_token_replay' END) AS refusal
      FROM d
  ), ins AS (
    INSERT INTO tokens (jti, grant_id, kid, channel, subject, actor, scopes,
                        run_id, run_attempt, workflow_ref, sha, issued_at, expires_at)
    SELECT e.jti, e.id, $11::text, e.channel, e.subject, e.actor, e.token_scopes,
           e.run_id, e.run_attempt, e.workflow_ref, e.sha, $13::timestamptz, e.expires_at
      FROM e WHERE e.refusal IS NULL
    RETURNING jti
  )
  SELECT e.*, e.jti IN (SELECT jti FROM ins) AS inserted FROM e ORDER BY e.n`;

/** Every mint runs it: prepared, its plan (several CTEs) is made once per connection. */
const INSERT_FOR_GRANTS: Statement = {
  name: "insert_tokens_for_grants",
  text: INSERT_FOR_GRANTS_TEXT,
};

/**
 * Records tokens for grants where the grant can give them (see
 * INSERT_FOR_GRANTS), in one round trip; one result per token, in order.
 * All tokens share the signing key and the time.
 */
export async function insertTokensForGrants(
  sql: Sql,
  tokens: readonly NewToken[],
  common: { readonly kid: string; readonly now: Date; readonly issuedAt: Date },
): Promise<TokenInsert[]> {
  if (tokens.length === 0) return [];
  const column = <T>(pick: (t: NewToken) => T) => tokens.map(pick);
  const { rows } = await sql.query<
    Partial<GrantForTokenRow> & {
      token_scopes: string[] | null;
      expires_at: Date | null;
      refusal: MintRefusal | null;
      inserted: boolean;
    }
  >(INSERT_FOR_GRANTS, [
    column((t) => t.jti),
    column((t) => t.grantId),
    column((t) => t.channel),
    column((t) => t.subject),
    column((t) => t.actor),
    column((t) => (t.scopes ? t.scopes.join(" ") : null)),
    column((t) => t.run?.id ?? null),
    column((t) => t.run?.attempt ?? null),
    column((t) => t.run?.workflowRef ?? null),
    column((t) => t.run?.sha ?? null),
    common.kid,
    common.now,
    common.issuedAt,
    column((t) => t.idToken?.key ?? null),
    column((t) => t.idToken?.keepUntil ?? null),
  ]);
  if (rows.length !== tokens.length) throw new Error("token insert lost rows");
  return rows.map((row): TokenInsert => {
    if (row.id === null || row.id === undefined) {
      return { inserted: false, grant: null, refusal: "not_found" };
    }
    const grant = grantForTokenFromRow(row as GrantForTokenRow);
    if (!row.inserted || !row.token_scopes || !row.expires_at) {
      return { inserted: false, grant, refusal: row.refusal ?? "not_active" };
    }
    return { inserted: true, grant, scopes: row.token_scopes, expiresAt: row.expires_at };
  });
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
