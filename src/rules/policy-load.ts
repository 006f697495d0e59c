import {
  POLICY_FILE,
  POLICY_MAX_CHARS,
  type PolicyError,
  type PolicyLayer,
  type PolicyResult,
  parsePolicyLayers,
} from "#src/rules/policy.js";
import { type KeyPath, kindOf, loadYaml } from "#src/rules/yaml-source.js";

/**
 * How a policy is put together from its files, the same for the server and
 * for `hallpass policy check`; only the reading differs (the server reads
 * GitHub, policy check a checkout).
 *
 * 1. The repository's own `.github/hallpass.yml`; when it has none, the
 *    organization's: `.github/hallpass.yml` of the owner's `.github`
 *    repository (unless the repository is that one).
 * 2. While the last file read has `_extends`, the file it names, as Probot
 *    documents the key: `repo` (the same owner), `owner/repo`, either with
 *    `:path/to/file.yml` (default `.github/hallpass.yml`). An owner left out
 *    is that of the file that names it. At most `POLICY_MAX_FILES` files; a
 *    file named twice (a cycle: by the names below, which both readers
 *    derive from the text alone, so that they agree), a file that does not
 *    exist and a malformed value are errors at the `_extends` line, never a
 *    silently shorter chain.
 * 3. Every file goes through the same strict parser (`loadYaml`: at most
 *    `POLICY_MAX_CHARS`, one document, no aliases, no unknown tags or
 *    duplicate keys), then the merge is validated (`parsePolicyLayers`:
 *    each top-level key whole from the nearest file that sets it).
 */

/** A file's text, or its size when it was too large to read. */
export type PolicyText = string | { readonly tooLarge: true; readonly bytes: number };

/** Files this large (bytes) are not read at all; smaller ones are still held to `POLICY_MAX_CHARS`. */
export const POLICY_READ_LIMIT = POLICY_MAX_CHARS * 4;

/** The longest chain: the repository's (or organization's) file and what it extends. */
export const POLICY_MAX_FILES = 5;

/** A policy file as the chain names it, before anyone reads it. */
export interface PolicyTarget {
  /** `null`: the checked repository's owner (written nowhere, or left out of every `_extends` so far). */
  readonly owner: string | null;
  /** `null`: the checked repository itself. */
  readonly repo: string | null;
  readonly path: string;
  /**
   * How errors name the file: `.github/hallpass.yml` for the repository's
   * own, else as `_extends` writes it, with its path: `.github:.github/hallpass.yml`,
   * `other/base:policies/hallpass.yml`.
   */
  readonly file: string;
}

/** The repository's own policy file. */
export const HOME_POLICY: PolicyTarget = {
  owner: null,
  repo: null,
  path: POLICY_FILE,
  file: POLICY_FILE,
};

/** The organization's: read when the repository has no policy file. */
export const ORG_POLICY: PolicyTarget = target(null, ".github", POLICY_FILE);

/**
 * What reading a target gave: its text, `null` when there is no such file,
 * or `offline` when this reader cannot see it (policy check, for a file in
 * another repository that it was not given).
 */
export type PolicyRead = PolicyText | null | "offline";

/** Where the files come from. */
export interface PolicySource {
  read(target: PolicyTarget): Promise<PolicyRead>;
  /** Whether a repository without a policy file falls back to `ORG_POLICY` (not for `.github` itself). */
  readonly orgFallback: boolean;
}

export interface LoadedPolicy {
  /** `null`: no policy file, neither the repository's nor the organization's. */
  readonly result: PolicyResult | null;
  /** The files read, nearest first; all of them merged when the result is ok. */
  readonly files: readonly PolicyTarget[];
  /** The file and line a key path of the merged policy was written at. */
  where(path: KeyPath): { readonly file: string; readonly line: number | null };
}

/** Probot's syntax for `_extends` (`@probot/octokit-plugin-config`). */
const EXTENDS =
  /^(?:([a-z\d](?:[a-z\d]|-(?=[a-z\d])){0,38})\/)?([-_.\w\d]+)(?::([-_./\w\d]+\.ya?ml))?$/i;

/**
 * Reads and merges a policy from `source` (see the steps above). Never
 * throws for a bad policy: every problem is an error of the result, with
 * its file and line. Errors of `source.read` (an outage) propagate.
 *
 * @example
 * const loaded = await loadPolicy(source);
 * if (loaded.result && !loaded.result.ok) for (const e of loaded.result.errors) console.error(formatPolicyError(e));
 */
