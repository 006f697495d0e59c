import type { Sql, Statement } from "#src/store/db.js";

import type { GrantState } from "#src/store/grant-lifecycle.js";

export type { GrantState };

/** A grant as the token service sees it: its terms and its ticket. */
export interface GrantForToken {
  readonly id: string;
  readonly state: GrantState;
  readonly resource: string;
  /** The resource, namespaced by its home repository: the `aud` of its tokens. */
  readonly audience: string;
  readonly scopes: string[];
  readonly permissions: string[];
  /** Scope name -> permissions, when recorded; needed to narrow a token's scopes. */
  readonly scopePermissions: Record<string, string[]>;
  readonly tokenTtlS: number;
  readonly startsAt: Date | null;
  readonly endsAt: Date | null;
  readonly approvers: string[];
  readonly policySha: string | null;
  readonly breakGlass: boolean;
  readonly ticketId: string;
  readonly ticket: {
    readonly repoId: number;
    readonly repoFullName: string;
    readonly number: number;
    readonly kind: "issue" | "pull_request";
  };
}

/**
 * The select list of `GrantForToken` over `grants g JOIN tickets t`, with
 * snake_case names (for use inside a CTE); `grantForTokenFromRow` maps a row.
 */
export const GRANT_FOR_TOKEN_COLUMNS = `g.id, g.state, g.resource, g.audience, g.scopes,
  g.permissions, g.scope_permissions, g.token_ttl_s, g.starts_at, g.ends_at, g.approvers,
  g.policy_sha, g.break_glass, g.ticket_id, t.repo_id, t.repo_full_name, t.number, t.kind`;

export interface GrantForTokenRow {
  id: string;
  state: GrantState;
  resource: string;
  audience: string;
  scopes: string[];
  permissions: string[];
  scope_permissions: Record<string, string[]>;
  token_ttl_s: number;
  starts_at: Date | null;
  ends_at: Date | null;
  approvers: string[];
  policy_sha: string | null;
  break_glass: boolean;
  ticket_id: string;
  repo_id: number;
  repo_full_name: string;
  number: number;
  kind: "issue" | "pull_request";
}

export function grantForTokenFromRow(row: GrantForTokenRow): GrantForToken {
  return {
    id: row.id,
    state: row.state,
    resource: row.resource,
    audience: row.audience,
    scopes: row.scopes,
    permissions: row.permissions,
    scopePermissions: row.scope_permissions,
    tokenTtlS: row.token_ttl_s,
    startsAt: row.starts_at,
    endsAt: row.ends_at,
    approvers: row.approvers,
    policySha: row.policy_sha,
    breakGlass: row.break_glass,
    ticketId: row.ticket_id,
    ticket: {
      repoId: row.repo_id,
      repoFullName: row.repo_full_name,
      number: row.number,
      kind: row.kind,
    },
  };
}

/** One grant with its ticket, or null. */
export async function getGrantForToken(sql: Sql, grantId: string): Promise<GrantForToken | null> {
  const { rows } = await sql.query<GrantForTokenRow>(
    `SELECT ${GRANT_FOR_TOKEN_COLUMNS}
       FROM grants g JOIN tickets t ON t.id = g.ticket_id
      WHERE g.id = $1::uuid`,
    [grantId],
  );
  return rows[0] ? grantForTokenFromRow(rows[0]) : null;
}

/** A ticket as the exchange sees it, with the grant that decides what it may get. */
export interface TicketGrant {
  readonly ticket: {
    readonly id: string;
    readonly installationId: number;
    readonly repoId: number;
    readonly repoOwnerId: number;
    readonly repoFullName: string;
    readonly number: number;
    readonly kind: "issue" | "pull_request";
    /** Pull requests: the head's repository; another id (or null, a deleted fork) means a fork. */
    readonly headRepoId: number | null;
  };
  /** The open (pending or active) grant, else the latest; null when it never had one. */
  readonly grant: {
    readonly id: string;
    readonly state: GrantState;
    readonly resource: string;
    readonly scopes: string[];
    readonly startsAt: Date | null;
    readonly endsAt: Date | null;
    readonly requesterId: number;
    readonly requesterLogin: string;
    /** Pull requests: the head commit the approval was given to. */
    readonly approvedCommit: string | null;
    /** The policy's `actions` rules as approved (`ActionsConstraints`), or `{}`. */
    readonly constraints: unknown;
  } | null;
}

