import type { Sql } from "#src/store/db.js";

/** A policy file as a repository's rules were read from it. */
export interface PolicySourceFile {
  /** `owner/name`. */
  readonly repo: string;
  readonly path: string;
}

/** A repository whose policy was read from a file. */
export interface PolicyDependent {
  readonly repoId: number;
  readonly installationId: number;
}

const fileKey = (repo: string, path: string) => `${repo.toLowerCase()}:${path}`;

/**
 * Records the files the repository's policy was read from now (written
 * only when they changed).
 */
export async function recordPolicySources(
  sql: Sql,
  repoId: number,
  installationId: number,
  files: readonly PolicySourceFile[],
): Promise<void> {
  const sources = [...new Set(files.map((f) => f.repo.toLowerCase()))];
  await sql.query(
    `INSERT INTO policy_sources (repo_id, installation_id, sources, files)
     VALUES ($1::bigint, $2::bigint, $3::text[], $4::text[])
     ON CONFLICT (repo_id) DO UPDATE SET
       installation_id = EXCLUDED.installation_id, sources = EXCLUDED.sources,
       files = EXCLUDED.files, updated_at = now()
     WHERE policy_sources.files IS DISTINCT FROM EXCLUDED.files
        OR policy_sources.installation_id IS DISTINCT FROM EXCLUDED.installation_id`,
    [repoId, installationId, sources, files.map((f) => fileKey(f.repo, f.path))],
  );
}

/**
 * Repositories whose policy was last read from `repo` (`owner/name`):
 * from one of `paths` there, or from any file there when `paths` is null.
 */
export async function policyDependents(
  sql: Sql,
  repo: string,
  paths: readonly string[] | null,
): Promise<PolicyDependent[]> {
  const { rows } =
    paths === null
      ? await sql.query<{ repo_id: string; installation_id: string }>(
          `SELECT repo_id::text AS repo_id, installation_id::text AS installation_id
             FROM policy_sources WHERE sources @> ARRAY[$1::text] ORDER BY repo_id`,
          [repo.toLowerCase()],
        )
      : await sql.query<{ repo_id: string; installation_id: string }>(
          `SELECT repo_id::text AS repo_id, installation_id::text AS installation_id
             FROM policy_sources WHERE files && $1::text[] ORDER BY repo_id`,
          [paths.map((p) => fileKey(repo, p))],
        );
  return rows.map((r) => ({
    repoId: Number(r.repo_id),
    installationId: Number(r.installation_id),
  }));
}
