/**
 * Grants for token tests, written with SQL as the ticket lifecycle would
 * leave them (that lifecycle lives elsewhere): an installation, a ticket and
 * one grant.
 */
import { randomInt } from "node:crypto";
import type { Sql } from "#src/store/db.js";
import type { GrantState } from "#src/store/grants.js";

export interface GrantOptions {
  readonly state?: GrantState;
  readonly resource?: string;
  readonly audience?: string;
  readonly scopes?: string[];
  readonly permissions?: string[];
  readonly scopePermissions?: Record<string, string[]>;
  readonly tokenTtlS?: number;
  readonly startsAt?: Date;
  readonly endsAt?: Date;
  readonly approvers?: string[];
  readonly policySha?: string | null;
  readonly breakGlass?: boolean;
  readonly kind?: "issue" | "pull_request";
  readonly repoFullName?: string;
  readonly number?: number;
  /** The ticket's repository (default: a random id, owner 1) and installation. */
  readonly repoId?: number;
  readonly repoOwnerId?: number;
  readonly installationId?: number;
  /** Pull requests: the head's repository (default: the repository itself; a fork's id for a fork). */
  readonly headRepoId?: number | null;
  readonly requester?: { readonly id: number; readonly login: string };
  /** Pull requests: the reviewed head commit the grant is bound to. */
  readonly approvedCommit?: string | null;
  /** The policy's `actions` rules as the lifecycle records them (`ActionsConstraints`). */
  readonly constraints?: Record<string, unknown>;
}

export interface GrantFixture {
  readonly grantId: string;
  readonly ticketId: string;
  readonly repoId: number;
}

export const POLICY_SHA = "0123456789abcdef0123456789abcdef01234567";

export async function insertGrant(sql: Sql, options: GrantOptions = {}): Promise<GrantFixture> {
  const installationId = options.installationId ?? randomInt(1, 2 ** 31);
  const repoId = options.repoId ?? randomInt(1, 2 ** 31);
  const now = Date.now();
  const state = options.state ?? "active";
  const startsAt = options.startsAt ?? new Date(now - 60_000);
  const endsAt = options.endsAt ?? new Date(now + 3_600_000);
  const scopes = options.scopes ?? ["read", "refund"];
  const kind = options.kind ?? "pull_request";
  const requester = options.requester ?? { id: 42, login: "requester" };
  await sql.query(
    `INSERT INTO installations (id, account_id, account_login) VALUES ($1::bigint, 1, 'acme')
     ON CONFLICT (id) DO NOTHING`,
    [installationId],
  );
  const ticket = await sql.query<{ id: string }>(
    `INSERT INTO tickets (installation_id, repo_id, repo_owner_id, repo_full_name, number, kind,
                          author_id, author_login, title, head_repo_id)
     VALUES ($1::bigint, $2::bigint, $3::bigint, $4::text, $5::int, $6::text, $7::bigint, $8::text,
             'access', $9::bigint)
     RETURNING id`,
    [
      installationId,
      repoId,
      options.repoOwnerId ?? 1,
      options.repoFullName ?? "acme/payments",
      options.number ?? 12,
      kind,
      requester.id,
      requester.login,
      kind === "pull_request"
        ? options.headRepoId === undefined
          ? repoId
          : options.headRepoId
        : null,
    ],
  );
  const ticketId = ticket.rows[0]?.id as string;
  const ended = state !== "pending" && state !== "active";
  const grant = await sql.query<{ id: string }>(
    `INSERT INTO grants (ticket_id, state, resource, audience, scopes, permissions, scope_permissions,
                         duration_s, token_ttl_s, reason, request_hash, requester_id, requester_login,
                         policy_sha, decision, break_glass, approvers, starts_at, ends_at, ended_at,
                         approved_commit, constraints)
     VALUES ($1::uuid, $2::text, $3::text, $4::text, $5::text[], $6::text[], $7::jsonb,
             3600, $8::int, 'testing', 'hash', $15::bigint, $16::text,
             $9::text, 'approvals', $10::boolean, $11::text[],
             $12::timestamptz, $13::timestamptz, $14::timestamptz, $17::text, $18::jsonb)
     RETURNING id`,
    [
      ticketId,
      state,
      options.resource ?? "payments-api",
      options.audience ?? "acme/payments#payments-api",
      scopes,
      options.permissions ?? ["GET /v1/**", "POST /v1/refunds"],
      JSON.stringify(options.scopePermissions ?? {}),
      options.tokenTtlS ?? 900,
      options.policySha === undefined ? POLICY_SHA : options.policySha,
      options.breakGlass ?? false,
      options.approvers ?? ["alice"],
      state === "pending" ? null : startsAt,
      state === "pending" ? null : endsAt,
      ended ? new Date(now) : null,
      requester.id,
      requester.login,
      options.approvedCommit ?? null,
      JSON.stringify(options.constraints ?? {}),
    ],
  );
  return { grantId: grant.rows[0]?.id as string, ticketId, repoId };
}

/** Ends a grant as the lifecycle would (revoked, expired). */
export async function endGrant(
  sql: Sql,
  grantId: string,
  state: "revoked" | "expired" = "revoked",
): Promise<void> {
  await sql.query(
    `UPDATE grants SET state = $2::text, ended_at = now(), end_reason = 'test', version = version + 1
      WHERE id = $1::uuid`,
    [grantId, state],
  );
}
