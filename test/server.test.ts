import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { sign } from "@octokit/webhooks-methods";
import type { ApplicationFunction } from "probot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "#src/config.js";
import { createGitHubApp } from "#src/github/app.js";
import { startDeliveryWorker } from "#src/github/delivery-worker.js";
import { openPglite } from "#src/store/pglite.js";
import { openPostgres } from "#src/store/postgres.js";
import { createTestDb, primaryBackend, TEST_DATABASE_URL, type TestDb } from "./support/db.js";
import { cleanEnv } from "./support/env.js";
import { captureLogger } from "./support/log.js";
import { freePort } from "./support/net.js";
import { startTestServer, type TestServer } from "./support/server.js";

const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
  type: "pkcs1",
  format: "pem",
}) as string;
const SECRET = "webhook-secret-for-tests";
const appEnv = { APP_ID: "4242", PRIVATE_KEY: pem, WEBHOOK_SECRET: SECRET };

async function deliver(
  url: string,
  options: {
    event?: string;
    payload?: unknown;
    body?: string;
    id?: string;
    secret?: string;
    signature?: string | null;
  },
): Promise<Response> {
  const body = options.body ?? JSON.stringify(options.payload ?? { action: "opened" });
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-github-event": options.event ?? "issues",
    "x-github-delivery": options.id ?? randomUUID(),
  };
  const signature =
    options.signature === undefined
      ? await sign(options.secret ?? SECRET, body)
      : options.signature;
  if (signature !== null) headers["x-hub-signature-256"] = signature;
  return fetch(`${url}/api/github/webhooks`, { method: "POST", headers, body });
}

