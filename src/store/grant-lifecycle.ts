import type { Sql } from "#src/store/db.js";

export type GrantState = "pending" | "active" | "revoked" | "expired" | "denied" | "cancelled";
export type EndState = "revoked" | "expired" | "denied" | "cancelled";

/** A grant with everything the lifecycle needs. */
export interface Grant {
  readonly id: string;
  readonly ticketId: string;
  readonly state: GrantState;
  readonly resource: string;
  readonly audience: string;
  readonly scopes: string[];
  readonly permissions: string[];
  readonly durationS: number;
  readonly reason: string;
  readonly requestedStart: Date | null;
  readonly requestHash: string;
  readonly requesterId: number;
  readonly requesterLogin: string;
  readonly requestTtlS: number;
  readonly tokenTtlS: number;
  readonly policySha: string | null;
  readonly approvedCommit: string | null;
  readonly decision: "approvals" | "auto" | "break_glass" | null;
  readonly autoRule: number | null;
  readonly breakGlass: boolean;
  readonly approvers: string[];
  readonly reviewDueAt: Date | null;
  readonly reviewedAt: Date | null;
  readonly startsAt: Date | null;
  readonly endsAt: Date | null;
  readonly warnedAt: Date | null;
  readonly endedAt: Date | null;
  readonly endReason: string | null;
  readonly endedBy: string | null;
  /** Why it ended, where what follows depends on it; null otherwise. */
  readonly endCause: EndCause | null;
  readonly createdAt: Date;
}

/** `new_commits`: a PR's grant revoked by a push; an approving review of the new head asks again. */
export type EndCause = "new_commits";

const COLUMNS = `id, ticket_id, state, resource, audience, scopes, permissions, duration_s, reason,
  requested_start, request_hash, requester_id, requester_login, request_ttl_s, token_ttl_s, policy_sha,
  approved_commit, decision, auto_rule, break_glass, approvers, review_due_at, reviewed_at,
  starts_at, ends_at, warned_at, ended_at, end_reason, ended_by, end_cause, created_at`;

interface GrantRow {
  id: string;
  ticket_id: string;
  state: GrantState;
  resource: string;
  audience: string;
  scopes: string[];
  permissions: string[];
  duration_s: number;
  reason: string;
  requested_start: Date | null;
  request_hash: string;
  requester_id: number;
  requester_login: string;
  request_ttl_s: number;
  token_ttl_s: number;
  policy_sha: string | null;
  approved_commit: string | null;
  decision: Grant["decision"];
  auto_rule: number | null;
  break_glass: boolean;
  approvers: string[];
  review_due_at: Date | null;
  reviewed_at: Date | null;
  starts_at: Date | null;
  ends_at: Date | null;
  warned_at: Date | null;
  ended_at: Date | null;
  end_reason: string | null;
  ended_by: string | null;
  end_cause: EndCause | null;
  created_at: Date;
}

function fromRow(r: GrantRow): Grant {
  return {
    id: r.id,
    ticketId: r.ticket_id,
    state: r.state,
    resource: r.resource,
    audience: r.audience,
    scopes: r.scopes,
    permissions: r.permissions,
    durationS: r.duration_s,
    reason: r.reason,
    requestedStart: r.requested_start,
    requestHash: r.request_hash,
    requesterId: r.requester_id,
    requesterLogin: r.requester_login,
    requestTtlS: r.request_ttl_s,
    tokenTtlS: r.token_ttl_s,
    policySha: r.policy_sha,
    approvedCommit: r.approved_commit,
    decision: r.decision,
    autoRule: r.auto_rule,
    breakGlass: r.break_glass,
    approvers: r.approvers,
    reviewDueAt: r.review_due_at,
    reviewedAt: r.reviewed_at,
    startsAt: r.starts_at,
    endsAt: r.ends_at,
    warnedAt: r.warned_at,
    endedAt: r.ended_at,
    endReason: r.end_reason,
    endedBy: r.ended_by,
    endCause: r.end_cause,
    createdAt: r.created_at,
  };
}

const one = (rows: GrantRow[]): Grant | null => (rows[0] ? fromRow(rows[0]) : null);

