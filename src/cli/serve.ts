import { gitHubComponent, installationClient } from "#src/components.js";
import type { Config } from "#src/config.js";
import { HallpassError } from "#src/errors.js";
import { createGitHubApp } from "#src/github/app.js";
import type { Logger } from "#src/log.js";
import { loadOperator } from "#src/operator.js";
import { Runtime, type StartComponent } from "#src/runtime.js";
import { buildServer } from "#src/server.js";
import { tokenRoutes } from "#src/tokens/routes.js";
import { startTokenService, type TokenService } from "#src/tokens/service.js";

/**
 * `hallpass serve`: listens at once (so /healthz answers while the database
 * is still coming up), starts the database-backed runtime, and on SIGTERM or
 * SIGINT stops accepting, lets requests in flight finish, stops the workers
 * and closes the database.
 *
 * @returns the process exit code
 */
export async function serve(config: Config, log: Logger): Promise<number> {
  const operator = await loadOperator(config);
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
  if (probot) {
    components.push(gitHubComponent({ config, log, operator, probot }));
  } else {
    log.info("no GitHub App configured: open %s to register one", config.publicUrl);
  }
  const runtime = new Runtime({ database: config.database, log, components });
  const server = await buildServer({
    config,
    log,
    runtime,
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
      }),
    ],
  });
  await server.listen({ host: config.host, port: config.port });

  let exitCode = 0;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "shutting down");
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
    runtime.start().catch((error) => {
      log.fatal({ err: error }, (error as Error).message);
      exitCode = 1;
      resolve();
    });
  });
  await stopped;
  await server.close();
  await runtime.stop();
  log.info("stopped");
  return exitCode;
}
