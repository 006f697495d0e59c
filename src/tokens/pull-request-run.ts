import { HallpassError } from "#src/errors.js";
import type { TicketGrant } from "#src/store/grants.js";
import type { ActionsClaims } from "#src/tokens/oidc.js";
import type { RepoFacts } from "#src/tokens/repo-facts.js";

/**
 * Step d of the exchange, for a pull request's runs: the code that runs is
 * the code that was approved.
 *
 * - Into the default branch (`RUN_REF`): the run's workflow and the merge
 *   commit carry the base branch's code, which nobody approved unless it is
 *   the default branch (whose policy and CODEOWNERS decided the grant). A
 *   pull request retargeted at another branch gets nothing.
 * - Not from a fork unless the policy allows forks (`RUN_FORK`). GitHub's ID
 *   token says nothing of forks; the pull request's head repository does.
 * - `pull_request`: the run's commit is GitHub's test merge commit whose
 *   parents are [base, approved commit] (`RUN_COMMIT`).
 * - `pull_request_target`: see `checkTargetRun`.
 */
export async function checkPullRequestRun(
  facts: RepoFacts,
  claims: ActionsClaims,
  ticket: TicketGrant["ticket"],
  run: {
    readonly kind: "pull_request" | "pull_request_target";
    readonly approvedCommit: string | null;
    readonly allowForks: boolean;
  },
): Promise<void> {
  const ref = `#${ticket.number}`;
  if (!run.approvedCommit) {
    throw new HallpassError("RUN_COMMIT", `the grant on ${ref} recorded no approved commit`);
  }
  const defaultBranch = await facts.defaultBranch(ticket.installationId, ticket.repoId);
  if (claims.base_ref !== defaultBranch) {
    throw new HallpassError(
      "RUN_REF",
      `the run is of a pull request into ${claims.base_ref ?? "(no branch)"}: only pull requests into the default branch ${defaultBranch} use their grant`,
    );
  }
  if (run.kind === "pull_request_target") {
    await checkTargetRun(facts, claims, ticket, run.approvedCommit, run.allowForks, ref);
    return;
  }
  if (ticket.headRepoId !== ticket.repoId && !run.allowForks) throw forkRefusal(ref);
  await checkMergeCommit(facts, claims, ticket, run.approvedCommit, ref);
}

/** The run's merge commit (`sha`) is GitHub's merge of the approved head into the base. */
async function checkMergeCommit(
  facts: RepoFacts,
  claims: ActionsClaims,
  ticket: TicketGrant["ticket"],
  approved: string,
  ref: string,
): Promise<void> {
  const parents = await facts.commitParents(ticket.installationId, ticket.repoId, claims.sha);
  if (!parents) {
    throw new HallpassError(
      "RUN_COMMIT",
      `GitHub knows no commit ${claims.sha} in this repository`,
    );
  }
  const head = parents.length === 2 ? parents[1] : undefined;
  if (head !== approved) {
    throw new HallpassError(
      "RUN_COMMIT",
      head === undefined
        ? `the run's commit ${claims.sha.slice(0, 12)} is not a merge commit of ${ref}`
        : `the run is of ${ref} at ${head.slice(0, 12)}, but ${approved.slice(0, 12)} was approved: commits pushed after approval need a new approval`,
    );
  }
}

/**
 * A `pull_request_target` run's token names no pull request and carries the
 * base branch's commit: it is matched to the ticket it names by the pull
 * request's head branch and base branch, and the pull request's head now
 * must be the approved commit.
 */
async function checkTargetRun(
  facts: RepoFacts,
  claims: ActionsClaims,
  ticket: TicketGrant["ticket"],
  approved: string,
  allowForks: boolean,
  ref: string,
): Promise<void> {
  const pull = await facts.pullHead(ticket.installationId, ticket.repoId, ticket.number);
  if (!pull)
    throw new HallpassError("RUN_TICKET", `GitHub has no pull request ${ref} in this repository`);
  if (pull.headRepoId !== ticket.repoId && !allowForks) throw forkRefusal(ref);
  if (claims.head_ref !== pull.headRef || claims.base_ref !== pull.baseRef) {
    throw new HallpassError(
      "RUN_REF",
      `the run is for head branch ${claims.head_ref ?? "(none)"} into ${claims.base_ref ?? "(none)"}, not ${ref}'s`,
    );
  }
  if (pull.headSha !== approved) {
    throw new HallpassError(
      "RUN_COMMIT",
      `${ref} is at ${pull.headSha.slice(0, 12)}, but ${approved.slice(0, 12)} was approved: commits pushed after approval need a new approval`,
    );
  }
}

function forkRefusal(ref: string): HallpassError {
  return new HallpassError(
    "RUN_FORK",
    `${ref} comes from a fork: its runs get no token unless the policy sets actions.allow_forks`,
  );
}
