/**
 * Issues, pull requests, comments, reviews and check runs as GitHub's REST
 * API shows them, typed with `@octokit/openapi-types`.
 */
import type { components } from "@octokit/openapi-types";
import {
  type CheckRun,
  fullNameOf,
  type Issue,
  type IssueComment,
  type PullRequest,
  type Repo,
  type Review,
} from "./model.js";
import {
  diffEntries,
  integration,
  iso,
  nodeId,
  repository,
  simpleUser,
  type View,
} from "./render.js";

type Schemas = components["schemas"];

export function label(view: View, repo: Repo, name: string): Schemas["label"] {
  const found = view.model.label(repo, name);
  return {
    id: found.id,
    node_id: nodeId("Label", found.id),
    url: `${view.api}/repos/${fullNameOf(repo)}/labels/${encodeURIComponent(found.name)}`,
    name: found.name,
    description: found.description,
    color: found.color,
    default: false,
  };
}

function issueUrls(view: View, repo: Repo, number: number) {
  const url = `${view.api}/repos/${fullNameOf(repo)}/issues/${number}`;
  return {
    url,
    repository_url: `${view.api}/repos/${fullNameOf(repo)}`,
    labels_url: `${url}/labels{/name}`,
    comments_url: `${url}/comments`,
    events_url: `${url}/events`,
    timeline_url: `${url}/timeline`,
  };
}

const ZERO_REACTIONS = {
  total_count: 0,
  "+1": 0,
  "-1": 0,
  laugh: 0,
  confused: 0,
  heart: 0,
  hooray: 0,
  eyes: 0,
  rocket: 0,
};

export function issue(view: View, found: Issue): Schemas["issue"] {
  const repo = view.model.repo(found.repoId);
  const html = `${view.web}/${fullNameOf(repo)}/${found.pull ? "pull" : "issues"}/${found.number}`;
  const pullUrl = `${view.api}/repos/${fullNameOf(repo)}/pulls/${found.number}`;
  return {
    id: found.id,
    node_id: nodeId("Issue", found.id),
    ...issueUrls(view, repo, found.number),
    html_url: html,
    number: found.number,
    state: found.state,
    state_reason: found.stateReason,
    title: found.title,
    body: found.body,
    user: simpleUser(view, found.author),
    labels: found.labels.map((name) => label(view, repo, name)),
    assignee: null,
    assignees: [],
    milestone: null,
    locked: false,
    active_lock_reason: null,
    comments: view.model.commentsOn(repo.id, found.number).length,
    ...(found.pull
      ? {
          pull_request: {
            url: pullUrl,
            html_url: html,
            diff_url: `${html}.diff`,
            patch_url: `${html}.patch`,
            merged_at: found.pull.mergedAt ? iso(found.pull.mergedAt) : null,
          },
          draft: found.pull.draft,
        }
      : {}),
    closed_at: found.closedAt ? iso(found.closedAt) : null,
    created_at: iso(found.createdAt),
    updated_at: iso(found.updatedAt),
    closed_by: found.closedBy ? simpleUser(view, found.closedBy) : null,
    author_association: view.model.associationOf(repo, found.author),
    performed_via_github_app: null,
    reactions: { url: `${issueUrls(view, repo, found.number).url}/reactions`, ...ZERO_REACTIONS },
  };
}

function branchEnd(view: View, repo: Repo, ref: string, sha: string) {
  return {
    label: `${repo.owner}:${ref}`,
    ref,
    sha,
    repo: repository(view, repo),
    user: simpleUser(view, repo.owner),
  };
}

export function pullRequest(view: View, found: PullRequest): Schemas["pull-request"] {
  const repo = view.model.repo(found.repoId);
  const { pull } = found;
  const headRepo = view.model.repos.get(pull.head.repoId) ?? repo;
  const api = `${view.api}/repos/${fullNameOf(repo)}`;
  const url = `${api}/pulls/${found.number}`;
  const html = `${view.web}/${fullNameOf(repo)}/pull/${found.number}`;
  const commits = view.model.pullCommits(found);
  const files = diffEntries(
    view,
    repo,
    pull.head.sha,
    view.model.git.diff(
      view.model.git.compare(pull.base.sha, pull.head.sha).mergeBase,
      view.model.git.require(pull.head.sha),
    ),
  );
  const link = (href: string) => ({ href });
  return {
    url,
    id: pull.id,
    node_id: nodeId("PullRequest", pull.id),
    html_url: html,
    diff_url: `${html}.diff`,
    patch_url: `${html}.patch`,
    issue_url: `${api}/issues/${found.number}`,
    commits_url: `${url}/commits`,
    review_comments_url: `${url}/comments`,
    review_comment_url: `${api}/pulls/comments{/number}`,
    comments_url: `${api}/issues/${found.number}/comments`,
    statuses_url: `${api}/statuses/${pull.head.sha}`,
    number: found.number,
    state: found.state,
    locked: false,
    title: found.title,
    user: simpleUser(view, found.author),
    body: found.body,
    labels: found.labels.map((name) => label(view, repo, name)),
    milestone: null,
    active_lock_reason: null,
    created_at: iso(found.createdAt),
    updated_at: iso(found.updatedAt),
    closed_at: found.closedAt ? iso(found.closedAt) : null,
    merged_at: pull.mergedAt ? iso(pull.mergedAt) : null,
    merge_commit_sha: pull.mergeCommitSha,
    assignee: null,
    assignees: [],
    requested_reviewers: [],
    requested_teams: [],
    head: branchEnd(view, headRepo, pull.head.ref, pull.head.sha),
    base: branchEnd(view, repo, pull.base.ref, pull.base.sha),
    _links: {
      self: link(url),
      html: link(html),
      issue: link(`${api}/issues/${found.number}`),
      comments: link(`${api}/issues/${found.number}/comments`),
      review_comments: link(`${url}/comments`),
      review_comment: link(`${api}/pulls/comments{/number}`),
      commits: link(`${url}/commits`),
      statuses: link(`${api}/statuses/${pull.head.sha}`),
    },
    author_association: view.model.associationOf(repo, found.author),
    auto_merge: null,
    draft: pull.draft,
    merged: pull.merged,
    mergeable: found.state === "open" ? true : null,
    rebaseable: found.state === "open" ? true : null,
    mergeable_state: found.state === "open" ? "clean" : "unknown",
    merged_by: pull.mergedBy ? simpleUser(view, pull.mergedBy) : null,
    comments: view.model.commentsOn(repo.id, found.number).length,
    review_comments: 0,
    maintainer_can_modify: false,
    commits: commits.length,
    additions: files.reduce((n, f) => n + f.additions, 0),
    deletions: files.reduce((n, f) => n + f.deletions, 0),
    changed_files: files.length,
  };
}

