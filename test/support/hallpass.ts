/**
 * The whole server for lifecycle tests: the real HTTP server and runtime on
 * a test database, with its GitHub App pointed at the local GitHub simulator
 * (as a GitHub Enterprise Server), and a clock the test moves.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { AppMetrics } from "#src/app-metrics.js";
import { gitHubComponent, installationClient } from "#src/components.js";
import { loadConfig } from "#src/config.js";
import { HallpassError } from "#src/errors.js";
import { createGitHubApp } from "#src/github/app.js";
import { createMetrics } from "#src/metrics.js";
import { loadOperator, type Operator } from "#src/operator.js";
import type { StartComponent } from "#src/runtime.js";
import { stateMetrics } from "#src/state-metrics.js";
import type { Db } from "#src/store/db.js";
import { sweep } from "#src/tickets/sweeper.js";
import { tokenRoutes } from "#src/tokens/routes.js";
import { startTokenService, type TokenService } from "#src/tokens/service.js";
import { createTestDb, primaryBackend, type TestDb } from "./db.js";
import { cleanEnv } from "./env.js";
import { GitHubSimulator } from "./github/simulator.js";
import type { Webhook } from "./github/webhooks.js";
import { captureLogger } from "./log.js";
import { TestOctokit } from "./octokit.js";
import { startTestServer, type TestServer } from "./server.js";

export const SECRET = "lifecycle-webhook-secret";

/** A clock the test moves by hand. */
export class TestClock {
  #now: number;
  constructor(start = Math.floor(Date.now() / 1000) * 1000 + 1000) {
    this.#now = start;
  }
  now = (): Date => new Date(this.#now);
  advance(ms: number): void {
    this.#now += ms;
  }
}

export interface Hallpass {
  readonly sim: GitHubSimulator;
  readonly db: TestDb;
  readonly server: TestServer;
  readonly clock: TestClock;
  readonly operator: Operator;
  /** Delivers a webhook and waits until the server has processed it. */
  deliver(webhook: Webhook): Promise<void>;
  /** Runs one sweep of the expiry sweeper at the test clock's time. */
  sweep(): Promise<void>;
  /** Outbox rows queued for a ticket, oldest first. */
  effects(number: number): Promise<
    Array<{
      kind: string;
      notice: { kind: string } & Record<string, unknown>;
      payload: Record<string, unknown>;
    }>
  >;
  /** Waits until the outbox has posted everything queued. */
  settle(): Promise<void>;
  /** The ticket's grants, newest first. */
  grants(number: number): Promise<Array<Record<string, unknown>>>;
  /** Audit event kinds of a ticket, in chain order. */
  auditKinds(number: number): Promise<string[]>;
  stop(): Promise<void>;
}

export interface HallpassOptions {
  /** The operator config (YAML), with `{repoId}` and `{ownerId}` replaced. */
  readonly operatorYaml: (ids: { repoId: number; ownerId: number }) => string;
  /** Sets up organizations, teams and repositories; returns the home repository. */
  readonly seed: (sim: GitHubSimulator) => { repoId: number; ownerId: number };
  readonly env?: Record<string, string>;
  readonly extraComponents?: (deps: { operator: Operator; db: Db }) => StartComponent[];
  readonly warnBeforeS?: number;
  /** How long a closing comment waits for the proxies' last usage rows (default 0: at once). */
  readonly usageSettleMs?: number;
  /**
   * The token service and its routes, as `hallpass serve` runs them (the
   * exchange reads GitHub through the App), on the test clock.
   */
  readonly tokenService?: boolean;
  /**
   * `/metrics` with the App's counters and the database's state, as
   * `hallpass serve` composes them; the state is read again after `cacheMs`.
   */
  readonly metrics?: { readonly cacheMs: number };
  /** What the server logs (default info; debug with HALLPASS_TEST_LOG set). */
  readonly logLevel?: "debug" | "info";
}

export async function startHallpass(options: HallpassOptions): Promise<Hallpass> {
  const clock = new TestClock();
  const sim = await GitHubSimulator.start({ appId: 4100 + Math.floor(Math.random() * 1000) });
  const ids = options.seed(sim);
  const dir = await mkdtemp(path.join(tmpdir(), "hallpass-e2e-"));
  const operatorFile = path.join(dir, "operator.yml");
  await writeFile(operatorFile, options.operatorYaml(ids));
  const env = {
    ...sim.appEnv(SECRET),
    HALLPASS_CONFIG: operatorFile,
    HALLPASS_URL: "https://hallpass.example.test",
    // Else the outbox's marker key would come from a key file under the working directory.
    HALLPASS_MASTER_KEY: randomBytes(32).toString("base64"),
    ...options.env,
  };
  const config = loadConfig(cleanEnv(env));
  const db = await createTestDb(primaryBackend);
  const operator = await loadOperator(config, cleanEnv(env));
  const capture = captureLogger(
    options.logLevel ?? (process.env.HALLPASS_TEST_LOG ? "debug" : "info"),
  );
  const app = config.app;
  if (!app) throw new Error("the simulator's App credentials are missing");
  const probot = await createGitHubApp(config, app, capture.log, [], { octokit: TestOctokit });
  const registry = options.metrics ? createMetrics() : null;
  const counters = registry ? new AppMetrics(registry) : null;
  let tokens: TokenService | null = null;
  const tokenComponents: StartComponent[] = options.tokenService
    ? [
        async (opened) => {
          tokens = await startTokenService(opened, config, capture.log, {
            operator: operator.config,
            github: installationClient(probot),
            now: clock.now,
          });
          return tokens;
        },
      ]
    : [];
  const component: StartComponent = gitHubComponent({
    config,
    log: capture.log,
    operator,
    probot,
    now: clock.now,
    warnBeforeS: options.warnBeforeS ?? 600,
    sweepIntervalMs: 3_600_000, // tests sweep by hand at their clock's time
    workerIdleMs: 20,
    redeliveryIntervalMs: 0, // tests call redeliverMissed themselves
    usageSettleMs: options.usageSettleMs ?? 0,
    writeIntervalMs: 0, // the simulator does not pace; tests of pacing start the worker themselves
    ...(counters ? { metrics: counters } : {}),
  });
  const server = await startTestServer({
    db,
    env,
    capture,
    components: [
      ...tokenComponents,
      component,
      ...(options.extraComponents?.({ operator, db }) ?? []),
    ],
    ...(registry ? { metrics: registry } : {}),
    ...(options.tokenService
      ? {
          routes: [
            tokenRoutes({
              config,
              service: () => {
                if (!tokens) throw new HallpassError("NOT_READY", "token service not ready");
                return tokens;
              },
              introspectionSecrets: () => null,
              ...(counters ? { metrics: counters } : {}),
            }),
          ],
        }
      : {}),
  });
  if (registry && options.metrics) {
    stateMetrics(registry, () => server.runtime.db, {
      log: capture.log,
      cacheMs: options.metrics.cacheMs,
    });
  }
  sim.webhookTarget = { url: server.url, secret: SECRET };
  const running = server;

  const ticketId = async (number: number) =>
    (
      await db.query<{ id: string }>(
        "SELECT id FROM tickets WHERE repo_id = $1::bigint AND number = $2::int",
        [ids.repoId, number],
      )
    ).rows[0]?.id ?? null;

  /**
   * Waits until the outbox has posted what is queued: its worker briefly
   * locks a ticket's row (the check run id), and a sweep skips a locked
   * ticket until its next pass, which tests do not wait for.
   */
  const settle = async () => {
    for (let i = 0; i < 1000; i++) {
      const { rows } = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM outbox WHERE state = 'pending'",
      );
      if (rows[0]?.n === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error("the outbox did not settle");
  };

  return {
    sim,
    db,
    server: running,
    clock,
    operator,
    async deliver(webhook) {
      const deliveryId = randomUUID();
      const { response } = await sim.deliver(webhook, { deliveryId });
      if (!response || response.status >= 300)
        throw new Error(`delivery refused: ${response?.status}`);
      for (let i = 0; i < 500; i++) {
        const { rows } = await db.query<{
          state: string;
          last_error: string | null;
          attempts: number;
        }>("SELECT state, last_error, attempts FROM webhook_deliveries WHERE id = $1::text", [
          deliveryId,
        ]);
        const row = rows[0];
        if (row?.state === "done") return;
        if (row && (row.state === "failed" || row.attempts > 1)) {
          throw new Error(`delivery ${webhook.event} failed: ${row.last_error}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`delivery ${webhook.event} was not processed in time`);
    },
    settle,
    async sweep() {
      await settle();
      await sweep({
        db,
        log: running.log,
        now: clock.now,
        warnBeforeS: options.warnBeforeS ?? 600,
      });
    },
    async effects(number) {
      const id = await ticketId(number);
      const { rows } = await db.query<{ kind: string; payload: Record<string, unknown> }>(
        "SELECT kind, payload FROM outbox WHERE ticket_id = $1::uuid ORDER BY id",
        [id],
      );
      return rows.map((r) => ({
        kind: r.kind,
        payload: r.payload,
        notice: (r.payload.notice ?? { kind: "-" }) as { kind: string } & Record<string, unknown>,
      }));
    },
    async grants(number) {
      const id = await ticketId(number);
      const { rows } = await db.query<Record<string, unknown>>(
        "SELECT * FROM grants WHERE ticket_id = $1::uuid ORDER BY created_at DESC",
        [id],
      );
      return rows;
    },
    async auditKinds(number) {
      const id = await ticketId(number);
      const { rows } = await db.query<{ kind: string }>(
        "SELECT kind FROM audit_events WHERE ticket_id = $1::uuid ORDER BY seq",
        [id],
      );
      return rows.map((r) => r.kind);
    },
    async stop() {
      await running.stop();
      await sim.close();
      await db.close();
    },
  };
}
