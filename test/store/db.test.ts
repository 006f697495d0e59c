import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HallpassError } from "#src/errors.js";
import { notify, QueryError } from "#src/store/db.js";
import { backends, createTestDb, type TestDb } from "../support/db.js";
import { captureLogger } from "../support/log.js";

const SECRET = "hunter2-s3cr3t-payload";

describe.each(backends)("database interface on %s", (backend) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(backend, { migrated: false });
    await db.exec(`
      CREATE TABLE items (id bigint PRIMARY KEY, at timestamptz, tags text[], doc jsonb, note text);
      CREATE TABLE counter (n integer NOT NULL)`);
  });
  afterAll(() => db.close());

  it("returns the same JavaScript types on every backend", async () => {
    const at = new Date("2026-01-02T03:04:05.678Z");
    await db.query(
      "INSERT INTO items VALUES ($1::bigint, $2::timestamptz, $3::text[], $4::jsonb, $5::text)",
      [9007199254740991, at, ["a", "b,c", 'd"e'], JSON.stringify({ k: [1, "x"] }), null],
    );
    const { rows } = await db.query<{
      id: unknown;
      at: unknown;
      tags: unknown;
      doc: unknown;
      note: unknown;
    }>("SELECT * FROM items");
    expect(rows).toEqual([
      { id: 9007199254740991, at, tags: ["a", "b,c", 'd"e'], doc: { k: [1, "x"] }, note: null },
    ]);
    expect(typeof rows[0]?.id).toBe("number");
  });

  it("refuses int8 values JavaScript cannot hold exactly", async () => {
    await expect(db.query("SELECT 9007199254740993::bigint AS n")).rejects.toThrow(/safe range/);
  });

  it("reports affected rows", async () => {
    await db.query("INSERT INTO counter VALUES (1), (2), (3)");
    const result = await db.query("UPDATE counter SET n = n + 1 WHERE n > 1");
    expect(result.rowCount).toBe(2);
  });

  it("commits a transaction that resolves and rolls back one that throws", async () => {
    await db.query("DELETE FROM counter");
    await db.transaction(async (tx) => {
      await tx.query("INSERT INTO counter VALUES (10)");
    });
    await expect(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO counter VALUES (20)");
        throw new Error("abort");
      }),
    ).rejects.toThrow("abort");
    const { rows } = await db.query<{ n: number }>("SELECT n FROM counter ORDER BY n");
    expect(rows.map((r) => r.n)).toEqual([10]);
  });

  it("delivers notifications at commit, and none from a rolled-back transaction", async () => {
    const received: string[] = [];
    const unlisten = await db.listen("hallpass_test", (payload) => received.push(payload));
    try {
      await db
        .transaction(async (tx) => {
          await notify(tx, "hallpass_test", "rolled back");
          throw new Error("abort");
        })
        .catch(() => {});
      await db.transaction(async (tx) => {
        await notify(tx, "hallpass_test", "committed");
        expect(received).toEqual([]);
      });
      await expect.poll(() => received).toEqual(["committed"]);
    } finally {
      await unlisten();
    }
    await notify(db, "hallpass_test", "after unlisten");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toEqual(["committed"]);
  });

  it("runs several statements with exec", async () => {
    await db.exec(
      "CREATE TABLE multi (x int); INSERT INTO multi VALUES (1); INSERT INTO multi VALUES (2)",
    );
    const { rows } = await db.query<{ total: number }>("SELECT sum(x)::int AS total FROM multi");
    expect(rows[0]?.total).toBe(3);
  });

  it("answers a ping", async () => {
    await expect(db.ping()).resolves.toBeUndefined();
  });

  it("stores text holding a NUL with U+FFFD, in text and text[] parameters", async () => {
    await db.query("INSERT INTO items (id, tags, note) VALUES (7, $1::text[], $2::text)", [
      ["a\u0000b"],
      "x\u0000y",
    ]);
    const { rows } = await db.query("SELECT tags, note FROM items WHERE id = 7");
    expect(rows).toEqual([{ tags: ["a\uFFFDb"], note: "x\uFFFDy" }]);
  });

  describe("a failing statement's error", () => {
    const failures: Array<[string, string, unknown[]]> = [
      ["a jsonb payload with a NUL", "SELECT $1::jsonb", [`{"body":"\\u0000 ${SECRET}"}`]],
      ["a value of the wrong type", "SELECT $1::uuid", [SECRET]],
      ["an array element of the wrong type", "SELECT $1::int[]", [`{1,${SECRET}}`]],
      [
        "a duplicate key",
        "INSERT INTO items (id, note) VALUES (1, $1::text), (1, $1::text)",
        [SECRET],
      ],
      ["a failure in a transaction", "SELECT $1::uuid", [SECRET]],
    ];

    it.each(failures)(
      "on %s carries no parameter, in the error or its log line",
      async (name, text, params) => {
        const error = await (name.includes("transaction")
          ? db.transaction((tx) => tx.query(text, params))
          : db.query(text, params)
        ).then(
          () => null,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(QueryError);
        expect(error).toMatchObject({ code: expect.stringMatching(/^[0-9A-Z]{5}$/), query: text });
        expect(JSON.stringify(error)).not.toContain("s3cr3t");
        expect(inspect(error, { depth: 10 })).not.toContain("s3cr3t");

        // Logged as the server logs it: directly, and as the cause of an error of ours.
        const { log, text: logged } = captureLogger("debug");
        log.error({ err: error }, "query failed");
        log.error({ err: new HallpassError("INTERNAL", "wrapped", { cause: error }) }, "wrapped");
        expect(logged()).toContain((error as QueryError).code);
        expect(logged()).not.toContain("s3cr3t");
      },
    );
  });
});