export async function loadPolicy(source: PolicySource): Promise<LoadedPolicy> {
  const layers: PolicyLayer[] = [];
  const files: PolicyTarget[] = [];
  const done = (result: PolicyResult | null): LoadedPolicy => ({
    result,
    files,
    where: (path) => whereIn(layers, path),
  });
  const fail = (errors: readonly PolicyError[]): LoadedPolicy => done({ ok: false, errors });

  let current = HOME_POLICY;
  let read = await source.read(current);
  if (read === null && source.orgFallback) {
    current = ORG_POLICY;
    read = await source.read(current);
    if (read === "offline") {
      return fail([
        whole(
          POLICY_FILE,
          `no policy file; the server would use the organization's (${ORG_POLICY.file}), which policy check cannot read offline`,
        ),
      ]);
    }
  }
  if (read === null || read === "offline") return done(null);

  for (;;) {
    files.push(current);
    if (typeof read !== "string") {
      return fail([
        whole(
          current.file,
          `file is ${read.bytes.toLocaleString("en-US")} bytes, too large to be a policy`,
        ),
      ]);
    }
    const loaded = loadYaml(read, current.file, POLICY_MAX_CHARS);
    if (!loaded.ok) return fail(loaded.errors);
    const value = loaded.value;
    const extendsValue =
      value !== null && typeof value === "object" && Object.hasOwn(value, "_extends")
        ? (value as Record<string, unknown>)._extends
        : undefined;
    if (extendsValue === undefined) {
      layers.push({ file: current.file, value, locate: loaded.locate });
      break;
    }
    const { _extends: _, ...rest } = value as Record<string, unknown>;
    layers.push({ file: current.file, value: rest, locate: loaded.locate });

    const at = (message: string): PolicyError => ({
      file: current.file,
      line: loaded.locate(["_extends"]),
      path: "_extends",
      message,
    });
    const next = parseExtends(extendsValue, current);
    if (!next.ok) return fail([at(next.message)]);
    const chain = [...files, next.target].map((f) => f.file).join(" → ");
    if (files.some((f) => f.file === next.target.file)) {
      return fail([at(`${next.target.file} is already in the chain (${chain}): a cycle`)]);
    }
    if (files.length >= POLICY_MAX_FILES) {
      return fail([at(`${chain} is longer than ${POLICY_MAX_FILES} files`)]);
    }
    read = await source.read(next.target);
    if (read === null) {
      return fail([at(`${next.target.file} does not exist (or hallpass cannot read it)`)]);
    }
    if (read === "offline") {
      return fail([
        at(
          `policy check cannot read ${next.target.file} offline, so the merged policy is not checked`,
        ),
      ]);
    }
    current = next.target;
  }
  return done(parsePolicyLayers(layers));
}

/**
 * The target an `_extends` value names, relative to the file it is written
 * in (whose owner an owner-less value keeps).
 */
export function parseExtends(
  value: unknown,
  from: PolicyTarget,
):
  | { readonly ok: true; readonly target: PolicyTarget }
  | { readonly ok: false; readonly message: string } {
  const expected = "expected repo, owner/repo or repo:path/to/file.yml";
  if (typeof value !== "string") return { ok: false, message: `${expected}, got ${kindOf(value)}` };
  const match = EXTENDS.exec(value);
  if (match === null) return { ok: false, message: expected };
  const [, owner, repo = "", path = POLICY_FILE] = match;
  if (repo === "." || repo === "..")
    return { ok: false, message: `${expected}: no such repository name` };
  if (path.split("/").some((s) => s === "" || s === "." || s === "..")) {
    return {
      ok: false,
      message: "the path must not start with / nor have empty, . or .. segments",
    };
  }
  return { ok: true, target: target(owner ?? from.owner, repo, path) };
}

/** `file:line: key.path: message`, as `policy check` prints an error and a ticket shows it. */
export function formatPolicyError(error: PolicyError): string {
  const where = error.line === null ? error.file : `${error.file}:${error.line}`;
  return `${where}: ${error.path === "" ? "" : `${error.path}: `}${error.message}`;
}

function target(owner: string | null, repo: string, path: string): PolicyTarget {
  return { owner, repo, path, file: `${owner === null ? "" : `${owner}/`}${repo}:${path}` };
}

function whole(file: string, message: string): PolicyError {
  return { file, line: null, path: "", message };
}

/** The file a top-level key was taken from (the nearest that sets it), and the key's line there. */
function whereIn(
  layers: readonly PolicyLayer[],
  path: KeyPath,
): { file: string; line: number | null } {
  const key = path[0];
  const layer =
    layers.find(
      (l) =>
        typeof key === "string" &&
        l.value !== null &&
        typeof l.value === "object" &&
        Object.hasOwn(l.value, key),
    ) ?? layers[0];
  return layer ? { file: layer.file, line: layer.locate(path) } : { file: POLICY_FILE, line: null };
}
