/**
 * The simulated GitHub's state: people, organizations, repositories with their
 * commits, installations of the App, and tickets (issues and pull requests)
 * with comments, reviews and check runs. Tests seed it through the methods
 * here; the HTTP endpoints read and change the same objects.
 */
import { type Commit, CommitGraph, type FileChanges, type GitIdentity } from "./git.js";

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

export class GitHubModel {
  readonly app: { readonly id: number; readonly slug: string; readonly bot: string };
  readonly git = new CommitGraph();
  readonly users = new Map<string, User>();
  readonly orgs = new Map<string, Org>();
  readonly repos = new Map<number, Repo>();
  readonly installations = new Map<number, Installation>();
  readonly comments = new Map<number, IssueComment>();
  readonly checkRuns = new Map<number, CheckRun>();
  readonly now: () => Date;
  #nextId = 1000;

  constructor(options: ModelOptions) {
    this.now = options.now ?? (() => new Date());
    const slug = options.appSlug ?? "hallpass";
    this.app = { id: options.appId, slug, bot: `${slug}[bot]` };
    this.addUser(this.app.bot);
  }

  nextId(): number {
    return this.#nextId++;
  }

  // --- people -------------------------------------------------------------

  /** Adds a user; logins ending in `[bot]` are bots. Adding an existing login returns it. */
  addUser(login: string, options: { id?: number; name?: string; email?: string } = {}): User {
    const existing = this.users.get(login.toLowerCase());
    if (existing) return existing;
    const id = options.id ?? this.nextId();
    const user: User = {
      id,
      login,
      type: login.endsWith("[bot]") ? "Bot" : "User",
      name: options.name ?? null,
      email: options.email ?? `${id}+${login}@users.noreply.github.com`,
      createdAt: this.now(),
    };
    this.users.set(login.toLowerCase(), user);
    return user;
  }

  /** A known user or organization account; throws for an unknown login. */
  user(login: string): User {
    const user = this.users.get(login.toLowerCase());
    if (!user) throw new Error(`simulator: no user ${login}`);
    return user;
  }

  addOrg(
    login: string,
    options: { id?: number; members?: readonly string[]; admins?: readonly string[] } = {},
  ): Org {
    if (this.users.has(login.toLowerCase())) throw new Error(`simulator: ${login} exists`);
    const user: User = {
      id: options.id ?? this.nextId(),
      login,
      type: "Organization",
      name: null,
      email: "",
      createdAt: this.now(),
    };
    this.users.set(login.toLowerCase(), user);
    const org: Org = { user, members: new Map(), teams: new Map() };
    this.orgs.set(login.toLowerCase(), org);
    for (const member of options.members ?? []) this.addOrgMember(login, member);
    for (const admin of options.admins ?? []) this.addOrgMember(login, admin, "admin");
    return org;
  }

  org(login: string): Org {
    const org = this.orgs.get(login.toLowerCase());
    if (!org) throw new Error(`simulator: no organization ${login}`);
    return org;
  }

  addOrgMember(org: string, login: string, role: "admin" | "member" = "member"): void {
    this.org(org).members.set(this.addUser(login).login, role);
  }

  /** Removes the member from the organization and from all of its teams. */
  removeOrgMember(org: string, login: string): void {
    const found = this.org(org);
    found.members.delete(this.user(login).login);
    for (const team of found.teams.values()) {
      team.members.delete(login);
      team.maintainers.delete(login);
    }
  }

  addTeam(
    org: string,
    slug: string,
    options: {
      id?: number;
      name?: string;
      members?: readonly string[];
      maintainers?: readonly string[];
    } = {},
  ): Team {
    const team: Team = {
      id: options.id ?? this.nextId(),
      slug,
      name: options.name ?? slug,
      org: this.org(org).user.login,
      members: new Set(),
      maintainers: new Set(),
    };
    this.org(org).teams.set(slug, team);
    for (const member of options.members ?? []) this.addTeamMember(org, slug, member);
    for (const member of options.maintainers ?? [])
      this.addTeamMember(org, slug, member, "maintainer");
    return team;
  }

  team(org: string, slug: string): Team {
    const team = this.org(org).teams.get(slug);
    if (!team) throw new Error(`simulator: no team ${org}/${slug}`);
    return team;
  }

  /** Adds to the team, and to the organization when not a member yet. */
  addTeamMember(
    org: string,
    slug: string,
    login: string,
    role: "member" | "maintainer" = "member",
  ): void {
    const { members } = this.org(org);
    const user = this.addUser(login);
    if (!members.has(user.login)) members.set(user.login, "member");
    const team = this.team(org, slug);
    (role === "maintainer" ? team.maintainers : team.members).add(user.login);
  }

  removeTeamMember(org: string, slug: string, login: string): void {
    const team = this.team(org, slug);
    team.members.delete(login);
    team.maintainers.delete(login);
  }

  // --- repositories -------------------------------------------------------

