/**
 * Webhooks as GitHub sends them, built from the simulator's model: each
 * starts from a real `@octokit/webhooks-examples` payload of that event and
 * action, with ids, numbers, people, repository, installation, bodies, labels
 * and shas taken from the model, and is typed with `@octokit/webhooks-types`.
 *
 * Change the model first, then describe the change:
 *
 * ```ts
 * const issue = sim.openIssue("acme/payments", { author: "alice", labels: ["hallpass"] });
 * await sim.deliver(issuesEvent(sim, "opened", issue));
 * const comment = sim.comment("acme/payments", issue.number, { author: "bob", body: "/approve" });
 * await sim.deliver(issueCommentEvent(sim, "created", comment));
 * ```
 */
import { createHmac, randomUUID } from "node:crypto";
import type {
  Commit as CommitPayload,
  WebhookEventMap,
  WebhookEventName,
} from "@octokit/webhooks-types";
import { ZERO_SHA } from "./git.js";
import { fullNameOf, type PullRequest, type RepoRef } from "./model.js";
import { iso, nodeId, installation as restInstallation } from "./render.js";
import type { GitHubSimulator } from "./simulator.js";
import {
  commentPayload,
  type EventOf,
  example,
  installationLite,
  issuePayload,
  labelPayload,
  organizationOf,
  organizationPayload,
  pullRequestPayload,
  repositoryPayload,
  reviewPayload,
  simplePullRequestPayload,
  teamPayload,
  userPayload,
} from "./webhook-parts.js";

/** An event name and its payload: what `sendWebhook` and `sim.deliver` take. */
export interface Webhook<
  E extends WebhookEventName = WebhookEventName,
  P extends object = WebhookEventMap[E],
> {
  readonly event: E;
  readonly payload: P;
}

/** An issue or pull request of the model (an `Issue` from `sim.openIssue` / `sim.issue` is one). */
export interface IssueRef {
  readonly repoId: number;
  readonly number: number;
}

type Changes = { title?: { from: string }; body?: { from: string } };

/** The repository-scoped fields every ticket event carries. */
function ticketCommon(sim: GitHubSimulator, repoId: number, sender: string) {
  const { view } = sim;
  const repo = sim.repo(repoId);
  return {
    repository: repositoryPayload(view, repo),
    sender: userPayload(view, sender),
    ...installationLite(view, repo),
    ...organizationOf(view, repo),
  };
}

function required<T>(value: T | undefined, name: string, event: string): T {
  if (value === undefined) throw new Error(`${event}: ${name} is required`);
  return value;
}

export type IssuesAction = "opened" | "edited" | "labeled" | "unlabeled" | "closed" | "reopened";

/**
 * An `issues` event about the issue as the model has it now. `label` names the
 * label added or removed; `changes` gives `edited` its `from` values (see
 * `sim.editIssue`, which returns them). The sender defaults to the author
 * (the closer, for `closed`).
 */
export function issuesEvent<A extends IssuesAction>(
  sim: GitHubSimulator,
  action: A,
  ref: IssueRef,
  options: { sender?: string; label?: string; changes?: Changes } = {},
): Webhook<"issues", EventOf<"issues", A>> {
  const issue = sim.issue(ref.repoId, ref.number);
  const sender = options.sender ?? (action === "closed" ? issue.closedBy : null) ?? issue.author;
  const common = ticketCommon(sim, issue.repoId, sender);
  const body = issuePayload(sim.view, issue);
  const label = () =>
    labelPayload(
      sim.view,
      sim.repo(issue.repoId),
      required(options.label, "label", `issues.${action}`),
    );
  const build: { [K in IssuesAction]: () => EventOf<"issues", K> } = {
    opened: () => ({
      ...example("issues", "opened"),
      ...common,
      issue: { ...body, state: "open", closed_at: null },
    }),
    edited: () => ({
      ...example("issues", "edited"),
      ...common,
      issue: body,
      changes: options.changes ?? {},
    }),
    labeled: () => ({ ...example("issues", "labeled"), ...common, issue: body, label: label() }),
    unlabeled: () => ({
      ...example("issues", "unlabeled"),
      ...common,
      issue: body,
      label: label(),
    }),
    // The examples have no issues.closed: it is the reopened one, closed.
    closed: () => ({
      ...example("issues", "reopened"),
      ...common,
      action: "closed",
      issue: { ...body, state: "closed", closed_at: body.closed_at ?? iso(sim.now()) },
    }),
    reopened: () => ({
      ...example("issues", "reopened"),
      ...common,
      issue: { ...body, state: "open" },
    }),
  };
  return { event: "issues", payload: build[action]() };
}