export function issueComment(view: View, found: IssueComment): Schemas["issue-comment"] {
  const repo = view.model.repo(found.repoId);
  const api = `${view.api}/repos/${fullNameOf(repo)}`;
  const ticket = view.model.issue(repo.id, found.number);
  const html = `${view.web}/${fullNameOf(repo)}/${ticket.pull ? "pull" : "issues"}/${found.number}`;
  const byApp = found.author === view.model.app.bot;
  return {
    id: found.id,
    node_id: nodeId("IssueComment", found.id),
    url: `${api}/issues/comments/${found.id}`,
    html_url: `${html}#issuecomment-${found.id}`,
    body: found.body,
    user: simpleUser(view, found.author),
    created_at: iso(found.createdAt),
    updated_at: iso(found.updatedAt),
    issue_url: `${api}/issues/${found.number}`,
    author_association: view.model.associationOf(repo, found.author),
    performed_via_github_app: byApp ? integration(view) : null,
    reactions: { url: `${api}/issues/comments/${found.id}/reactions`, ...ZERO_REACTIONS },
  };
}

export function review(view: View, found: Review): Schemas["pull-request-review"] {
  const repo = view.model.repo(found.repoId);
  const pullUrl = `${view.api}/repos/${fullNameOf(repo)}/pulls/${found.number}`;
  const html = `${view.web}/${fullNameOf(repo)}/pull/${found.number}#pullrequestreview-${found.id}`;
  return {
    id: found.id,
    node_id: nodeId("PullRequestReview", found.id),
    user: simpleUser(view, found.user),
    body: found.body,
    state: found.dismissed ? "DISMISSED" : found.state,
    html_url: html,
    pull_request_url: pullUrl,
    _links: { html: { href: html }, pull_request: { href: pullUrl } },
    submitted_at: iso(found.submittedAt),
    commit_id: found.commitId,
    author_association: view.model.associationOf(repo, found.user),
  };
}

export function checkRun(view: View, run: CheckRun): Schemas["check-run"] {
  const repo = view.model.repo(run.repoId);
  const api = `${view.api}/repos/${fullNameOf(repo)}`;
  const minimalRepo = (r: Repo) => ({
    id: r.id,
    url: `${view.api}/repos/${fullNameOf(r)}`,
    name: r.name,
  });
  const pulls = [...repo.issues.values()].filter(
    (i): i is PullRequest =>
      i.pull !== null && i.state === "open" && i.pull.head.sha === run.headSha,
  );
  return {
    id: run.id,
    head_sha: run.headSha,
    node_id: nodeId("CheckRun", run.id),
    external_id: run.externalId,
    url: `${api}/check-runs/${run.id}`,
    html_url: `${view.web}/${fullNameOf(repo)}/runs/${run.id}`,
    details_url: run.detailsUrl,
    status: run.status,
    conclusion: run.conclusion as Schemas["check-run"]["conclusion"],
    started_at: run.startedAt ? iso(run.startedAt) : null,
    completed_at: run.completedAt ? iso(run.completedAt) : null,
    output: {
      ...run.output,
      annotations_count: 0,
      annotations_url: `${api}/check-runs/${run.id}/annotations`,
    },
    name: run.name,
    check_suite: { id: checkSuiteId(run) },
    app: integration(view),
    pull_requests: pulls.map((p) => ({
      id: p.pull.id,
      number: p.number,
      url: `${api}/pulls/${p.number}`,
      head: {
        ref: p.pull.head.ref,
        sha: p.pull.head.sha,
        repo: minimalRepo(view.model.repos.get(p.pull.head.repoId) ?? repo),
      },
      base: { ref: p.pull.base.ref, sha: p.pull.base.sha, repo: minimalRepo(repo) },
    })),
  };
}

/** One check suite per App and commit, as GitHub groups them. */
function checkSuiteId(run: CheckRun): number {
  return Number.parseInt(run.headSha.slice(0, 7), 16) + run.appId;
}
