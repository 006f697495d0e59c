import { createHmac, generateKeyPairSync, randomUUID } from "node:crypto";
import type { ApplicationFunction } from "probot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "#src/config.js";
import type { GitHub } from "#src/github/api.js";
import { createGitHubApp } from "#src/github/app.js";
import { startDeliveryWorker } from "#src/github/delivery-worker.js";
import { redeliverMissed } from "#src/github/redeliver.js";
import { createTestDb, primaryBackend } from "../support/db.js";
import { cleanEnv } from "../support/env.js";
import { issuesEvent, WEBHOOK_PATH } from "../support/github/webhooks.js";
import { type Hallpass, SECRET, startHallpass } from "../support/hallpass.js";
import { captureLogger } from "../support/log.js";
import { TestOctokit } from "../support/octokit.js";
import { startTestServer } from "../support/server.js";
import { operatorYaml, requestBody, seedAcme } from "../tickets/fixtures.js";

const TEST_KEY = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
  type: "pkcs1",
  format: "pem",
}) as string;

/** POSTs `body` exactly as given, signed as GitHub signs it. */
function post(url: string, body: string, event = "issues", deliveryId = randomUUID()) {
  const signature = createHmac("sha256", SECRET).update(body).digest("hex");
  return fetch(`${url}${WEBHOOK_PATH}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-github-delivery": deliveryId,
      "x-hub-signature-256": `sha256=${signature}`,
    },
    body,
  });
}

describe("webhook deliveries Postgres cannot hold as text", () => {
  let h: Hallpass;
  beforeAll(async () => {
    h = await startHallpass({ seed: seedAcme, operatorYaml });
  });
  afterAll(() => h.stop());

  const delivery = async (id: string) =>
    (
      await h.db.query<{ state: string; last_error: string | null; body: Uint8Array | null }>(
        "SELECT state, last_error, body FROM webhook_deliveries WHERE id = $1::text",
        [id],
      )
    ).rows[0];

  it("keeps and processes a signed delivery with a NUL in the issue's title and body", async () => {
    const issue = h.sim.openIssue("acme/payments", {
      author: "alice",
      title: "Access\u0000 to payments",
      body: requestBody({ reason: "Investigate\u0000 refund failures" }),
      labels: ["hallpass"],
    });
    const webhook = issuesEvent(h.sim, "opened", issue);
    const body = JSON.stringify(webhook.payload);
    // In the JSON, as GitHub sends it: the escape, which jsonb refuses.
    expect(body).toContain("Access\\u0000 to payments");
    const id = randomUUID();
    const response = await post(h.server.url, body, "issues", id);
    expect(response.status).toBe(202);

    await expect.poll(async () => (await delivery(id))?.state, { timeout: 10_000 }).toBe("done");
    const stored = await delivery(id);
    expect(Buffer.from(stored?.body ?? []).toString("utf8")).toBe(body);
    const { rows } = await h.db.query<{ title: string }>(
      "SELECT title FROM tickets WHERE repo_id = $1::bigint AND number = $2::int",
      [issue.repoId, issue.number],
    );
    expect(rows).toEqual([{ title: "Access\uFFFD to payments" }]);
    await expect
      .poll(async () => (await h.grants(issue.number))[0]?.state, { timeout: 5_000 })
      .toBe("pending");
    await h.settle();
    expect((await h.effects(issue.number)).map((e) => e.notice.kind)).toContain("request_received");
    expect(h.server.logText()).not.toMatch(/"level":50/);
  });

  it("keeps a verified delivery that is not a JSON object, given up with the reason, and never asks for it again", async () => {
    const id = randomUUID();
    const response = await post(h.server.url, "[1,2]", "issues", id);
    expect(response.status).toBe(400);
    expect(await delivery(id)).toMatchObject({
      state: "failed",
      last_error: "payload is not a JSON object",
    });
    // GitHub recorded it as failed; it is known here, so it is not redelivered.
    await h.sim.deliver(
      { event: "issues", payload: [1, 2] as never },
      { deliveryId: id, drop: true },
    );
    const config = loadConfig(cleanEnv(h.sim.appEnv(SECRET)));
    const probot = await createGitHubApp(config, config.app!, h.server.log, [], {
      octokit: TestOctokit,
    });
    const app = async () => (await probot.auth()) as unknown as GitHub;
    expect(await redeliverMissed({ db: h.db, log: h.server.log, app })).toBe(0);
  });
});

describe("a failing delivery's log line", () => {
  it("carries the error, not the payload", async () => {
    const db = await createTestDb(primaryBackend);
    const capture = captureLogger("debug");
    const failing: ApplicationFunction = (app) => {
      app.on("issues", async () => {
        throw new Error("handler failed");
      });
    };
    const env = { APP_ID: "4242", PRIVATE_KEY: TEST_KEY, WEBHOOK_SECRET: SECRET };
    const config = loadConfig(cleanEnv(env));
    const server = await startTestServer({
      db,
      env,
      capture,
      components: [
        async (ready) => {
          const probot = await createGitHubApp(config, config.app!, capture.log, [failing]);
          return startDeliveryWorker({
            db: ready,
            log: capture.log,
            handle: (e) => probot.receive(e),
            idleMs: 20,
            maxAttempts: 1,
          });
        },
      ],
    });
    try {
      const payload = { action: "opened", issue: { number: 1, body: "card 4111-1111-1111-1111" } };
      expect((await post(server.url, JSON.stringify(payload))).status).toBe(202);
      await expect
        .poll(() => capture.lines().find((l) => l.msg === "webhook delivery failed"), {
          timeout: 10_000,
        })
        .toMatchObject({ err: expect.objectContaining({ message: "handler failed" }) });
      expect(capture.text()).not.toContain("4111-1111");
    } finally {
      await server.stop();
      await db.close();
    }
  });
});
