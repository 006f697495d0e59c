import pg from "pg";
import type { Logger } from "#src/log.js";
import {
  type Db,
  INT8_OID,
  type ListenOptions,
  parseInt8,
  QueryError,
  type QueryResult,
  type Sql,
  type Statement,
  storableParams,
  type Unlisten,
} from "#src/store/db.js";

export interface PostgresOptions {
  /** Overrides the schema search path (each test file gets its own schema). */
  searchPath?: string;
  max?: number;
  log?: Logger;
  /** As `pg_stat_activity` shows the connections; default `hallpass`. */
  applicationName?: string;
}

const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID
      ? parseInt8
      : pg.types.getTypeParser(oid, format ?? "text")) as pg.CustomTypesConfig["getTypeParser"],
};

const RECONNECT_MAX_MS = 5_000;

/** Opens a pool on a real PostgreSQL. Connections are made lazily. */
export function openPostgres(url: string, options: PostgresOptions = {}): Db {
  const config: pg.PoolConfig = {
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? "hallpass",
    types,
    ...(options.searchPath ? { options: `-c search_path=${options.searchPath}` } : {}),
  };
  const pool = new pg.Pool(config);
  // An idle client losing its connection (server restart) must not crash the process.
  pool.on("error", (error) => options.log?.warn({ err: error }, "idle database connection lost"));
  const listener = new Listener(config, options.log);

  // pg's errors quote parameters (`detail`, `where`, the message): thrown as `QueryError`s instead.
  const wrap = (client: pg.Pool | pg.PoolClient): Sql => ({
    async query<Row>(
      text: string | Statement,
      params?: readonly unknown[],
    ): Promise<QueryResult<Row>> {
      const values = storableParams(params);
      try {
        const result =
          typeof text === "string"
            ? await client.query(text, values)
            : await client.query({
                name: text.name,
                text: text.text,
                ...(values ? { values } : {}),
              });
        return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
      } catch (error) {
        throw new QueryError(error, typeof text === "string" ? text : text.text, params);
      }
    },
    async exec(text: string): Promise<void> {
      try {
        await client.query(text);
      } catch (error) {
        throw new QueryError(error, text);
      }
    },
  });
  const control = async (client: pg.PoolClient, statement: "BEGIN" | "COMMIT") => {
    try {
      await client.query(statement);
    } catch (error) {
      throw new QueryError(error, statement);
    }
  };

  return {
    kind: "postgres",
    ...wrap(pool),
    async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      const client = await pool.connect().catch((error: unknown) => {
        throw new QueryError(error, "BEGIN");
      });
      // A connection lost while checked out is an 'error' event on the client:
      // unheard, it would crash the process. The statement in flight (or the
      // next one) fails with it, and the rollback below then destroys the client.
      const onLost = (error: Error) =>
        options.log?.warn({ err: error }, "database connection lost in a transaction");
      client.on("error", onLost);
      try {
        await control(client, "BEGIN");
        const result = await fn(wrap(client));
        await control(client, "COMMIT");
        client.release();
        return result;
      } catch (error) {
        try {
          await client.query("ROLLBACK");
          client.release();
        } catch (rollbackError) {
          // The connection is broken; destroy it rather than return it to the pool.
          client.release(rollbackError as Error);
        }
        throw error;
      } finally {
        client.off("error", onLost);
      }
    },
    listen: (channel, onNotify, listenOptions) => listener.add(channel, onNotify, listenOptions),
    async ping(): Promise<void> {
      await pool.query("SELECT 1");
    },
    async close(): Promise<void> {
      await listener.close();
      await pool.end();
    },
  };
}

interface Subscription {
  onNotify: (payload: string) => void;
  onResync?: (() => void) | undefined;
}

/**
 * One dedicated connection for all LISTENs of the process. When it drops it
 * reconnects with backoff, listens again, and tells every subscriber to
 * resync, since notifications sent while it was away are lost.
 */
class Listener {
  #client: pg.Client | null = null;
  #connecting: Promise<pg.Client> | null = null;
  #channels = new Map<string, Set<Subscription>>();
  #closed = false;
  #retryMs = 100;
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: pg.PoolConfig,
    private readonly log: Logger | undefined,
  ) {}

  async add(
    channel: string,
    onNotify: (payload: string) => void,
    options?: ListenOptions,
  ): Promise<Unlisten> {
    const subscription: Subscription = { onNotify, onResync: options?.onResync };
    let set = this.#channels.get(channel);
    const isNew = !set;
    if (!set) {
      set = new Set();
      this.#channels.set(channel, set);
    }
    set.add(subscription);
    try {
      const client = await this.#connect();
      if (isNew) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      set.delete(subscription);
      if (set.size === 0) this.#channels.delete(channel);
      throw error;
    }
    return async () => {
      set.delete(subscription);
      if (set.size > 0 || this.#channels.get(channel) !== set) return;
      this.#channels.delete(channel);
      await this.#client?.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    const client = this.#client;
    this.#client = null;
    await client?.end().catch(() => {});
  }

  #connect(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    if (this.#connecting) return this.#connecting;
    this.#connecting = (async () => {
      const client = new pg.Client(this.config);
      client.on("notification", (message) => {
        for (const subscription of this.#channels.get(message.channel) ?? []) {
          subscription.onNotify(message.payload ?? "");
        }
      });
      client.on("error", (error) => {
        this.log?.warn({ err: error }, "database listener connection lost");
        this.#lost(client);
      });
      client.on("end", () => this.#lost(client));
      try {
        await client.connect();
      } finally {
        this.#connecting = null;
      }
      this.#client = client;
      this.#retryMs = 100;
      return client;
    })();
    return this.#connecting;
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client) return;
    this.#client = null;
    client.end().catch(() => {});
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#timer || this.#channels.size === 0) return;
    this.#timer = setTimeout(async () => {
      this.#timer = null;
      try {
        const client = await this.#connect();
        for (const channel of this.#channels.keys()) {
          await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
        }
        for (const set of this.#channels.values()) {
          for (const subscription of set) subscription.onResync?.();
        }
      } catch (error) {
        this.log?.warn({ err: error }, "database listener reconnect failed; retrying");
        this.#retryMs = Math.min(this.#retryMs * 2, RECONNECT_MAX_MS);
        this.#scheduleReconnect();
      }
    }, this.#retryMs);
    this.#timer.unref();
  }
}
