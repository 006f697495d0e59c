/**
 * Repository and account webhooks: `push`, `repository` (edited, archived,
 * deleted, transferred), `organization.member_removed`, `membership.removed`,
 * `installation` (deleted, suspend, unsuspend) and `installation_repositories.removed`.
 */
import type { Commit as CommitPayload } from "@octokit/webhooks-types";
import { ZERO_SHA } from "./git.js";
import { fullNameOf, type RepoRef } from "./model.js";
import { iso, nodeId, installation as restInstallation } from "./render.js";
import type { GitHubSimulator } from "./simulator.js";
import {
  type EventOf,
  example,
  installationLite,
  organizationOf,
  organizationPayload,
  repoEventCommon,
  repositoryPayload,
  teamPayload,
  userPayload,
} from "./webhook-parts.js";
import type { Webhook } from "./webhooks.js";

/**
 * A `push` of `branch` from `before` (`ZERO_SHA` for a new branch) to
 * `after` (default: the branch's head now), listing each pushed commit's
 * added, modified and removed files. The pusher defaults to the head commit's author.
 * `listed` lists only the first that many pushed commits, as GitHub does for
 * a long push (its cap) or for commits it already had (none).
 */
export function pushEvent(
  sim: GitHubSimulator,
  input: {
    repo: RepoRef;
    branch: string;
    before: string;
    after?: string;
    pusher?: string;
    forced?: boolean;
    listed?: number;
  },
): Webhook<"push"> {
  const { view } = sim;
  const repo = sim.repo(input.repo);
  const after = input.after ?? sim.branchHead(repo.id, input.branch);
  const created = input.before === ZERO_SHA;
  const from = created ? sim.branchHead(repo.id, repo.defaultBranch) : input.before;
  const pushed = from === after ? [] : sim.git.compare(from, after).ahead;
  const head = sim.git.require(after);
  const pusher = input.pusher ?? head.author.login ?? repo.owner;
  const toPayload = (sha: string): CommitPayload => {
    const commit = sim.git.require(sha);
    const parent = commit.parents[0] ? sim.git.require(commit.parents[0]) : null;
    const diff = sim.git.diff(parent, commit);
    const person = (who: typeof commit.author) => ({
      name: who.name,
      email: who.email,
      ...(who.login ? { username: who.login } : {}),
    });
    return {
      id: commit.sha,
      tree_id: commit.treeSha,
      distinct: true,
      message: commit.message,
      timestamp: iso(commit.date),
      url: `${view.web}/${fullNameOf(repo)}/commit/${commit.sha}`,
      author: person(commit.author),
      committer: person(commit.committer),
      added: diff.filter((d) => d.status === "added").map((d) => d.path),
      modified: diff.filter((d) => d.status === "modified").map((d) => d.path),
      removed: diff.filter((d) => d.status === "removed").map((d) => d.path),
    };
  };
  const base = example("push");
  const repository = repositoryPayload(view, repo);
  const owner = sim.user(repo.owner);
  return {
    event: "push",
    payload: {
      ...base,
      ...repoEventCommon(sim, repo.id, pusher),
      // Push events show the repository a little differently: times as Unix
      // seconds, the owner with name and email, and a few more counters.
      repository: {
        ...base.repository,
        ...repository,
        owner: { ...repository.owner, name: repository.owner.login, email: owner.email },
        created_at: Math.floor(repo.createdAt.getTime() / 1000),
        pushed_at: Math.floor(repo.pushedAt.getTime() / 1000),
        stargazers: 0,
        master_branch: repo.defaultBranch,
      },
      ref: `refs/heads/${input.branch}`,
      before: input.before,
      after,
      created,
      deleted: false,
      forced: input.forced ?? false,
      base_ref: null,
      compare: `${view.web}/${fullNameOf(repo)}/compare/${input.before.slice(0, 12)}...${after.slice(0, 12)}`,
      commits: pushed.slice(0, input.listed ?? pushed.length).map((c) => toPayload(c.sha)),
      head_commit: toPayload(after),
      pusher: { name: pusher, email: sim.user(pusher).email },
    },
  };
}

/** `organization.member_removed` (remove the member from the model first). The sender defaults to the App's bot. */
export function organizationEvent(
  sim: GitHubSimulator,
  action: "member_removed",
  input: { org: string; member: string; sender?: string },
): Webhook<"organization", EventOf<"organization", "member_removed">> {
  const { view } = sim;
  const org = sim.org(input.org).user.login;
  const installation = [...sim.installations.values()].find(
    (i) => i.deletedAt === null && i.account === org,
  );
  return {
    event: "organization",
    payload: {
      ...example("organization", action),
      membership: {
        url: `${view.api}/orgs/${org}/memberships/${input.member}`,
        state: "active",
        role: "member",
        organization_url: `${view.api}/orgs/${org}`,
        user: userPayload(view, input.member),
      },
      organization: organizationPayload(view, org),
      sender: userPayload(view, input.sender ?? sim.app.bot),
      ...(installation
        ? { installation: { id: installation.id, node_id: nodeId("Integration", installation.id) } }
        : {}),
    },
  };
}

/** `membership.removed` from a team (remove the member from the model first). */
export function membershipEvent(
  sim: GitHubSimulator,
  action: "removed",
  input: { org: string; team: string; member: string; sender?: string },
): Webhook<"membership", EventOf<"membership", "removed">> {
  const { view } = sim;
  const org = sim.org(input.org).user.login;
  const installation = [...sim.installations.values()].find(
    (i) => i.deletedAt === null && i.account === org,
  );
  return {
    event: "membership",
    payload: {
      ...example("membership", action),
      scope: "team",
      member: userPayload(view, input.member),
      team: teamPayload(view, sim.team(org, input.team)),
      organization: organizationPayload(view, org),
      sender: userPayload(view, input.sender ?? sim.app.bot),
      ...(installation
        ? { installation: { id: installation.id, node_id: nodeId("Integration", installation.id) } }
        : {}),
    },
  };
}

