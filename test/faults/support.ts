/**
 * What the fault tests share: a TCP link whose far end can be taken away in
 * the ways networks fail (connections refused, or accepted and never
 * answered), and `hallpass serve` in its own process.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Registry } from "prom-client";
import { DEFAULT_WARN_BEFORE_S, gitHubComponent, installationClient } from "#src/components.js";
import { loadConfig } from "#src/config.js";
import type { GitHub } from "#src/github/api.js";
import { createGitHubApp } from "#src/github/app.js";
import { redeliverMissed } from "#src/github/redeliver.js";
import { loadOperator } from "#src/operator.js";
import { createProxyServer, type ProxyServer } from "#src/proxy/server.js";
import type { StartComponent } from "#src/runtime.js";
import type { Db, Sql } from "#src/store/db.js";
import { sweep } from "#src/tickets/sweeper.js";
import { startTokenService, type TokenService } from "#src/tokens/service.js";
import { cleanEnv } from "../support/env.js";
import type { GitHubSimulator } from "../support/github/simulator.js";
import { sendWebhook, type Webhook } from "../support/github/webhooks.js";
import { captureLogger } from "../support/log.js";
import { freePort } from "../support/net.js";
import { TestOctokit } from "../support/octokit.js";
import { spawnServe } from "../support/serve.js";
import { startTestServer, type TestServer } from "../support/server.js";

/**
 * How the far end fails: `refuse` resets every connection and every new
 * one (a stopped server, a closed port); `blackhole` drops every
 * connection, then accepts new ones and never answers (a hung server, a
 * firewall dropping packets).
 */
export type Outage = "refuse" | "blackhole";

export interface Link {
  /** The port to connect to instead of the target's. */
  readonly port: number;
  /** `127.0.0.1:<port>`. */
  readonly host: string;
  /** Takes the far end away: open connections are dropped, new ones fail as `outage` says. */
  cut(outage?: Outage): void;
  /** Brings it back: new connections reach the target again. */
  restore(): void;
  close(): Promise<void>;
}

