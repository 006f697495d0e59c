import { type ApplicationFunction, Probot, ProbotOctokit } from "probot";
import type { Config, GitHubAppConfig } from "#src/config.js";
import type { Logger } from "#src/log.js";

export interface GitHubAppOptions {
  /**
   * The Octokit class of every client (default {@link AppOctokit}); tests
   * pass one without the retry plugin too, so that faults reach the caller at
   * once. Give the defaults as a
   * function: Probot passes throttling options of its own, which replace an
   * object's `throttle` (and its `enabled: false`) entirely.
   *
   * @example
   * ProbotOctokit.defaults((o: { throttle?: object }) => ({
   *   ...o, throttle: { ...o.throttle, enabled: false }, retry: { enabled: false },
   * }))
   */
  readonly octokit?: typeof ProbotOctokit;
  /** How long one GitHub call may take, answer included (default {@link GITHUB_REQUEST_TIMEOUT_MS}). */
  readonly requestTimeoutMs?: number;
}

/**
 * GitHub ends a REST request it has worked on for 10 seconds; one that takes
 * twice that is a GitHub that stopped answering. Without a bound, fetch
 * waits 5 minutes for headers (undici's default), and every worker waiting
 * on such a call (deliveries, outbox, redelivery) stalls that long, the
 * deliveries of other tickets in its batch included, and so does shutdown.
 */
export const GITHUB_REQUEST_TIMEOUT_MS = 20_000;

/**
 * Probot's Octokit without its throttling plugin. The plugin spaces one
 * process's writes to an installation (a second apart, three for those that
 * notify) without knowing of the other replicas, and, on a rate limit, waits
 * inside the call until the limit resets (up to an hour), holding the worker
 * that made it and every installation behind it. hallpass paces writes
 * itself, per installation and across replicas (the outbox's
 * `writeIntervalMs`), and meets a rate limit by pausing that installation
 * while the others carry on; a webhook handler's read refused by a rate limit
 * fails, and its delivery is retried. The retry plugin stays, for reads: the
 * outbox turns it off for its writes (a comment retried after a 504 may have
 * been posted by the first try), and it leaves rate limits to the callers.
 */
export const AppOctokit = ProbotOctokit.defaults(
  (options: { throttle?: object; retry?: object }) => ({
    ...options,
    throttle: { ...options.throttle, enabled: false },
    // A 429 is a rate limit, waited out as GitHub asks by the caller (the
    // outbox, the delivery worker), not retried a second later.
    retry: { ...options.retry, doNotRetry: [400, 401, 403, 404, 410, 422, 429, 451] },
  }),
);

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
    Octokit: options.octokit ?? AppOctokit,
    // Probot gives it to every client, the installation token requests' included.
    request: { fetch: fetchWithin(options.requestTimeoutMs ?? GITHUB_REQUEST_TIMEOUT_MS) },
  });
  await probot.load([...appFns]);
  return probot;
}

/** `fetch` that gives up after `ms` (a failure Octokit reports as a 500, which is retried). */
function fetchWithin(ms: number): typeof fetch {
  return (input, init) => {
    const timeout = AbortSignal.timeout(ms);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    return fetch(input, { ...init, signal });
  };
}
