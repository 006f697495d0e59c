import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendAudit, sealedEvent } from "#src/audit/append.js";
import { canonicalJson, chainHash, GENESIS_HASH } from "#src/audit/event.js";
import { exportAudit } from "#src/audit/export.js";
import { verifyAudit } from "#src/audit/verify.js";
import { backends, createTestDb, TEST_DATABASE_URL, type TestDb } from "../support/db.js";

describe.each(backends)("audit log on %s", (backend) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(backend);
  });
  afterAll(() => db.close());

  it("seals each event into the chain at commit, after the one before", async () => {
    const at = new Date("2026-11-23T10:00:00.000Z");
    const first = await appendAudit(
      db,
      { kind: "test.first", actor: "system", data: { n: 1 } },
      at,
    );
    const second = await appendAudit(db, { kind: "test.second", actor: "github:octocat" }, at);
    const a = await sealedEvent(db, first.id);
    const b = await sealedEvent(db, second.id);
    expect(b?.seq).toBe((a?.seq ?? 0) + 1);
    expect(b?.prevHash).toBe(a?.hash);
    const { rows } = await db.query<{ body: string; prev_hash: string; hash: string }>(
      "SELECT body, prev_hash, hash FROM audit_events WHERE id = $1::uuid",
      [first.id],
    );
    const row = rows[0]!;
    // The hash is sha256(previous hash bytes || canonical JSON), computed independently here.
    expect(row.hash).toBe(chainHash(row.prev_hash, row.body));
    expect(row.body).toBe(
      canonicalJson({
        v: 1,
        id: first.id,
        at: at.toISOString(),
        kind: "test.first",
        actor: "system",
        ticket_id: null,
        grant_id: null,
        data: { n: 1 },
      }),
    );
    if (a?.seq === 1) expect(a.prevHash).toBe(GENESIS_HASH);
  });

  it("orders events of one transaction as appended, and seals nothing before commit", async () => {
    const ids = await db.transaction(async (tx) => {
      const x = await appendAudit(tx, { kind: "test.tx", actor: null, data: { n: 1 } });
      const y = await appendAudit(tx, { kind: "test.tx", actor: null, data: { n: 2 } });
      expect(await sealedEvent(tx, x.id)).toBeNull();
      return [x.id, y.id];
    });
    const [x, y] = await Promise.all(ids.map((id) => sealedEvent(db, id)));
    expect(y?.seq).toBe((x?.seq ?? 0) + 1);
    expect(y?.prevHash).toBe(x?.hash);
  });

  it("records user text with lone surrogates instead of losing the event", async () => {
    const event = await appendAudit(db, {
      kind: "test.text",
      actor: null,
      data: { reason: "bad \ud800 text" },
    });
    const { rows } = await db.query<{ body: string }>(
      "SELECT body FROM audit_events WHERE id = $1::uuid",
      [event.id],
    );
    expect(JSON.parse(rows[0]!.body).data.reason).toBe("bad \ufffd text");
  });

  it("stays intact with 8 concurrent writers x 500 events", async () => {
    const writers =
      backend === "postgres"
        ? Array.from({ length: 8 }, () => db.another({ max: 1 }))
        : Array(8).fill(db);
    const before = (await verifyAudit(db)).tip.seq;
    await Promise.all(
      writers.map(async (writer, w) => {
        for (let i = 0; i < 500; i++) {
          await writer.transaction((tx: TestDb) =>
            appendAudit(tx, { kind: "test.load", actor: `writer:${w}`, data: { i } }),
          );
        }
      }),
    );
    const result = await verifyAudit(db, { batchSize: 700 });
    expect(result.ok).toBe(true);
    expect(result.tip.seq).toBe(before + 4000);
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(DISTINCT body)::int AS n FROM audit_events WHERE kind = 'test.load'",
    );
    expect(rows[0]?.n).toBe(4000);
  });

  it("rolls the chain back with the transaction", async () => {
    const before = (await verifyAudit(db)).tip;
    await db
      .transaction(async (tx) => {
        await appendAudit(tx, { kind: "test.rolled_back", actor: null });
        throw new Error("abort");
      })
      .catch(() => {});
    const after = await verifyAudit(db);
    expect(after.ok).toBe(true);
    expect(after.tip).toEqual(before);
  });

  it("refuses UPDATE, DELETE and TRUNCATE, even of the seal's columns", async () => {
    await appendAudit(db, { kind: "test.protected", actor: null });
    await expect(db.query("UPDATE audit_events SET kind = 'x'")).rejects.toThrow(/append-only/);
    await expect(db.query("UPDATE audit_events SET hash = NULL, seq = -seq")).rejects.toThrow(
      /append-only/,
    );
    await expect(db.query("DELETE FROM audit_events")).rejects.toThrow(/append-only/);
    await expect(db.query("TRUNCATE audit_events")).rejects.toThrow(/append-only/);
  });

  it("exports JSON lines an auditor can re-hash without the database", async () => {
    let prev = GENESIS_HASH;
    let count = 0;
    for await (const line of exportAudit(db, { batchSize: 333 })) {
      expect(line.prev_hash).toBe(prev);
      expect(chainHash(line.prev_hash, canonicalJson(line.event))).toBe(line.hash);
      prev = line.hash;
      count++;
    }
    expect(count).toBe((await verifyAudit(db)).tip.seq);
  });
});

describe.runIf(TEST_DATABASE_URL)("audit log across processes", () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb("postgres");
  });
  afterAll(() => db.close());

  it("stays intact when two processes append at once", async () => {
    const run = () =>
      new Promise<number>((resolve, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", "test/audit/append-worker.ts"], {
          env: { ...process.env, AUDIT_WORKER_URL: db.url ?? "", AUDIT_WORKER_COUNT: "300" },
          stdio: ["ignore", "inherit", "inherit"],
        });
        child.on("error", reject);
        child.on("exit", (code) => resolve(code ?? -1));
      });
    expect(await Promise.all([run(), run()])).toEqual([0, 0]);
    const result = await verifyAudit(db);
    expect(result.ok).toBe(true);
    expect(result.tip.seq).toBe(600);
  });
});