/** The ticket's pending or active grant, locked for the transaction. */
export async function lockOpenGrant(sql: Sql, ticketId: string): Promise<Grant | null> {
  const { rows } = await sql.query<GrantRow>(
    `SELECT ${COLUMNS} FROM grants WHERE ticket_id = $1::uuid AND state IN ('pending', 'active') FOR UPDATE`,
    [ticketId],
  );
  return one(rows);
}

export async function openGrant(sql: Sql, ticketId: string): Promise<Grant | null> {
  const { rows } = await sql.query<GrantRow>(
    `SELECT ${COLUMNS} FROM grants WHERE ticket_id = $1::uuid AND state IN ('pending', 'active')`,
    [ticketId],
  );
  return one(rows);
}

/** The ticket's most recent grant, whatever its state. */
export async function latestGrant(sql: Sql, ticketId: string): Promise<Grant | null> {
  const { rows } = await sql.query<GrantRow>(
    `SELECT ${COLUMNS} FROM grants WHERE ticket_id = $1::uuid ORDER BY created_at DESC, id LIMIT 1`,
    [ticketId],
  );
  return one(rows);
}

export async function getGrant(
  sql: Sql,
  id: string,
  options: { lock?: boolean } = {},
): Promise<Grant | null> {
  const { rows } = await sql.query<GrantRow>(
    `SELECT ${COLUMNS} FROM grants WHERE id = $1::uuid${options.lock ? " FOR UPDATE" : ""}`,
    [id],
  );
  return one(rows);
}

export interface RequestTerms {
  readonly resource: string;
  readonly audience: string;
  readonly scopes: readonly string[];
  readonly durationS: number;
  readonly reason: string;
  readonly requestedStart: Date | null;
  readonly requestHash: string;
  readonly requestTtlS: number;
  readonly tokenTtlS: number;
}

export async function insertPendingGrant(
  sql: Sql,
  ticketId: string,
  requester: { id: number; login: string },
  terms: RequestTerms,
): Promise<Grant> {
  const { rows } = await sql.query<GrantRow>(
    `INSERT INTO grants (ticket_id, state, resource, audience, scopes, duration_s, reason, requested_start,
                         request_hash, requester_id, requester_login, request_ttl_s, token_ttl_s)
     VALUES ($1::uuid, 'pending', $2::text, $3::text, $4::text[], $5::int, $6::text, $7::timestamptz,
             $8::text, $9::bigint, $10::text, $11::int, $12::int)
     RETURNING ${COLUMNS}`,
    [
      ticketId,
      terms.resource,
      terms.audience,
      [...terms.scopes],
      terms.durationS,
      terms.reason,
      terms.requestedStart,
      terms.requestHash,
      requester.id,
      requester.login,
      terms.requestTtlS,
      terms.tokenTtlS,
    ],
  );
  return fromRow(rows[0] as GrantRow);
}

/** A pending request was edited: new terms, new hash (approvals of the old one no longer match). */
export async function updatePendingTerms(
  sql: Sql,
  id: string,
  terms: RequestTerms,
): Promise<Grant | null> {
  const { rows } = await sql.query<GrantRow>(
    `UPDATE grants SET resource = $2::text, audience = $3::text, scopes = $4::text[], duration_s = $5::int,
            reason = $6::text, requested_start = $7::timestamptz, request_hash = $8::text,
            request_ttl_s = $9::int, token_ttl_s = $10::int, version = version + 1, updated_at = now()
      WHERE id = $1::uuid AND state = 'pending'
      RETURNING ${COLUMNS}`,
    [
      id,
      terms.resource,
      terms.audience,
      [...terms.scopes],
      terms.durationS,
      terms.reason,
      terms.requestedStart,
      terms.requestHash,
      terms.requestTtlS,
      terms.tokenTtlS,
    ],
  );
  return one(rows);
}

