import { type ApplicationFunction, Probot, type ProbotOctokit } from "probot";
import type { Config, GitHubAppConfig } from "#src/config.js";
import type { Logger } from "#src/log.js";

export interface GitHubAppOptions {
  /**
   * The Octokit class of every client. Production keeps Probot's (retry and
   * throttling plugins on); tests pass one without them, so that faults reach
   * the caller at once (the outbox retries on its own). Give the defaults as a
   * function: Probot passes throttling options of its own, which replace an
   * object's `throttle` (and its `enabled: false`) entirely.
   *
   * @example
   * ProbotOctokit.defaults((o: { throttle?: object }) => ({
   *   ...o, throttle: { ...o.throttle, enabled: false }, retry: { enabled: false },
   * }))
   */
  readonly octokit?: typeof ProbotOctokit;
}

/**
 * The Probot instance of the GitHub App, pointed at github.com or at GitHub
 * Enterprise Server (GHE_HOST), with the given app functions loaded.
 */
export async function createGitHubApp(
  config: Config,
  app: GitHubAppConfig,
  log: Logger,
  appFns: readonly ApplicationFunction[],
  options: GitHubAppOptions = {},
): Promise<Probot> {
  const probot = new Probot({
    appId: app.appId,
    privateKey: app.privateKey,
    secret: app.webhookSecret,
    log: log.child({ component: "github" }),
    ...(config.github.enterpriseHost ? { baseUrl: config.github.apiUrl } : {}),
    ...(options.octokit ? { Octokit: options.octokit } : {}),
  });
  await probot.load([...appFns]);
  return probot;
}
