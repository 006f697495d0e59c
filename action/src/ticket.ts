/** Where the job runs, from the runner's `GITHUB_*` variables. */
export interface JobContext {
  /** `GITHUB_REPOSITORY`: `acme/app`. */
  readonly repository?: string | undefined;
  /** `GITHUB_REF`: `refs/pull/12/merge` on a pull_request run. */
  readonly ref?: string | undefined;
  /** `GITHUB_SERVER_URL`: `https://github.com`, or a GitHub Enterprise Server's. */
  readonly serverUrl?: string | undefined;
}

/**
 * The ticket a run uses, named for the job's log: the `ticket` input, or
 * the pull request a `pull_request` run is of. Only for messages: the server
 * finds the ticket itself, from the ID token.
 *
 * @example ticketOf(undefined, { repository: "acme/app", ref: "refs/pull/12/merge", serverUrl: "https://github.com" })
 * // "acme/app#12 (https://github.com/acme/app/pull/12)"
 */
export function ticketOf(ticket: number | undefined, job: JobContext): string {
  const pull = /^refs\/pull\/([1-9][0-9]*)\/merge$/.exec(job.ref ?? "")?.[1];
  const number = ticket ?? (pull === undefined ? undefined : Number(pull));
  if (number === undefined) return "the ticket";
  const repository = job.repository ?? "";
  if (!/^[\w.-]+\/[\w.-]+$/.test(repository)) return `#${number}`;
  const server = (job.serverUrl || "https://github.com").replace(/\/+$/, "");
  // GitHub sends /issues/N on to /pull/N when N is a pull request.
  const kind = ticket === undefined ? "pull" : "issues";
  return `${repository}#${number} (${server}/${repository}/${kind}/${number})`;
}