/** A TCP link to `target` (see {@link Link}); the network edge fails, nothing of hallpass is stubbed. */
export async function startLink(target: { host: string; port: number }): Promise<Link> {
  const sockets = new Set<net.Socket>();
  let state: "up" | Outage = "up";
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  };
  const server = net.createServer((client) => {
    track(client);
    client.on("error", () => client.destroy());
    if (state === "refuse") {
      client.resetAndDestroy();
      return;
    }
    if (state === "blackhole") {
      client.resume(); // read and drop whatever is sent
      return;
    }
    const upstream = net.connect(target.port, target.host);
    track(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    port,
    host: `127.0.0.1:${port}`,
    cut(outage = "refuse") {
      state = outage;
      dropAll();
    },
    restore() {
      state = "up";
    },
    async close() {
      state = "refuse";
      dropAll();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export interface Served {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything the process wrote (JSON log lines). */
  output(): string;
  /** Its log lines, parsed. */
  lines(): Array<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
}

/** `hallpass serve` in its own process with `env` (on top of a clean one), listening on `port`. */
export function serve(port: number, env: Record<string, string>): Served {
  const served = spawnServe({ HOST: "127.0.0.1", PORT: String(port), ...env });
  const { child, exited } = served;
  return {
    ...served,
    url: `http://127.0.0.1:${port}`,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Waits until `url/readyz` answers 200. */
export async function waitReady(served: Served, timeoutMs = 40_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = (await fetch(`${served.url}/readyz`).catch(() => null))?.status;
    if (status === 200) return;
    if (served.child.exitCode !== null)
      throw new Error(`hallpass serve exited: ${served.output()}`);
    if (Date.now() > deadline)
      throw new Error(`hallpass serve did not become ready: ${served.output()}`);
    await sleep(100);
  }
}

/** One /readyz answer, with how long it took. */
export interface ReadySample {
  readonly at: number;
  readonly status: number | null;
  readonly ms: number;
  readonly reason?: string;
}

/** Polls /readyz every `everyMs` until stopped; returns every answer. */
export function watchReadiness(url: string, everyMs = 100): { stop(): Promise<ReadySample[]> } {
  const samples: ReadySample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const response = await fetch(`${url}/readyz`).catch(() => null);
      const body = (await response?.json().catch(() => null)) as { reason?: string } | null;
      samples.push({
        at: Date.now(),
        status: response?.status ?? null,
        ms: performance.now() - started,
        ...(body?.reason ? { reason: body.reason } : {}),
      });
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

// --- hallpass replicas in this process ----------------------------------------

/** A clock the test moves, `skewMs` off another (or the wall clock plus a lead). */
export class SkewedClock {
  #offset: number;
  readonly #base: SkewedClock | null;
  constructor(options: { base?: SkewedClock; skewMs?: number; leadMs?: number } = {}) {
    this.#base = options.base ?? null;
    this.#offset = options.base ? (options.skewMs ?? 0) : (options.leadMs ?? 60_000);
  }
  now = (): Date => new Date((this.#base ? this.#base.now().getTime() : Date.now()) + this.#offset);
  /** Moves this clock (and every clock based on it) ahead. */
  advance(ms: number): void {
    this.#offset += ms;
  }
}

export const FLEET_SECRET = "faults-webhook-secret";
export const AUDIENCE = "acme/payments/payments-api";
export const UPSTREAM_CREDENTIAL = "faults-upstream-credential";

/**
 * What every replica shares: the App, the operator config (payments-api,
 * behind the proxy, in front of `upstreamUrl`), the master key and the
 * public URL. `githubHost` is where the App reaches GitHub (a {@link Link}
 * in front of the simulator, to take it away).
 */
export async function fleetEnv(options: {
  readonly sim: GitHubSimulator;
  readonly ids: { repoId: number; ownerId: number };
  readonly upstreamUrl: string;
  readonly dir: string;
  readonly githubHost?: string;
}): Promise<Record<string, string>> {
  const { ids } = options;
  const file = path.join(options.dir, "operator.yml");
  await writeFile(
    file,
    `resources:
  payments-api:
    repository: { id: ${ids.repoId}, owner_id: ${ids.ownerId}, name: acme/payments }
    max_ttl: 8h
    scopes: ["GET /v1/**", "POST /v1/refunds", "GET /v1/charges/*"]
    upstream: ${options.upstreamUrl}
    credential: { header: authorization, value: env:UPSTREAM_TOKEN, prefix: "Bearer " }
`,
  );
  return {
    ...options.sim.appEnv(FLEET_SECRET),
    ...(options.githubHost ? { GHE_HOST: options.githubHost } : {}),
    HALLPASS_CONFIG: file,
    HALLPASS_URL: "https://hallpass.faults.test",
    HALLPASS_MASTER_KEY: randomBytes(32).toString("base64"),
    UPSTREAM_TOKEN: UPSTREAM_CREDENTIAL,
    HALLPASS_DATA_DIR: options.dir,
  };
}

export interface ReplicaOptions {
  readonly name: string;
  /** This replica's own connection pool. */
  readonly db: Db;
  readonly env: Record<string, string>;
  readonly clock: SkewedClock;
  /** How long one GitHub call may take (default: the production value). */
  readonly githubTimeoutMs?: number;
  /** The proxy's view of live grants (default: 1 s stale at most, reloaded every second). */
  readonly live?: { readonly maxStalenessMs: number; readonly resyncMs: number };
  /** Look for missed deliveries this often (default: never; 0 is never). */
  readonly redeliveryIntervalMs?: number;
  /** Sweep this often (default: an hour, so that tests sweep by hand). */
  readonly sweepIntervalMs?: number;
  /** Attempts of a delivery before it is given up (default: the production value). */
  readonly deliveryAttempts?: number;
}

/** One hallpass replica as `hallpass serve` composes it, in this process. */
export interface Replica {
  readonly name: string;
  readonly url: string;
  readonly proxyUrl: string;
  readonly server: TestServer;
  readonly clock: SkewedClock;
  readonly db: Db;
  readonly proxy: ProxyServer;
  /** The token service (once the runtime is ready). */
  tokens(): TokenService;
  /** Mints a token of the grant for alice (as `hallpass token` gets one). */
  token(grantId: string): Promise<string>;
  /** A GET through this replica's proxy. */
  call(path: string, token: string, init?: RequestInit): Promise<Response>;
  /** One sweep at this replica's clock. */
  sweep(): Promise<boolean>;
  /** One redelivery pass (production runs one at start and every 5 minutes). */
  redeliver(): Promise<number>;
  stop(): Promise<void>;
}

export async function startReplica(options: ReplicaOptions): Promise<Replica> {
  const { env, clock } = options;
  const config = loadConfig(cleanEnv(env));
  const operator = await loadOperator(config, cleanEnv(env));
  const capture = captureLogger(process.env.HALLPASS_TEST_LOG ? "debug" : "info");
  const log = capture.log.child({ replica: options.name });
  const app = config.app;
  if (!app) throw new Error("the App's credentials are missing");
  const probot = await createGitHubApp(config, app, log, [], {
    octokit: TestOctokit,
    ...(options.githubTimeoutMs ? { requestTimeoutMs: options.githubTimeoutMs } : {}),
  });
  const proxyPort = await freePort();
  const proxy = createProxyServer({
    operator,
    publicUrl: `http://127.0.0.1:${proxyPort}`,
    log,
    metrics: new Registry(),
    now: clock.now,
  });
  const proxyUrl = await proxy.listen(proxyPort, "127.0.0.1");
  let tokens: TokenService | null = null;
  const components: StartComponent[] = [
    async (db) => {
      tokens = await startTokenService(db, config, log, {
        operator: operator.config,
        github: installationClient(probot),
        now: clock.now,
      });
      return tokens;
    },
    (db) =>
      proxy.start(db, (tokens as TokenService).verifier, {
        live: options.live ?? { maxStalenessMs: 1_000, resyncMs: 1_000 },
        usage: { flushMs: 50 },
      }),
    gitHubComponent({
      config,
      log,
      operator,
      probot,
      now: clock.now,
      sweepIntervalMs: options.sweepIntervalMs ?? 3_600_000,
      workerIdleMs: 50,
      redeliveryIntervalMs: options.redeliveryIntervalMs ?? 0,
      usageSettleMs: 200,
      writeIntervalMs: 0,
      ...(options.deliveryAttempts ? { deliveryAttempts: options.deliveryAttempts } : {}),
    }),
  ];
  const server = await startTestServer({ db: options.db, env, capture, components });
  const service = () => {
    if (!tokens) throw new Error("the token service has not started");
    return tokens;
  };
  return {
    name: options.name,
    url: server.url,
    proxyUrl,
    server,
    clock,
    db: options.db,
    proxy,
    tokens: service,
    async token(grantId) {
      return (await service().mint({ grantId, subject: "github:alice", channel: "cli" })).token;
    },
    call(requestPath, token, init = {}) {
      const headers = new Headers(init.headers);
      headers.set("authorization", `Bearer ${token}`);
      return fetch(`${proxyUrl}${requestPath}`, { ...init, headers });
    },
    sweep: () => sweep({ db: options.db, log, now: clock.now, warnBeforeS: DEFAULT_WARN_BEFORE_S }),
    redeliver: () =>
      redeliverMissed({
        db: options.db,
        log,
        app: async () => (await probot.auth()) as unknown as GitHub,
        now: clock.now,
      }),
    async stop() {
      await proxy.close(1_000);
      await server.stop();
    },
  };
}

/** Delivers one webhook to each of `urls` with the same delivery id (GitHub's retry, a balancer's copy). */
export async function deliverTo(
  urls: readonly string[],
  webhook: Webhook,
  deliveryId: string = randomUUID(),
): Promise<{ deliveryId: string; statuses: number[]; ms: number[] }> {
  const answers = await Promise.all(
    urls.map(async (url) => {
      const started = performance.now();
      const response = await sendWebhook(url, {
        secret: FLEET_SECRET,
        event: webhook.event,
        payload: webhook.payload,
        deliveryId,
      }).catch(() => null);
      await response?.arrayBuffer();
      return { status: response?.status ?? 0, ms: performance.now() - started };
    }),
  );
  return { deliveryId, statuses: answers.map((a) => a.status), ms: answers.map((a) => a.ms) };
}

/** Waits until the delivery is processed (`done`); throws if it is given up. */
export async function processed(db: Sql, deliveryId: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await db.query<{ state: string; last_error: string | null }>(
      "SELECT state, last_error FROM webhook_deliveries WHERE id = $1::text",
      [deliveryId],
    );
    if (rows[0]?.state === "done") return;
    if (rows[0]?.state === "failed") throw new Error(`delivery failed: ${rows[0].last_error}`);
    if (Date.now() > deadline) throw new Error(`delivery ${deliveryId} not processed in time`);
    await sleep(20);
  }
}

/** Waits until nothing is left to post. */
export async function outboxSettled(db: Sql, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM outbox WHERE state = 'pending'",
    );
    if (rows[0]?.n === 0) return;
    if (Date.now() > deadline) throw new Error("the outbox did not settle");
    await sleep(20);
  }
}

/** The ticket's grants, newest first. */
export async function grantsOf(
  db: Sql,
  repoId: number,
  number: number,
): Promise<Array<{ id: string; state: string; approvers: string[] }>> {
  const { rows } = await db.query<{ id: string; state: string; approvers: string[] }>(
    `SELECT g.id, g.state, g.approvers FROM grants g JOIN tickets t ON t.id = g.ticket_id
      WHERE t.repo_id = $1::bigint AND t.number = $2::int ORDER BY g.created_at DESC`,
    [repoId, number],
  );
  return rows;
}
