import { z } from "zod";
import { HallpassError } from "#src/errors.js";
import type { GitHub } from "#src/github/api.js";

/** An installation client of the App (`installationClient(probot)`). */
export type InstallationClient = (installationId: number) => Promise<GitHub>;

export interface RepoFactsOptions {
  /** How long a repository's default branch is trusted without asking again. */
  readonly defaultBranchTtlMs?: number;
  /** Most commits whose parents are kept. */
  readonly maxCommits?: number;
  readonly now?: () => number;
}

/** What the exchange needs of a pull request as GitHub has it now. */
export interface PullHead {
  readonly headSha: string;
  readonly headRef: string;
  /** Null when the head repository (a fork) was deleted. */
  readonly headRepoId: number | null;
  readonly baseRef: string;
}

const commitSchema = z.object({
  sha: z.string(),
  parents: z.array(z.object({ sha: z.string() })),
});
const repositorySchema = z.object({ id: z.number(), default_branch: z.string().min(1) });
const pullSchema = z.object({
  head: z.object({
    sha: z.string(),
    ref: z.string(),
    repo: z.object({ id: z.number() }).nullable(),
  }),
  base: z.object({ ref: z.string() }),
});

/**
 * The GitHub reads of the exchange, through the ticket's installation, by
 * repository id (names are renamed and reused; ids are not):
 *
 * - a commit's parents, cached for good (a commit never changes), the least
 *   recently used dropped past `maxCommits`;
 * - a repository's default branch, cached for `defaultBranchTtlMs`;
 * - a pull request's head, never cached.
 *
 * Concurrent misses for one key share one request. A commit GitHub does not
 * know is not cached (it may be a run's merge commit GitHub has yet to show).
 */
export class RepoFacts {
  readonly #client: InstallationClient;
  readonly #branchTtlMs: number;
  readonly #maxCommits: number;
  readonly #now: () => number;
  readonly #parents = new Map<string, Promise<string[] | null>>();
  readonly #branches = new Map<number, { branch: Promise<string>; until: number }>();

  constructor(client: InstallationClient, options: RepoFactsOptions = {}) {
    this.#client = client;
    this.#branchTtlMs = options.defaultBranchTtlMs ?? 60_000;
    this.#maxCommits = options.maxCommits ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The parents of commit `sha` of the repository, in order (for GitHub's
   * test merge commit of a pull request: base, then head); null when GitHub
   * has no such commit there.
   */
  commitParents(installationId: number, repoId: number, sha: string): Promise<string[] | null> {
    const key = `${repoId}:${sha}`;
    const cached = this.#parents.get(key);
    if (cached) {
      // Most recently used last: Map keeps insertion order.
      this.#parents.delete(key);
      this.#parents.set(key, cached);
      return cached;
    }
    const loading = this.#read(installationId, `GET /repositories/{repository_id}/commits/{ref}`, {
      repository_id: repoId,
      ref: sha,
    }).then((data) => {
      if (data === null) return null;
      const commit = shaped(commitSchema, data, "commit");
      return commit.sha === sha ? commit.parents.map((p) => p.sha) : null;
    });
    this.#parents.set(key, loading);
    loading.then(
      (parents) => {
        if (parents === null) this.#parents.delete(key);
      },
      () => this.#parents.delete(key),
    );
    while (this.#parents.size > this.#maxCommits) {
      const oldest = this.#parents.keys().next().value;
      if (oldest === undefined) break;
      this.#parents.delete(oldest);
    }
    return loading;
  }

  /** The repository's default branch. */
  defaultBranch(installationId: number, repoId: number): Promise<string> {
    const cached = this.#branches.get(repoId);
    if (cached && cached.until > this.#now()) return cached.branch;
    const branch = this.#read(installationId, "GET /repositories/{repository_id}", {
      repository_id: repoId,
    }).then((data) => {
      if (data === null) {
        throw new HallpassError(
          "GITHUB_UNAVAILABLE",
          `repository ${repoId} is not visible to installation ${installationId}`,
        );
      }
      return shaped(repositorySchema, data, "repository").default_branch;
    });
    this.#branches.set(repoId, { branch, until: this.#now() + this.#branchTtlMs });
    branch.catch(() => this.#branches.delete(repoId));
    return branch;
  }

  /** Pull request `number` of the repository as it is now; null when there is none. */
  async pullHead(installationId: number, repoId: number, number: number): Promise<PullHead | null> {
    const data = await this.#read(installationId, "GET /repositories/{repository_id}/pulls/{n}", {
      repository_id: repoId,
      n: number,
    });
    if (data === null) return null;
    const pull = shaped(pullSchema, data, "pull request");
    return {
      headSha: pull.head.sha,
      headRef: pull.head.ref,
      headRepoId: pull.head.repo?.id ?? null,
      baseRef: pull.base.ref,
    };
  }

  /** Drops everything (tests). */
  clear(): void {
    this.#parents.clear();
    this.#branches.clear();
  }

  /** One GET; null for GitHub's 404 and 422 ("No commit found"). */
  async #read(
    installationId: number,
    route: string,
    params: Record<string, string | number>,
  ): Promise<unknown> {
    try {
      const gh = await this.#client(installationId);
      const { data } = await gh.request(route, params);
      return data;
    } catch (error) {
      const status = (error as { status?: number }).status;
      const url = (error as { request?: { url?: string } }).request?.url ?? "";
      // The installation's own token could not be had (uninstalled, suspended): not a missing commit.
      if (/\/app\/installations\/\d+\/access_tokens/.test(url)) {
        throw new HallpassError(
          "GITHUB_UNAVAILABLE",
          `the App's installation ${installationId} gave no token (status ${status ?? "none"}): is the App still installed?`,
          { cause: error },
        );
      }
      if (status === 404 || status === 422) return null;
      throw new HallpassError(
        "GITHUB_UNAVAILABLE",
        `GitHub read failed: ${route} (installation ${installationId}, status ${status ?? "none"})`,
        { cause: error },
      );
    }
  }
}

/** GitHub's answer, checked: an unexpected shape is GitHub's fault, not the caller's. */
function shaped<T>(schema: z.ZodType<T>, data: unknown, what: string): T {
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    throw new HallpassError("GITHUB_UNAVAILABLE", `GitHub answered an unexpected ${what}`, {
      cause: parsed.error,
    });
  }
  return parsed.data;
}
