import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { appendAudit } from "#src/audit/append.js";
import { chainHash } from "#src/audit/event.js";
import { verifyAudit } from "#src/audit/verify.js";
import { backends, createTestDb, type TestDb } from "../support/db.js";

/** Runs SQL as someone with direct database access would: triggers off. */
async function tamper(db: TestDb, sql: string): Promise<void> {
  await db.exec(`
    ALTER TABLE audit_events DISABLE TRIGGER USER;
    ${sql};
    ALTER TABLE audit_events ENABLE TRIGGER USER;`);
}

/** Shifts rows after `seq` by `by` without colliding on the primary key. */
const renumberAfter = (seq: number, by: number) =>
  `UPDATE audit_events SET seq = -seq WHERE seq > ${seq};
   UPDATE audit_events SET seq = -seq + (${by}) WHERE seq < 0`;

describe.each(backends)("audit verify on %s", (backend) => {
  const open: TestDb[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((db) => db.close()));
  });

  /** A fresh log of ten events. */
  async function chain(): Promise<TestDb> {
    const db = await createTestDb(backend);
    open.push(db);
    for (let i = 1; i <= 10; i++) {
      await appendAudit(db, { kind: "test.event", actor: `user:${i}`, data: { i } });
    }
    return db;
  }

  async function hashOf(db: TestDb, seq: number): Promise<string> {
    const { rows } = await db.query<{ hash: string }>(
      "SELECT hash FROM audit_events WHERE seq = $1::bigint",
      [seq],
    );
    return rows[0]!.hash;
  }

  it("accepts an intact chain", async () => {
    const db = await chain();
    const result = await verifyAudit(db, { batchSize: 3 });
    expect(result).toMatchObject({ ok: true, checked: 10, tip: { seq: 10 } });
  });

  it("names a row whose body was modified", async () => {
    const db = await chain();
    await tamper(
      db,
      `UPDATE audit_events SET body = replace(body, '"i":4', '"i":40') WHERE seq = 4`,
    );
    expect((await verifyAudit(db)).break).toMatchObject({ seq: 4, kind: "modified" });
  });

  it("names a row whose columns no longer match its hashed body", async () => {
    const db = await chain();
    await tamper(db, "UPDATE audit_events SET actor = 'someone-else' WHERE seq = 6");
    const result = await verifyAudit(db);
    expect(result.break).toMatchObject({ seq: 6, kind: "modified" });
    expect(result.break?.detail).toMatch(/actor/);
  });

  it("names a row that was rewritten with a freshly computed hash", async () => {
    const db = await chain();
    const { rows } = await db.query<{ body: string; prev_hash: string }>(
      "SELECT body, prev_hash FROM audit_events WHERE seq = 4",
    );
    const body = rows[0]!.body.replace('"i":4', '"i":44');
    await tamper(
      db,
      `UPDATE audit_events SET body = '${body}', hash = '${chainHash(rows[0]!.prev_hash, body)}' WHERE seq = 4`,
    );
    expect((await verifyAudit(db)).break).toMatchObject({ seq: 4, kind: "modified" });
  });

  it("names a deleted row", async () => {
    const db = await chain();
    await tamper(db, "DELETE FROM audit_events WHERE seq = 5");
    expect((await verifyAudit(db)).break).toMatchObject({ seq: 5, kind: "deleted" });
  });

  it("names a deleted row even when the rest were renumbered", async () => {
    const db = await chain();
    await tamper(db, `DELETE FROM audit_events WHERE seq = 5; ${renumberAfter(5, -1)}`);
    expect((await verifyAudit(db)).break).toMatchObject({ seq: 5, kind: "deleted" });
  });

  it("names the missing tail of a truncated log", async () => {
    const db = await chain();
    await tamper(db, "DELETE FROM audit_events WHERE seq > 8");
    const result = await verifyAudit(db);
    expect(result.checked).toBe(8);
    expect(result.break).toMatchObject({ seq: 9, kind: "deleted" });
  });

  it("names an inserted row that copies a valid link", async () => {
    const db = await chain();
    const prev = await hashOf(db, 3);
    const id = randomUUID();
    const body = `{"actor":"intruder","at":"2026-01-01T00:00:00.000Z","data":{},"grant_id":null,"id":"${id}","kind":"test.event","ticket_id":null,"v":1}`;
    await tamper(
      db,
      `${renumberAfter(3, 1)};
       INSERT INTO audit_events (seq, id, at, kind, actor, body, prev_hash, hash)
       VALUES (4, '${id}', '2026-01-01T00:00:00Z', 'test.event', 'intruder', '${body}', '${prev}', '${chainHash(prev, body)}')`,
    );
    expect((await verifyAudit(db)).break).toMatchObject({ seq: 4, kind: "inserted" });
  });

  it("names an inserted row with a made-up hash", async () => {
    const db = await chain();
    await tamper(
      db,
      `${renumberAfter(6, 1)};
       INSERT INTO audit_events (seq, id, at, kind, actor, body, prev_hash, hash)
       VALUES (7, gen_random_uuid(), now(), 'test.event', 'intruder', '{}', repeat('a', 64), repeat('b', 64))`,
    );
    expect((await verifyAudit(db)).break).toMatchObject({ seq: 7, kind: "inserted" });
  });

  it("names rows appended past the recorded tip", async () => {
    const db = await chain();
    const prev = await hashOf(db, 10);
    const id = randomUUID();
    const body = `{"actor":null,"at":"2026-01-01T00:00:00.000Z","data":{},"grant_id":null,"id":"${id}","kind":"test.event","ticket_id":null,"v":1}`;
    await tamper(
      db,
      `INSERT INTO audit_events (seq, id, at, kind, actor, body, prev_hash, hash)
       VALUES (11, '${id}', '2026-01-01T00:00:00Z', 'test.event', NULL, '${body}', '${prev}', '${chainHash(prev, body)}')`,
    );
    expect((await verifyAudit(db)).break).toMatchObject({ seq: 11, kind: "inserted" });
  });

  it("names a row written past the seal", async () => {
    const db = await chain();
    await tamper(
      db,
      `INSERT INTO audit_events (id, at, kind, actor, body) VALUES (gen_random_uuid(), now(), 'test.event', NULL, '{}')`,
    );
    const result = await verifyAudit(db);
    expect(result.checked).toBe(10);
    expect(result.break).toMatchObject({
      kind: "inserted",
      detail: expect.stringMatching(/never sealed/),
    });
  });

  it("names reordered rows", async () => {
    const db = await chain();
    await tamper(
      db,
      `UPDATE audit_events SET seq = -1 WHERE seq = 4;
       UPDATE audit_events SET seq = 4 WHERE seq = 5;
       UPDATE audit_events SET seq = 5 WHERE seq = -1`,
    );
    expect((await verifyAudit(db)).break).toMatchObject({ seq: 4, kind: "reordered" });
  });
});