/**
 * `installation.deleted`, `suspend` or `unsuspend` for an installation of the
 * model (deleted or not yet; the model does not keep suspensions).
 */
export function installationEvent<A extends "deleted" | "suspend" | "unsuspend">(
  sim: GitHubSimulator,
  action: A,
  input: { installationId: number; sender?: string },
): Webhook<"installation", EventOf<"installation", A>> {
  const { view } = sim;
  const found = sim.installations.get(input.installationId);
  if (!found) throw new Error(`installation.${action}: no installation ${input.installationId}`);
  const sender = input.sender ?? found.account;
  const rest = restInstallation(view, found);
  // The examples of the three actions share one shape (suspend's adds who suspended it).
  const base = example("installation", action) as EventOf<"installation", "deleted">;
  const repos = [...sim.repos.values()].filter(
    (r) =>
      r.deletedAt === null && r.owner === found.account && (found.repositoryIds?.has(r.id) ?? true),
  );
  const account = sim.user(found.account);
  return {
    event: "installation",
    payload: {
      ...base,
      installation: {
        ...base.installation,
        id: found.id,
        account: userPayload(view, found.account),
        repository_selection: rest.repository_selection,
        access_tokens_url: rest.access_tokens_url,
        repositories_url: rest.repositories_url,
        html_url: rest.html_url,
        app_id: sim.app.id,
        app_slug: sim.app.slug,
        target_id: account.id,
        target_type: account.type === "Organization" ? "Organization" : "User",
        created_at: rest.created_at,
        updated_at: rest.updated_at,
        single_file_name: null,
        ...(action === "suspend"
          ? { suspended_by: userPayload(view, sender), suspended_at: iso(sim.now()) }
          : { suspended_by: null, suspended_at: null }),
      },
      repositories: repos.map((r) => ({
        id: r.id,
        node_id: nodeId("Repository", r.id),
        name: r.name,
        full_name: fullNameOf(r),
        private: r.private,
      })),
      sender: userPayload(view, sender),
    } as EventOf<"installation", A>,
  };
}

/** `installation_repositories.removed`: the installation no longer covers these repositories. */
export function installationRepositoriesEvent(
  sim: GitHubSimulator,
  action: "removed",
  input: { installationId: number; repos: readonly RepoRef[]; sender?: string },
): Webhook<"installation_repositories", EventOf<"installation_repositories", "removed">> {
  const { view } = sim;
  const found = sim.installations.get(input.installationId);
  if (!found) throw new Error(`installation_repositories: no installation ${input.installationId}`);
  const base = example("installation_repositories", action);
  return {
    event: "installation_repositories",
    payload: {
      ...base,
      installation: {
        ...installationEvent(sim, "deleted", { installationId: found.id }).payload.installation,
        repository_selection: "selected",
      },
      repository_selection: "selected",
      repositories_added: [],
      repositories_removed: input.repos.map((ref) => {
        const r = sim.repo(ref);
        return {
          id: r.id,
          node_id: nodeId("Repository", r.id),
          name: r.name,
          full_name: fullNameOf(r),
          private: r.private,
        };
      }),
      requester: null,
      sender: userPayload(view, input.sender ?? found.account),
    },
  };
}

/** `repository.edited` after the model's repository changed (e.g. its default branch: set `repo.defaultBranch` first). */
export function repositoryEvent(
  sim: GitHubSimulator,
  action: "edited",
  input: {
    repo: RepoRef;
    changes: { default_branch?: { from: string }; description?: { from: string | null } };
    sender: string;
  },
): Webhook<"repository", EventOf<"repository", "edited">> {
  const repo = sim.repo(input.repo);
  return {
    event: "repository",
    payload: {
      ...example("repository", action),
      ...repoEventCommon(sim, repo.id, input.sender),
      changes: input.changes,
    } as EventOf<"repository", "edited">,
  };
}

/**
 * `repository.archived`, `deleted` or `transferred`. `deleted` describes the
 * repository as it was (delete it in the model after or before: both work);
 * `transferred` follows `sim.renameRepo` to the new owner and names the old
 * one (`from`). The github.com examples have no `archived` (the `privatized`
 * one is used, archived) and no `deleted` (the `ghes-35` one is used).
 */
export function repositoryEndEvent<A extends "archived" | "deleted" | "transferred">(
  sim: GitHubSimulator,
  action: A,
  input: { repo: number; sender: string; from?: string },
): Webhook<"repository", EventOf<"repository", A>> {
  const { view } = sim;
  const repo = sim.repos.get(input.repo);
  if (!repo) throw new Error(`repository.${action}: no repository ${input.repo}`);
  // As repoEventCommon, but a deleted repository is still described.
  const common = {
    repository: repositoryPayload(view, repo),
    sender: userPayload(view, input.sender),
    ...installationLite(view, repo),
    ...organizationOf(view, repo),
  };
  const build = {
    archived: () => ({
      ...example("repository", "privatized"),
      ...common,
      action: "archived",
      repository: { ...common.repository, archived: true },
    }),
    deleted: () => ({ ...example("repository", "deleted"), ...common }),
    transferred: () => ({
      ...example("repository", "transferred"),
      ...common,
      changes: {
        owner: { from: { user: userPayload(view, input.from ?? repo.owner) } },
      },
    }),
  };
  return { event: "repository", payload: build[action]() as EventOf<"repository", A> };
}
