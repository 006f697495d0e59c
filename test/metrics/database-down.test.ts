/**
 * `/metrics` while the database cannot be read: still 200, with the
 * process's metrics and `hallpass_state_up 0`, and the state gauges without
 * a sample rather than a stale one; once the database answers again, they
 * are back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMetrics } from "#src/metrics.js";
import { stateMetrics } from "#src/state-metrics.js";
import type { Db } from "#src/store/db.js";
import { createTestDb, TEST_DATABASE_URL, type TestDb } from "../support/db.js";
import { scrape, scrapeUntil } from "../support/scrape.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { postgresBehindCable, type TcpProxy } from "../support/tcp-proxy.js";

const STATE_GAUGES = [
  "hallpass_grants",
  "hallpass_outbox_backlog",
  "hallpass_outbox_oldest_age_seconds",
  "hallpass_webhook_deliveries_pending",
  "hallpass_webhook_delivery_lag_seconds",
];

async function serverWithMetrics(options: Parameters<typeof startTestServer>[0]) {
  const metrics = createMetrics();
  const server = await startTestServer({ ...options, metrics });
  stateMetrics(metrics, () => server.runtime.db, { log: server.log, cacheMs: 50 });
  return server;
}

describe("/metrics before the database could be opened", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await serverWithMetrics({
      ready: false,
      open: async () => {
        throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
          code: "ECONNREFUSED",
        });
      },
    });
  });
  afterAll(() => server?.stop());

  it("answers 200 with the process's metrics and hallpass_state_up 0", async () => {
    const s = await scrape(server.url);
    expect(s.status).toBe(200);
    expect(s.value("hallpass_state_up")).toBe(0);
    expect(s.value("hallpass_process_resident_memory_bytes")).toBeGreaterThan(0);
    for (const name of STATE_GAUGES) {
      expect(s.text).toContain(`# TYPE ${name} gauge`);
      expect(s.samples(name)).toEqual([]);
    }
  });
});

describe.runIf(TEST_DATABASE_URL)("/metrics while Postgres is cut off", () => {
  let db: TestDb;
  let cable: TcpProxy;
  let behind: Db;
  let server: TestServer;
  beforeAll(async () => {
    db = await createTestDb("postgres");
    ({ cable, behind } = await postgresBehindCable(TEST_DATABASE_URL as string, db.schema));
    server = await serverWithMetrics({ db: behind });
  });
  afterAll(async () => {
    await server?.stop();
    await behind?.close();
    await cable?.close();
    await db?.close();
  });

  it("answers 200 with hallpass_state_up 0 and no state, then recovers", async () => {
    const up = await scrapeUntil(server.url, (s) => s.value("hallpass_state_up") === 1);
    expect(up.value("hallpass_grants", { state: "active" })).toBe(0);
    expect(up.value("hallpass_outbox_backlog")).toBe(0);

    cable.cut();
    const down = await scrapeUntil(server.url, (s) => s.value("hallpass_state_up") === 0);
    expect(down.status).toBe(200);
    expect(down.value("hallpass_process_resident_memory_bytes")).toBeGreaterThan(0);
    for (const name of STATE_GAUGES) expect(down.samples(name)).toEqual([]);
    expect(server.logText()).toMatch(/cannot read the database's state/);

    cable.restore();
    const back = await scrapeUntil(server.url, (s) => s.value("hallpass_state_up") === 1);
    expect(back.value("hallpass_grants", { state: "pending" })).toBe(0);
  });
});