export interface Activation {
  readonly startsAt: Date;
  readonly endsAt: Date;
  readonly scopes: readonly string[];
  readonly permissions: readonly string[];
  /** Scope name → its permissions, so tokens narrowed to some scopes carry only theirs. */
  readonly scopePermissions: Readonly<Record<string, readonly string[]>>;
  readonly approvers: readonly string[];
  readonly decision: "approvals" | "auto" | "break_glass";
  readonly autoRule: number | null;
  readonly reviewDueAt: Date | null;
  /** The commit of the nearest policy file. */
  readonly policySha: string;
  /** Every policy file merged, nearest first, with the commit it was read at. */
  readonly policyFiles: readonly {
    readonly repo: string;
    readonly path: string;
    readonly sha: string;
  }[];
  readonly approvedCommit: string | null;
  readonly constraints: unknown;
  readonly tokenTtlS: number;
  /** The policy's `rate_limit` for the proxy, shared by all the grant's tokens; null: none. */
  readonly rateLimit: { readonly count: number; readonly perSeconds: number } | null;
}

/**
 * pending → active, with the terms as approved. Null when it was no longer
 * pending. The database announces it to every replica (`GRANTS_CHANNEL`), as
 * it does every end and extension of an active grant.
 */
export async function activateGrant(sql: Sql, id: string, a: Activation): Promise<Grant | null> {
  const { rows } = await sql.query<GrantRow>(
    `UPDATE grants SET state = 'active', starts_at = $2::timestamptz, ends_at = $3::timestamptz,
            scopes = $4::text[], permissions = $5::text[], scope_permissions = $6::jsonb,
            approvers = $7::text[], decision = $8::text, auto_rule = $9::int,
            break_glass = $8::text = 'break_glass', review_due_at = $10::timestamptz,
            policy_sha = $11::text, approved_commit = $12::text, constraints = $13::jsonb,
            token_ttl_s = $14::int, rate_limit_count = $15::int, rate_limit_seconds = $16::int,
            policy_files = $17::jsonb,
            version = version + 1, updated_at = now()
      WHERE id = $1::uuid AND state = 'pending'
      RETURNING ${COLUMNS}`,
    [
      id,
      a.startsAt,
      a.endsAt,
      [...a.scopes],
      [...a.permissions],
      JSON.stringify(a.scopePermissions),
      [...a.approvers],
      a.decision,
      a.autoRule,
      a.reviewDueAt,
      a.policySha,
      a.approvedCommit,
      JSON.stringify(a.constraints ?? {}),
      a.tokenTtlS,
      a.rateLimit?.count ?? null,
      a.rateLimit?.perSeconds ?? null,
      JSON.stringify(a.policyFiles),
    ],
  );
  return one(rows);
}

const FROM: Record<EndState, string> = {
  revoked: "'active'",
  expired: "'active'",
  denied: "'pending'",
  cancelled: "'pending'",
};

/** Ends a grant; null when it was not in the state that transition leaves from. */
export async function endGrant(
  sql: Sql,
  id: string,
  state: EndState,
  reason: string,
  by: string,
  cause: EndCause | null = null,
): Promise<Grant | null> {
  const { rows } = await sql.query<GrantRow>(
    `UPDATE grants SET state = $2::text, ended_at = now(), end_reason = left($3::text, 500),
            ended_by = $4::text, end_cause = $5::text, version = version + 1, updated_at = now()
      WHERE id = $1::uuid AND state = ${FROM[state]}
      RETURNING ${COLUMNS}`,
    [id, state, reason, by, cause],
  );
  return one(rows);
}

export async function extendGrant(
  sql: Sql,
  id: string,
  endsAt: Date,
  approvers: readonly string[],
): Promise<Grant | null> {
  const { rows } = await sql.query<GrantRow>(
    `UPDATE grants SET ends_at = $2::timestamptz, warned_at = NULL,
            approvers = (SELECT coalesce(array_agg(DISTINCT a), '{}') FROM unnest(approvers || $3::text[]) a),
            version = version + 1, updated_at = now()
      WHERE id = $1::uuid AND state = 'active' AND ends_at < $2::timestamptz
      RETURNING ${COLUMNS}`,
    [id, endsAt, [...approvers]],
  );
  return one(rows);
}

export async function markWarned(sql: Sql, id: string): Promise<boolean> {
  const { rowCount } = await sql.query(
    "UPDATE grants SET warned_at = now() WHERE id = $1::uuid AND state = 'active' AND warned_at IS NULL",
    [id],
  );
  return rowCount === 1;
}

