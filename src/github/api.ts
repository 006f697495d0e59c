import type { ProbotOctokit } from "probot";
import type { CommitAuthor } from "#src/rules/decide.js";

/** An installation-authenticated client (Probot's: retries and throttling included). */
export type GitHub = InstanceType<typeof ProbotOctokit>;

export interface RepoName {
  readonly owner: string;
  readonly name: string;
}

/** An issue or pull request as GitHub has it now. */
export interface LiveTicket {
  readonly kind: "issue" | "pull_request";
  readonly number: number;
  readonly title: string;
  readonly body: string;
  readonly state: "open" | "closed";
  readonly merged: boolean;
  readonly labels: readonly string[];
  readonly author: { readonly id: number; readonly login: string; readonly isBot: boolean };
  readonly headSha: string | null;
  readonly headRepoId: number | null;
}

/** GitHub's 404, which several reads treat as "not there". */
export function isNotFound(error: unknown): boolean {
  return (error as { status?: number })?.status === 404;
}

/**
 * Reads an issue or pull request fresh from the API: events may arrive late
 * or out of order, so decisions are taken on what GitHub says now, not on
 * the payload that triggered them.
 */
export async function fetchTicket(gh: GitHub, repo: RepoName, number: number): Promise<LiveTicket> {
  const { data: issue } = await gh.rest.issues.get({
    owner: repo.owner,
    repo: repo.name,
    issue_number: number,
  });
  const author = {
    id: issue.user?.id ?? 0,
    login: issue.user?.login ?? "ghost",
    isBot: issue.user?.type === "Bot" || (issue.user?.login ?? "").endsWith("[bot]"),
  };
  const labels = issue.labels
    .map((l) => (typeof l === "string" ? l : (l.name ?? "")))
    .filter(Boolean);
  const base = {
    number,
    title: issue.title,
    body: issue.body ?? "",
    state: issue.state === "closed" ? ("closed" as const) : ("open" as const),
    labels,
    author,
  };
  if (!issue.pull_request) {
    return { ...base, kind: "issue", merged: false, headSha: null, headRepoId: null };
  }
  const { data: pr } = await gh.rest.pulls.get({
    owner: repo.owner,
    repo: repo.name,
    pull_number: number,
  });
  return {
    ...base,
    kind: "pull_request",
    merged: pr.merged === true || pr.merged_at !== null,
    headSha: pr.head.sha,
    headRepoId: pr.head.repo?.id ?? null,
  };
}

/** GitHub lists at most this many commits of a pull request. */
const LISTED_COMMITS = 250;

/**
 * Every author of the PR's commits, or null when they cannot all be known:
 * GitHub lists at most 250 commits, and an author of a later one must not
 * slip through as an approver.
 */
export async function commitAuthors(
  gh: GitHub,
  repo: RepoName,
  number: number,
): Promise<CommitAuthor[] | null> {
  const commits = await gh.paginate(gh.rest.pulls.listCommits, {
    owner: repo.owner,
    repo: repo.name,
    pull_number: number,
    per_page: 100,
  });
  if (commits.length >= LISTED_COMMITS) {
    const { data: pr } = await gh.rest.pulls.get({
      owner: repo.owner,
      repo: repo.name,
      pull_number: number,
    });
    if (pr.commits > commits.length) return null;
  }
  return commits.map((c) => ({ id: c.author?.id ?? null, login: c.author?.login ?? null }));
}

/** Whether `login` may write to the repository (the permission endpoint, never author_association). */
export async function hasWriteAccess(gh: GitHub, repo: RepoName, login: string): Promise<boolean> {
  try {
    const { data } = await gh.rest.repos.getCollaboratorPermissionLevel({
      owner: repo.owner,
      repo: repo.name,
      username: login,
    });
    return (
      ["admin", "maintain", "write"].includes(data.permission) || data.role_name === "maintain"
    );
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

/** The logins of a team's members (children teams included, as GitHub lists them). */
export async function teamMembers(gh: GitHub, org: string, slug: string): Promise<Set<string>> {
  try {
    const members = await gh.paginate(gh.rest.teams.listMembersInOrg, {
      org,
      team_slug: slug,
      per_page: 100,
    });
    return new Set(members.map((m) => m.login.toLowerCase()));
  } catch (error) {
    if (isNotFound(error)) return new Set();
    throw error;
  }
}

/** Whether `login` is (still) a member of the organization. */
export async function isOrgMember(gh: GitHub, org: string, login: string): Promise<boolean> {
  try {
    const response = await gh.rest.orgs.checkMembershipForUser({ org, username: login });
    return (response.status as number) === 204;
  } catch (error) {
    if (isNotFound(error) || (error as { status?: number }).status === 302) return false;
    throw error;
  }
}
