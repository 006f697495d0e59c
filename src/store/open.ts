import type { DatabaseConfig } from "#src/config.js";
import type { Logger } from "#src/log.js";
import type { Db } from "#src/store/db.js";
import { openPglite } from "#src/store/pglite.js";
import { openPostgres } from "#src/store/postgres.js";

/** Opens the database the configuration names: Postgres with a URL, else PGlite. */
export async function openDb(database: DatabaseConfig, log?: Logger): Promise<Db> {
  if (database.kind === "postgres") {
    return openPostgres(database.url, log ? { log } : {});
  }
  return openPglite(database.dataDir);
}
