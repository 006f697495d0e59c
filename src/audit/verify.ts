import { type AuditEventBody, canonicalJson, chainHash, GENESIS_HASH } from "#src/audit/event.js";
import type { Sql } from "#src/store/db.js";

export type BreakKind = "modified" | "deleted" | "inserted" | "reordered";

export interface ChainBreak {
  /** The first row (sequence number) where the chain stops holding. */
  readonly seq: number;
  readonly kind: BreakKind;
  readonly detail: string;
}

export interface VerifyResult {
  readonly ok: boolean;
  /** Rows checked before the first break (all of them when ok). */
  readonly checked: number;
  readonly tip: { readonly seq: number; readonly hash: string };
  readonly break?: ChainBreak;
}

interface Row {
  seq: number;
  at: Date;
  kind: string;
  actor: string | null;
  ticket_id: string | null;
  grant_id: string | null;
  body: string;
  prev_hash: string;
  hash: string;
}

const COLUMNS = "seq, at, kind, actor, ticket_id, grant_id, body, prev_hash, hash";

/**
 * Walks the whole chain in order and reports the first broken link.
 *
 * Each row must (1) follow the previous sequence number, (2) name the
 * previous row's hash as `prev_hash`, (3) hash to its `hash`, and (4) have
 * columns that agree with its canonical body. The last row must be the tip
 * recorded in `audit_head`. Where a link breaks, the row it points to tells
 * what happened: a later row (reordered), an earlier one (rows inserted in
 * between), or none (a row deleted).
 */
export async function verifyAudit(
  sql: Sql,
  options: { batchSize?: number } = {},
): Promise<VerifyResult> {
  const batchSize = options.batchSize ?? 5_000;
  let prev = { seq: 0, hash: GENESIS_HASH };
  let checked = 0;
  for (;;) {
    const { rows } = await sql.query<Row>(
      `SELECT ${COLUMNS} FROM audit_events WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int`,
      [prev.seq, batchSize],
    );
    for (const row of rows) {
      const problem = await checkRow(sql, row, prev);
      if (problem) return { ok: false, checked, tip: await readTip(sql), break: problem };
      prev = { seq: row.seq, hash: row.hash };
      checked++;
    }
    if (rows.length < batchSize) break;
  }
  const tip = await readTip(sql);
  const problem = checkTip(tip, prev);
  return problem ? { ok: false, checked, tip, break: problem } : { ok: true, checked, tip };
}

async function checkRow(
  sql: Sql,
  row: Row,
  prev: { seq: number; hash: string },
): Promise<ChainBreak | null> {
  const expected = prev.seq + 1;
  if (row.seq !== expected) {
    return {
      seq: expected,
      kind: "deleted",
      detail: `rows ${range(expected, row.seq - 1)} are missing (the next row is ${row.seq})`,
    };
  }
  const hashes = chainHash(row.prev_hash, row.body) === row.hash;
  if (row.prev_hash !== prev.hash) {
    const target = await seqOfHash(sql, row.prev_hash);
    if (target !== null && target > row.seq) {
      return {
        seq: row.seq,
        kind: "reordered",
        detail: `row ${row.seq} was chained after row ${target}, which now comes later`,
      };
    }
    if (target !== null && target < prev.seq) {
      return {
        seq: target + 1,
        kind: "inserted",
        detail: `row ${row.seq} was chained to row ${target}: rows ${range(target + 1, prev.seq)} are not part of the chain`,
      };
    }
    if (await skips(sql, row, prev)) return insertedRow(row);
    return hashes
      ? {
          seq: row.seq,
          kind: "deleted",
          detail: `row ${row.seq} was chained to a row that is gone (a row before it was deleted and the rest renumbered)`,
        }
      : modified(row, "does not hash to its stored hash");
  }
  if (!hashes) {
    if (await skips(sql, row, prev)) return insertedRow(row);
    return modified(row, "does not hash to its stored hash");
  }
  const mismatch = columnMismatch(row);
  return mismatch ? modified(row, mismatch) : null;
}

/** Whether the row after `row` is chained to `prev`, i.e. the chain goes around `row`. */
async function skips(sql: Sql, row: Row, prev: { hash: string }): Promise<boolean> {
  const { rows } = await sql.query<{ prev_hash: string }>(
    "SELECT prev_hash FROM audit_events WHERE seq > $1::bigint ORDER BY seq LIMIT 1",
    [row.seq],
  );
  return rows[0]?.prev_hash === prev.hash;
}

function insertedRow(row: Row): ChainBreak {
  return {
    seq: row.seq,
    kind: "inserted",
    detail: `row ${row.seq} is not part of the chain (the next row is chained to the one before it)`,
  };
}

function modified(row: Row, why: string): ChainBreak {
  return { seq: row.seq, kind: "modified", detail: `row ${row.seq} ${why}` };
}

function columnMismatch(row: Row): string | null {
  let body: AuditEventBody;
  try {
    body = JSON.parse(row.body) as AuditEventBody;
  } catch {
    return "has a body that is not JSON";
  }
  if (canonicalJson(body) !== row.body) return "has a body that is not canonical JSON";
  if (body.kind !== row.kind) return "has a kind column that differs from its hashed body";
  if (body.actor !== row.actor) return "has an actor column that differs from its hashed body";
  if (body.ticket_id !== row.ticket_id)
    return "has a ticket column that differs from its hashed body";
  if (body.grant_id !== row.grant_id) return "has a grant column that differs from its hashed body";
  if (new Date(body.at).getTime() !== row.at.getTime()) {
    return "has a time column that differs from its hashed body";
  }
  return null;
}

function checkTip(
  tip: { seq: number; hash: string },
  last: { seq: number; hash: string },
): ChainBreak | null {
  if (tip.seq > last.seq) {
    return {
      seq: last.seq + 1,
      kind: "deleted",
      detail: `the log ends at row ${last.seq} but its tip is row ${tip.seq}: rows ${range(last.seq + 1, tip.seq)} are missing`,
    };
  }
  if (tip.seq < last.seq) {
    return {
      seq: tip.seq + 1,
      kind: "inserted",
      detail: `rows ${range(tip.seq + 1, last.seq)} were added after the recorded tip (row ${tip.seq})`,
    };
  }
  if (tip.hash !== last.hash) {
    return {
      seq: last.seq,
      kind: "modified",
      detail: `row ${last.seq} is not the row the tip recorded (its hash differs)`,
    };
  }
  return null;
}

async function seqOfHash(sql: Sql, hash: string): Promise<number | null> {
  const { rows } = await sql.query<{ seq: number }>(
    "SELECT seq FROM audit_events WHERE hash = $1::text",
    [hash],
  );
  return rows[0]?.seq ?? null;
}

async function readTip(sql: Sql): Promise<{ seq: number; hash: string }> {
  const { rows } = await sql.query<{ seq: number; hash: string }>(
    "SELECT seq, hash FROM audit_head WHERE id = 1",
  );
  return rows[0] ?? { seq: 0, hash: GENESIS_HASH };
}

function range(from: number, to: number): string {
  return from === to ? String(from) : `${from}-${to}`;
}
