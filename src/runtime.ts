import type { DatabaseConfig } from "#src/config.js";
import { HallpassError, isHallpassError } from "#src/errors.js";
import type { Logger } from "#src/log.js";
import type { Db } from "#src/store/db.js";
import { loadMigrations, type Migration, migrate, schemaVersion } from "#src/store/migrate.js";
import { openDb } from "#src/store/open.js";

/** Something started once the database is ready, stopped before it closes. */
export interface Component {
  stop(): Promise<void>;
}
export type StartComponent = (db: Db) => Promise<Component> | Component;

export interface Readiness {
  readonly ready: boolean;
  readonly database: "ok" | "unreachable" | "connecting";
  readonly schema: { readonly current: number | null; readonly expected: number };
  readonly reason?: string;
}

export interface RuntimeOptions {
  readonly database: DatabaseConfig;
  readonly log: Logger;
  readonly components?: readonly StartComponent[];
  readonly open?: (database: DatabaseConfig, log: Logger) => Promise<Db>;
  /** The migrations to apply; by default the files next to the store. */
  readonly migrations?: readonly Migration[];
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
}

/** Errors after which retrying cannot help: the start must stop. */
const FATAL = ["MIGRATION_FAILED", "MIGRATION_TAMPERED"] as const;

/**
 * The database-backed part of the server. `start` keeps trying to open the
 * database (an unreachable database is not fatal: /readyz reports it and the
 * server retries with backoff), then migrates (a failing migration is fatal),
 * then starts the components (workers, the GitHub App).
 */
export class Runtime {
  readonly #options: RuntimeOptions;
  #db: Db | null = null;
  #components: Component[] = [];
  #migrations: Migration[] = [];
  #lastError: string | null = null;
  #stopping = false;
  #wake: (() => void) | null = null;

  constructor(options: RuntimeOptions) {
    this.#options = options;
  }

  /** The database once ready, else null. */
  get db(): Db | null {
    return this.#db;
  }

  /** The database, or a 503 error for requests that arrive before it is ready. */
  requireDb(): Db {
    if (!this.#db) throw new HallpassError("NOT_READY", "the database is not ready yet");
    return this.#db;
  }

  /** Resolves once ready; rejects on a fatal error or when stopped first. */
  async start(): Promise<void> {
    const { log } = this.#options;
    this.#migrations = [...(this.#options.migrations ?? (await loadMigrations()))];
    const retry = this.#options.retry ?? { initialMs: 500, maxMs: 30_000 };
    let delay = retry.initialMs;
    const open = this.#options.open ?? openDb;
    let ready: Db;
    for (;;) {
      if (this.#stopping)
        throw new HallpassError("NOT_READY", "stopped before the database was ready");
      let db: Db | null = null;
      try {
        db = await open(this.#options.database, log);
        const applied = await migrate(db, this.#migrations);
        if (applied.length > 0) {
          log.info({ migrations: applied.map((m) => m.version) }, "database migrated");
        }
        ready = db;
        this.#lastError = null;
        break;
      } catch (error) {
        await db?.close().catch(() => {});
        if (FATAL.some((code) => isHallpassError(error, code))) throw error;
        this.#lastError = describe(error);
        log.warn({ err: error, retryInMs: delay }, "database not reachable; retrying");
        await this.#sleep(delay);
        delay = Math.min(delay * 2, retry.maxMs);
      }
    }
    for (const start of this.#options.components ?? []) {
      this.#components.push(await start(ready));
    }
    // Only now do requests see the database: everything it needs has started.
    this.#db = ready;
    log.info({ database: ready.kind }, "ready");
  }

  async readiness(): Promise<Readiness> {
    const expected = this.#migrations.length;
    const db = this.#db;
    if (!db) {
      return {
        ready: false,
        database: "connecting",
        schema: { current: null, expected },
        reason: this.#lastError ?? "starting",
      };
    }
    try {
      const current = await withTimeout(schemaVersion(db), 2_000);
      const ready = current === expected;
      return {
        ready,
        database: "ok",
        schema: { current, expected },
        ...(ready ? {} : { reason: "migrations not applied" }),
      };
    } catch (error) {
      return {
        ready: false,
        database: "unreachable",
        schema: { current: null, expected },
        reason: describe(error),
      };
    }
  }

  /** Stops the components (each finishes its work in progress), then closes the database. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    for (const component of this.#components.reverse()) {
      await component.stop().catch((error) => {
        this.#options.log.error({ err: error }, "component failed to stop");
      });
    }
    this.#components = [];
    const db = this.#db;
    this.#db = null;
    await db?.close();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/** A short reason for /readyz: the error code, never connection details. */
function describe(error: unknown): string {
  if (isHallpassError(error)) return `${error.code}: ${error.message}`;
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" ? `database error ${code}` : "database unreachable";
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HallpassError("DB_UNAVAILABLE", "database timed out")), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
