import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { HallpassError } from "#src/errors.js";
import {
  type Db,
  INT8_OID,
  parseInt8,
  QueryError,
  type QueryResult,
  type Sql,
  type Statement,
  storableParams,
} from "#src/store/db.js";

/**
 * Opens the embedded PostgreSQL. With a directory, data persists there and a
 * lock file keeps a second process out (PGlite is single-process; two writers
 * on one directory would corrupt it). Without one, it lives in memory.
 */
export async function openPglite(dataDir?: string): Promise<Db> {
  const releaseLock = dataDir ? lockDataDir(dataDir) : () => {};
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(dataDir, {
      parsers: { [INT8_OID]: (value: string) => parseInt8(value) },
    });
  } catch (error) {
    releaseLock();
    throw new HallpassError("DB_UNAVAILABLE", `cannot open embedded database in ${dataDir}`, {
      cause: error,
    });
  }
  return wrapPglite(pglite, releaseLock);
}

/**
 * Wraps an open PGlite in the `Db` interface; `onClose` runs after it closes.
 * Its errors carry the statement's parameters (`params`); they are thrown as
 * `QueryError`s, which do not.
 */
export function wrapPglite(pglite: PGlite, onClose: () => void = () => {}): Db {
  let closed = false;
  const wrap = (target: Pick<PGlite, "query" | "exec">): Sql => ({
    async query<Row>(
      text: string | Statement,
      params?: readonly unknown[],
    ): Promise<QueryResult<Row>> {
      const sql = typeof text === "string" ? text : text.text;
      try {
        const result = await target.query<Row>(sql, storableParams(params));
        return { rows: result.rows, rowCount: result.affectedRows || result.rows.length };
      } catch (error) {
        throw new QueryError(error, sql, params);
      }
    },
    async exec(text: string): Promise<void> {
      try {
        await target.exec(text);
      } catch (error) {
        throw new QueryError(error, text);
      }
    },
  });
  return {
    kind: "pglite",
    ...wrap(pglite),
    async transaction(fn) {
      // What `fn` throws passes as it is; a failing BEGIN or COMMIT (a deferred trigger) is scrubbed.
      const thrown: unknown[] = [];
      try {
        return await pglite.transaction((tx) =>
          fn(wrap(tx)).catch((error: unknown) => {
            thrown.push(error);
            throw error;
          }),
        );
      } catch (error) {
        throw thrown.includes(error) ? error : new QueryError(error, "COMMIT");
      }
    },
    async listen(channel, onNotify) {
      // In-process: notifications cannot be lost, so there is never a resync.
      const unlisten = await pglite.listen(channel, onNotify);
      return () => unlisten();
    },
    async ping(): Promise<void> {
      if (closed) throw new HallpassError("DB_UNAVAILABLE", "embedded database is closed");
      await pglite.query("SELECT 1");
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await pglite.close();
      onClose();
    },
  };
}

function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const lockPath = path.join(path.dirname(dataDir), `${path.basename(dataDir)}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number.parseInt(readFileSync(lockPath, "utf8"), 10);
      if (Number.isInteger(holder) && isAlive(holder)) {
        throw new HallpassError(
          "DB_LOCKED",
          `embedded database ${dataDir} is in use by process ${holder}; run one server per data directory, or set DATABASE_URL for replicas`,
        );
      }
      rmSync(lockPath, { force: true }); // stale: its process is gone
    }
  }
  throw new HallpassError("DB_LOCKED", `cannot lock embedded database ${dataDir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
