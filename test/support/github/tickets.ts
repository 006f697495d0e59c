/**
 * Issues and pull requests of the simulated GitHub, with their labels,
 * comments, reviews and check runs. Pull requests are issues with a `pull`
 * part, as on GitHub: they share numbers, comments and labels.
 */
import type { Commit, FileChanges } from "./git.js";
import type {
  CheckRun,
  Issue,
  IssueComment,
  Label,
  Pull,
  PullRequest,
  Repo,
  RepoRef,
  Review,
  ReviewState,
} from "./model.js";
import { RepoModel } from "./repos.js";

const LABEL_COLORS = ["d73a4a", "0075ca", "a2eeef", "7057ff", "008672", "e4e669"];

export class TicketModel extends RepoModel {
  readonly comments = new Map<number, IssueComment>();
  readonly checkRuns = new Map<number, CheckRun>();

  /** Opens an issue; its number is the repository's next issue or pull request number. */
  openIssue(
    ref: RepoRef,
    input: { author: string; title?: string; body?: string | null; labels?: readonly string[] },
  ): Issue {
    return this.#open(this.repo(ref), input, null);
  }

  /**
   * Opens a pull request from `head` (a branch of this repository, or
   * `{ repo, branch }` of a fork) into `base` (default: the default branch).
   * With `files`, the head branch is first created from the base with one commit by the author.
   */
  openPullRequest(
    ref: RepoRef,
    input: {
      author: string;
      head: string | { repo: RepoRef; branch: string };
      base?: string;
      files?: FileChanges;
      title?: string;
      body?: string | null;
      labels?: readonly string[];
      draft?: boolean;
    },
  ): PullRequest {
    const repo = this.repo(ref);
    const baseRef = input.base ?? repo.defaultBranch;
    const head =
      typeof input.head === "string" ? { repo: repo.id, branch: input.head } : input.head;
    const headRepo = this.repo(head.repo);
    if (input.files) {
      const from = headRepo.branches.get(head.branch) ?? this.branchHead(repo.id, baseRef);
      this.commit(headRepo.id, {
        branch: head.branch,
        files: input.files,
        parents: [from],
        author: input.author,
      });
    }
    const pull: Pull = {
      id: this.nextId(),
      head: {
        repoId: headRepo.id,
        ref: head.branch,
        sha: this.branchHead(headRepo.id, head.branch),
      },
      base: { ref: baseRef, sha: this.branchHead(repo.id, baseRef) },
      draft: input.draft ?? false,
      merged: false,
      mergedAt: null,
      mergedBy: null,
      mergeCommitSha: null,
      reviews: [],
    };
    this.refreshMergeCommit(repo, pull);
    return this.#open(repo, input, pull) as PullRequest;
  }

