/**
 * The pieces of webhook payloads (repository, user, issue, pull request,
 * comment, review...), each made from the same piece of a real example from
 * `@octokit/webhooks-examples` with the simulator's model laid over it, and
 * typed with `@octokit/webhooks-types`.
 */
import { createRequire } from "node:module";
import type { WebhookDefinition } from "@octokit/webhooks-examples";
import type {
  App as AppPayload,
  InstallationLite,
  IssueComment as IssueCommentPayload,
  Issue as IssuePayload,
  Label as LabelPayload,
  Organization as OrganizationPayload,
  PullRequest as PullRequestPayload,
  Repository as RepositoryPayload,
  PullRequestReview as ReviewPayload,
  SimplePullRequest,
  Team as TeamPayload,
  User as UserPayload,
  WebhookEventMap,
  WebhookEventName,
} from "@octokit/webhooks-types";
import {
  fullNameOf,
  type Issue,
  type IssueComment,
  type PullRequest,
  type Repo,
  type Review,
  type ReviewState,
  type Team,
} from "./model.js";
import {
  APP_PERMISSIONS,
  integration,
  iso,
  nodeId,
  repoUrls,
  userUrls,
  type View,
} from "./render.js";
import { issue as restIssue, pullRequest as restPull } from "./render-tickets.js";
import type { TicketModel } from "./tickets.js";

const require = createRequire(import.meta.url);
/** github.com's examples first, then the package's `ghes-35` set (some actions exist only there). */
const DEFINITIONS = [
  ...(require("@octokit/webhooks-examples") as WebhookDefinition[]),
  ...(require("@octokit/webhooks-examples/ghes-35/index.json") as WebhookDefinition[]),
];

type ActionOf<E extends WebhookEventName> = WebhookEventMap[E] extends { action: infer A }
  ? A
  : never;
export type EventOf<E extends WebhookEventName, A> = Extract<WebhookEventMap[E], { action: A }>;

/** A fresh copy of the first example of the event with this action (push events have no action). */
export function example<E extends WebhookEventName, const A extends ActionOf<E>>(
  event: E,
  action: A,
): EventOf<E, A>;
export function example<E extends WebhookEventName>(event: E): WebhookEventMap[E];
export function example(event: WebhookEventName, action?: string): unknown {
  for (const definition of DEFINITIONS) {
    if (definition.name !== event) continue;
    const found = definition.examples.find(
      (e) => (e as { action?: string }).action === action && (action !== undefined || "ref" in e),
    );
    if (!found) continue;
    // The example's installation and organization are not the simulator's: builders add those.
    const {
      installation: _installation,
      organization: _organization,
      ...rest
    } = structuredClone(found) as Record<string, unknown>;
    return rest;
  }
  throw new Error(`no @octokit/webhooks-examples example of ${event}.${action}`);
}

/** The base of every example's sender, repository and issue: replaced field by field. */
const SAMPLE = example("issues", "opened");

export function userPayload(view: View, login: string): UserPayload {
  const user = view.model.user(login);
  const { url } = userUrls(view, user.login);
  return {
    ...SAMPLE.sender,
    ...userUrls(view, user.login),
    login: user.login,
    id: user.id,
    node_id: nodeId(user.type, user.id),
    avatar_url: `https://avatars.githubusercontent.com/u/${user.id}?v=4`,
    gravatar_id: "",
    url,
    type: user.type,
    site_admin: false,
  };
}

export function repositoryPayload(view: View, repo: Repo): RepositoryPayload {
  const open = [...repo.issues.values()].filter((i) => i.state === "open").length;
  return {
    ...SAMPLE.repository,
    ...repoUrls(view, fullNameOf(repo)),
    id: repo.id,
    node_id: nodeId("Repository", repo.id),
    name: repo.name,
    full_name: fullNameOf(repo),
    private: repo.private,
    visibility: repo.private ? "private" : "public",
    owner: userPayload(view, repo.owner),
    description: null,
    fork: repo.forkOf !== null,
    created_at: iso(repo.createdAt),
    updated_at: iso(repo.pushedAt),
    pushed_at: iso(repo.pushedAt),
    default_branch: repo.defaultBranch,
    open_issues_count: open,
    open_issues: open,
    custom_properties: {},
  };
}

export function installationLite(view: View, repo: Repo): { installation?: InstallationLite } {
  const found = view.model.installationFor(repo);
  return found ? { installation: { id: found.id, node_id: nodeId("Integration", found.id) } } : {};
}

/** What every event about a repository carries: repository, sender, and installation and organization when there are. */
export function repoEventCommon(
  sim: TicketModel & { readonly view: View },
  repoId: number,
  sender: string,
) {
  const { view } = sim;
  const repo = sim.repo(repoId);
  return {
    repository: repositoryPayload(view, repo),
    sender: userPayload(view, sender),
    ...installationLite(view, repo),
    ...organizationOf(view, repo),
  };
}

