/**
 * Audit appends per second: one writer and 8 concurrent writers, on real
 * Postgres (BENCH_DATABASE_URL or TEST_DATABASE_URL) and on PGlite. Each
 * append is its own transaction, as in production. The baseline, measured in
 * the same run, is the same transaction inserting the same row into a table
 * with no chain: the ratio is what the hash chain costs.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { appendAudit } from "#src/audit/append.js";
import { canonicalJson, eventBody } from "#src/audit/event.js";
import { verifyAudit } from "#src/audit/verify.js";
import type { Db } from "#src/store/db.js";
import { migrate } from "#src/store/migrate.js";
import { openPglite } from "#src/store/pglite.js";
import { openPostgres } from "#src/store/postgres.js";
import { benchDatabaseUrl, median, printTable, type Row } from "./support.js";

const RUNS = 5;
const PER_RUN = 1_600;

const event = (i: number) => ({
  kind: "grant.approved",
  actor: "github:octocat",
  ticketId: "7d5f0b7e-3a57-4c1e-9a53-3f0b1a0c2b11",
  grantId: "0b8a3c39-5d8c-4f7a-8d1e-2c6f8e4a9b10",
  data: { approvers: ["octocat", "hubot"], scopes: ["read", "refund"], i },
});

async function appendsPerSecond(
  writers: Db[],
  append: (db: Db, i: number) => Promise<unknown>,
): Promise<number> {
  const each = PER_RUN / writers.length;
  const start = performance.now();
  await Promise.all(
    writers.map(async (db, w) => {
      for (let i = 0; i < each; i++) await append(db, w * each + i);
    }),
  );
  return PER_RUN / ((performance.now() - start) / 1000);
}

const chained = (db: Db, i: number) => db.transaction((tx) => appendAudit(tx, event(i)));
const plain = (db: Db, i: number) =>
  db.transaction(async (tx) => {
    const body = eventBody(event(i), randomUUID(), new Date());
    await tx.query(
      `INSERT INTO plain_events (id, at, kind, actor, ticket_id, grant_id, body, hash)
       VALUES ($1::uuid, $2::timestamptz, $3::text, $4::text, $5::uuid, $6::uuid, $7::text, encode(sha256(convert_to($7::text, 'UTF8')), 'hex'))`,
      [body.id, body.at, body.kind, body.actor, body.ticket_id, body.grant_id, canonicalJson(body)],
    );
  });

async function measure(label: string, db: Db, writers: Db[]): Promise<Row[]> {
  await db.exec(`CREATE TABLE IF NOT EXISTS plain_events (
    seq bigserial PRIMARY KEY, id uuid NOT NULL UNIQUE, at timestamptz NOT NULL, kind text NOT NULL, actor text,
    ticket_id uuid, grant_id uuid, body text NOT NULL, hash text NOT NULL)`);
  const rows: Row[] = [];
  for (const count of [1, 8]) {
    const set = writers.slice(0, count);
    const base: number[] = [];
    const audit: number[] = [];
    await appendsPerSecond(set, chained); // warm-up
    for (let r = 0; r < RUNS; r++) {
      base.push(await appendsPerSecond(set, plain));
      audit.push(await appendsPerSecond(set, chained));
    }
    const chainedMedian = median(audit);
    const baseMedian = median(base);
    rows.push({
      name: `${label}, ${count} writer${count > 1 ? "s" : ""}`,
      value: chainedMedian,
      unit: "appends/s",
      note: `plain insert ${Math.round(baseMedian)}/s; chained/plain = ${(chainedMedian / baseMedian).toFixed(2)}`,
    });
  }
  const verified = await verifyAudit(db);
  if (!verified.ok)
    throw new Error(`chain broken after the benchmark: ${JSON.stringify(verified.break)}`);
  return rows;
}

export async function benchAudit(): Promise<Row[]> {
  const rows: Row[] = [];
  const url = benchDatabaseUrl();
  if (url) {
    const schema = `hallpass_bench_${Date.now()}_${randomBytes(3).toString("hex")}`;
    const admin = openPostgres(url, { max: 1 });
    await admin.exec(`CREATE SCHEMA ${schema}`);
    const writers = Array.from({ length: 8 }, () =>
      openPostgres(url, { searchPath: schema, max: 1 }),
    );
    try {
      const [first] = writers;
      if (!first) throw new Error("no writer");
      await migrate(first);
      rows.push(...(await measure("postgres", first, writers)));
    } finally {
      await Promise.all(writers.map((w) => w.close()));
      await admin.exec(`DROP SCHEMA ${schema} CASCADE`);
      await admin.close();
    }
  } else {
    console.log("(no BENCH_DATABASE_URL or TEST_DATABASE_URL: skipping real Postgres)");
  }
  const pglite = await openPglite();
  try {
    await migrate(pglite);
    // One in-process connection: 8 writers share it, as the embedded server's requests do.
    rows.push(...(await measure("pglite", pglite, Array(8).fill(pglite))));
  } finally {
    await pglite.close();
  }
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  printTable(`audit appends (median of ${RUNS} runs of ${PER_RUN})`, await benchAudit());
}
