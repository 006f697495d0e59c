import type { Sql } from "#src/store/db.js";

/** Server-wide facts in `server_meta` (e.g. the master key check value). */
export async function readMeta(sql: Sql, key: string): Promise<unknown | null> {
  const { rows } = await sql.query<{ value: unknown }>(
    "SELECT value FROM server_meta WHERE key = $1::text",
    [key],
  );
  return rows[0]?.value ?? null;
}

/** Writes `value` unless the key exists; returns whether it was written. */
export async function insertMetaIfAbsent(sql: Sql, key: string, value: unknown): Promise<boolean> {
  const { rowCount } = await sql.query(
    `INSERT INTO server_meta (key, value) VALUES ($1::text, $2::jsonb)
     ON CONFLICT (key) DO NOTHING`,
    [key, JSON.stringify(value)],
  );
  return rowCount === 1;
}
