import { LRUCache } from "lru-cache";
import { type GitHub, isNotFound, type RepoName } from "#src/github/api.js";
import {
  CODEOWNERS_MAX_BYTES,
  CODEOWNERS_PATHS,
  type Codeowners,
  type CodeownersFile,
  type CodeownersPath,
  selectCodeowners,
} from "#src/rules/codeowners.js";
import type { PolicyResult } from "#src/rules/policy.js";
import {
  loadPolicy,
  POLICY_READ_LIMIT,
  type PolicySource,
  type PolicyTarget,
} from "#src/rules/policy-load.js";

/** A policy file the rules were read from. */
export interface PolicyFile {
  /** `owner/name`. */
  readonly repo: string;
  readonly path: string;
  /** The commit it was read at: the head of its repository's default branch. */
  readonly sha: string;
}

/** The rules of a repository at one commit of its default branch. */
export interface RepoRules {
  /** The default-branch commit they were read at (recorded on grants as the policy commit). */
  readonly sha: string;
  readonly defaultBranch: string;
  /** Null when no policy file exists (in the repository or its organization's `.github`). */
  readonly policy: PolicyResult | null;
  /**
   * The policy files read, nearest first (all merged when the policy is
   * valid): the repository's own at `sha` (or else the organization's), then
   * each `_extends` target. Empty when there is no policy.
   */
  readonly policyFiles: readonly PolicyFile[];
  readonly codeowners: Codeowners;
}

/** Another repository a policy was read from, and the head of its default branch then (`null`: none readable). */
interface Dependency {
  readonly repo: RepoName;
  readonly sha: string | null;
}

const CACHE_SIZE = 200;
/** Rules by everything they were read from (see `rulesKey`). */
const rulesCache = new LRUCache<string, RepoRules>({ max: CACHE_SIZE });
/** By repository commit: the other repositories its policy was last read from, to check before reusing rules. */
const dependencyCache = new LRUCache<string, readonly RepoName[]>({ max: CACHE_SIZE });

/**
 * Reads the policy and CODEOWNERS from the head of the **default branch**,
 * never from a pull request: a ticket cannot change its own approvers.
 *
 * The policy goes through the same loader as `hallpass policy check`
 * (`loadPolicy`): the repository's `.github/hallpass.yml` at the branch
 * head, else its organization's `.github` repository's, then whatever
 * `_extends` names, each file of another repository at the head of that
 * repository's default branch.
 *
 * 1. Read the branch head.
 * 2. If the rules at that commit were read before, read the heads of the
 *    other repositories they came from; when none moved, reuse them.
 * 3. Otherwise read the policy chain and CODEOWNERS, and cache them by all
 *    those commits: a commit never changes, and a change to an
 *    organization's policy moves its head.
 */
export async function loadRules(
  gh: GitHub,
  repo: RepoName & { readonly id: number },
  defaultBranch: string,
): Promise<RepoRules> {
  const { data: branch } = await gh.rest.repos.getBranch({
    owner: repo.owner,
    repo: repo.name,
    branch: defaultBranch,
  });
  const sha = branch.commit.sha;
  const home = `${repo.id}@${sha}`;
  const heads = new Map<string, Promise<Dependency>>();
  const known = dependencyCache.get(home);
  if (known) {
    const dependencies = await Promise.all(known.map((r) => headOnce(gh, heads, r)));
    const cached = rulesCache.get(rulesKey(home, dependencies));
    if (cached) return cached;
  }

  const reader = policyReader(gh, repo, sha, heads);
  const [loaded, codeowners] = await Promise.all([
    loadPolicy(reader.source),
    readCodeowners(gh, repo, sha),
  ]);
  const policyFiles = loaded.result
    ? loaded.files.flatMap((f) => reader.found.get(f.file) ?? [])
    : [];
  const rules: RepoRules = { sha, defaultBranch, policy: loaded.result, policyFiles, codeowners };
  const dependencies = await Promise.all(reader.consulted.map((r) => headOnce(gh, heads, r)));
  dependencyCache.set(home, reader.consulted);
  rulesCache.set(rulesKey(home, dependencies), rules);
  return rules;
}