  /**
   * Adds a repository with one commit on its default branch holding `files`
   * (or, for a fork, the branches of its parent). The owner is created as a
   * user unless it is a known organization.
   */
  addRepo(
    fullName: string,
    options: {
      id?: number;
      defaultBranch?: string;
      private?: boolean;
      files?: FileChanges;
      forkOf?: RepoRef;
      collaborators?: Readonly<Record<string, Permission>>;
    } = {},
  ): Repo {
    const [owner, name] = splitFullName(fullName);
    if (this.findRepo(owner, name)) throw new Error(`simulator: ${fullName} exists`);
    const ownerAccount = this.users.get(owner.toLowerCase()) ?? this.addUser(owner);
    const parent = options.forkOf === undefined ? null : this.repo(options.forkOf);
    const now = this.now();
    const repo: Repo = {
      id: options.id ?? this.nextId(),
      owner: ownerAccount.login,
      name,
      defaultBranch: options.defaultBranch ?? parent?.defaultBranch ?? "main",
      private: options.private ?? parent?.private ?? false,
      forkOf: parent?.id ?? null,
      branches: new Map(parent?.branches ?? []),
      commits: new Set(),
      collaborators: new Map(),
      labels: new Map(),
      issues: new Map(),
      createdAt: now,
      pushedAt: now,
      deletedAt: null,
    };
    if (this.repos.has(repo.id)) throw new Error(`simulator: repository id ${repo.id} exists`);
    this.repos.set(repo.id, repo);
    for (const [login, permission] of Object.entries(options.collaborators ?? {})) {
      this.setPermission(repo.id, login, permission);
    }
    if (!parent) {
      this.commit(repo.id, {
        files: options.files ?? { "README.md": `# ${name}\n` },
        author: ownerAccount.type === "Organization" ? this.app.bot : ownerAccount.login,
        message: "Initial commit",
      });
    } else if (options.files) {
      this.commit(repo.id, { files: options.files, author: ownerAccount.login });
    }
    return repo;
  }

  /** The live repository currently known by this name or id. */
  repo(ref: RepoRef): Repo {
    const repo =
      typeof ref === "number" ? this.repos.get(ref) : this.findRepo(...splitFullName(ref));
    if (!repo || repo.deletedAt) throw new Error(`simulator: no repository ${ref}`);
    return repo;
  }

  findRepo(owner: string, name: string): Repo | undefined {
    for (const repo of this.repos.values()) {
      if (repo.deletedAt) continue;
      if (
        repo.owner.toLowerCase() === owner.toLowerCase() &&
        repo.name.toLowerCase() === name.toLowerCase()
      ) {
        return repo;
      }
    }
    return undefined;
  }

  /** Renames (or transfers) a repository; its old name then redirects, until a new repository takes it. */
  renameRepo(ref: RepoRef, newFullName: string): Repo {
    const repo = this.repo(ref);
    const [owner, name] = splitFullName(newFullName);
    if (this.findRepo(owner, name)) throw new Error(`simulator: ${newFullName} exists`);
    this.renames.push({ from: fullNameOf(repo), repoId: repo.id });
    repo.owner = (this.users.get(owner.toLowerCase()) ?? this.addUser(owner)).login;
    repo.name = name;
    return repo;
  }

  /** Old names of renamed repositories, oldest first. */
  readonly renames: { readonly from: string; readonly repoId: number }[] = [];

  deleteRepo(ref: RepoRef): void {
    this.repo(ref).deletedAt = this.now();
  }

  setPermission(ref: RepoRef, login: string, permission: Permission): void {
    const repo = this.repo(ref);
    const user = this.addUser(login);
    if (permission === "none") repo.collaborators.delete(user.login);
    else repo.collaborators.set(user.login, permission);
  }

  /** The user's role on the repository: as collaborator, owner, or organization owner. */
  permissionOf(repo: Repo, login: string): Permission {
    const explicit = repo.collaborators.get(this.user(login).login);
    if (explicit) return explicit;
    if (repo.owner.toLowerCase() === login.toLowerCase()) return "admin";
    const org = this.orgs.get(repo.owner.toLowerCase());
    return org?.members.get(this.user(login).login) === "admin" ? "admin" : "none";
  }

  associationOf(repo: Repo, login: string): AuthorAssociation {
    if (repo.owner.toLowerCase() === login.toLowerCase()) return "OWNER";
    if (this.orgs.get(repo.owner.toLowerCase())?.members.has(this.user(login).login))
      return "MEMBER";
    if (repo.collaborators.has(this.user(login).login)) return "COLLABORATOR";
    return "NONE";
  }

  // --- commits ------------------------------------------------------------