export type IssueCommentAction = "created" | "edited" | "deleted";

/**
 * An `issue_comment` event about a comment of the model (deleted ones stay
 * readable for `deleted`). `edited` takes `changes.body.from` from the
 * comment's last edit. The sender defaults to the author (the editor, for `edited`).
 */
export function issueCommentEvent<A extends IssueCommentAction>(
  sim: GitHubSimulator,
  action: A,
  ref: { readonly id: number },
  options: { sender?: string } = {},
): Webhook<"issue_comment", EventOf<"issue_comment", A>> {
  const comment = sim.comments.get(ref.id);
  if (!comment) throw new Error(`issue_comment.${action}: no comment ${ref.id}`);
  const lastEdit = comment.edits.at(-1);
  const sender =
    options.sender ?? (action === "edited" ? lastEdit?.by : undefined) ?? comment.author;
  const common = ticketCommon(sim, comment.repoId, sender);
  const issue = issuePayload(sim.view, sim.issue(comment.repoId, comment.number));
  const parts = {
    ...common,
    issue: { ...issue, labels: issue.labels ?? [], locked: false, assignee: null },
    comment: commentPayload(sim.view, comment),
  };
  const build: { [K in IssueCommentAction]: () => EventOf<"issue_comment", K> } = {
    created: () => ({ ...example("issue_comment", "created"), ...parts }),
    edited: () => ({
      ...example("issue_comment", "edited"),
      ...parts,
      changes: {
        body: { from: required(lastEdit, "an edit of the comment", "issue_comment.edited").body },
      },
    }),
    deleted: () => ({ ...example("issue_comment", "deleted"), ...parts }),
  };
  return { event: "issue_comment", payload: build[action]() };
}

/** What `opened` and `reopened` say of a pull request, whatever happened to it since. */
const STILL_OPEN = {
  state: "open",
  closed_at: null,
  merged_at: null,
  merged_by: null,
  active_lock_reason: null,
} as const;

export type PullRequestAction =
  | "opened"
  | "edited"
  | "labeled"
  | "unlabeled"
  | "synchronize"
  | "closed"
  | "reopened";

/**
 * A `pull_request` event about the pull request as the model has it now.
 * `synchronize` needs `before` (the head before the push; `after` is the
 * current head); `closed` is a merge when the model says merged. The sender
 * defaults to the author (the merger, for a merge).
 */
export function pullRequestEvent<A extends PullRequestAction>(
  sim: GitHubSimulator,
  action: A,
  ref: IssueRef,
  options: { sender?: string; label?: string; changes?: Changes; before?: string } = {},
): Webhook<"pull_request", EventOf<"pull_request", A>> {
  const issue = sim.pull(ref.repoId, ref.number);
  const sender = options.sender ?? issue.pull.mergedBy ?? issue.author;
  const common = { ...ticketCommon(sim, issue.repoId, sender), number: issue.number };
  const pr = (base: Parameters<typeof pullRequestPayload>[2]) =>
    pullRequestPayload(sim.view, issue, base);
  const label = () =>
    labelPayload(
      sim.view,
      sim.repo(issue.repoId),
      required(options.label, "label", `pull_request.${action}`),
    );
  const build: { [K in PullRequestAction]: () => EventOf<"pull_request", K> } = {
    opened: () => {
      const base = example("pull_request", "opened");
      return { ...base, ...common, pull_request: { ...pr(base.pull_request), ...STILL_OPEN } };
    },
    // The examples have no pull_request.edited: it is the opened one, edited.
    edited: () => {
      const base = example("pull_request", "opened");
      return {
        ...base,
        ...common,
        action: "edited",
        changes: options.changes ?? {},
        pull_request: pr(base.pull_request),
      };
    },
    labeled: () => {
      const base = example("pull_request", "labeled");
      return { ...base, ...common, pull_request: pr(base.pull_request), label: label() };
    },
    unlabeled: () => {
      const base = example("pull_request", "unlabeled");
      return { ...base, ...common, pull_request: pr(base.pull_request), label: label() };
    },
    synchronize: () => {
      const base = example("pull_request", "synchronize");
      const before = required(options.before, "before", "pull_request.synchronize");
      return {
        ...base,
        ...common,
        pull_request: pr(base.pull_request),
        before,
        after: issue.pull.head.sha,
      };
    },
    closed: () => {
      const base = example("pull_request", "closed");
      const closed = pr(base.pull_request);
      return {
        ...base,
        ...common,
        pull_request: {
          ...closed,
          state: "closed",
          closed_at: closed.closed_at ?? iso(sim.now()),
          merged: issue.pull.merged,
        },
      };
    },
    reopened: () => {
      const base = example("pull_request", "reopened");
      return {
        ...base,
        ...common,
        pull_request: { ...pr(base.pull_request), ...STILL_OPEN, merged: false },
      };
    },
  };
  return { event: "pull_request", payload: build[action]() };
}

