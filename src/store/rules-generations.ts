import type { Sql } from "#src/store/db.js";

/**
 * The generation of a repository's rules: bumped by every push that changes
 * its policy or CODEOWNERS on the default branch (0 before the first).
 */
export async function rulesGeneration(sql: Sql, repoId: number): Promise<number> {
  const { rows } = await sql.query<{ generation: string }>(
    "SELECT generation::text AS generation FROM rules_generations WHERE repo_id = $1::bigint",
    [repoId],
  );
  return rows[0] ? Number(rows[0].generation) : 0;
}

/** A push changed the repository's rules: decisions taken on the old ones no longer activate. */
export async function bumpRulesGeneration(sql: Sql, repoId: number): Promise<number> {
  const { rows } = await sql.query<{ generation: string }>(
    `INSERT INTO rules_generations (repo_id, generation) VALUES ($1::bigint, 1)
     ON CONFLICT (repo_id) DO UPDATE SET generation = rules_generations.generation + 1, updated_at = now()
     RETURNING generation::text AS generation`,
    [repoId],
  );
  return Number(rows[0]?.generation ?? 0);
}
