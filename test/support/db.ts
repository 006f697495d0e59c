/**
 * Test databases: a fresh, migrated schema per call, on PGlite (always) and on
 * a real PostgreSQL when TEST_DATABASE_URL is set. Each test worker starts one
 * embedded database and shares it between its test files; schemas keep them apart.
 */
import { randomBytes } from "node:crypto";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { type Db, INT8_OID, parseInt8 } from "#src/store/db.js";
import { migrate } from "#src/store/migrate.js";
import { wrapPglite } from "#src/store/pglite.js";
import { openPostgres } from "#src/store/postgres.js";

export type Backend = "pglite" | "postgres";

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;

/** The backends every storage test runs on. */
export const backends: Backend[] = TEST_DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];

/** The backend of tests that need one database: real Postgres when there is one. */
export const primaryBackend: Backend = TEST_DATABASE_URL ? "postgres" : "pglite";

export interface TestDb extends Db {
  readonly schema: string;
  readonly backend: Backend;
  /** A URL whose connections land in this schema (postgres only). */
  readonly url: string | null;
  /** Opens another pool on the same schema (postgres), or returns this one (pglite). */
  another(options?: { max?: number }): Db;
}

let shared: Promise<PGlite> | null = null;
const sharedPglite = () => {
  shared ??= PGlite.create({ parsers: { [INT8_OID]: parseInt8 } });
  return shared;
};

/** Schema names carry their creation time so stale ones from crashed runs can be dropped. */
export function newSchemaName(): string {
  return `hallpass_test_${Date.now()}_${randomBytes(4).toString("hex")}`;
}

/** A fresh schema, migrated unless `migrated: false`. Close it to drop it. */
export async function createTestDb(
  backend: Backend,
  options: { migrated?: boolean } = {},
): Promise<TestDb> {
  const schema = newSchemaName();
  const db = backend === "pglite" ? await pgliteSchema(schema) : await postgresSchema(schema);
  if (options.migrated !== false) await migrate(db);
  return db;
}

async function pgliteSchema(schema: string): Promise<TestDb> {
  const pglite = await sharedPglite();
  await pglite.exec(`CREATE SCHEMA ${schema}; SET search_path TO ${schema}`);
  const db = wrapPglite(pglite);
  const testDb: TestDb = {
    ...db,
    schema,
    backend: "pglite",
    url: null,
    another: () => testDb,
    async close() {
      await pglite.exec(`SET search_path TO public; DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
  };
  return testDb;
}

async function postgresSchema(schema: string): Promise<TestDb> {
  const baseUrl = TEST_DATABASE_URL;
  if (!baseUrl) throw new Error("TEST_DATABASE_URL is not set");
  await adminQuery(`CREATE SCHEMA ${schema}`);
  const url = withSearchPath(baseUrl, schema);
  const pools: Db[] = [];
  const open = (max?: number) => {
    const pool = openPostgres(baseUrl, {
      searchPath: schema,
      max: max ?? 10,
      applicationName: schema,
    });
    pools.push(pool);
    return pool;
  };
  const db = open();
  return {
    ...db,
    schema,
    backend: "postgres",
    url,
    another: (options) => open(options?.max),
    async close() {
      await Promise.all(pools.map((p) => p.close()));
      await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
  };
}

/** Adds `options=-c search_path=<schema>` so that any client of the URL uses the schema. */
export function withSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set("options", `-c search_path=${schema}`);
  return u.toString();
}

export async function adminQuery(text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}
