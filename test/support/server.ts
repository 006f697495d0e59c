import type { AddressInfo } from "node:net";
import type { FastifyPluginAsync } from "fastify";
import type { Registry } from "prom-client";
import { loadConfig } from "#src/config.js";
import type { Logger } from "#src/log.js";
import { Runtime, type StartComponent } from "#src/runtime.js";
import { buildServer, type HallpassServer } from "#src/server.js";
import type { Db } from "#src/store/db.js";
import type { Migration } from "#src/store/migrate.js";
import { cleanEnv } from "./env.js";
import { captureLogger } from "./log.js";

export interface TestServer {
  readonly url: string;
  readonly server: HallpassServer;
  readonly runtime: Runtime;
  readonly log: Logger;
  readonly logText: () => string;
  /** Settles when the runtime is ready, or rejects with its fatal error. */
  readonly started: Promise<void>;
  stop(): Promise<void>;
}

export interface TestServerOptions {
  /** The database the runtime uses; it is not closed when the server stops. */
  readonly db?: Db;
  /** Opens the database instead (for tests of start-up faults). */
  readonly open?: () => Promise<Db>;
  readonly env?: Record<string, string>;
  readonly components?: StartComponent[];
  readonly migrations?: Migration[];
  /** The logger to use (default: a new captured one). */
  readonly capture?: ReturnType<typeof captureLogger>;
  /** Wait until ready (default true). */
  readonly ready?: boolean;
  /** The registry served at `/metrics`. */
  readonly metrics?: Registry;
  /** Further routes, as `hallpass serve` adds the token service's. */
  readonly routes?: FastifyPluginAsync[];
}

/** The real HTTP server on an ephemeral port, with the runtime on a test database. */
export async function startTestServer(options: TestServerOptions): Promise<TestServer> {
  const config = loadConfig(cleanEnv(options.env ?? {}));
  const { log, text } = options.capture ?? captureLogger();
  const db = options.db;
  const open =
    options.open ??
    (async () => {
      if (!db) throw new Error("startTestServer needs db or open");
      return { ...db, close: async () => {} };
    });
  const runtime = new Runtime({
    database: config.database,
    log,
    components: options.components ?? [],
    open,
    retry: { initialMs: 20, maxMs: 200 },
    ...(options.migrations ? { migrations: options.migrations } : {}),
  });
  const server = await buildServer({
    config,
    log,
    runtime,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(options.routes ? { routes: options.routes } : {}),
  });
  await server.listen({ host: "127.0.0.1", port: 0 });
  const started = runtime.start();
  if (options.ready !== false) await started;
  else started.catch(() => {}); // observed through `started`
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    runtime,
    log,
    logText: text,
    started,
    async stop() {
      await server.close();
      await runtime.stop();
    },
  };
}
