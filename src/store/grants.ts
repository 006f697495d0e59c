import type { Sql } from "#src/store/db.js";

export type GrantState = "pending" | "active" | "revoked" | "expired" | "denied" | "cancelled";

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
  g.policy_sha, g.break_glass, g.ticket_id, t.repo_full_name, t.number, t.kind`;

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
    ticket: { repoFullName: row.repo_full_name, number: row.number, kind: row.kind },
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
