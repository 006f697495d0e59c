import type { Sql } from "#src/store/db.js";

/** How a proxied request ended, as `proxy_requests.outcome` records it. */
export type ProxyOutcome = "forwarding" | "forwarded" | "denied" | "failed";

/** One request of a grant's token through the proxy. */
export interface ProxyRequestRow {
  readonly grantId: string;
  readonly jti: string;
  readonly resource: string;
  readonly method: string;
  /** Decoded and normalised, without the query; as sent when it could not be normalised. */
  readonly path: string;
  /** The permission (`METHOD /pattern`) that let it through, if one did. */
  readonly scope: string | null;
  readonly outcome: ProxyOutcome;
  /** What the caller got; null while forwarding. */
  readonly status: number | null;
  readonly bytesIn: number | null;
  readonly bytesOut: number | null;
  readonly latencyUs: number | null;
  readonly requestId: string;
  /** Why it was refused or failed. */
  readonly reason: string | null;
  /** Epoch milliseconds (the proxy's clock), as cheap to take per request as it gets. */
  readonly startedAt: number;
  readonly finishedAt: number | null;
}

/** The end of a request whose row was written before it was forwarded. */
export interface ProxyCompletion {
  readonly id: number;
  readonly outcome: Exclude<ProxyOutcome, "forwarding">;
  readonly status: number | null;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly latencyUs: number;
  readonly reason: string | null;
  /** Epoch milliseconds. */
  readonly finishedAt: number;
}

/** Longest path kept, in characters: a request line can be far longer than anyone reads. */
const MAX_PATH = 2_048;

/** Columns of `proxy_requests` in the order `columnsOf` gives them. */
const COLUMNS = `grant_id, jti, resource, method, path, scope, outcome, status, bytes_in, bytes_out,
  latency_us, request_id, reason, started_at, finished_at`;

/** Writes one row now (a mutating request, before it is forwarded); returns its id. */
export async function insertProxyRequest(sql: Sql, row: ProxyRequestRow): Promise<number> {
  const { rows } = await sql.query<{ id: number }>(
    {
      name: "proxy_request_insert",
      text: `INSERT INTO proxy_requests (${COLUMNS})
             VALUES ($1::uuid, $2::uuid, $3::text, $4::text, left($5::text, ${MAX_PATH}), $6::text,
                     $7::text, $8::int, $9::bigint, $10::bigint, $11::int, $12::text, $13::text,
                     to_timestamp($14::float8 / 1000), to_timestamp($15::float8 / 1000))
             RETURNING id`,
    },
    columnsOf(row),
  );
  return (rows[0] as { id: number }).id;
}

/**
 * Writes many rows in one statement (the batches of reads and refusals).
 * The batch travels as one JSON array of rows, each an array of columns (as
 * jsonb: json would be parsed again by every `->>`, four times slower);
 * serialising it is one native `JSON.stringify`, where array parameters
 * would cost an escape per value on the proxy's own core.
 */
export async function insertProxyRequests(
  sql: Sql,
  batch: readonly ProxyRequestRow[],
): Promise<void> {
  if (batch.length === 0) return;
  await sql.query(
    {
      name: "proxy_requests_insert_jsonb",
      text: `INSERT INTO proxy_requests (${COLUMNS})
             SELECT (r->>0)::uuid, (r->>1)::uuid, r->>2, r->>3, left(r->>4, ${MAX_PATH}), r->>5,
                    r->>6, (r->>7)::int, (r->>8)::bigint, (r->>9)::bigint, (r->>10)::int, r->>11,
                    r->>12, to_timestamp((r->>13)::float8 / 1000),
                    to_timestamp((r->>14)::float8 / 1000)
               FROM jsonb_array_elements($1::jsonb) AS r`,
    },
    [JSON.stringify(batch.map(columnsOf))],
  );
}

/** Completes rows written before their requests were forwarded, in one statement. */
export async function completeProxyRequests(
  sql: Sql,
  batch: readonly ProxyCompletion[],
): Promise<void> {
  if (batch.length === 0) return;
  await sql.query(
    {
      name: "proxy_requests_complete_jsonb",
      text: `UPDATE proxy_requests p
                SET outcome = c->>1, status = (c->>2)::int, bytes_in = (c->>3)::bigint,
                    bytes_out = (c->>4)::bigint, latency_us = (c->>5)::int, reason = c->>6,
                    finished_at = to_timestamp((c->>7)::float8 / 1000)
               FROM jsonb_array_elements($1::jsonb) AS c
              WHERE p.id = (c->>0)::bigint AND p.outcome = 'forwarding'`,
    },
    [
      JSON.stringify(
        batch.map((c) => [
          c.id,
          c.outcome,
          c.status,
          c.bytesIn,
          c.bytesOut,
          c.latencyUs,
          c.reason,
          c.finishedAt,
        ]),
      ),
    ],
  );
}

