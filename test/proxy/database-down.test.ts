/**
 * Postgres goes away under the proxy (the network between them is cut) and
 * comes back: the proxy refuses what it cannot be sure of, forwards no
 * mutating request it cannot record, and, once the database answers again,
 * serves and writes every usage row it held.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "#src/store/db.js";
import { createTestDb, TEST_DATABASE_URL, type TestDb } from "../support/db.js";
import { type ProxyHarness, startProxyHarness } from "../support/proxy.js";
import { postgresBehindCable, type TcpProxy } from "../support/tcp-proxy.js";
import { startTokenHarness, type TokenHarness } from "../support/token-service.js";

describe.runIf(TEST_DATABASE_URL)("the proxy while its database is down", () => {
  let db: TestDb;
  let cable: TcpProxy;
  let behind: Db;
  let tokens: TokenHarness;
  let p: ProxyHarness;
  beforeAll(async () => {
    db = await createTestDb("postgres");
    ({ cable, behind } = await postgresBehindCable(TEST_DATABASE_URL as string, db.schema));
    tokens = await startTokenHarness("postgres", { db: { ...db, close: async () => {} } });
    p = await startProxyHarness("postgres", {
      tokens,
      db: behind,
      start: {
        live: { maxStalenessMs: 1_000, resyncMs: 1_000 },
        usage: { flushMs: 50 },
      },
    });
  });
  afterAll(async () => {
    await p?.close();
    await tokens?.close();
    await behind?.close();
    await cable?.close();
    await db?.close();
  });

  it("refuses while it cannot be sure, records nothing it forwards unrecorded, and loses no row", async () => {
    const { grantId } = await p.grant();
    const token = await p.token(grantId);
    const statuses: number[] = [];
    const get = async () => {
      const status = (await p.call("/payments-api/echo", token)).status;
      statuses.push(status);
      return status;
    };
    expect(await get()).toBe(200);

    cable.cut();
    const before = p.upstream.seen.length;
    // A mutating request is written before it is forwarded: with no database, it is not forwarded.
    const post = await p.call("/payments-api/echo", token, { method: "POST", body: "{}" });
    expect(post.status).toBe(503);
    expect(await post.json()).toMatchObject({ error: "USAGE_UNAVAILABLE" });
    // Past the staleness bound, reads are refused too.
    await expect.poll(get, { timeout: 5_000, interval: 100 }).toBe(503);
    const refused = await p.call("/payments-api/echo", token);
    expect(await refused.json()).toMatchObject({ error: "GRANT_STATUS_UNKNOWN" });
    statuses.push(refused.status);
    // What reached the upstream while the database was away: the reads let through before
    // the bound, never the POST.
    const whileDown = p.upstream.seen.slice(before);
    expect(whileDown.every((s) => s.method === "GET")).toBe(true);
    expect(whileDown).toHaveLength(statuses.slice(1).filter((s) => s === 200).length);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(p.proxy.state?.usage.backlog).toBeGreaterThan(0);

    cable.restore();
    await expect.poll(get, { timeout: 15_000, interval: 200 }).toBe(200);
    await expect.poll(() => p.proxy.state?.usage.backlog, { timeout: 10_000 }).toBe(0);

    // Every request of the grant's token but the unrecordable POST is a row.
    const rows = await p.rows(grantId);
    expect(rows).toHaveLength(statuses.length);
    expect(rows.filter((r) => r.outcome === "forwarded")).toHaveLength(
      statuses.filter((s) => s === 200).length,
    );
    expect(rows.filter((r) => r.reason === "GRANT_STATUS_UNKNOWN")).toHaveLength(
      statuses.filter((s) => s === 503).length,
    );
  }, 60_000);
});
