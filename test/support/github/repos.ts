/**
 * Repositories of the simulated GitHub: names (renamable, reusable), forks,
 * collaborators, branches over the commit graph, and the App's installations.
 */
import { type Commit, CommitGraph, type FileChanges, type GitIdentity } from "./git.js";
import {
  type AuthorAssociation,
  fullNameOf,
  type Installation,
  type Permission,
  type Repo,
  type RepoRef,
  splitFullName,
} from "./model.js";
import { PeopleModel } from "./people.js";

/** Weakest first. */
const PERMISSION_ORDER: readonly Permission[] = [
  "none",
  "read",
  "triage",
  "write",
  "maintain",
  "admin",
];

export class RepoModel extends PeopleModel {
  readonly git = new CommitGraph();
  readonly repos = new Map<number, Repo>();
  readonly installations = new Map<number, Installation>();
  /** Old names of renamed repositories, oldest first. */
  readonly renames: { readonly from: string; readonly repoId: number }[] = [];

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
        author:
          ownerAccount.type === "Organization"
            ? { name: "GitHub", email: "noreply@github.com" }
            : ownerAccount.login,
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

  deleteRepo(ref: RepoRef): void {
    this.repo(ref).deletedAt = this.now();
  }

  setPermission(ref: RepoRef, login: string, permission: Permission): void {
    const repo = this.repo(ref);
    const user = this.addUser(login);
    if (permission === "none") repo.collaborators.delete(user.login);
    else repo.collaborators.set(user.login, permission);
  }

  /**
   * The user's role on the repository: its owner and organization owners are
   * admins; otherwise the higher of the collaborator permission and the
   * organization's base permission for members.
   */
  permissionOf(repo: Repo, login: string): Permission {
    const user = this.user(login);
    if (repo.owner.toLowerCase() === user.login.toLowerCase()) return "admin";
    const org = this.orgs.get(repo.owner.toLowerCase());
    const role = org?.members.get(user.login);
    if (role === "admin") return "admin";
    const explicit = repo.collaborators.get(user.login) ?? "none";
    const base = role && org ? org.basePermission : "none";
    return PERMISSION_ORDER.indexOf(explicit) >= PERMISSION_ORDER.indexOf(base) ? explicit : base;
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
      /** Default: the author. */
      committer?: string | { name: string; email: string };
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
      ...(change.committer ? { committer: this.identity(change.committer) } : {}),
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
    this.branchMoved(repo, branch);
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

  /**
   * The sha a ref names, as GitHub accepts refs: a branch, `(refs/)heads/<branch>`,
   * `pull/<n>/head` or `pull/<n>/merge`, a full sha or an unambiguous prefix of 7+.
   */
  resolveRef(repo: Repo, ref: string): string | null {
    const head =
      repo.branches.get(ref) ?? repo.branches.get(ref.replace(/^(?:refs\/)?heads\//, ""));
    if (head) return head;
    const pullRef = /^(?:refs\/)?pull\/(\d+)\/(head|merge)$/.exec(ref);
    if (pullRef) {
      const pull = repo.issues.get(Number(pullRef[1]))?.pull;
      return (pullRef[2] === "head" ? pull?.head.sha : pull?.mergeCommitSha) ?? null;
    }
    if (!/^[0-9a-f]{7,40}$/.test(ref)) return null;
    const known = new Set([...this.repos.values()].flatMap((r) => [...r.commits]));
    const matches = [...known].filter((sha) => sha.startsWith(ref) && this.hasCommit(repo, sha));
    return matches.length === 1 ? (matches[0] ?? null) : null;
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

  /** Called when a branch moved; the ticket layer keeps pull requests on it current. */
  protected branchMoved(_repo: Repo, _branch: string): void {}

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