function columnsOf(row: ProxyRequestRow): unknown[] {
  return [
    row.grantId,
    row.jti,
    row.resource,
    row.method,
    row.path,
    row.scope,
    row.outcome,
    row.status,
    row.bytesIn,
    row.bytesOut,
    row.latencyUs,
    row.requestId,
    row.reason,
    row.startedAt,
    row.finishedAt,
  ];
}

/** Tokens and proxy traffic of a grant, for the closing comment. */
export interface Usage {
  readonly tokens: readonly {
    readonly channel: "actions" | "cli";
    /** GitHub login, or the workflow run (`owner/repo run 123 attempt 1`). */
    readonly subject: string;
    readonly actor: string | null;
    readonly runId: number | null;
    readonly count: number;
  }[];
  /** Proxied requests by endpoint, most used first (at most 50 endpoints). */
  readonly requests: readonly EndpointUsage[];
  /** All proxied requests of the grant, on every endpoint. */
  readonly requestsTotal: number;
}

/**
 * Requests of one endpoint: the method and the scope pattern that let them
 * through, or, for requests no scope let through, the method and why they
 * were refused.
 */
export interface EndpointUsage {
  readonly method: string;
  /** The permission that matched; null for refusals before or at the scope check. */
  readonly scope: string | null;
  /** Why, when `scope` is null. */
  readonly reason: string | null;
  readonly total: number;
  /** By the status the caller got; requests that never got one count in `total` only. */
  readonly byClass: {
    readonly "2xx": number;
    readonly "3xx": number;
    readonly "4xx": number;
    readonly "5xx": number;
  };
  /** Refused by the proxy itself (not forwarded). */
  readonly refused: number;
}

/** Endpoints listed in a summary; `requestsTotal` counts the rest too. */
const MAX_ENDPOINTS = 50;

/** What a grant was used for: tokens by holder, proxy requests by endpoint and status class. */
export async function usageOf(sql: Sql, grantId: string): Promise<Usage> {
  const tokens = await sql.query<{
    channel: "actions" | "cli";
    subject: string;
    actor: string | null;
    run_id: number | null;
    count: number;
  }>(
    `SELECT channel, subject, actor, run_id, count(*)::int AS count
       FROM tokens WHERE grant_id = $1::uuid
      GROUP BY channel, subject, actor, run_id
      ORDER BY min(issued_at)
      LIMIT 50`,
    [grantId],
  );
  const requests = await sql.query<{
    method: string;
    scope: string | null;
    reason: string | null;
    total: number;
    c2: number;
    c3: number;
    c4: number;
    c5: number;
    refused: number;
  }>(
    `SELECT method, scope, CASE WHEN scope IS NULL THEN reason END AS reason,
            count(*)::int AS total,
            count(*) FILTER (WHERE status BETWEEN 200 AND 299)::int AS c2,
            count(*) FILTER (WHERE status BETWEEN 300 AND 399)::int AS c3,
            count(*) FILTER (WHERE status BETWEEN 400 AND 499)::int AS c4,
            count(*) FILTER (WHERE status >= 500)::int AS c5,
            count(*) FILTER (WHERE outcome = 'denied')::int AS refused
       FROM proxy_requests WHERE grant_id = $1::uuid
      GROUP BY 1, 2, 3
      ORDER BY count(*) DESC, 1, 2, 3
      LIMIT ${MAX_ENDPOINTS}`,
    [grantId],
  );
  const total = await sql.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM proxy_requests WHERE grant_id = $1::uuid",
    [grantId],
  );
  return {
    tokens: tokens.rows.map((t) => ({
      channel: t.channel,
      subject: t.subject,
      actor: t.actor,
      runId: t.run_id,
      count: t.count,
    })),
    requests: requests.rows.map((r) => ({
      method: r.method,
      scope: r.scope,
      reason: r.reason,
      total: r.total,
      byClass: { "2xx": r.c2, "3xx": r.c3, "4xx": r.c4, "5xx": r.c5 },
      refused: r.refused,
    })),
    requestsTotal: total.rows[0]?.n ?? 0,
  };
}