  #open(
    repo: Repo,
    input: { author: string; title?: string; body?: string | null; labels?: readonly string[] },
    pull: Pull | null,
  ): Issue {
    const number = Math.max(0, ...repo.issues.keys()) + 1;
    const now = this.now();
    const issue: Issue = {
      id: this.nextId(),
      repoId: repo.id,
      number,
      title: input.title ?? `${pull ? "Pull request" : "Issue"} ${number}`,
      body: input.body ?? null,
      author: this.addUser(input.author).login,
      labels: [],
      state: "open",
      stateReason: null,
      createdAt: now,
      updatedAt: now,
      closedAt: null,
      closedBy: null,
      pull,
    };
    repo.issues.set(number, issue);
    for (const label of input.labels ?? []) this.addLabel(repo.id, number, label);
    return issue;
  }

  /** The issue or pull request with this number; throws when there is none. */
  issue(ref: RepoRef, number: number): Issue {
    const issue = this.repo(ref).issues.get(number);
    if (!issue) throw new Error(`simulator: no issue #${number} in ${ref}`);
    return issue;
  }

  /** A pull request and its pull part; throws for an issue. */
  pull(ref: RepoRef, number: number): PullRequest {
    const issue = this.issue(ref, number);
    if (!issue.pull) throw new Error(`simulator: #${number} in ${ref} is not a pull request`);
    return issue as PullRequest;
  }

  /** Changes title and/or body; returns the values before, for `changes.*.from` of an `edited` event. */
  editIssue(
    ref: RepoRef,
    number: number,
    change: { title?: string; body?: string | null },
  ): { title: string; body: string | null } {
    const issue = this.issue(ref, number);
    const before = { title: issue.title, body: issue.body };
    if (change.title !== undefined) issue.title = change.title;
    if (change.body !== undefined) issue.body = change.body;
    issue.updatedAt = this.now();
    return before;
  }

  addLabel(ref: RepoRef, number: number, name: string): Label {
    const repo = this.repo(ref);
    const issue = this.issue(ref, number);
    const label = this.label(repo, name);
    if (!issue.labels.includes(label.name)) issue.labels.push(label.name);
    issue.updatedAt = this.now();
    return label;
  }

  removeLabel(ref: RepoRef, number: number, name: string): void {
    const issue = this.issue(ref, number);
    issue.labels = issue.labels.filter((l) => l.toLowerCase() !== name.toLowerCase());
    issue.updatedAt = this.now();
  }

  /** The repository's label of this name, created on first use. */
  label(repo: Repo, name: string): Label {
    const key = name.toLowerCase();
    const existing = repo.labels.get(key);
    if (existing) return existing;
    const color = LABEL_COLORS[repo.labels.size % LABEL_COLORS.length] ?? "ededed";
    const label: Label = { id: this.nextId(), name, color, description: null };
    repo.labels.set(key, label);
    return label;
  }

  closeIssue(
    ref: RepoRef,
    number: number,
    options: { by?: string; reason?: "completed" | "not_planned" } = {},
  ): Issue {
    const issue = this.issue(ref, number);
    const now = this.now();
    issue.state = "closed";
    issue.stateReason = issue.pull ? null : (options.reason ?? "completed");
    issue.closedAt = now;
    issue.closedBy = options.by ?? issue.author;
    issue.updatedAt = now;
    return issue;
  }

  reopenIssue(ref: RepoRef, number: number): Issue {
    const issue = this.issue(ref, number);
    issue.state = "open";
    issue.stateReason = issue.pull ? null : "reopened";
    issue.closedAt = null;
    issue.closedBy = null;
    issue.updatedAt = this.now();
    return issue;
  }

  /** Merges a pull request with a merge commit on its base branch and closes it; returns the merge sha. */
  mergePullRequest(ref: RepoRef, number: number, options: { by: string }): string {
    const repo = this.repo(ref);
    const issue = this.pull(ref, number);
    const { pull } = issue;
    const merge = this.git.add({
      parents: [pull.base.sha, pull.head.sha],
      tree: this.git.mergedTree(pull.base.sha, pull.head.sha),
      message: `Merge pull request #${number}`,
      author: this.identity(options.by),
      date: this.now(),
    });
    const sha = merge.sha;
    pull.merged = true;
    pull.mergedAt = this.now();
    pull.mergedBy = this.user(options.by).login;
    pull.mergeCommitSha = sha;
    this.closeIssue(ref, number, { by: options.by });
    this.advanceBranch(repo, pull.base.ref, merge);
    return sha;
  }

  /** The commits a pull request adds to its base, oldest first. */
  pullCommits(issue: PullRequest): readonly Commit[] {
    return this.git.compare(issue.pull.base.sha, issue.pull.head.sha).ahead;
  }

  /** Keeps open pull requests on a moved branch current: head sha, base sha, test merge commit. */
  protected override branchMoved(repo: Repo, branch: string): void {
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

  // --- comments -----------------------------------------------------------

  /** A comment by a person (or by the App, with `author: sim.app.bot`). */
  comment(ref: RepoRef, number: number, input: { author: string; body: string }): IssueComment {
    const issue = this.issue(ref, number);
    const now = this.now();
    const comment: IssueComment = {
      id: this.nextId(),
      repoId: issue.repoId,
      number,
      author: this.addUser(input.author).login,
      body: input.body,
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
      edits: [],
    };
    this.comments.set(comment.id, comment);
    return comment;
  }

  /** Replaces a comment's body; returns the body before, for `changes.body.from`. */
  editComment(id: number, body: string, options: { by?: string } = {}): string {
    const comment = this.liveComment(id);
    const before = comment.body;
    const now = this.now();
    comment.edits.push({ body: before, at: now, by: options.by ?? comment.author });
    comment.body = body;
    comment.updatedAt = now;
    return before;
  }

  deleteComment(id: number): IssueComment {
    const comment = this.liveComment(id);
    comment.deletedAt = this.now();
    return comment;
  }

  liveComment(id: number): IssueComment {
    const comment = this.comments.get(id);
    if (!comment || comment.deletedAt) throw new Error(`simulator: no comment ${id}`);
    return comment;
  }

  /** The comments a reader of the ticket sees now, oldest first: edits applied, deleted ones gone. */
  commentsOn(ref: RepoRef, number: number): IssueComment[] {
    const issue = this.issue(ref, number);
    return [...this.comments.values()].filter(
      (c) => c.repoId === issue.repoId && c.number === number && c.deletedAt === null,
    );
  }

  // --- reviews and check runs -----------------------------------------------

  /** A submitted review, on the pull request's head unless `commitId` says otherwise. */
  review(
    ref: RepoRef,
    number: number,
    input: {
      user: string;
      state: Exclude<ReviewState, "DISMISSED">;
      body?: string;
      commitId?: string;
    },
  ): Review {
    const issue = this.pull(ref, number);
    const review: Review = {
      id: this.nextId(),
      repoId: issue.repoId,
      number,
      user: this.addUser(input.user).login,
      state: input.state,
      body: input.body ?? "",
      commitId: input.commitId ?? issue.pull.head.sha,
      submittedAt: this.now(),
      dismissed: false,
    };
    issue.pull.reviews.push(review);
    return review;
  }

  dismissReview(ref: RepoRef, number: number, reviewId: number): Review {
    const review = this.pull(ref, number).pull.reviews.find((r) => r.id === reviewId);
    if (!review) throw new Error(`simulator: no review ${reviewId} on #${number}`);
    review.dismissed = true;
    return review;
  }

  /** Check runs on the repository, optionally only those on one commit, oldest first. */
  checkRunsFor(ref: RepoRef, headSha?: string): CheckRun[] {
    const repo = this.repo(ref);
    return [...this.checkRuns.values()].filter(
      (run) => run.repoId === repo.id && (headSha === undefined || run.headSha === headSha),
    );
  }
}
