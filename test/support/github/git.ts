/**
 * The simulator's commit graph: commits with full file trees, parents, and the
 * ancestry questions GitHub answers (compare, merge base, what a commit
 * changed). Shas look like git's but are not computed the way git computes them.
 */
import { createHash } from "node:crypto";

/** Files a commit changes: path → new content, or `null` to delete the file. */
export type FileChanges = Readonly<Record<string, string | null>>;

export interface GitIdentity {
  readonly name: string;
  readonly email: string;
  /** The GitHub account the email belongs to; `null` for an email GitHub does not know. */
  readonly login: string | null;
}

export interface Commit {
  readonly sha: string;
  readonly parents: readonly string[];
  /** Every file of the commit: path → content. */
  readonly tree: ReadonlyMap<string, string>;
  readonly treeSha: string;
  readonly message: string;
  readonly author: GitIdentity;
  readonly committer: GitIdentity;
  readonly date: Date;
}

export interface FileDiff {
  readonly path: string;
  readonly status: "added" | "modified" | "removed";
  readonly before: string | null;
  readonly after: string | null;
}

export type CompareStatus = "identical" | "ahead" | "behind" | "diverged";

export interface Comparison {
  readonly status: CompareStatus;
  /** Commits reachable from head and not from base, oldest first. */
  readonly ahead: readonly Commit[];
  /** Commits reachable from base and not from head, oldest first. */
  readonly behind: readonly Commit[];
  readonly mergeBase: Commit | null;
}

export const ZERO_SHA = "0".repeat(40);

/** The sha git gives a blob with this content. */
export function blobSha(content: string): string {
  const bytes = Buffer.from(content, "utf8");
  return createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
}

export class CommitGraph {
  readonly #commits = new Map<string, Commit>();
  /** Insertion order, which is a topological order: parents exist before children. */
  readonly #order = new Map<string, number>();

  /**
   * Adds a commit. Its tree is its first parent's tree with `changes` applied,
   * or `tree` when given (merge commits).
   */
  add(input: {
    parents: readonly string[];
    changes?: FileChanges;
    tree?: ReadonlyMap<string, string>;
    message: string;
    author: GitIdentity;
    committer?: GitIdentity;
    date: Date;
  }): Commit {
    for (const parent of input.parents) this.require(parent);
    const first = input.parents[0];
    const tree = new Map(input.tree ?? (first ? this.require(first).tree : []));
    for (const [path, content] of Object.entries(input.changes ?? {})) {
      if (content === null) tree.delete(path);
      else tree.set(path, content);
    }
    const treeSha = hash([...tree].sort(([a], [b]) => (a < b ? -1 : 1)));
    const sha = hash([treeSha, input.parents, input.message, input.author, this.#order.size]);
    const commit: Commit = {
      sha,
      parents: [...input.parents],
      tree,
      treeSha,
      message: input.message,
      author: input.author,
      committer: input.committer ?? input.author,
      date: input.date,
    };
    this.#commits.set(sha, commit);
    this.#order.set(sha, this.#order.size);
    return commit;
  }

  get(sha: string): Commit | undefined {
    return this.#commits.get(sha);
  }

  require(sha: string): Commit {
    const commit = this.#commits.get(sha);
    if (!commit) throw new Error(`no commit ${sha}`);
    return commit;
  }

  /** The commit itself and every commit it descends from. */
  ancestors(sha: string): Set<string> {
    const seen = new Set<string>();
    const queue = [sha];
    for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
      if (seen.has(next)) continue;
      seen.add(next);
      queue.push(...this.require(next).parents);
    }
    return seen;
  }

  /** `base...head` as GitHub's compare endpoint sees it. */
  compare(base: string, head: string): Comparison {
    const fromBase = this.ancestors(base);
    const fromHead = this.ancestors(head);
    const ahead = this.#oldestFirst([...fromHead].filter((sha) => !fromBase.has(sha)));
    const behind = this.#oldestFirst([...fromBase].filter((sha) => !fromHead.has(sha)));
    const common = this.#oldestFirst([...fromHead].filter((sha) => fromBase.has(sha)));
    const status: CompareStatus =
      ahead.length === 0 && behind.length === 0
        ? "identical"
        : behind.length === 0
          ? "ahead"
          : ahead.length === 0
            ? "behind"
            : "diverged";
    return { status, ahead, behind, mergeBase: common.at(-1) ?? null };
  }

  /** What changed from one tree to another (`from` null: everything was added). */
  diff(from: Commit | null, to: Commit): FileDiff[] {
    const before = from?.tree ?? new Map<string, string>();
    const diffs: FileDiff[] = [];
    for (const [path, after] of to.tree) {
      const old = before.get(path);
      if (old === undefined) diffs.push({ path, status: "added", before: null, after });
      else if (old !== after) diffs.push({ path, status: "modified", before: old, after });
    }
    for (const [path, old] of before) {
      if (!to.tree.has(path)) diffs.push({ path, status: "removed", before: old, after: null });
    }
    return diffs.sort((a, b) => (a.path < b.path ? -1 : 1));
  }

  /** The tree of merging `head` into `base`: base plus what head changed since their merge base (head wins conflicts). */
  mergedTree(base: string, head: string): Map<string, string> {
    const { mergeBase } = this.compare(base, head);
    const tree = new Map(this.require(base).tree);
    for (const change of this.diff(mergeBase, this.require(head))) {
      if (change.after === null) tree.delete(change.path);
      else tree.set(change.path, change.after);
    }
    return tree;
  }

  /** Commits in the order they were made. */
  #oldestFirst(shas: string[]): Commit[] {
    const position = (commit: Commit) => this.#order.get(commit.sha) ?? 0;
    return shas.map((sha) => this.require(sha)).sort((a, b) => position(a) - position(b));
  }
}

function hash(value: unknown): string {
  return createHash("sha1").update(JSON.stringify(value)).digest("hex");
}
