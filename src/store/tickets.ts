import type { Sql } from "#src/store/db.js";

/** An issue or pull request as hallpass last saw it on GitHub. */
export interface TicketSnapshot {
  readonly installationId: number;
  readonly installationAccount: { readonly id: number; readonly login: string };
  readonly repoId: number;
  readonly repoOwnerId: number;
  readonly repoFullName: string;
  readonly number: number;
  readonly kind: "issue" | "pull_request";
  readonly author: { readonly id: number; readonly login: string };
  readonly title: string;
  readonly state: "open" | "closed";
  readonly merged: boolean;
  readonly labels: readonly string[];
  readonly headSha: string | null;
  readonly headRepoId: number | null;
}

export interface Ticket {
  readonly id: string;
  readonly installationId: number;
  readonly repoId: number;
  readonly repoOwnerId: number;
  readonly repoFullName: string;
  readonly number: number;
  readonly kind: "issue" | "pull_request";
  readonly authorId: number;
  readonly authorLogin: string;
  readonly githubState: "open" | "closed";
  readonly merged: boolean;
  readonly labels: string[];
  readonly headSha: string | null;
  readonly headRepoId: number | null;
  readonly checkRunId: number | null;
}

interface TicketRow {
  id: string;
  installation_id: number;
  repo_id: number;
  repo_owner_id: number;
  repo_full_name: string;
  number: number;
  kind: "issue" | "pull_request";
  author_id: number;
  author_login: string;
  github_state: "open" | "closed";
  merged: boolean;
  labels: string[];
  head_sha: string | null;
  head_repo_id: number | null;
  check_run_id: number | null;
}

const COLUMNS = `id, installation_id, repo_id, repo_owner_id, repo_full_name, number, kind,
  author_id, author_login, github_state, merged, labels, head_sha, head_repo_id, check_run_id`;

function fromRow(row: TicketRow): Ticket {
  return {
    id: row.id,
    installationId: row.installation_id,
    repoId: row.repo_id,
    repoOwnerId: row.repo_owner_id,
    repoFullName: row.repo_full_name,
    number: row.number,
    kind: row.kind,
    authorId: row.author_id,
    authorLogin: row.author_login,
    githubState: row.github_state,
    merged: row.merged,
    labels: row.labels,
    headSha: row.head_sha,
    headRepoId: row.head_repo_id,
    checkRunId: row.check_run_id,
  };
}

/** Records the installation (it may predate this server) and the ticket as seen now. */
export async function upsertTicket(sql: Sql, t: TicketSnapshot): Promise<Ticket> {
  await sql.query(
    `INSERT INTO installations (id, account_id, account_login) VALUES ($1::bigint, $2::bigint, $3::text)
     ON CONFLICT (id) DO UPDATE SET account_login = EXCLUDED.account_login, updated_at = now()`,
    [t.installationId, t.installationAccount.id, t.installationAccount.login],
  );
  const { rows } = await sql.query<TicketRow>(
    `INSERT INTO tickets (installation_id, repo_id, repo_owner_id, repo_full_name, number, kind,
                          author_id, author_login, title, github_state, merged, labels, head_sha, head_repo_id)
     VALUES ($1::bigint, $2::bigint, $3::bigint, $4::text, $5::int, $6::text, $7::bigint, $8::text,
             $9::text, $10::text, $11::boolean, $12::text[], $13::text, $14::bigint)
     ON CONFLICT (repo_id, number) DO UPDATE SET
       installation_id = EXCLUDED.installation_id, repo_owner_id = EXCLUDED.repo_owner_id,
       repo_full_name = EXCLUDED.repo_full_name, title = EXCLUDED.title,
       github_state = EXCLUDED.github_state, merged = EXCLUDED.merged, labels = EXCLUDED.labels,
       head_sha = EXCLUDED.head_sha, head_repo_id = EXCLUDED.head_repo_id, updated_at = now()
     RETURNING ${COLUMNS}`,
    [
      t.installationId,
      t.repoId,
      t.repoOwnerId,
      t.repoFullName,
      t.number,
      t.kind,
      t.author.id,
      t.author.login,
      t.title.slice(0, 1024),
      t.state,
      t.merged,
      [...t.labels],
      t.headSha,
      t.headRepoId,
    ],
  );
  return fromRow(rows[0] as TicketRow);
}

export async function getTicket(sql: Sql, repoId: number, number: number): Promise<Ticket | null> {
  const { rows } = await sql.query<TicketRow>(
    `SELECT ${COLUMNS} FROM tickets WHERE repo_id = $1::bigint AND number = $2::int`,
    [repoId, number],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

export async function getTicketById(sql: Sql, id: string): Promise<Ticket | null> {
  const { rows } = await sql.query<TicketRow>(
    `SELECT ${COLUMNS} FROM tickets WHERE id = $1::uuid`,
    [id],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/**
 * Locks the ticket row for the rest of the transaction: every change to a
 * ticket's grants takes this lock first, so webhook handlers, commands, the
 * sweeper and operators never interleave on one ticket. With `skipLocked`,
 * null when another transaction holds it. `NO KEY UPDATE`: rows that merely
 * reference the ticket (comments, outbox) do not wait for it, nor it for them.
 */
export async function lockTicket(
  sql: Sql,
  id: string,
  options: { skipLocked?: boolean } = {},
): Promise<Ticket | null> {
  const { rows } = await sql.query<TicketRow>(
    `SELECT ${COLUMNS} FROM tickets WHERE id = $1::uuid FOR NO KEY UPDATE${options.skipLocked ? " SKIP LOCKED" : ""}`,
    [id],
  );
  if (!rows[0] && !options.skipLocked) throw new Error(`ticket ${id} not found`);
  return rows[0] ? fromRow(rows[0]) : null;
}

export async function setCheckRun(sql: Sql, ticketId: string, checkRunId: number): Promise<void> {
  await sql.query("UPDATE tickets SET check_run_id = $2::bigint WHERE id = $1::uuid", [
    ticketId,
    checkRunId,
  ]);
}

/** Open tickets of a repository that have a pending or active grant. */
export async function ticketsWithOpenGrants(sql: Sql, repoId: number): Promise<Ticket[]> {
  const { rows } = await sql.query<TicketRow>(
    `SELECT ${COLUMNS} FROM tickets t
      WHERE t.repo_id = $1::bigint
        AND EXISTS (SELECT 1 FROM grants g WHERE g.ticket_id = t.id AND g.state IN ('pending', 'active'))
      ORDER BY t.number`,
    [repoId],
  );
  return rows.map(fromRow);
}

export async function markInstallationDeleted(sql: Sql, installationId: number): Promise<void> {
  await sql.query(
    "UPDATE installations SET deleted_at = now(), updated_at = now() WHERE id = $1::bigint",
    [installationId],
  );
}

/** Records that the installation was suspended (`true`) or unsuspended; nothing ended comes back with it. */
export async function markInstallationSuspended(
  sql: Sql,
  installationId: number,
  suspended: boolean,
): Promise<void> {
  await sql.query(
    `UPDATE installations SET suspended_at = CASE WHEN $2::boolean THEN now() END, updated_at = now()
      WHERE id = $1::bigint`,
    [installationId, suspended],
  );
}
