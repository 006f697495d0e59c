import type { ProbotOctokit } from "probot";
import type { CommitPerson } from "#src/rules/decide.js";
import { isBotAccount } from "#src/rules/principal.js";

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
    isBot: issue.user ? isBotAccount(issue.user) : false,
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

/** GitHub's account that commits web edits and merges made on github.com, for their author. */
const WEB_FLOW = "web-flow";

/** The people behind a PR's commits, and why some of them cannot be known. */
export interface CommitPeople {
  readonly people: CommitPerson[];
  /** Empty when everyone is known. */
  readonly unidentified: string[];
}

/**
 * Every author, committer and `Co-authored-by:` co-author of the PR's
 * commits, as accounts. A person GitHub links to no account (an e-mail of
 * nobody's, or one the author never verified), a co-author whose e-mail is
 * neither a GitHub noreply address nor that of an account among the PR's
 * commits, and commits past the 250 GitHub lists are named in `unidentified`:
 * any of them could be an approver. GitHub's `web-flow` committer (commits
 * made on github.com) stands for the author and is left out.
 */
export async function commitPeople(
  gh: GitHub,
  repo: RepoName,
  number: number,
): Promise<CommitPeople> {
  const commits = await gh.paginate(gh.rest.pulls.listCommits, {
    owner: repo.owner,
    repo: repo.name,
    pull_number: number,
    per_page: 100,
  });
  const unidentified: string[] = [];
  if (commits.length >= LISTED_COMMITS) {
    const { data: pr } = await gh.rest.pulls.get({
      owner: repo.owner,
      repo: repo.name,
      pull_number: number,
    });
    if (pr.commits > commits.length) {
      unidentified.push(
        `the pull request has more commits than GitHub lists (${pr.commits}, ${commits.length} listed)`,
      );
    }
  }
  // E-mail → account, as the PR's own commits link them.
  const byEmail = new Map<string, { id: number; login: string }>();
  for (const c of commits) {
    for (const [git, account] of [
      [c.commit.author, c.author],
      [c.commit.committer, c.committer],
    ] as const) {
      if (git?.email && account && "login" in account) {
        byEmail.set(git.email.toLowerCase(), { id: account.id, login: account.login });
      }
    }
  }
  const people: CommitPerson[] = [];
  for (const c of commits) {
    const short = c.sha.slice(0, 7);
    const author = c.author && "login" in c.author ? c.author : null;
    if (author) people.push({ role: "author", id: author.id, login: author.login, commit: c.sha });
    else
      unidentified.push(
        `the author of ${short} (${c.commit.author?.email || "no e-mail"}) is no GitHub account`,
      );
    const committer = c.committer && "login" in c.committer ? c.committer : null;
    if (committer) {
      if (committer.login !== WEB_FLOW) {
        people.push({ role: "committer", id: committer.id, login: committer.login, commit: c.sha });
      }
    } else {
      unidentified.push(
        `the committer of ${short} (${c.commit.committer?.email || "no e-mail"}) is no GitHub account`,
      );
    }
    for (const email of coAuthors(c.commit.message)) {
      const account = byEmail.get(email) ?? noreplyAccount(email);
      if (account) people.push({ role: "co-author", ...account, commit: c.sha });
      else
        unidentified.push(
          `the co-author ${email} of ${short} cannot be matched to a GitHub account`,
        );
    }
  }
  return { people, unidentified };
}

/** The e-mails of a commit message's `Co-authored-by: Name <email>` trailers, lower case. */
export function coAuthors(message: string): string[] {
  const out: string[] = [];
  for (const match of message.matchAll(/^[ \t]*co-authored-by:[^<\n]*<([^>\n]+)>/gim)) {
    const email = match[1]?.trim().toLowerCase();
    if (email && !out.includes(email)) out.push(email);
  }
  return out;
}

/** The account of a GitHub noreply address (`<id>+<login>@users.noreply.github.com`). */
function noreplyAccount(email: string): { id: number | null; login: string } | null {
  const match = /^(?:(\d+)\+)?([a-z0-9](?:[a-z0-9-]{0,38}))@users\.noreply\.github\.com$/i.exec(
    email,
  );
  if (!match?.[2]) return null;
  return { id: match[1] ? Number(match[1]) : null, login: match[2] };
}

/** A person's access to a repository, from the permission endpoint (never author_association). */
export type Access = "write" | "read" | "none";

export async function accessOf(gh: GitHub, repo: RepoName, login: string): Promise<Access> {
  try {
    const { data } = await gh.rest.repos.getCollaboratorPermissionLevel({
      owner: repo.owner,
      repo: repo.name,
      username: login,
    });
    if (["admin", "maintain", "write"].includes(data.permission) || data.role_name === "maintain")
      return "write";
    return data.permission === "read" || data.permission === "triage" ? "read" : "none";
  } catch (error) {
    if (isNotFound(error)) return "none";
    throw error;
  }
}

/** Whether `login` may write to the repository. */
export async function hasWriteAccess(gh: GitHub, repo: RepoName, login: string): Promise<boolean> {
  return (await accessOf(gh, repo, login)) === "write";
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
