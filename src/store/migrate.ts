import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { HallpassError } from "#src/errors.js";
import type { Db, Sql } from "#src/store/db.js";

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

/** Next to this module in the sources, next to the bundle once built. */
export const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** Reads `NNNN_name.sql` files in order; versions must run 1, 2, 3... with no gap. */
export async function loadMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_NAME.exec(file);
    if (!match?.[1] || !match[2]) {
      throw new HallpassError(
        "MIGRATION_FAILED",
        `migration file ${file} is not named NNNN_name.sql`,
      );
    }
    const version = Number(match[1]);
    if (version !== migrations.length + 1) {
      throw new HallpassError(
        "MIGRATION_FAILED",
        `migration ${file}: expected version ${migrations.length + 1}`,
      );
    }
    const sql = await readFile(`${dir}/${file}`, "utf8");
    const checksum = createHash("sha256").update(sql).digest("hex");
    migrations.push({ version, name: match[2], sql, checksum });
  }
  return migrations;
}

const LOCK =
  "SELECT pg_advisory_xact_lock(hashtextextended('hallpass.migrate.' || current_schema(), 0))";

const CREATE_HISTORY = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`;

/**
 * Applies the pending migrations, each exactly once, all in one transaction
 * under an advisory lock: replicas starting together wait for each other, and
 * a failing migration leaves the schema as it was.
 *
 * 1. Lock (per schema), create the history table if missing.
 * 2. Refuse a history that does not match the files (edited or unknown migrations).
 * 3. Run the pending ones in order and record them.
 *
 * @returns the migrations applied now (empty when up to date)
 */
export async function migrate(db: Db, migrations?: readonly Migration[]): Promise<Migration[]> {
  const all = migrations ?? (await loadMigrations());
  return db.transaction(async (tx) => {
    await tx.query(LOCK);
    await tx.exec(CREATE_HISTORY);
    const applied = await appliedVersions(tx);
    checkHistory(applied, all);
    const pending = all.filter((m) => !applied.has(m.version));
    for (const migration of pending) {
      try {
        await tx.exec(migration.sql);
      } catch (error) {
        throw new HallpassError(
          "MIGRATION_FAILED",
          `migration ${label(migration)} failed: ${(error as Error).message}; no migration was applied`,
          { cause: error },
        );
      }
      await tx.query(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1::int, $2::text, $3::text)",
        [migration.version, migration.name, migration.checksum],
      );
    }
    return pending;
  });
}

/** The highest applied version, or 0 when the schema was never migrated. */
export async function schemaVersion(db: Sql): Promise<number> {
  const exists = await db.query<{ exists: boolean }>(
    "SELECT to_regclass('schema_migrations') IS NOT NULL AS exists",
  );
  if (!exists.rows[0]?.exists) return 0;
  const { rows } = await db.query<{ version: number | null }>(
    "SELECT max(version) AS version FROM schema_migrations",
  );
  return rows[0]?.version ?? 0;
}

async function appliedVersions(tx: Sql): Promise<Map<number, { name: string; checksum: string }>> {
  const { rows } = await tx.query<{ version: number; name: string; checksum: string }>(
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
  );
  return new Map(rows.map((r) => [r.version, { name: r.name, checksum: r.checksum }]));
}

function checkHistory(
  applied: Map<number, { name: string; checksum: string }>,
  all: readonly Migration[],
): void {
  for (const [version, row] of applied) {
    const file = all.find((m) => m.version === version);
    if (!file) {
      throw new HallpassError(
        "MIGRATION_TAMPERED",
        `the database has migration ${version} (${row.name}) that this hallpass does not know; it was migrated by a newer version`,
      );
    }
    if (file.checksum !== row.checksum) {
      throw new HallpassError(
        "MIGRATION_TAMPERED",
        `migration ${label(file)} was changed after it was applied; migrations are forward-only, add a new one instead`,
      );
    }
  }
}

function label(m: Migration): string {
  return `${String(m.version).padStart(4, "0")}_${m.name}`;
}
