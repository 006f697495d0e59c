import { type ApplicationFunction, Probot, type ProbotOctokit } from "probot";
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
  options: { readonly Octokit?: typeof ProbotOctokit } = {},
): Promise<Probot> {
  const probot = new Probot({
    ...(options.Octokit ? { Octokit: options.Octokit } : {}),
    appId: app.appId,
    privateKey: app.privateKey,
    secret: app.webhookSecret,
    log: log.child({ name: "github" }),
    ...(config.github.enterpriseHost ? { baseUrl: config.github.apiUrl } : {}),
  });
  await probot.load([...appFns]);
  return probot;
}
