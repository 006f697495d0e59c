import { type ApplicationFunction, Probot } from "probot";
import type { Config, GitHubAppConfig } from "#src/config.js";
import type { Logger } from "#src/log.js";

/**
 * The Probot instance of the GitHub App, pointed at github.com or at GitHub
 * Enterprise Server (GHE_HOST), with the given app functions loaded.
 */
export async function createGitHubApp(
  config: Config,
  app: GitHubAppConfig,
  log: Logger,
  appFns: readonly ApplicationFunction[],
): Promise<Probot> {
  const probot = new Probot({
    appId: app.appId,
    privateKey: app.privateKey,
    secret: app.webhookSecret,
    log: log.child({ name: "github" }),
    ...(config.github.enterpriseHost ? { baseUrl: config.github.apiUrl } : {}),
  });
  await probot.load([...appFns]);
  return probot;
}
