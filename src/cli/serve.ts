import { AppMetrics } from "#src/app-metrics.js";
import { startAdminSocket } from "#src/cli/admin-socket.js";
import type { Output } from "#src/cli/audit.js";
import { gitHubComponent, installationClient } from "#src/components.js";
import type { Config } from "#src/config.js";
import { HallpassError } from "#src/errors.js";
import { createGitHubApp } from "#src/github/app.js";
import type { Logger } from "#src/log.js";
import { createMetrics } from "#src/metrics.js";
import { loadOperator } from "#src/operator.js";
import { checkProxyConfig, createProxyServer, type ProxyServer } from "#src/proxy/server.js";
import { Runtime, type StartComponent } from "#src/runtime.js";
import { buildServer } from "#src/server.js";
import { stateMetrics } from "#src/state-metrics.js";
import type { Db } from "#src/store/db.js";
import { tokenRoutes } from "#src/tokens/routes.js";
import { startTokenService, type TokenService } from "#src/tokens/service.js";

/**
 * `hallpass serve`: listens at once (so /healthz answers while the database
 * is still coming up), with the access proxy on `PROXY_PORT` when the
 * operator config has upstreams, starts the database-backed runtime, and on
 * SIGTERM or SIGINT stops accepting, lets requests in flight finish, stops
 * the workers (the proxy writes its last usage rows) and closes the database.
 *
 * @returns the process exit code
 */
export async function serve(
  config: Config,
  log: Logger,
  options: {
    /** Runs an operator command on the server's database (the embedded database's admin socket). */
    readonly runCommand?: (argv: readonly string[], out: Output, db: Db) => Promise<number>;
  } = {},
): Promise<number> {
  const operator = await loadOperator(config);
  const metrics = createMetrics();
  const counters = new AppMetrics(metrics);
  const proxy: ProxyServer | null = checkProxyConfig(config.proxyPort, operator)
    ? createProxyServer({ operator, publicUrl: config.proxyUrl, log, metrics })
    : null;
  const probot = config.app ? await createGitHubApp(config, config.app, log, []) : null;
  let tokens: TokenService | null = null;
  // First: a wrong master key must stop the start before anything else runs.
  const components: StartComponent[] = [
    async (db) => {
      tokens = await startTokenService(db, config, log, {
        operator: operator.config,
        // Without the App, /v1/exchange answers NOT_READY.
        github: probot ? installationClient(probot) : null,
      });
      return tokens;
    },
  ];
  if (proxy) {
    components.push((db) =>
      proxy.start(db, (tokens as TokenService).verifier, { live: config.liveGrants }),
    );
  }
  const { database } = config;
  const { runCommand } = options;
  if (database.kind === "pglite" && runCommand) {
    components.push((db) =>
      startAdminSocket({ dataDir: database.dataDir, db, log, run: runCommand }),
    );
  }
  if (probot) {
    components.push(gitHubComponent({ config, log, operator, probot, metrics: counters }));
  } else {
    log.info("no GitHub App configured: open %s to register one", config.publicUrl);
  }
  const runtime = new Runtime({ database: config.database, log, components });
  stateMetrics(metrics, () => runtime.db, { log });
  const server = await buildServer({
    config,
    log,
    runtime,
    metrics,
    routes: [
      tokenRoutes({
        config,
        service: () => {
          runtime.requireDb();
          if (!tokens) throw new HallpassError("NOT_READY", "the token service is not ready yet");
          return tokens;
        },
        introspectionSecrets: (resource) =>
          operator.secrets.get(resource)?.introspectionSecret ?? null,
        metrics: counters,
      }),
    ],
  });
  try {
    await server.listen({ host: config.host, port: config.port });
  } catch (error) {
    await Promise.all([server.close(), proxy?.close()]);
    throw cannotListen("PORT", config.host, config.port, error);
  }
  if (proxy && config.proxyPort !== null) {
    try {
      const at = await proxy.listen(config.proxyPort, config.host);
      log.info({ url: at, resources: [...proxy.resources.keys()] }, "access proxy listening");
    } catch (error) {
      await Promise.all([server.close(), proxy.close()]);
      throw cannotListen("PROXY_PORT", config.host, config.proxyPort, error);
    }
  }

  let exitCode = 0;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "shutting down");
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
    runtime.start().catch((error) => {
      // One line naming the cause: ours need no stack, others keep it.
      if (error instanceof HallpassError) log.fatal({ code: error.code }, error.message);
      else log.fatal({ err: error }, (error as Error).message);
      exitCode = 1;
      resolve();
    });
  });
  await stopped;
  await Promise.all([server.close(), proxy?.close()]);
  await runtime.stop();
  log.info("stopped");
  return exitCode;
}

/** Why a port could not be listened on, as one line naming the variable to change. */
function cannotListen(
  variable: "PORT" | "PROXY_PORT",
  host: string,
  port: number,
  error: unknown,
): HallpassError {
  const code = (error as NodeJS.ErrnoException).code;
  const at = `cannot listen on ${host}:${port}`;
  const message =
    code === "EADDRINUSE"
      ? `${variable}: ${at}: another process is listening there`
      : code === "EACCES"
        ? `${variable}: ${at}: permission denied (ports below 1024 need privileges)`
        : code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EAI_AGAIN"
          ? `HOST: ${at}: not an address of this machine (${code})`
          : `${variable}: ${at}: ${(error as Error).message}`;
  return new HallpassError("CONFIG_INVALID", message, { cause: error });
}