export function organizationPayload(view: View, login: string): OrganizationPayload {
  const org = view.model.org(login).user;
  const url = `${view.api}/orgs/${org.login}`;
  return {
    login: org.login,
    id: org.id,
    node_id: nodeId("Organization", org.id),
    url,
    repos_url: `${url}/repos`,
    events_url: `${url}/events`,
    hooks_url: `${url}/hooks`,
    issues_url: `${url}/issues`,
    members_url: `${url}/members{/member}`,
    public_members_url: `${url}/public_members{/member}`,
    avatar_url: `https://avatars.githubusercontent.com/u/${org.id}?v=4`,
    description: null,
  };
}

/** `organization` when the repository belongs to one, as GitHub adds it. */
export function organizationOf(view: View, repo: Repo): { organization?: OrganizationPayload } {
  return view.model.orgs.has(repo.owner.toLowerCase())
    ? { organization: organizationPayload(view, repo.owner) }
    : {};
}

export function labelPayload(view: View, repo: Repo, name: string): LabelPayload {
  const label = view.model.label(repo, name);
  return {
    id: label.id,
    node_id: nodeId("Label", label.id),
    url: `${view.api}/repos/${fullNameOf(repo)}/labels/${encodeURIComponent(label.name)}`,
    name: label.name,
    description: label.description,
    color: label.color,
    default: false,
  };
}

const NO_REACTIONS = SAMPLE.issue.reactions;

export function issuePayload(
  view: View,
  issue: Issue,
): IssuePayload & { state: "open" | "closed" } {
  const repo = view.model.repo(issue.repoId);
  const rest = restIssue(view, issue);
  return {
    ...SAMPLE.issue,
    url: rest.url,
    repository_url: rest.repository_url,
    labels_url: rest.labels_url,
    comments_url: rest.comments_url,
    events_url: rest.events_url,
    html_url: rest.html_url,
    timeline_url: `${rest.url}/timeline`,
    id: issue.id,
    node_id: rest.node_id,
    number: issue.number,
    title: issue.title,
    user: userPayload(view, issue.author),
    labels: issue.labels.map((name) => labelPayload(view, repo, name)),
    state: issue.state,
    state_reason: issue.stateReason,
    locked: false,
    assignee: null,
    assignees: [],
    milestone: null,
    comments: rest.comments,
    created_at: rest.created_at,
    updated_at: rest.updated_at,
    closed_at: rest.closed_at,
    author_association: view.model.associationOf(repo, issue.author),
    active_lock_reason: null,
    body: issue.body,
    reactions: { ...NO_REACTIONS, url: `${rest.url}/reactions` },
    performed_via_github_app: null,
    ...(rest.pull_request
      ? {
          pull_request: {
            url: rest.pull_request.url ?? undefined,
            html_url: rest.pull_request.html_url ?? undefined,
            diff_url: rest.pull_request.diff_url ?? undefined,
            patch_url: rest.pull_request.patch_url ?? undefined,
            merged_at: rest.pull_request.merged_at ?? null,
          },
          draft: rest.draft ?? false,
        }
      : {}),
  };
}

/** A pull request's head and base repositories also show how it may be merged. */
const MERGE_SETTINGS = {
  allow_squash_merge: true,
  allow_merge_commit: true,
  allow_rebase_merge: true,
  allow_auto_merge: false,
  allow_update_branch: false,
  delete_branch_on_merge: false,
} as const;

/** The fields a pull request has in both `pull_request` events and review events. */
export function simplePullRequestPayload(view: View, issue: PullRequest): SimplePullRequest {
  const repo = view.model.repo(issue.repoId);
  const headRepo = view.model.repos.get(issue.pull.head.repoId) ?? repo;
  const rest = restPull(view, issue);
  const end = (r: Repo, ref: string, sha: string) => ({
    label: `${r.owner}:${ref}`,
    ref,
    sha,
    user: userPayload(view, r.owner),
    repo: { ...repositoryPayload(view, r), ...MERGE_SETTINGS },
  });
  return {
    url: rest.url,
    html_url: rest.html_url,
    diff_url: rest.diff_url,
    patch_url: rest.patch_url,
    issue_url: rest.issue_url,
    commits_url: rest.commits_url,
    review_comments_url: rest.review_comments_url,
    review_comment_url: rest.review_comment_url,
    comments_url: rest.comments_url,
    statuses_url: rest.statuses_url,
    id: issue.pull.id,
    node_id: rest.node_id,
    number: issue.number,
    state: issue.state,
    locked: false,
    title: issue.title,
    user: userPayload(view, issue.author),
    body: issue.body,
    created_at: rest.created_at,
    updated_at: rest.updated_at,
    closed_at: rest.closed_at,
    merged_at: rest.merged_at,
    merge_commit_sha: rest.merge_commit_sha,
    assignee: null,
    assignees: [],
    requested_reviewers: [],
    requested_teams: [],
    labels: issue.labels.map((name) => labelPayload(view, repo, name)),
    milestone: null,
    draft: issue.pull.draft,
    head: end(headRepo, issue.pull.head.ref, issue.pull.head.sha),
    base: end(repo, issue.pull.base.ref, issue.pull.base.sha),
    _links: rest._links,
    author_association: rest.author_association,
    auto_merge: null,
    active_lock_reason: null,
  };
}