/** Break-glass: a code owner approved it afterwards. */
export async function markReviewed(sql: Sql, id: string): Promise<boolean> {
  const { rowCount } = await sql.query(
    "UPDATE grants SET reviewed_at = now() WHERE id = $1::uuid AND break_glass AND reviewed_at IS NULL",
    [id],
  );
  return rowCount === 1;
}

export async function markReviewFlagged(sql: Sql, id: string): Promise<boolean> {
  const { rowCount } = await sql.query(
    `UPDATE grants SET review_flagged_at = now()
      WHERE id = $1::uuid AND break_glass AND reviewed_at IS NULL AND review_flagged_at IS NULL`,
    [id],
  );
  return rowCount === 1;
}

/** Earlier auto-approvals of this requester for this resource, for quotas. */
export async function autoApprovalUses(
  sql: Sql,
  requesterId: number,
  resource: string,
  audience: string,
): Promise<{ rule: number; at: Date }[]> {
  const { rows } = await sql.query<{ auto_rule: number; starts_at: Date }>(
    `SELECT auto_rule, starts_at FROM grants
      WHERE requester_id = $1::bigint AND resource = $2::text AND audience = $3::text
        AND decision = 'auto' AND auto_rule IS NOT NULL AND starts_at IS NOT NULL`,
    [requesterId, resource, audience],
  );
  return rows.map((r) => ({ rule: r.auto_rule, at: r.starts_at }));
}

/** Ids of the open grants matching `where` (`number`: the ticket's, with `repoId`), for fan-out revocations. */
export async function openGrantIds(
  sql: Sql,
  where: {
    installationId?: number;
    requesterId?: number;
    repoOwnerId?: number;
    repoId?: number;
    number?: number;
  },
): Promise<{ grantId: string; ticketId: string }[]> {
  const { rows } = await sql.query<{ id: string; ticket_id: string }>(
    `SELECT g.id, g.ticket_id FROM grants g JOIN tickets t ON t.id = g.ticket_id
      WHERE g.state IN ('pending', 'active')
        AND ($1::bigint IS NULL OR t.installation_id = $1::bigint)
        AND ($2::bigint IS NULL OR g.requester_id = $2::bigint)
        AND ($3::bigint IS NULL OR t.repo_owner_id = $3::bigint)
        AND ($4::bigint IS NULL OR t.repo_id = $4::bigint)
        AND ($5::int IS NULL OR t.number = $5::int)
      ORDER BY g.created_at`,
    [
      where.installationId ?? null,
      where.requesterId ?? null,
      where.repoOwnerId ?? null,
      where.repoId ?? null,
      where.number ?? null,
    ],
  );
  return rows.map((r) => ({ grantId: r.id, ticketId: r.ticket_id }));
}

/**
 * Grants whose time has come, for the sweeper, soonest first. Not locked:
 * the transition re-checks under the ticket lock (skipping tickets another
 * replica holds), so each grant is handled once.
 */
export async function dueGrants(
  sql: Sql,
  what: "expire" | "warn" | "stale" | "review_overdue",
  now: Date,
  warnBeforeS: number,
  limit: number,
): Promise<Grant[]> {
  const condition = {
    expire: "state = 'active' AND ends_at <= $1::timestamptz",
    warn: `state = 'active' AND warned_at IS NULL AND ends_at > $1::timestamptz
           AND ends_at <= $1::timestamptz + $2::int * interval '1 second'
           AND ends_at - starts_at > $2::int * interval '1 second'`,
    stale:
      "state = 'pending' AND created_at + request_ttl_s * interval '1 second' <= $1::timestamptz",
    review_overdue:
      "break_glass AND reviewed_at IS NULL AND review_flagged_at IS NULL AND review_due_at <= $1::timestamptz",
  }[what];
  const { rows } = await sql.query<GrantRow>(
    `SELECT ${COLUMNS} FROM grants WHERE ${condition} AND $2::int IS NOT NULL
      ORDER BY coalesce(ends_at, created_at) LIMIT $3::int`,
    [now, warnBeforeS, limit],
  );
  return rows.map(fromRow);
}
