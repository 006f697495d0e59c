/**
 * The simulated GitHub's state, as plain objects: people, organizations,
 * repositories, installations of the App, and tickets (issues and pull
 * requests) with comments, reviews and check runs. The model is built in
 * layers, each one concern: `PeopleModel` (people.ts) ← `RepoModel`
 * (repos.ts) ← `TicketModel` (tickets.ts) ← `GitHubSimulator`. Tests seed it
 * through their methods; the HTTP endpoints read and change the same objects.
 */

export type Permission = "admin" | "maintain" | "write" | "triage" | "read" | "none";
/** A repository by full name (`"acme/payments"`) or by id. */
export type RepoRef = string | number;
export type ReviewState = "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED";
export type AuthorAssociation = "OWNER" | "MEMBER" | "COLLABORATOR" | "CONTRIBUTOR" | "NONE";

export interface User {
  readonly id: number;
  readonly login: string;
  readonly type: "User" | "Bot" | "Organization";
  readonly name: string | null;
  readonly email: string;
  readonly createdAt: Date;
}

export interface Org {
  readonly user: User;
  /** What every member may do on every repository of the organization (GitHub's default: read). */
  basePermission: Permission;
  readonly members: Map<string, "admin" | "member">;
  readonly teams: Map<string, Team>;
}

export interface Team {
  readonly id: number;
  readonly slug: string;
  readonly name: string;
  readonly org: string;
  /** Plain members; maintainers are members too but listed only here. */
  readonly members: Set<string>;
  readonly maintainers: Set<string>;
}

export interface Installation {
  readonly id: number;
  readonly account: string;
  /** `null`: every repository of the account. */
  readonly repositoryIds: ReadonlySet<number> | null;
  readonly createdAt: Date;
  deletedAt: Date | null;
}

export interface Label {
  readonly id: number;
  readonly name: string;
  readonly color: string;
  readonly description: string | null;
}

export interface Repo {
  readonly id: number;
  owner: string;
  name: string;
  defaultBranch: string;
  readonly private: boolean;
  /** The repository this one is a fork of. */
  readonly forkOf: number | null;
  readonly branches: Map<string, string>;
  /** Shas of the commits made in this repository. */
  readonly commits: Set<string>;
  readonly collaborators: Map<string, Permission>;
  readonly labels: Map<string, Label>;
  readonly issues: Map<number, Issue>;
  readonly createdAt: Date;
  pushedAt: Date;
  deletedAt: Date | null;
}

export interface Issue {
  readonly id: number;
  readonly repoId: number;
  readonly number: number;
  title: string;
  body: string | null;
  readonly author: string;
  labels: string[];
  state: "open" | "closed";
  stateReason: "completed" | "not_planned" | "reopened" | null;
  readonly createdAt: Date;
  updatedAt: Date;
  closedAt: Date | null;
  closedBy: string | null;
  /** Present on pull requests, which GitHub also serves as issues. */
  readonly pull: Pull | null;
}

/** A pull request: an issue with its pull part. */
export type PullRequest = Issue & { readonly pull: Pull };

export interface Pull {
  readonly id: number;
  readonly head: { readonly repoId: number; readonly ref: string; sha: string };
  readonly base: { readonly ref: string; sha: string };
  readonly draft: boolean;
  merged: boolean;
  mergedAt: Date | null;
  mergedBy: string | null;
  /** The test merge commit (`refs/pull/N/merge`) while open; the real one once merged. */
  mergeCommitSha: string | null;
  readonly reviews: Review[];
}

export interface IssueComment {
  readonly id: number;
  readonly repoId: number;
  readonly number: number;
  readonly author: string;
  body: string;
  readonly createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
  /** Earlier bodies, oldest first, with who replaced them. */
  readonly edits: { readonly body: string; readonly at: Date; readonly by: string }[];
}

export interface Review {
  readonly id: number;
  readonly repoId: number;
  readonly number: number;
  readonly user: string;
  /** The state it was submitted with; the REST API shows `DISMISSED` once dismissed. */
  readonly state: ReviewState;
  dismissed: boolean;
  readonly body: string;
  readonly commitId: string;
  readonly submittedAt: Date;
}

export interface CheckRun {
  readonly id: number;
  readonly repoId: number;
  readonly appId: number;
  readonly headSha: string;
  name: string;
  status: "queued" | "in_progress" | "completed";
  conclusion: string | null;
  output: { title: string | null; summary: string | null; text: string | null };
  detailsUrl: string | null;
  externalId: string | null;
  startedAt: Date | null;
  completedAt: Date | null;
}

export interface ModelOptions {
  readonly appId: number;
  /** The App's slug; its bot user is `<slug>[bot]`. Default `hallpass`. */
  readonly appSlug?: string;
  /** The clock of every timestamp the simulator writes. */
  readonly now?: () => Date;
}

export function fullNameOf(repo: Repo): string {
  return `${repo.owner}/${repo.name}`;
}

export function splitFullName(fullName: string): [string, string] {
  const [owner, name, ...rest] = fullName.split("/");
  if (!owner || !name || rest.length > 0)
    throw new Error(`simulator: bad repository name ${fullName}`);
  return [owner, name];
}