interface TicketGrantRow {
  ticket_id: string;
  installation_id: number;
  repo_id: number;
  repo_owner_id: number;
  repo_full_name: string;
  number: number;
  kind: "issue" | "pull_request";
  head_repo_id: number | null;
  grant_id: string | null;
  state: GrantState | null;
  resource: string | null;
  scopes: string[] | null;
  starts_at: Date | null;
  ends_at: Date | null;
  requester_id: number | null;
  requester_login: string | null;
  approved_commit: string | null;
  constraints: unknown;
}

/**
 * The ticket's open grant if it has one (the partial unique index finds it),
 * else its latest. `UNION ALL ... LIMIT 1` stops at the first branch that
 * yields a row.
 */
const TICKET_GRANT = `
  SELECT t.id AS ticket_id, t.installation_id, t.repo_id, t.repo_owner_id, t.repo_full_name,
         t.number, t.kind, t.head_repo_id, g.id AS grant_id, g.state, g.resource, g.scopes,
         g.starts_at, g.ends_at, g.requester_id, g.requester_login, g.approved_commit,
         g.constraints
    FROM tickets t
    LEFT JOIN LATERAL (
      (SELECT * FROM grants o WHERE o.ticket_id = t.id AND o.state IN ('pending', 'active'))
      UNION ALL
      (SELECT * FROM grants l WHERE l.ticket_id = t.id ORDER BY l.created_at DESC, l.id LIMIT 1)
      LIMIT 1
    ) g ON true`;

/** Every exchange reads this: prepared, it costs a tenth. */
const TICKET_GRANT_BY_ID: Statement = {
  name: "ticket_grant_by_id",
  text: `${TICKET_GRANT} WHERE t.repo_id = $1::bigint AND t.number = $2::int`,
};

function ticketGrantFromRow(r: TicketGrantRow): TicketGrant {
  return {
    ticket: {
      id: r.ticket_id,
      installationId: r.installation_id,
      repoId: r.repo_id,
      repoOwnerId: r.repo_owner_id,
      repoFullName: r.repo_full_name,
      number: r.number,
      kind: r.kind,
      headRepoId: r.head_repo_id,
    },
    grant:
      r.grant_id === null
        ? null
        : {
            id: r.grant_id,
            state: r.state as GrantState,
            resource: r.resource as string,
            scopes: r.scopes ?? [],
            startsAt: r.starts_at,
            endsAt: r.ends_at,
            requesterId: r.requester_id as number,
            requesterLogin: r.requester_login as string,
            approvedCommit: r.approved_commit,
            constraints: r.constraints ?? {},
          },
  };
}

/** The ticket `number` of the repository with this id, and its grant; null when unknown. */
export async function ticketGrant(
  sql: Sql,
  repoId: number,
  number: number,
): Promise<TicketGrant | null> {
  const { rows } = await sql.query<TicketGrantRow>(TICKET_GRANT_BY_ID, [repoId, number]);
  return rows[0] ? ticketGrantFromRow(rows[0]) : null;
}

/**
 * Tickets `number` of repositories last seen under this name (case-insensitive),
 * with their grants. A name can have belonged to several repositories over
 * time (renamed, deleted, reused): callers choose by repository id.
 */
export async function ticketGrantsByName(
  sql: Sql,
  repoFullName: string,
  number: number,
): Promise<TicketGrant[]> {
  const { rows } = await sql.query<TicketGrantRow>(
    `${TICKET_GRANT} WHERE lower(t.repo_full_name) = lower($1::text) AND t.number = $2::int
      ORDER BY t.repo_id`,
    [repoFullName, number],
  );
  return rows.map(ticketGrantFromRow);
}