function rulesKey(home: string, dependencies: readonly Dependency[]): string {
  return [home, ...dependencies.map((d) => `${nameOf(d.repo)}@${d.sha ?? "none"}`)].join(" ");
}

/**
 * The policy files as GitHub has them: the repository's at `sha`, the
 * others at their default-branch heads (read once per load, in `heads`).
 * `found` records each file read, by the name errors give it; `consulted`
 * the other repositories looked at, in order, found or not.
 */
function policyReader(
  gh: GitHub,
  repo: RepoName,
  sha: string,
  heads: Map<string, Promise<Dependency>>,
): { source: PolicySource; found: Map<string, PolicyFile>; consulted: RepoName[] } {
  const found = new Map<string, PolicyFile>();
  const consulted: RepoName[] = [];
  const repoOf = (target: PolicyTarget): RepoName => ({
    owner: target.owner ?? repo.owner,
    name: target.repo ?? repo.name,
  });
  const source: PolicySource = {
    orgFallback: repo.name.toLowerCase() !== ".github",
    async read(target) {
      const where = repoOf(target);
      const own = nameOf(where) === nameOf(repo);
      if (!own && !consulted.some((r) => nameOf(r) === nameOf(where))) consulted.push(where);
      const at = own ? sha : (await headOnce(gh, heads, where)).sha;
      if (at === null) return null;
      const text = await readRaw(gh, where, target.path, at, POLICY_READ_LIMIT);
      if (text !== null) {
        found.set(target.file, {
          repo: `${where.owner}/${where.name}`,
          path: target.path,
          sha: at,
        });
      }
      return text;
    },
  };
  return { source, found, consulted };
}

/** `owner/name`, lower case: GitHub's names are case-insensitive. */
function nameOf(repo: RepoName): string {
  return `${repo.owner}/${repo.name}`.toLowerCase();
}

/** The head of a repository's default branch, read at most once per load. */
function headOnce(
  gh: GitHub,
  heads: Map<string, Promise<Dependency>>,
  repo: RepoName,
): Promise<Dependency> {
  const key = nameOf(repo);
  let head = heads.get(key);
  if (head === undefined) {
    head = readHead(gh, repo).then((sha) => ({ repo, sha }));
    heads.set(key, head);
  }
  return head;
}

/** `null` when the repository does not exist, cannot be read, or has no commit. */
async function readHead(gh: GitHub, repo: RepoName): Promise<string | null> {
  try {
    const { data } = await gh.rest.repos.get({ owner: repo.owner, repo: repo.name });
    const { data: branch } = await gh.rest.repos.getBranch({
      owner: repo.owner,
      repo: repo.name,
      branch: data.default_branch,
    });
    return branch.commit.sha;
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
}

async function readCodeowners(gh: GitHub, repo: RepoName, sha: string): Promise<Codeowners> {
  const files = new Map<CodeownersPath, CodeownersFile>();
  // In order, stopping at the first that exists (GitHub's search order).
  for (const path of CODEOWNERS_PATHS) {
    const file = await readRaw(gh, repo, path, sha, CODEOWNERS_MAX_BYTES);
    files.set(path, file);
    if (file !== null) break;
  }
  return selectCodeowners((path) => files.get(path) ?? null);
}

/** A file's text at `ref`; `null` when there is no such file; its size when it is `limit` bytes or more. */
async function readRaw(
  gh: GitHub,
  repo: RepoName,
  path: string,
  ref: string,
  limit: number,
): Promise<string | { tooLarge: true; bytes: number } | null> {
  try {
    const response = await gh.rest.repos.getContent({
      owner: repo.owner,
      repo: repo.name,
      path,
      ref,
      mediaType: { format: "raw" },
    });
    const data: unknown = response.data;
    // Raw content is text; a directory at that path answers with its JSON listing.
    const text =
      typeof data === "string"
        ? data
        : data instanceof ArrayBuffer
          ? Buffer.from(data).toString("utf8")
          : null;
    if (text === null) return null;
    const bytes = Buffer.byteLength(text, "utf8");
    return bytes >= limit ? { tooLarge: true, bytes } : text;
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
}
