/**
 * The one database interface of hallpass. Two implementations exist: a `pg`
 * pool against a real PostgreSQL (`DATABASE_URL`), and PGlite in-process.
 * Both run the same SQL and return rows with the same JavaScript types:
 * `int8` as `number` (every id we store is below 2^53), `timestamptz` as
 * `Date`, `json`/`jsonb` parsed, `text[]` as `string[]`.
 */

export interface QueryResult<Row> {
  readonly rows: Row[];
  readonly rowCount: number;
}

/**
 * A statement of a hot path, prepared once per connection under its name
 * (Postgres): later executions skip parsing and planning, which for a
 * statement of several joins or CTEs costs more than running it. The text
 * must be constant; names are unique across the code base.
 */
export interface Statement {
  readonly name: string;
  readonly text: string;
}

/** Something SQL can be sent to: the database itself or an open transaction. */
export interface Sql {
  /** One parameterised statement. Never log `params`. */
  query<Row = Record<string, unknown>>(
    text: string | Statement,
    params?: readonly unknown[],
  ): Promise<QueryResult<Row>>;
  /** Several statements without parameters (migrations). */
  exec(text: string): Promise<void>;
}

export type Unlisten = () => Promise<void>;

export interface ListenOptions {
  /**
   * Called after the listening connection was lost and re-established:
   * notifications sent in between are gone, so the listener must resync
   * from the tables.
   */
  onResync?: () => void;
}

export interface Db extends Sql {
  readonly kind: "postgres" | "pglite";
  /**
   * Runs `fn` in one transaction on one connection: committed when it
   * resolves, rolled back when it throws. Inside, use only `tx`; calling the
   * outer `Db` from within would wait for a second connection (pg) or for the
   * transaction itself (PGlite).
   */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /** Subscribes to `NOTIFY channel`; payloads arrive after the sender commits. */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    options?: ListenOptions,
  ): Promise<Unlisten>;
  /** Cheap liveness probe; rejects when the database cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Sends a notification; inside a transaction it is delivered at commit. */
export async function notify(sql: Sql, channel: string, payload: string): Promise<void> {
  await sql.query("SELECT pg_notify($1::text, $2::text)", [channel, payload]);
}

/** Converts an `int8` text value, refusing values JavaScript cannot hold exactly. */
export function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value out of safe range: ${value}`);
  return n;
}

export const INT8_OID = 20;
