import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { isHallpassError } from "#src/errors.js";
import type { Db } from "#src/store/db.js";
import { loadMigrations, type Migration, migrate, schemaVersion } from "#src/store/migrate.js";
import { backends, createTestDb, type TestDb } from "../support/db.js";

const real = await loadMigrations();
const extra = (version: number, name: string, sql: string): Migration => ({
  version,
  name,
  sql,
  checksum: `test-${name}`,
});

async function tableExists(db: Db, name: string): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>(
    "SELECT to_regclass($1::text) IS NOT NULL AS ok",
    [name],
  );
  return rows[0]?.ok === true;
}

describe.each(backends)("migrations on %s", (backend) => {
  const open: TestDb[] = [];
  const fresh = async () => {
    const db = await createTestDb(backend, { migrated: false });
    open.push(db);
    return db;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((db) => db.close()));
  });

  it("applies every migration once, in order, and nothing on a second run", async () => {
    const db = await fresh();
    expect(await schemaVersion(db)).toBe(0);
    const first = await migrate(db);
    expect(first.map((m) => m.version)).toEqual(real.map((m) => m.version));
    expect(await migrate(db)).toEqual([]);
    expect(await schemaVersion(db)).toBe(real.length);
    for (const table of [
      "tickets",
      "grants",
      "approvals",
      "tokens",
      "signing_keys",
      "audit_events",
    ]) {
      expect(await tableExists(db, table)).toBe(true);
    }
  });

  it("applies exactly once when replicas migrate at the same moment", async () => {
    const db = await fresh();
    const replicas = [db, db.another({ max: 2 }), db.another({ max: 2 })];
    const results = await Promise.all(replicas.map((r) => migrate(r)));
    expect(results.map((r) => r.length).sort()).toEqual([0, 0, real.length]);
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM schema_migrations",
    );
    expect(rows[0]?.n).toBe(real.length);
  });

  it("leaves the schema as it was when a migration fails", async () => {
    const db = await fresh();
    await migrate(db);
    const broken = [
      ...real,
      extra(real.length + 1, "good", "CREATE TABLE applied_before_failure (x int)"),
      extra(real.length + 2, "bad", "CREATE TABLE half (x int); SELECT * FROM no_such_table"),
    ];
    const error = await migrate(db, broken).catch((e: unknown) => e);
    expect(isHallpassError(error, "MIGRATION_FAILED")).toBe(true);
    expect((error as Error).message).toMatch(
      /migration \d{4}_bad failed: .*no_such_table.*no migration was applied/,
    );
    expect(await tableExists(db, "applied_before_failure")).toBe(false);
    expect(await tableExists(db, "half")).toBe(false);
    expect(await schemaVersion(db)).toBe(real.length);
  });

  it("refuses a migration that was edited after it was applied", async () => {
    const db = await fresh();
    await migrate(db);
    const edited = real.map((m, i) => (i === 0 ? { ...m, checksum: "edited" } : m));
    const error = await migrate(db, edited).catch((e: unknown) => e);
    expect(isHallpassError(error, "MIGRATION_TAMPERED")).toBe(true);
    expect((error as Error).message).toMatch(/changed after it was applied/);
  });

  it("refuses a database migrated by a newer version", async () => {
    const db = await fresh();
    await migrate(db, [...real, extra(real.length + 1, "future", "SELECT 1")]);
    const error = await migrate(db, real).catch((e: unknown) => e);
    expect(isHallpassError(error, "MIGRATION_TAMPERED")).toBe(true);
    expect((error as Error).message).toMatch(/newer version/);
  });
});

describe("migration files", () => {
  const dirWith = async (files: Record<string, string>) => {
    const dir = await mkdtemp(path.join(tmpdir(), "hallpass-migrations-"));
    for (const [name, sql] of Object.entries(files)) await writeFile(path.join(dir, name), sql);
    return dir;
  };

  it("are read in order with checksums", async () => {
    const dir = await dirWith({ "0002_b.sql": "SELECT 2", "0001_a.sql": "SELECT 1" });
    const migrations = await loadMigrations(dir);
    expect(migrations.map((m) => [m.version, m.name])).toEqual([
      [1, "a"],
      [2, "b"],
    ]);
    expect(migrations[0]?.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it("must be numbered without gaps", async () => {
    const dir = await dirWith({ "0001_a.sql": "SELECT 1", "0003_c.sql": "SELECT 3" });
    await expect(loadMigrations(dir)).rejects.toThrow(/0003_c.sql: expected version 2/);
  });

  it("must be named NNNN_name.sql", async () => {
    const dir = await dirWith({ "1_a.sql": "SELECT 1" });
    await expect(loadMigrations(dir)).rejects.toThrow(/not named NNNN_name.sql/);
  });
});