export function pullRequestPayload(
  view: View,
  issue: PullRequest,
  base: PullRequestPayload,
): PullRequestPayload {
  const rest = restPull(view, issue);
  return {
    ...base,
    ...simplePullRequestPayload(view, issue),
    merged: rest.merged,
    mergeable: rest.mergeable,
    rebaseable: rest.rebaseable ?? null,
    mergeable_state: rest.mergeable_state,
    merged_by: rest.merged_by ? userPayload(view, rest.merged_by.login) : null,
    comments: rest.comments,
    review_comments: 0,
    maintainer_can_modify: false,
    commits: rest.commits,
    additions: rest.additions,
    deletions: rest.deletions,
    changed_files: rest.changed_files,
  };
}

export function commentPayload(view: View, comment: IssueComment): IssueCommentPayload {
  const repo = view.model.repo(comment.repoId);
  const api = `${view.api}/repos/${fullNameOf(repo)}`;
  const ticket = view.model.issue(repo.id, comment.number);
  const html = `${view.web}/${fullNameOf(repo)}/${ticket.pull ? "pull" : "issues"}/${comment.number}`;
  return {
    url: `${api}/issues/comments/${comment.id}`,
    html_url: `${html}#issuecomment-${comment.id}`,
    issue_url: `${api}/issues/${comment.number}`,
    id: comment.id,
    node_id: nodeId("IssueComment", comment.id),
    user: userPayload(view, comment.author),
    created_at: iso(comment.createdAt),
    updated_at: iso(comment.updatedAt),
    author_association: view.model.associationOf(repo, comment.author),
    body: comment.body,
    reactions: { ...NO_REACTIONS, url: `${api}/issues/comments/${comment.id}/reactions` },
    performed_via_github_app: comment.author === view.model.app.bot ? appPayload(view) : null,
  };
}

export function appPayload(view: View): AppPayload {
  const app = integration(view);
  return {
    id: app.id,
    slug: view.model.app.slug,
    node_id: app.node_id,
    owner: userPayload(view, view.model.app.bot),
    name: app.name,
    description: app.description,
    external_url: app.external_url,
    html_url: app.html_url,
    created_at: app.created_at,
    updated_at: app.updated_at,
    permissions: APP_PERMISSIONS,
    events: ["issues", "issue_comment", "pull_request", "pull_request_review", "push"],
  };
}

/** Webhooks spell review states in lower case; the REST API in upper case. */
const WEBHOOK_REVIEW_STATE: Record<ReviewState, ReviewPayload["state"]> = {
  APPROVED: "approved",
  CHANGES_REQUESTED: "changes_requested",
  COMMENTED: "commented",
};

/** A review as submitted (the `dismissed` event says `dismissed` itself). */
export function reviewPayload(view: View, review: Review): ReviewPayload {
  const repo = view.model.repo(review.repoId);
  const pullUrl = `${view.api}/repos/${fullNameOf(repo)}/pulls/${review.number}`;
  const html = `${view.web}/${fullNameOf(repo)}/pull/${review.number}#pullrequestreview-${review.id}`;
  return {
    id: review.id,
    node_id: nodeId("PullRequestReview", review.id),
    user: userPayload(view, review.user),
    body: review.body || null,
    commit_id: review.commitId,
    submitted_at: iso(review.submittedAt),
    state: WEBHOOK_REVIEW_STATE[review.state],
    html_url: html,
    pull_request_url: pullUrl,
    author_association: view.model.associationOf(repo, review.user),
    _links: { html: { href: html }, pull_request: { href: pullUrl } },
  };
}

export function teamPayload(view: View, team: Team): TeamPayload {
  const org = view.model.org(team.org).user;
  const url = `${view.api}/organizations/${org.id}/team/${team.id}`;
  return {
    name: team.name,
    id: team.id,
    node_id: nodeId("Team", team.id),
    slug: team.slug,
    description: null,
    privacy: "closed",
    url,
    html_url: `${view.web}/orgs/${org.login}/teams/${team.slug}`,
    members_url: `${url}/members{/member}`,
    repositories_url: `${url}/repos`,
    permission: "pull",
    parent: null,
  };
}