  /**
   * Commits `files` on `branch` (default: the default branch; created from
   * `parents` or the default branch's head when new) and returns the sha.
   * Open pull requests from or into the branch follow, as on GitHub.
   */
  commit(
    ref: RepoRef,
    change: {
      branch?: string;
      files?: FileChanges;
      parents?: readonly string[];
      author?: string | { name: string; email: string };
      message?: string;
    },
  ): string {
    const repo = this.repo(ref);
    const branch = change.branch ?? repo.defaultBranch;
    const head = repo.branches.get(branch) ?? repo.branches.get(repo.defaultBranch);
    const commit = this.git.add({
      parents: change.parents ?? (head ? [head] : []),
      changes: change.files ?? {},
      message: change.message ?? `Update ${Object.keys(change.files ?? {}).join(", ") || branch}`,
      author: this.identity(change.author ?? repo.owner),
      date: this.now(),
    });
    this.advanceBranch(repo, branch, commit);
    return commit.sha;
  }

  /** Points a branch at a new commit of the repository; open pull requests follow. */
  protected advanceBranch(repo: Repo, branch: string, commit: Commit): void {
    repo.commits.add(commit.sha);
    repo.branches.set(branch, commit.sha);
    repo.pushedAt = this.now();
    this.followBranch(repo, branch);
  }

  /** The sha a branch points at (default: the default branch). */
  branchHead(ref: RepoRef, branch?: string): string {
    const repo = this.repo(ref);
    const sha = repo.branches.get(branch ?? repo.defaultBranch);
    if (!sha) throw new Error(`simulator: no branch ${branch} in ${fullNameOf(repo)}`);
    return sha;
  }

  /** Whether the commit can be read through the repository (its own or its fork network's). */
  hasCommit(repo: Repo, sha: string): boolean {
    const root = this.#networkRoot(repo);
    for (const other of this.repos.values()) {
      if (this.#networkRoot(other) === root && other.commits.has(sha)) return true;
    }
    return false;
  }

  /** A git identity for a login (the user's noreply email) or a bare name and email. */
  identity(author: string | { name: string; email: string }): GitIdentity {
    if (typeof author !== "string") {
      const known = [...this.users.values()].find((u) => u.email === author.email);
      return { ...author, login: known?.login ?? null };
    }
    const user = this.addUser(author);
    return { name: user.name ?? user.login, email: user.email, login: user.login };
  }

  #networkRoot(repo: Repo): number {
    let current = repo;
    while (current.forkOf !== null) {
      const parent = this.repos.get(current.forkOf);
      if (!parent) break;
      current = parent;
    }
    return current.id;
  }

  /** Keeps open pull requests on a moved branch current: head sha, base sha, test merge commit. */
  protected followBranch(repo: Repo, branch: string): void {
    for (const target of this.repos.values()) {
      for (const issue of target.issues.values()) {
        const pull = issue.pull;
        if (!pull || issue.state !== "open") continue;
        const isHead = pull.head.repoId === repo.id && pull.head.ref === branch;
        const isBase = target.id === repo.id && pull.base.ref === branch;
        if (isHead) pull.head.sha = this.branchHead(repo.id, branch);
        if (isBase) pull.base.sha = this.branchHead(target.id, branch);
        if (isHead || isBase) this.refreshMergeCommit(target, pull);
      }
    }
  }

  /** Makes `refs/pull/N/merge`: a merge commit of the base branch's head and the PR head. */
  protected refreshMergeCommit(repo: Repo, pull: Pull): void {
    const commit = this.git.add({
      parents: [pull.base.sha, pull.head.sha],
      tree: this.git.mergedTree(pull.base.sha, pull.head.sha),
      message: `Merge ${pull.head.sha} into ${pull.base.sha}`,
      author: this.identity(this.app.bot),
      date: this.now(),
    });
    repo.commits.add(commit.sha);
    pull.mergeCommitSha = commit.sha;
  }

  // --- installations ------------------------------------------------------

  /** Installs the App on an account, for all its repositories or the named ones. */
  addInstallation(
    account: string,
    options: { id?: number; repositories?: readonly RepoRef[] } = {},
  ): Installation {
    const installation: Installation = {
      id: options.id ?? this.nextId(),
      account: this.user(account).login,
      repositoryIds: options.repositories
        ? new Set(options.repositories.map((ref) => this.repo(ref).id))
        : null,
      createdAt: this.now(),
      deletedAt: null,
    };
    this.installations.set(installation.id, installation);
    return installation;
  }

  /** Uninstalls: the installation's tokens stop working. */
  deleteInstallation(id: number): void {
    const installation = this.installations.get(id);
    if (installation) installation.deletedAt = this.now();
  }

  /** The live installation covering the repository, if any. */
  installationFor(repo: Repo): Installation | undefined {
    return [...this.installations.values()].find((i) => this.installationCovers(i, repo));
  }

  installationCovers(installation: Installation, repo: Repo): boolean {
    return (
      installation.deletedAt === null &&
      installation.account.toLowerCase() === repo.owner.toLowerCase() &&
      (installation.repositoryIds === null || installation.repositoryIds.has(repo.id))
    );
  }
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
