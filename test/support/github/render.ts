/**
 * The model as GitHub's REST API shows it: every body typed with the schema
 * of `@octokit/openapi-types`. URLs point at the simulator.
 */
import type { components } from "@octokit/openapi-types";
import { blobSha, type Commit, type FileDiff } from "./git.js";
import { fullNameOf, type Installation, type Org, type Repo, type User } from "./model.js";
import type { TicketModel } from "./tickets.js";

type Schemas = components["schemas"];

/** What rendering needs: the model and the simulator's API and web base URLs. */
export interface View {
  readonly model: TicketModel;
  /** `http://127.0.0.1:<port>/api/v3` */
  readonly api: string;
  /** `http://127.0.0.1:<port>` */
  readonly web: string;
}

/** Timestamps as GitHub writes them: ISO 8601 without milliseconds. */
export function iso(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A node id in GitHub's legacy format (base64 of `0<n>:<Type><id>`). */
export function nodeId(type: string, id: number): string {
  return Buffer.from(`0${type.length}:${type}${id}`).toString("base64");
}

export function userUrls(view: View, login: string) {
  const url = `${view.api}/users/${login}`;
  return {
    url,
    html_url: `${view.web}/${login}`,
    followers_url: `${url}/followers`,
    following_url: `${url}/following{/other_user}`,
    gists_url: `${url}/gists{/gist_id}`,
    starred_url: `${url}/starred{/owner}{/repo}`,
    subscriptions_url: `${url}/subscriptions`,
    organizations_url: `${url}/orgs`,
    repos_url: `${url}/repos`,
    events_url: `${url}/events{/privacy}`,
    received_events_url: `${url}/received_events`,
  };
}

export function simpleUser(view: View, login: string): Schemas["simple-user"] {
  const user = view.model.user(login);
  return {
    login: user.login,
    id: user.id,
    node_id: nodeId(user.type === "Bot" ? "Bot" : user.type, user.id),
    avatar_url: `https://avatars.githubusercontent.com/u/${user.id}?v=4`,
    gravatar_id: "",
    ...userUrls(view, user.login),
    type: user.type,
    user_view_type: "public",
    site_admin: false,
  };
}

export function publicUser(view: View, user: User): Schemas["public-user"] {
  return {
    ...simpleUser(view, user.login),
    name: user.name,
    company: null,
    blog: "",
    location: null,
    email: null,
    hireable: null,
    bio: null,
    public_repos: [...view.model.repos.values()].filter((r) => r.owner === user.login).length,
    public_gists: 0,
    followers: 0,
    following: 0,
    created_at: iso(user.createdAt),
    updated_at: iso(user.createdAt),
  };
}

export function repoUrls(view: View, fullName: string) {
  const url = `${view.api}/repos/${fullName}`;
  const host = new URL(view.web).host;
  return {
    url,
    html_url: `${view.web}/${fullName}`,
    archive_url: `${url}/{archive_format}{/ref}`,
    assignees_url: `${url}/assignees{/user}`,
    blobs_url: `${url}/git/blobs{/sha}`,
    branches_url: `${url}/branches{/branch}`,
    collaborators_url: `${url}/collaborators{/collaborator}`,
    comments_url: `${url}/comments{/number}`,
    commits_url: `${url}/commits{/sha}`,
    compare_url: `${url}/compare/{base}...{head}`,
    contents_url: `${url}/contents/{+path}`,
    contributors_url: `${url}/contributors`,
    deployments_url: `${url}/deployments`,
    downloads_url: `${url}/downloads`,
    events_url: `${url}/events`,
    forks_url: `${url}/forks`,
    git_commits_url: `${url}/git/commits{/sha}`,
    git_refs_url: `${url}/git/refs{/sha}`,
    git_tags_url: `${url}/git/tags{/sha}`,
    git_url: `git://${host}/${fullName}.git`,
    issue_comment_url: `${url}/issues/comments{/number}`,
    issue_events_url: `${url}/issues/events{/number}`,
    issues_url: `${url}/issues{/number}`,
    keys_url: `${url}/keys{/key_id}`,
    labels_url: `${url}/labels{/name}`,
    languages_url: `${url}/languages`,
    merges_url: `${url}/merges`,
    milestones_url: `${url}/milestones{/number}`,
    notifications_url: `${url}/notifications{?since,all,participating}`,
    pulls_url: `${url}/pulls{/number}`,
    releases_url: `${url}/releases{/id}`,
    ssh_url: `git@${host}:${fullName}.git`,
    stargazers_url: `${url}/stargazers`,
    statuses_url: `${url}/statuses/{sha}`,
    subscribers_url: `${url}/subscribers`,
    subscription_url: `${url}/subscription`,
    tags_url: `${url}/tags`,
    teams_url: `${url}/teams`,
    trees_url: `${url}/git/trees{/sha}`,
    clone_url: `${view.web}/${fullName}.git`,
    hooks_url: `${url}/hooks`,
    svn_url: `${view.web}/${fullName}`,
  };
}

export function repository(view: View, repo: Repo): Schemas["repository"] {
  const openIssues = [...repo.issues.values()].filter((i) => i.state === "open").length;
  return {
    id: repo.id,
    node_id: nodeId("Repository", repo.id),
    name: repo.name,
    full_name: fullNameOf(repo),
    owner: simpleUser(view, repo.owner),
    private: repo.private,
    description: null,
    fork: repo.forkOf !== null,
    ...repoUrls(view, fullNameOf(repo)),
    mirror_url: null,
    homepage: null,
    language: null,
    license: null,
    forks: 0,
    forks_count: 0,
    stargazers_count: 0,
    watchers_count: 0,
    watchers: 0,
    size: 0,
    default_branch: repo.defaultBranch,
    open_issues_count: openIssues,
    open_issues: openIssues,
    is_template: false,
    topics: [],
    has_issues: true,
    has_projects: true,
    has_wiki: true,
    has_pages: false,
    has_downloads: true,
    has_discussions: false,
    archived: false,
    disabled: false,
    visibility: repo.private ? "private" : "public",
    pushed_at: iso(repo.pushedAt),
    created_at: iso(repo.createdAt),
    updated_at: iso(repo.pushedAt),
    allow_forking: true,
    web_commit_signoff_required: false,
  };
}

export function fullRepository(view: View, repo: Repo): Schemas["full-repository"] {
  const base = repository(view, repo);
  const parent = repo.forkOf === null ? undefined : view.model.repos.get(repo.forkOf);
  const org = view.model.orgs.get(repo.owner.toLowerCase());
  return {
    ...base,
    // Typed as never null here, unlike in `repository`.
    pushed_at: iso(repo.pushedAt),
    created_at: iso(repo.createdAt),
    updated_at: iso(repo.pushedAt),
    has_discussions: false,
    subscribers_count: 0,
    network_count: 0,
    ...(org ? { organization: simpleUser(view, org.user.login) } : {}),
    ...(parent ? { parent: repository(view, parent), source: repository(view, parent) } : {}),
  };
}

export function organizationSimple(view: View, org: Org): Schemas["organization-simple"] {
  const url = `${view.api}/orgs/${org.user.login}`;
  return {
    login: org.user.login,
    id: org.user.id,
    node_id: nodeId("Organization", org.user.id),
    url,
    repos_url: `${url}/repos`,
    events_url: `${url}/events`,
    hooks_url: `${url}/hooks`,
    issues_url: `${url}/issues`,
    members_url: `${url}/members{/member}`,
    public_members_url: `${url}/public_members{/member}`,
    avatar_url: `https://avatars.githubusercontent.com/u/${org.user.id}?v=4`,
    description: null,
  };
}

/** The App, as `GET /app` and `performed_via_github_app` show it. */
export function integration(view: View): NonNullable<Schemas["integration"]> {
  const { app } = view.model;
  return {
    id: app.id,
    slug: app.slug,
    node_id: nodeId("Integration", app.id),
    client_id: `Iv1.${app.id.toString(16).padStart(16, "0")}`,
    owner: simpleUser(view, app.bot),
    name: app.slug,
    description: null,
    external_url: `${view.web}/apps/${app.slug}`,
    html_url: `${view.web}/apps/${app.slug}`,
    created_at: "2024-01-01T00:00:00Z",
    updated_at: "2024-01-01T00:00:00Z",
    permissions: APP_PERMISSIONS,
    events: ["issues", "issue_comment", "pull_request", "pull_request_review", "push"],
  };
}

/** The permissions of the App (those of `app.yml`). */
export const APP_PERMISSIONS = {
  metadata: "read",
  contents: "read",
  issues: "write",
  pull_requests: "write",
  checks: "write",
  members: "read",
} as const satisfies Schemas["app-permissions"];

export function installation(view: View, found: Installation): Schemas["installation"] {
  const account = view.model.user(found.account);
  return {
    id: found.id,
    account: simpleUser(view, account.login),
    repository_selection: found.repositoryIds === null ? "all" : "selected",
    access_tokens_url: `${view.api}/app/installations/${found.id}/access_tokens`,
    repositories_url: `${view.api}/installation/repositories`,
    html_url: `${view.web}/settings/installations/${found.id}`,
    app_id: view.model.app.id,
    app_slug: view.model.app.slug,
    target_id: account.id,
    target_type: account.type === "Organization" ? "Organization" : "User",
    permissions: APP_PERMISSIONS,
    events: integration(view).events,
    created_at: iso(found.createdAt),
    updated_at: iso(found.createdAt),
    single_file_name: null,
    suspended_by: null,
    suspended_at: null,
  };
}

/** A commit as `GET /repos/{o}/{r}/commits/{sha}` shows it, with the files it changed when asked. */
export function commit(
  view: View,
  repo: Repo,
  found: Commit,
  options: { files?: boolean } = {},
): Schemas["commit"] {
  const base = `${view.api}/repos/${fullNameOf(repo)}`;
  const html = `${view.web}/${fullNameOf(repo)}`;
  const gitUser = (who: Commit["author"]) => ({
    name: who.name,
    email: who.email,
    date: iso(found.date),
  });
  const account = (who: Commit["author"]) => (who.login ? simpleUser(view, who.login) : null);
  const rendered: Schemas["commit"] = {
    url: `${base}/commits/${found.sha}`,
    sha: found.sha,
    node_id: nodeId("Commit", Number.parseInt(found.sha.slice(0, 8), 16)),
    html_url: `${html}/commit/${found.sha}`,
    comments_url: `${base}/commits/${found.sha}/comments`,
    commit: {
      url: `${base}/git/commits/${found.sha}`,
      author: gitUser(found.author),
      committer: gitUser(found.committer),
      message: found.message,
      comment_count: 0,
      tree: { sha: found.treeSha, url: `${base}/git/trees/${found.treeSha}` },
      verification: {
        verified: false,
        reason: "unsigned",
        signature: null,
        payload: null,
        verified_at: null,
      },
    },
    author: account(found.author),
    committer: account(found.committer),
    parents: found.parents.map((sha) => ({
      sha,
      url: `${base}/commits/${sha}`,
      html_url: `${html}/commit/${sha}`,
    })),
  };
  if (!options.files) return rendered;
  const parent = found.parents[0] ? view.model.git.require(found.parents[0]) : null;
  const files = diffEntries(view, repo, found.sha, view.model.git.diff(parent, found));
  const additions = files.reduce((n, f) => n + f.additions, 0);
  const deletions = files.reduce((n, f) => n + f.deletions, 0);
  return { ...rendered, stats: { additions, deletions, total: additions + deletions }, files };
}

/** The files of a diff as GitHub lists them under `files`, at commit `sha`. */
export function diffEntries(
  view: View,
  repo: Repo,
  sha: string,
  diffs: readonly FileDiff[],
): Schemas["diff-entry"][] {
  const lines = (text: string | null) => (text ? text.split("\n").length : 0);
  return diffs.map((d) => {
    const additions = d.status === "removed" ? 0 : lines(d.after);
    const deletions = d.status === "added" ? 0 : lines(d.before);
    return {
      sha: d.after === null ? null : blobSha(d.after),
      filename: d.path,
      status: d.status,
      additions,
      deletions,
      changes: additions + deletions,
      blob_url: `${view.web}/${fullNameOf(repo)}/blob/${sha}/${d.path}`,
      raw_url: `${view.web}/${fullNameOf(repo)}/raw/${sha}/${d.path}`,
      contents_url: `${view.api}/repos/${fullNameOf(repo)}/contents/${d.path}?ref=${sha}`,
    };
  });
}