describe("server", () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(primaryBackend);
  });
  afterAll(() => db.close());

  describe("health", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ db });
    });
    afterAll(() => server.stop());

    it("answers /healthz and /readyz once the database is migrated", async () => {
      const health = await fetch(`${server.url}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: "ok" });
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      const body = (await ready.json()) as { schema: { current: number; expected: number } };
      expect(body).toMatchObject({ status: "ready", database: "ok" });
      expect(body.schema.current).toBe(body.schema.expected);
    });

    it("answers unknown routes with a JSON 404", async () => {
      const response = await fetch(`${server.url}/nope`);
      expect(response.status).toBe(404);
    });
  });

  describe("setup mode (no GitHub App configured)", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ db });
    });
    afterAll(() => server.stop());

    it("offers Probot's App setup flow built from app.yml", async () => {
      const root = await fetch(`${server.url}/`, { redirect: "manual" });
      expect(root.status).toBe(302);
      expect(root.headers.get("location")).toBe("/probot");
      const page = await fetch(`${server.url}/probot`);
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain("github.com/settings/apps/new");
      // The manifest carries app.yml's events and permissions.
      const decoded = html.replace(/&quot;/g, '"').replace(/&#34;/g, '"');
      expect(decoded).toMatch(
        /"default_events":\["issues","issue_comment","pull_request","pull_request_review","push","repository","organization","membership"\]/,
      );
      expect(decoded).toMatch(/"checks":"write"/);
    });

    it("does not receive webhooks", async () => {
      const response = await deliver(server.url, {});
      expect(response.status).toBe(404);
    });
  });

  describe("webhooks", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ db, env: appEnv });
    });
    afterAll(() => server.stop());

    const stored = async (id: string) =>
      (
        await db.query<{
          event: string;
          action: string | null;
          installation_id: number | null;
          ticket_key: string | null;
        }>(
          "SELECT event, action, installation_id, ticket_key FROM webhook_deliveries WHERE id = $1::text",
          [id],
        )
      ).rows[0];

    it("stores a verified delivery and acknowledges it", async () => {
      const id = randomUUID();
      const payload = {
        action: "labeled",
        installation: { id: 77 },
        repository: { id: 501 },
        issue: { number: 9 },
      };
      const response = await deliver(server.url, { id, payload });
      expect(response.status).toBe(202);
      expect(await response.json()).toEqual({ outcome: "accepted" });
      expect(await stored(id)).toEqual({
        event: "issues",
        action: "labeled",
        installation_id: 77,
        ticket_key: "501#9",
      });
    });

    it("acknowledges a replayed delivery once and stores nothing new", async () => {
      const id = randomUUID();
      expect((await deliver(server.url, { id })).status).toBe(202);
      const again = await deliver(server.url, { id, payload: { action: "deleted" } });
      expect(again.status).toBe(200);
      expect(await again.json()).toEqual({ outcome: "duplicate" });
      expect((await stored(id))?.action).toBe("opened");
    });

    it.each([
      ["a wrong secret", { secret: "not-the-secret" }, 401, "WEBHOOK_SIGNATURE_INVALID"],
      ["no signature", { signature: null }, 401, "WEBHOOK_SIGNATURE_INVALID"],
      [
        "a sha1 signature",
        { signature: "sha1=0123456789abcdef0123456789abcdef01234567" },
        401,
        "WEBHOOK_SIGNATURE_INVALID",
      ],
      ["no event name", { event: "" }, 400, "WEBHOOK_MALFORMED"],
    ])("refuses a delivery with %s and stores nothing", async (_name, options, status, code) => {
      const id = randomUUID();
      const response = await deliver(server.url, { id, ...options });
      expect(response.status).toBe(status);
      expect(((await response.json()) as { error: string }).error).toBe(code);
      expect(await stored(id)).toBeUndefined();
    });

    it("refuses a signature over different bytes than were sent", async () => {
      const body = JSON.stringify({ action: "opened" });
      const signature = await sign(SECRET, JSON.stringify({ action: "closed" }));
      const response = await deliver(server.url, { body, signature });
      expect(response.status).toBe(401);
    });
  });

  describe("delivery worker", () => {
    it("hands stored deliveries to the app, one ticket's in order, and retries failures", async () => {
      const workerDb = await createTestDb(primaryBackend);
      const seen: string[] = [];
      let failOnce = true;
      const recorder: ApplicationFunction = (app) => {
        app.onAny(async (event) => {
          const payload = event.payload as { n: number };
          if (payload.n === 99 && failOnce) {
            failOnce = false;
            throw new Error("transient failure");
          }
          seen.push(`${event.name}:${payload.n}`);
        });
      };
      const config = loadConfig(cleanEnv(appEnv));
      const { log } = captureLogger();
      const server = await startTestServer({
        db: workerDb,
        env: appEnv,
        components: [
          async (ready) => {
            const probot = await createGitHubApp(config, config.app!, log, [recorder]);
            return startDeliveryWorker({
              db: ready,
              log,
              handle: (e) => probot.receive(e),
              idleMs: 20,
            });
          },
        ],
      });
      try {
        const ticket = { repository: { id: 1 }, issue: { number: 5 } };
        for (let n = 1; n <= 5; n++) {
          expect((await deliver(server.url, { payload: { ...ticket, n } })).status).toBe(202);
        }
        expect((await deliver(server.url, { event: "push", payload: { n: 99 } })).status).toBe(202);
        await expect
          .poll(() => seen.filter((s) => s.startsWith("issues")), { timeout: 10_000 })
          .toEqual(["issues:1", "issues:2", "issues:3", "issues:4", "issues:5"]);
        // The push fails once and is retried after its backoff.
        await expect
          .poll(
            async () =>
              (
                await workerDb.query<{
                  attempts: number;
                  last_error: string | null;
                  state: string;
                }>(
                  "SELECT attempts, last_error, state FROM webhook_deliveries WHERE event = 'push'",
                )
              ).rows[0],
            { timeout: 10_000 },
          )
          .toMatchObject({
            attempts: 1,
            state: "pending",
            last_error: expect.stringMatching(/transient failure/),
          });
        await expect.poll(() => seen.includes("push:99"), { timeout: 10_000 }).toBe(true);
        const done = await workerDb.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM webhook_deliveries WHERE state = 'done'",
        );
        expect(done.rows[0]?.n).toBe(6);
      } finally {
        await server.stop();
        await workerDb.close();
      }
    });
  });
});

describe("start-up faults", () => {
  it("reports an embedded database held by another process, and becomes ready once it is free", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "hallpass-locked-"));
    const dataDir = path.join(dir, "pgdata");
    const lock = `${dataDir}.lock`;
    await writeFile(lock, String(process.ppid));
    const server = await startTestServer({ open: () => openPglite(dataDir), ready: false });
    try {
      const readyz = async () => {
        const response = await fetch(`${server.url}/readyz`);
        return {
          http: response.status,
          ...((await response.json()) as { database: string; reason?: string }),
        };
      };
      await expect.poll(readyz, { timeout: 5_000 }).toMatchObject({
        http: 503,
        database: "connecting",
        reason: expect.stringMatching(/DB_LOCKED: .*in use by process/),
      });
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      await rm(lock);
      await expect
        .poll(async () => (await fetch(`${server.url}/readyz`)).status, {
          timeout: 30_000,
          interval: 200,
        })
        .toBe(200);
    } finally {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.runIf(TEST_DATABASE_URL)("retries an unreachable Postgres until it answers", async () => {
    const target = new URL(TEST_DATABASE_URL ?? "");
    const port = await freePort();
    const db = await createTestDb("postgres", { migrated: false });
    const server = await startTestServer({
      open: async () =>
        openPostgres(`postgres://${target.username}@127.0.0.1:${port}${target.pathname}`, {
          searchPath: db.schema,
        }),
      ready: false,
    });
    let proxy: net.Server | null = null;
    try {
      await expect
        .poll(
          async () =>
            ((await (await fetch(`${server.url}/readyz`)).json()) as { reason?: string }).reason,
          { timeout: 5_000 },
        )
        .toMatch(/ECONNREFUSED|database/);
      proxy = net.createServer((client) => {
        const upstream = net.connect(Number(target.port || 5432), target.hostname);
        client.pipe(upstream).pipe(client);
        client.on("error", () => upstream.destroy());
        upstream.on("error", () => client.destroy());
      });
      await new Promise<void>((resolve) => proxy?.listen(port, "127.0.0.1", resolve));
      await expect
        .poll(async () => (await fetch(`${server.url}/readyz`)).status, {
          timeout: 10_000,
          interval: 100,
        })
        .toBe(200);
    } finally {
      await server.stop();
      await new Promise((resolve) => (proxy ? proxy.close(resolve) : resolve(undefined)));
      await db.close();
    }
  });
});
