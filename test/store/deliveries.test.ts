import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import {
  claimDeliveries,
  completeDelivery,
  failDelivery,
  recordDelivery,
} from "#src/store/deliveries.js";
import { loadMigrations, migrate } from "#src/store/migrate.js";
import { backends, createTestDb, type TestDb } from "../support/db.js";

const delivery = (body: string, extra: { refused?: string } = {}) => ({
  id: randomUUID(),
  event: "issues",
  action: "opened",
  installationId: 1,
  ticketKey: "1#1",
  body: Buffer.from(body, "utf8"),
  ...extra,
});

describe.each(backends)("webhook deliveries on %s", (backend) => {
  const open: TestDb[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((db) => db.close()));
  });
  const fresh = async (options?: { migrated?: boolean }) => {
    const db = await createTestDb(backend, options);
    open.push(db);
    return db;
  };

  it("keeps the body as signed, a NUL escape included, and hands it back", async () => {
    const db = await fresh();
    const body = '{"action":"opened","issue":{"title":"a\\u0000b"}}';
    const stored = delivery(body);
    expect(await recordDelivery(db, stored)).toBe(true);
    expect(await recordDelivery(db, { ...stored, action: "deleted" })).toBe(false);
    const [claimed] = await claimDeliveries(db, 10, 60_000);
    expect(claimed?.id).toBe(stored.id);
    expect(claimed?.body.toString("utf8")).toBe(body);
    await completeDelivery(db, claimed!);
    expect(await claimDeliveries(db, 10, 60_000)).toEqual([]);
  });

  it("keeps a refused delivery as given up, with its reason, and never claims it", async () => {
    const db = await fresh();
    const refused = delivery("[1]", { refused: "payload is not a JSON object" });
    expect(await recordDelivery(db, refused)).toBe(true);
    expect(await claimDeliveries(db, 10, 60_000)).toEqual([]);
    const { rows } = await db.query("SELECT state, last_error FROM webhook_deliveries");
    expect(rows).toEqual([{ state: "failed", last_error: "payload is not a JSON object" }]);
  });

  it("records an error holding a NUL", async () => {
    const db = await fresh();
    const stored = delivery("{}");
    await recordDelivery(db, stored);
    const [claimed] = await claimDeliveries(db, 10, 60_000);
    await failDelivery(db, claimed!, "TypeError: bad \u0000 title", null);
    const { rows } = await db.query("SELECT last_error FROM webhook_deliveries");
    expect(rows).toEqual([{ last_error: "TypeError: bad \uFFFD title" }]);
  });

  it("still reads deliveries stored before bodies were kept (jsonb payload)", async () => {
    const db = await fresh({ migrated: false });
    const all = await loadMigrations();
    const before = all.filter((m) => m.name !== "raw_deliveries");
    expect(before).toHaveLength(all.length - 1);
    await migrate(db, before);
    const id = randomUUID();
    await db.query(
      `INSERT INTO webhook_deliveries (id, event, action, payload)
       VALUES ($1::text, 'issues', 'opened', $2::jsonb)`,
      [id, JSON.stringify({ action: "opened", issue: { title: "é ✓" } })],
    );
    await migrate(db, all);
    const [claimed] = await claimDeliveries(db, 10, 60_000);
    expect(claimed?.id).toBe(id);
    expect(JSON.parse(claimed?.body.toString("utf8") ?? "null")).toEqual({
      action: "opened",
      issue: { title: "é ✓" },
    });
  });
});
