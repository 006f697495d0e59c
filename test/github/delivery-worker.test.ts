/**
 * The delivery worker's claims: a handler slower than the lease (GitHub slow
 * to answer its reads) keeps its delivery; no other worker handles it again
 * meanwhile. Two workers on one database, as two replicas.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { startDeliveryWorker } from "#src/github/delivery-worker.js";
import type { Loop } from "#src/loop.js";
import { recordDelivery } from "#src/store/deliveries.js";
import { backends, createTestDb, type TestDb } from "../support/db.js";
import { captureLogger } from "../support/log.js";

describe.each(backends)("delivery worker on %s", (backend) => {
  const open: { db: TestDb; workers: Loop[] }[] = [];
  afterEach(async () => {
    for (const { db, workers } of open.splice(0)) {
      await Promise.all(workers.map((w) => w.stop()));
      await db.close();
    }
  });

  it("keeps a delivery whose handler outlasts the lease: handled once, though another worker looks", async () => {
    const db = await createTestDb(backend);
    const { log } = captureLogger("silent");
    const handled: string[] = [];
    const handle = async (event: { id: string }) => {
      handled.push(event.id);
      await sleep(1_200); // four leases of 300 ms
    };
    const id = randomUUID();
    await recordDelivery(db, {
      id,
      event: "issues",
      action: "opened",
      installationId: 1,
      ticketKey: "1#1",
      body: Buffer.from('{"action":"opened"}'),
    });
    const start = () => startDeliveryWorker({ db, log, handle, idleMs: 20, leaseMs: 300 });
    const workers = [start()];
    open.push({ db, workers });
    await expect.poll(() => handled.length).toBe(1);
    workers.push(start());
    await expect
      .poll(
        async () =>
          (
            await db.query<{ state: string }>(
              "SELECT state FROM webhook_deliveries WHERE id = $1::text",
              [id],
            )
          ).rows[0]?.state,
        { timeout: 5_000 },
      )
      .toBe("done");
    await sleep(400);
    expect(handled).toEqual([id]);
  });
});
