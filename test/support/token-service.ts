/**
 * The token service as `hallpass serve` runs it — a Runtime component on a
 * test database, its routes in the real server, listening on an ephemeral
 * port — with a clock tests can move forward.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyPluginAsync } from "fastify";
import { type Config, loadConfig } from "#src/config.js";
import { HallpassError } from "#src/errors.js";
import { createLogger } from "#src/log.js";
import { Runtime } from "#src/runtime.js";
import type { Secret } from "#src/secret.js";
import { buildServer, type HallpassServer } from "#src/server.js";
import { type RateLimits, tokenRoutes } from "#src/tokens/routes.js";
import {
  startTokenService,
  type TokenService,
  type TokenServiceOptions,
} from "#src/tokens/service.js";
import { type Backend, createTestDb, type TestDb } from "./db.js";
import { cleanEnv } from "./env.js";

/** Real time plus an offset: timers and sockets keep working, the service's time can jump. */
export interface Clock {
  now(): Date;
  advance(ms: number): void;
}

export function testClock(): Clock {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    advance: (ms) => {
      offset += ms;
    },
  };
}

export const OIDC_AUDIENCE = "https://hallpass.example";

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig(
    cleanEnv({
      HALLPASS_MASTER_KEY: randomBytes(32).toString("base64"),
      // Never created: with HALLPASS_MASTER_KEY set, nothing is written there.
      HALLPASS_DATA_DIR: path.join(tmpdir(), `hallpass-tokens-${randomUUID()}`),
      HALLPASS_OIDC_AUDIENCE: OIDC_AUDIENCE,
      LOG_LEVEL: "silent",
      ...env,
    }),
  );
}

export interface TokenHarness {
  readonly db: TestDb;
  readonly config: Config;
  readonly clock: Clock;
  /** The server's base URL (also the token issuer). */
  readonly url: string;
  readonly server: HallpassServer;
  readonly runtime: Runtime;
  service(): TokenService;
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly config?: Config;
  readonly db?: TestDb;
  readonly secrets?: Record<string, Secret>;
  readonly service?: Omit<TokenServiceOptions, "now">;
  readonly rateLimits?: RateLimits;
  /** Called when each response has been sent: its route and Fastify's elapsed time (benchmarks). */
  readonly onResponse?: (route: string, ms: number) => void;
  /** Leave the runtime unstarted (to see the server before the database is ready). */
  readonly start?: boolean;
}

export async function startTokenHarness(
  backend: Backend,
  options: HarnessOptions = {},
): Promise<TokenHarness> {
  const db = options.db ?? (await createTestDb(backend));
  const clock = testClock();
  // The issuer is the listening URL, known only once the server listens.
  const config = { ...(options.config ?? testConfig()) } as {
    -readonly [K in keyof Config]: Config[K];
  };
  const log = createLogger("silent");
  let service: TokenService | null = null;
  const runtime = new Runtime({
    database: config.database,
    log,
    open: async () => db,
    components: [
      async (opened) => {
        service = await startTokenService(opened, config, log, {
          ...options.service,
          now: clock.now,
        });
        return service;
      },
    ],
  });
  const secrets = options.secrets ?? {};
  const server = await buildServer({
    config,
    log,
    runtime,
    routes: [
      ...(options.onResponse ? [responseObserver(options.onResponse)] : []),
      tokenRoutes({
        config,
        service: () => {
          runtime.requireDb();
          if (!service) throw new HallpassError("NOT_READY", "token service not ready");
          return service;
        },
        introspectionSecrets: (resource) =>
          Object.hasOwn(secrets, resource) ? (secrets[resource] ?? null) : null,
        ...(options.rateLimits ? { rateLimits: options.rateLimits } : {}),
      }),
    ],
  });
  const address = await server.listen({ host: "127.0.0.1", port: 0 });
  config.publicUrl = address;
  if (options.start !== false) await runtime.start();
  return {
    db,
    config,
    clock,
    url: address,
    server,
    runtime,
    service: () => {
      if (!service) throw new Error("token service not started");
      return service;
    },
    async close() {
      await server.close();
      await runtime.stop();
      if (options.start === false) await db.close();
    },
  };
}

/** A root-level `onResponse` hook (not encapsulated: it sees the routes registered after it). */
function responseObserver(onResponse: (route: string, ms: number) => void): FastifyPluginAsync {
  const plugin: FastifyPluginAsync = async (app) => {
    app.addHook("onResponse", async (request, reply) => {
      onResponse(request.routeOptions.url ?? "", reply.elapsedTime);
    });
  };
  Object.assign(plugin, { [Symbol.for("skip-override")]: true });
  return plugin;
}
