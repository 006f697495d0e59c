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
  /**
   * One parameterised statement. Never log `params`. A NUL in a text
   * parameter is stored as U+FFFD (`storableParams`); a failure rejects with
   * a `QueryError`, which carries no parameter.
   */
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

/**
 * Text as Postgres can hold it: text and jsonb refuse NUL (U+0000), which
 * JSON and GitHub's text allow, so it becomes U+FFFD.
 */
function storableText(text: string): string {
  return text.includes("\0") ? text.replaceAll("\0", "\uFFFD") : text;
}

/**
 * The parameters of a statement with NUL replaced in every string (and
 * string array) by `storableText`: Postgres refuses a NUL in any text
 * parameter, so text from GitHub (a title, a reason quoted from a ticket's
 * body) is stored with U+FFFD instead of failing its transaction. Both
 * backends send their parameters through it. A jsonb parameter's `\u0000`
 * escape is not a NUL here: write those with `storableJson`.
 */
export function storableParams(params: readonly unknown[] | undefined): unknown[] | undefined {
  if (!params?.some(holdsNul)) return params as unknown[] | undefined;
  return params.map((param) =>
    typeof param === "string"
      ? storableText(param)
      : Array.isArray(param)
        ? param.map((item: unknown) => (typeof item === "string" ? storableText(item) : item))
        : param,
  );
}

function holdsNul(param: unknown): boolean {
  if (typeof param === "string") return param.includes("\0");
  return (
    Array.isArray(param) && param.some((item) => typeof item === "string" && item.includes("\0"))
  );
}

/** `JSON.stringify` for a jsonb parameter, with NUL replaced (see `storableText`) in every string and key. */
export function storableJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (typeof item === "string") return storableText(item);
    if (item === null || typeof item !== "object" || Array.isArray(item)) return item;
    if (!Object.keys(item).some((key) => key.includes("\0"))) return item;
    return Object.fromEntries(Object.entries(item).map(([key, v]) => [storableText(key), v]));
  });
}

/**
 * The error of a statement, as it may travel and be logged: the database's
 * message (without what it quotes of a parameter), its SQLSTATE `code` and
 * constraint name, and the statement's text; never the parameters. pg's and
 * PGlite's own errors carry them: PGlite's `params`, and in both the
 * `detail` and `where` lines that quote values (a payload refused for a NUL
 * would be logged whole).
 */
/** Connection failures, as Node and `pg` name them, and SQLSTATEs of a server that went away. */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);
const UNREACHABLE_MESSAGE =
  /connection terminated|connection timeout|timeout exceeded when trying to connect|connection error/i;

/**
 * Whether a database error says the database could not be reached (down,
 * restarting, out of connections, the connection lost), as opposed to a
 * statement it refused: the first is a 503 that GitHub or a client
 * retries, the second a fault. Only errors of the database count: another
 * network failure with the same code is not the database's.
 */
export function isDatabaseUnreachable(error: unknown): boolean {
  if (!(error instanceof QueryError)) return false;
  const { code } = error;
  if (code !== undefined) return UNREACHABLE_CODES.has(code) || code.startsWith("08");
  return UNREACHABLE_MESSAGE.test(error.message);
}

export class QueryError extends Error {
  override readonly name = "QueryError";
  /** SQLSTATE (`23505`...), or a connection error's code (`ECONNREFUSED`...). */
  readonly code: string | undefined;
  readonly constraint: string | undefined;
  /** The statement's text: constant SQL, no values. */
  readonly query: string;

  constructor(error: unknown, query: string, params: readonly unknown[] = []) {
    super(scrubMessage(error, params));
    const fields = (error ?? {}) as { code?: unknown; constraint?: unknown };
    this.code = typeof fields.code === "string" ? fields.code : undefined;
    this.constraint = typeof fields.constraint === "string" ? fields.constraint : undefined;
    this.query = query.length > 2_000 ? `${query.slice(0, 2_000)}…` : query;
  }
}

/**
 * The message without `...: "<value>"` (how Postgres quotes an input it
 * refuses, or a part of it) and without any text parameter it repeats.
 */
function scrubMessage(error: unknown, params: readonly unknown[]): string {
  let message = (error instanceof Error ? error.message : String(error)).replace(
    /:\s*".*"/s,
    ': "[value]"',
  );
  for (const param of params.flat()) {
    if (typeof param === "string" && param.length >= 4)
      message = message.replaceAll(param, "[value]");
  }
  return message.length > 500 ? `${message.slice(0, 500)}…` : message;
}

/** Converts an `int8` text value, refusing values JavaScript cannot hold exactly. */
export function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value out of safe range: ${value}`);
  return n;
}

export const INT8_OID = 20;