export type PullRequestReviewAction = "submitted" | "dismissed";

/**
 * A `pull_request_review` event about a review of the model (`sim.review`,
 * then `sim.dismissReview` for `dismissed`). The sender defaults to the reviewer.
 */
export function pullRequestReviewEvent<A extends PullRequestReviewAction>(
  sim: GitHubSimulator,
  action: A,
  ref: { readonly repoId: number; readonly number: number; readonly id: number },
  options: { sender?: string } = {},
): Webhook<"pull_request_review", EventOf<"pull_request_review", A>> {
  const issue: PullRequest = sim.pull(ref.repoId, ref.number);
  const review = issue.pull.reviews.find((r) => r.id === ref.id);
  if (!review) throw new Error(`pull_request_review.${action}: no review ${ref.id}`);
  const common = ticketCommon(sim, issue.repoId, options.sender ?? review.user);
  const body = reviewPayload(sim.view, review);
  const build: { [K in PullRequestReviewAction]: () => EventOf<"pull_request_review", K> } = {
    submitted: () => {
      const base = example("pull_request_review", "submitted");
      return {
        ...base,
        ...common,
        review: body,
        pull_request: { ...base.pull_request, ...simplePullRequestPayload(sim.view, issue) },
      };
    },
    dismissed: () => {
      const base = example("pull_request_review", "dismissed");
      return {
        ...base,
        ...common,
        review: { ...body, state: "dismissed" },
        pull_request: { ...base.pull_request, ...simplePullRequestPayload(sim.view, issue) },
      };
    },
  };
  return { event: "pull_request_review", payload: build[action]() };
}

/**
 * A `push` of `branch` from `before` (`ZERO_SHA` for a new branch) to
 * `after` (default: the branch's head now), listing each pushed commit's
 * added, modified and removed files. The pusher defaults to the head commit's author.
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
      ...ticketCommon(sim, repo.id, pusher),
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
      commits: pushed.map((c) => toPayload(c.sha)),
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

/** `installation.deleted` for an installation of the model (deleted or not yet). */
export function installationEvent(
  sim: GitHubSimulator,
  action: "deleted",
  input: { installationId: number; sender?: string },
): Webhook<"installation", EventOf<"installation", "deleted">> {
  const { view } = sim;
  const found = sim.installations.get(input.installationId);
  if (!found) throw new Error(`installation.deleted: no installation ${input.installationId}`);
  const rest = restInstallation(view, found);
  const base = example("installation", action);
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
        suspended_by: null,
        suspended_at: null,
      },
      repositories: repos.map((r) => ({
        id: r.id,
        node_id: nodeId("Repository", r.id),
        name: r.name,
        full_name: fullNameOf(r),
        private: r.private,
      })),
      sender: userPayload(view, input.sender ?? found.account),
    },
  };
}

/** Probot's default webhook path, where hallpass listens. */
export const WEBHOOK_PATH = "/api/github/webhooks";

/**
 * POSTs a webhook to the App at `serverUrl` the way GitHub does: the exact
 * JSON body signed with HMAC SHA-256 (`X-Hub-Signature-256`), the event name
 * and a delivery id (a random UUID unless given).
 */
export async function sendWebhook(
  serverUrl: string,
  options: { secret: string; event: string; payload: unknown; deliveryId?: string },
): Promise<Response> {
  const body = JSON.stringify(options.payload);
  const signature = createHmac("sha256", options.secret).update(body).digest("hex");
  return fetch(`${serverUrl.replace(/\/+$/, "")}${WEBHOOK_PATH}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "user-agent": "GitHub-Hookshot/simulator",
      "x-github-event": options.event,
      "x-github-delivery": options.deliveryId ?? randomUUID(),
      "x-hub-signature-256": `sha256=${signature}`,
    },
    body,
  });
}
