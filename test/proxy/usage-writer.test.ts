import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { UsageWriter } from "#src/proxy/usage-writer.js";
import type { ProxyRequestRow } from "#src/store/usage.js";
import { backends, createTestDb, type TestDb } from "../support/db.js";
import { insertGrant } from "../support/grants.js";
import { captureLogger } from "../support/log.js";

describe.each(backends)("the usage writer on %s", (backend) => {
  let db: TestDb;
  let grantId: string;
  const log = captureLogger("debug");
  beforeEach(async () => {
    db = await createTestDb(backend);
    ({ grantId } = await insertGrant(db));
  });
  afterEach(() => db.close());

  const row = (n: number, overrides: Partial<ProxyRequestRow> = {}): ProxyRequestRow => ({
    grantId,
    jti: "00000000-0000-4000-8000-000000000001",
    resource: "payments-api",
    method: "GET",
    path: `/v1/charges/${n}`,
    scope: "GET /v1/**",
    outcome: "forwarded",
    status: 200,
    bytesIn: 0,
    bytesOut: 64,
    latencyUs: 350,
    requestId: `r-${n}`,
    reason: null,
    startedAt: Date.UTC(2026, 0, 1, 10, 0, 0, n),
    finishedAt: Date.UTC(2026, 0, 1, 10, 0, 1, n),
    ...overrides,
  });
  const count = async () =>
    (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM proxy_requests")).rows[0]?.n;
  /** Makes every insert into proxy_requests fail while `usage_blocked` holds a row. */
  const blockable = () =>
    db.exec(`
      CREATE TABLE usage_blocked (on_ boolean);
      CREATE FUNCTION usage_block() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF EXISTS (SELECT 1 FROM usage_blocked) THEN RAISE EXCEPTION 'database away'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER usage_block BEFORE INSERT ON proxy_requests FOR EACH STATEMENT EXECUTE FUNCTION usage_block();`);

  it("writes queued rows in batches of at most batchSize, with every column", async () => {
    const writer = new UsageWriter(db, log.log, { batchSize: 100, flushMs: 10_000 });
    for (let i = 0; i < 250; i++) writer.add(row(i), false);
    await writer.flush();
    expect(await count()).toBe(250);
    expect(writer.counters).toMatchObject({ flushes: 3, rowsWritten: 250 });
    const { rows } = await db.query(
      "SELECT grant_id, method, path, scope, outcome, status, bytes_in, bytes_out, latency_us, request_id, reason, started_at, finished_at FROM proxy_requests WHERE request_id = 'r-7'",
    );
    expect(rows[0]).toEqual({
      grant_id: grantId,
      method: "GET",
      path: "/v1/charges/7",
      scope: "GET /v1/**",
      outcome: "forwarded",
      status: 200,
      bytes_in: 0,
      bytes_out: 64,
      latency_us: 350,
      request_id: "r-7",
      reason: null,
      started_at: new Date(Date.UTC(2026, 0, 1, 10, 0, 0, 7)),
      finished_at: new Date(Date.UTC(2026, 0, 1, 10, 0, 1, 7)),
    });
    await writer.stop();
  });

  it("flushes on its own, soon after rows arrive", async () => {
    const writer = new UsageWriter(db, log.log, { flushMs: 20 });
    writer.add(row(1), false);
    await expect.poll(count).toBe(1);
    await writer.stop();
  });

  it("writes a mutating request's row at once and completes it in a batch", async () => {
    const writer = new UsageWriter(db, log.log, { flushMs: 10_000 });
    const id = await writer.writeNow({
      ...row(1, { method: "POST", outcome: "forwarding", status: null }),
      bytesIn: null,
      bytesOut: null,
      latencyUs: null,
      finishedAt: null,
    });
    expect(
      (await db.query("SELECT outcome FROM proxy_requests WHERE id = $1::bigint", [id])).rows,
    ).toEqual([{ outcome: "forwarding" }]);
    writer.complete({
      id,
      outcome: "forwarded",
      status: 201,
      bytesIn: 10,
      bytesOut: 20,
      latencyUs: 900,
      reason: null,
      finishedAt: Date.UTC(2026, 0, 1),
    });
    await writer.flush();
    expect(
      (
        await db.query(
          "SELECT outcome, status, bytes_in FROM proxy_requests WHERE id = $1::bigint",
          [id],
        )
      ).rows,
    ).toEqual([{ outcome: "forwarded", status: 201, bytes_in: 10 }]);
    await writer.stop();
  });

  it("keeps every row while the database refuses them and writes them all once it takes them", async () => {
    await blockable();
    await db.query("INSERT INTO usage_blocked VALUES (true)");
    const writer = new UsageWriter(db, log.log, { flushMs: 10, batchSize: 50 });
    for (let i = 0; i < 120; i++) writer.add(row(i), false);
    await expect.poll(() => writer.counters.flushFailures).toBeGreaterThanOrEqual(2);
    expect(writer.backlog).toBe(120);
    expect(await count()).toBe(0);
    await db.query("DELETE FROM usage_blocked");
    await expect.poll(count, { timeout: 10_000 }).toBe(120);
    const ids = (await db.query<{ request_id: string }>("SELECT request_id FROM proxy_requests"))
      .rows;
    expect(new Set(ids.map((r) => r.request_id)).size).toBe(120);
    await writer.stop();
  });

  it("sheds reads instead of growing past its capacity, and never drops what it admitted", async () => {
    await blockable();
    await db.query("INSERT INTO usage_blocked VALUES (true)");
    const writer = new UsageWriter(db, log.log, { capacity: 10, flushMs: 10 });
    const admitted: number[] = [];
    for (let i = 0; i < 15; i++) if (writer.reserve()) admitted.push(i);
    expect(admitted).toHaveLength(10);
    expect(writer.counters.shed).toBe(5);
    for (const i of admitted) writer.add(row(i), true);
    // A refusal finds no room: it is counted, not queued.
    writer.add(row(99, { outcome: "denied", status: 403, reason: "SCOPE_NOT_GRANTED" }), false);
    expect(writer.counters.dropped).toBe(1);
    expect(writer.reserve()).toBe(false);
    await db.query("DELETE FROM usage_blocked");
    await expect.poll(count, { timeout: 10_000 }).toBe(10);
    expect(writer.reserve()).toBe(true);
    writer.add(row(100), true);
    await writer.stop();
    expect(await count()).toBe(11);
  });

  it("gives up only the rows the database can never take", async () => {
    const writer = new UsageWriter(db, log.log, { flushMs: 10_000 });
    writer.add(row(1), false);
    writer.add(row(2, { grantId: "not-a-uuid" }), false);
    writer.add(row(3), false);
    await writer.flush();
    expect(
      (await db.query("SELECT request_id FROM proxy_requests ORDER BY request_id")).rows,
    ).toEqual([{ request_id: "r-1" }, { request_id: "r-3" }]);
    expect(writer.counters.dropped).toBe(1);
    await writer.stop();
  });

  it("writes what is left when stopped, and takes no new reads", async () => {
    const writer = new UsageWriter(db, log.log, { flushMs: 60_000, batchSize: 1_000 });
    for (let i = 0; i < 30; i++) writer.add(row(i, { requestId: randomUUID() }), false);
    await writer.stop();
    expect(await count()).toBe(30);
    expect(writer.reserve()).toBe(false);
    await expect(writer.writeNow(row(1))).rejects.toThrow(/stopped/);
  });
});
