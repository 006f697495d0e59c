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
  id: string;
  at: Date;
  kind: string;
  actor: string | null;
  ticket_id: string | null;
  grant_id: string | null;
  body: string;
  prev_hash: string | null;
  hash: string | null;
}

const COLUMNS = "seq, id, at, kind, actor, ticket_id, grant_id, body, prev_hash, hash";

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
      prev = { seq: row.seq, hash: row.hash ?? "" }; // checkRow refused a null hash
      checked++;
    }
    if (rows.length < batchSize) break;
  }
  const tip = await readTip(sql);
  const problem = checkTip(tip, prev) ?? (await checkUnsealed(sql));
  return problem ? { ok: false, checked, tip, break: problem } : { ok: true, checked, tip };
}

/** Committed rows are always sealed; an unsealed one was written past the seal trigger. */
async function checkUnsealed(sql: Sql): Promise<ChainBreak | null> {
  const { rows } = await sql.query<{ seq: number }>(
    "SELECT seq FROM audit_events WHERE seq <= 0 OR hash IS NULL OR prev_hash IS NULL ORDER BY seq LIMIT 1",
  );
  const row = rows[0];
  return row
    ? { seq: row.seq, kind: "inserted", detail: `row ${row.seq} was never sealed into the chain` }
    : null;
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
      detail: `${rowsText(expected, row.seq - 1)} missing (the next row is ${row.seq})`,
    };
  }
  if (row.prev_hash === null || row.hash === null) return modified(row, "has no hash");
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
        detail: `row ${row.seq} was chained to row ${target}: ${rowsText(target + 1, prev.seq)} not part of the chain`,
      };
    }
    if (await skips(sql, row, prev)) return insertedRow(row);
    if (!hashes) return modified(row, "does not hash to its stored hash");
    // It was chained to a row that is gone: either that row was deleted and
    // the rest renumbered (fewer rows than the tip counts), or the row before
    // was rewritten with a fresh hash.
    if ((await countRows(sql)) < (await readTip(sql)).seq) {
      return {
        seq: row.seq,
        kind: "deleted",
        detail: `row ${row.seq} was chained to a row that is gone (a row before it was deleted and the rest renumbered)`,
      };
    }
    return {
      seq: prev.seq,
      kind: "modified",
      detail: `row ${prev.seq} was rewritten: row ${row.seq} was chained to a different version of it`,
    };
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
  // row.seq > 0 here: unsealed rows are not walked.
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
  if (body.id !== row.id) return "has an id column that differs from its hashed body";
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
      detail: `the log ends at row ${last.seq} but its tip is row ${tip.seq}: ${rowsText(last.seq + 1, tip.seq)} missing`,
    };
  }
  if (tip.seq < last.seq) {
    return {
      seq: tip.seq + 1,
      kind: "inserted",
      detail: `${rowsText(tip.seq + 1, last.seq)} not covered by the recorded tip (row ${tip.seq}): added after it`,
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

async function countRows(sql: Sql): Promise<number> {
  const { rows } = await sql.query<{ n: number }>("SELECT count(*)::bigint AS n FROM audit_events");
  return rows[0]?.n ?? 0;
}

async function readTip(sql: Sql): Promise<{ seq: number; hash: string }> {
  const { rows } = await sql.query<{ seq: number; hash: string }>(
    "SELECT seq, hash FROM audit_head WHERE id = 1",
  );
  return rows[0] ?? { seq: 0, hash: GENESIS_HASH };
}

/** "row 3 is" or "rows 3-5 are", for messages. */
function rowsText(from: number, to: number): string {
  return from === to ? `row ${from} is` : `rows ${from}-${to} are`;
}
