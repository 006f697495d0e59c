/**
 * The proxy as `hallpass serve` runs it, in its own process: start-up
 * checks, the metrics endpoint, and 100 MB each way with the process's
 * memory staying flat.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "#src/log.js";
import { startTokenService, type TokenService } from "#src/tokens/service.js";
import { createTestDb, TEST_DATABASE_URL, type TestDb } from "../support/db.js";
import { insertGrant } from "../support/grants.js";
import { freePort } from "../support/net.js";
import { type ServeProcess, spawnServe } from "../support/serve.js";
import { testConfig } from "../support/token-service.js";
import { startUpstream, type Upstream } from "../support/upstream.js";

const MB = 1024 * 1024;

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

const operatorYaml = (upstream: string, extra = "") => `resources:
  payments-api:
    repository: { id: 1, owner_id: 1, name: acme/payments }
    audience: acme/payments/payments-api
    max_ttl: 8h
    scopes: ["* /**"]
${upstream ? `    upstream: ${upstream}\n    credential: { header: authorization, value: env:UPSTREAM_TOKEN, prefix: "Bearer " }\n` : ""}${extra}`;

const dir = await mkdtemp(path.join(tmpdir(), "hallpass-proxy-serve-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("hallpass serve with the proxy", () => {
  it.each([
    ["PROXY_PORT with no upstream to serve", "", true, /PROXY_PORT: set, but no resource/],
    [
      "upstreams with no PROXY_PORT",
      "http://127.0.0.1:9",
      false,
      /PROXY_PORT: not set, but payments-api has an upstream/,
    ],
  ])("stops at once on %s, naming the variable", async (_, upstream, withPort, message) => {
    const file = path.join(dir, `operator-${withPort}.yml`);
    await writeFile(file, operatorYaml(upstream));
    const server = spawnServe({
      PORT: String(await freePort()),
      HALLPASS_DATA_DIR: path.join(dir, "data"),
      HALLPASS_CONFIG: file,
      UPSTREAM_TOKEN: "x",
      ...(withPort ? { PROXY_PORT: String(await freePort()) } : {}),
    });
    expect(await server.exited).toBe(1);
    expect(server.output()).toMatch(message);
  });

  describe.runIf(TEST_DATABASE_URL)("on Postgres, with a local upstream", () => {
    let db: TestDb;
    let upstream: Upstream;
    let server: ServeProcess;
    let service: TokenService;
    let url: string;
    let proxyUrl: string;
    let token: string;
    let env: Record<string, string>;
    /** Spawns `hallpass serve` and waits until it is ready. */
    const startServe = async (): Promise<ServeProcess> => {
      const started = spawnServe(env);
      for (let i = 0; ; i++) {
        const status = (await fetch(`${url}/readyz`).catch(() => null))?.status;
        if (status === 200) return started;
        if (i > 150) throw new Error(`hallpass serve did not get ready: ${started.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };
    beforeAll(async () => {
      db = await createTestDb("postgres");
      upstream = await startUpstream();
      const masterKey = randomBytes(32).toString("base64");
      const file = path.join(dir, "operator.yml");
      await writeFile(file, operatorYaml(upstream.url, "    max_request_body: 200mb\n"));
      const [port, proxyPort] = [await freePort(), await freePort()];
      url = `http://127.0.0.1:${port}`;
      proxyUrl = `http://127.0.0.1:${proxyPort}`;
      const issuer = "https://hallpass.serve.test";
      env = {
        DATABASE_URL: db.url as string,
        HALLPASS_MASTER_KEY: masterKey,
        HALLPASS_CONFIG: file,
        HALLPASS_URL: issuer,
        HALLPASS_PROXY_URL: proxyUrl,
        HOST: "127.0.0.1",
        PORT: String(port),
        PROXY_PORT: String(proxyPort),
        UPSTREAM_TOKEN: "serve-upstream-credential",
        LOG_LEVEL: "info",
      };
      server = await startServe();
      service = await startTokenService(
        db,
        testConfig({ HALLPASS_MASTER_KEY: masterKey, HALLPASS_URL: issuer }),
        createLogger("silent"),
      );
      const { grantId } = await insertGrant(db, {
        resource: "payments-api",
        audience: "acme/payments/payments-api",
        permissions: ["* /**"],
        tokenTtlS: 3_600,
      });
      token = (await service.mint({ grantId, subject: "github:alice", channel: "cli" })).token;
    }, 60_000);
    afterAll(async () => {
      server?.child.kill("SIGTERM");
      await server?.exited;
      await service?.stop();
      await upstream?.close();
      await db?.close();
    });

    it("serves the proxy on PROXY_PORT and its metrics on the main port", async () => {
      const response = await fetch(`${proxyUrl}/payments-api/echo`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status).toBe(200);
      expect(upstream.seen.at(-1)?.headers.authorization).toBe("Bearer serve-upstream-credential");
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(
        /hallpass_proxy_requests_total\{resource="payments-api",outcome="forwarded",status_class="2xx"\} [1-9]/,
      );
      expect(metrics).toMatch(/hallpass_live_grants_age_seconds \d/);
      expect(metrics).toMatch(
        /hallpass_proxy_upstream_duration_seconds_count\{resource="payments-api"\} [1-9]/,
      );
      expect(metrics).toMatch(/hallpass_process_resident_memory_bytes \d/);
      // The App's and the token service's, on the same registry.
      expect(metrics).toMatch(/^hallpass_state_up 1$/m);
      expect(metrics).toMatch(/^hallpass_grants\{state="active"\} 1$/m);
      expect(metrics).toMatch(/^hallpass_tokens_total\{channel="actions",outcome="minted"\} 0$/m);
      expect(server.output()).toContain('"msg":"access proxy listening"');
      expect(server.output()).not.toContain("serve-upstream-credential");
    });

    it("streams 100 MB up and 100 MB down with its memory flat", async () => {
      const pid = server.child.pid as number;
      const auth = { authorization: `Bearer ${token}` };
      const chunk = Buffer.alloc(MB, 0x62);
      const transfer = async (mb: number) => {
        // Streamed with its length announced: a resource taking bodies this large
        // refuses one without (411), as it cannot hold it back.
        const upload = await fetch(`${proxyUrl}/payments-api/upload`, {
          method: "PUT",
          headers: { ...auth, "content-length": String(mb * MB) },
          body: Readable.toWeb(
            Readable.from(
              (function* () {
                for (let i = 0; i < mb; i++) yield chunk;
              })(),
            ),
          ) as ReadableStream,
          duplex: "half",
        } as RequestInit);
        expect(await upload.json()).toEqual({ bytes: mb * MB });
        const download = await fetch(`${proxyUrl}/payments-api/bytes/${mb * MB}`, {
          headers: auth,
        });
        let received = 0;
        for await (const part of download.body as unknown as AsyncIterable<Uint8Array>) {
          received += part.length;
        }
        expect(received).toBe(mb * MB);
      };
      // The first megabytes grow V8's young generation to its working size;
      // what is measured is the transfer after that.
      await transfer(20);
      const baseline = rssOf(pid);
      let peak = baseline;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssOf(pid));
      }, 10);
      try {
        await transfer(100);
      } finally {
        clearInterval(sampler);
      }
      // 200 MB went through; the process grew by a small fraction of it (a body
      // buffered whole would add 100 MB at least; V8's young generation churns by ~20).
      expect(peak - baseline, `from ${baseline / MB} MB to ${peak / MB} MB`).toBeLessThan(40 * MB);
    }, 120_000);

    it("on SIGTERM, lets the proxied requests in flight finish and writes their rows", async () => {
      const call = (method: string, ms: number) =>
        fetch(`${proxyUrl}/payments-api/slow/${ms}`, {
          method,
          headers: { authorization: `Bearer ${token}` },
        });
      const before = upstream.arrived.length;
      const read = call("GET", 1501);
      const write = call("POST", 1502);
      await expect
        .poll(() => upstream.arrived.length - before, { timeout: 10_000, interval: 20 })
        .toBe(2);
      server.child.kill("SIGTERM");
      const [r, w] = await Promise.all([read, write]);
      expect([r.status, w.status]).toEqual([200, 200]);
      expect(await server.exited).toBe(0);
      const { rows } = await db.query<Record<string, unknown>>(
        `SELECT method, path, outcome, status FROM proxy_requests
          WHERE path IN ('/slow/1501', '/slow/1502') ORDER BY path`,
      );
      expect(rows).toEqual([
        { method: "GET", path: "/slow/1501", outcome: "forwarded", status: 200 },
        { method: "POST", path: "/slow/1502", outcome: "forwarded", status: 200 },
      ]);
      server = await startServe();
    }, 60_000);

    // Last: it kills the server.
    it("leaves a proxied POST it was killed during recorded as forwarding, with what is known", async () => {
      const pending = fetch(`${proxyUrl}/payments-api/slow/10000`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
      }).catch((error: unknown) => error);
      await expect
        .poll(() => upstream.seen.some((r) => r.method === "POST" && r.url === "/slow/10000"), {
          timeout: 10_000,
          interval: 20,
        })
        .toBe(true);
      server.child.kill("SIGKILL");
      await server.exited;
      expect(await pending).toBeInstanceOf(Error);
      const { rows } = await db.query<Record<string, unknown>>(
        `SELECT method, path, outcome, status, bytes_in, latency_us, finished_at
           FROM proxy_requests WHERE path = '/slow/10000'`,
      );
      expect(rows).toEqual([
        {
          method: "POST",
          path: "/slow/10000",
          outcome: "forwarding",
          status: null,
          bytes_in: null,
          latency_us: null,
          finished_at: null,
        },
      ]);
    });
  });
});
