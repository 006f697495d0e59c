import { type GitHub, isNotFound, type RepoName } from "#src/github/api.js";
import {
  CODEOWNERS_MAX_BYTES,
  CODEOWNERS_PATHS,
  type Codeowners,
  type CodeownersFile,
  type CodeownersPath,
  selectCodeowners,
} from "#src/rules/codeowners.js";
import { POLICY_FILE, type PolicyResult, parsePolicyObject } from "#src/rules/policy.js";

/** The rules of a repository at one commit of its default branch. */
export interface RepoRules {
  /** The default-branch commit they were read at (recorded on grants as the policy commit). */
  readonly sha: string;
  readonly defaultBranch: string;
  /** Null when no policy file exists (in the repository or its organization's `.github`). */
  readonly policy: PolicyResult | null;
  readonly codeowners: Codeowners;
}

const cache = new Map<string, RepoRules>();
const CACHE_SIZE = 200;

/**
 * Reads the policy and CODEOWNERS from the head of the **default branch**,
 * never from a pull request: a ticket cannot change its own approvers.
 *
 * The policy is read as Probot's `context.config` does (the repository's
 * `.github/hallpass.yml`, else the organization's `.github` repository,
 * with `_extends`), at the branch head's commit. Rules are cached by
 * (repository, commit): a commit never changes.
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
  const key = `${repo.id}@${sha}`;
  const cached = cache.get(key);
  if (cached) return cached;

  const [policy, codeowners] = await Promise.all([
    readPolicy(gh, repo, sha),
    readCodeowners(gh, repo, sha),
  ]);
  const rules: RepoRules = { sha, defaultBranch, policy, codeowners };
  cache.set(key, rules);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  return rules;
}

async function readPolicy(gh: GitHub, repo: RepoName, sha: string): Promise<PolicyResult | null> {
  try {
    const { config, files } = await gh.config.get({
      owner: repo.owner,
      repo: repo.name,
      path: POLICY_FILE,
      branch: sha,
    });
    if (!files.some((f) => f.config !== null)) return null;
    const { _extends: _, ...policy } = config as Record<string, unknown>;
    return parsePolicyObject(policy);
  } catch (error) {
    // A file that is not YAML at all: a policy error, not an outage.
    if ((error as { name?: string }).name === "YAMLException" || /yaml/i.test(String(error))) {
      return {
        ok: false,
        errors: [{ file: POLICY_FILE, line: null, path: "", message: "is not valid YAML" }],
      };
    }
    throw error;
  }
}

async function readCodeowners(gh: GitHub, repo: RepoName, sha: string): Promise<Codeowners> {
  const files = new Map<CodeownersPath, CodeownersFile>();
  // In order, stopping at the first that exists (GitHub's search order).
  for (const path of CODEOWNERS_PATHS) {
    const file = await readRaw(gh, repo, path, sha);
    files.set(path, file);
    if (file !== null) break;
  }
  return selectCodeowners((path) => files.get(path) ?? null);
}

async function readRaw(
  gh: GitHub,
  repo: RepoName,
  path: string,
  ref: string,
): Promise<CodeownersFile> {
  try {
    const response = await gh.rest.repos.getContent({
      owner: repo.owner,
      repo: repo.name,
      path,
      ref,
      mediaType: { format: "raw" },
    });
    const text = typeof response.data === "string" ? response.data : String(response.data);
    const bytes = Buffer.byteLength(text, "utf8");
    return bytes >= CODEOWNERS_MAX_BYTES ? { tooLarge: true, bytes } : text;
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
}
