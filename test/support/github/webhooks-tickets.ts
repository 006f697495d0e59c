/**
 * Ticket webhooks: `issues`, `issue_comment`, `pull_request` and
 * `pull_request_review`, about issues, comments, pull requests and reviews
 * of the simulator's model as it is now.
 */
import type { PullRequest } from "./model.js";
import { iso } from "./render.js";
import type { GitHubSimulator } from "./simulator.js";
import {
  commentPayload,
  type EventOf,
  example,
  issuePayload,
  labelPayload,
  pullRequestPayload,
  repoEventCommon,
  reviewPayload,
  simplePullRequestPayload,
} from "./webhook-parts.js";
import type { IssueRef, Webhook } from "./webhooks.js";

type Changes = { title?: { from: string }; body?: { from: string } };

function required<T>(value: T | undefined, name: string, event: string): T {
  if (value === undefined) throw new Error(`${event}: ${name} is required`);
  return value;
}

export type IssuesAction =
  | "opened"
  | "edited"
  | "labeled"
  | "unlabeled"
  | "closed"
  | "reopened"
  | "transferred"
  | "deleted";

/**
 * An `issues` event about the issue as the model has it now. `label` names the
 * label added or removed; `changes` gives `edited` its `from` values (see
 * `sim.editIssue`, which returns them). The sender defaults to the author
 * (the closer, for `closed`). `transferred` names the issue it became (`to`,
 * opened in the other repository first); for `transferred` and `deleted` the
 * issue is described as the model still has it.
 */
export function issuesEvent<A extends IssuesAction>(
  sim: GitHubSimulator,
  action: A,
  ref: IssueRef,
  options: { sender?: string; label?: string; changes?: Changes; to?: IssueRef } = {},
): Webhook<"issues", EventOf<"issues", A>> {
  const issue = sim.issue(ref.repoId, ref.number);
  const sender = options.sender ?? (action === "closed" ? issue.closedBy : null) ?? issue.author;
  const common = repoEventCommon(sim, issue.repoId, sender);
  const body = issuePayload(sim.view, issue);
  const label = () =>
    labelPayload(
      sim.view,
      sim.repo(issue.repoId),
      required(options.label, "label", `issues.${action}`),
    );
  const build: { [K in IssuesAction]: () => EventOf<"issues", K> } = {
    opened: () => ({
      ...example("issues", "opened"),
      ...common,
      issue: { ...body, state: "open", closed_at: null },
    }),
    edited: () => ({
      ...example("issues", "edited"),
      ...common,
      issue: body,
      changes: options.changes ?? {},
    }),
    labeled: () => ({ ...example("issues", "labeled"), ...common, issue: body, label: label() }),
    unlabeled: () => ({
      ...example("issues", "unlabeled"),
      ...common,
      issue: body,
      label: label(),
    }),
    // The examples have no issues.closed: it is the reopened one, closed.
    closed: () => ({
      ...example("issues", "reopened"),
      ...common,
      action: "closed",
      issue: { ...body, state: "closed", closed_at: body.closed_at ?? iso(sim.now()) },
    }),
    reopened: () => ({
      ...example("issues", "reopened"),
      ...common,
      issue: { ...body, state: "open" },
    }),
    transferred: () => {
      const target = required(options.to, "to", "issues.transferred");
      const to = sim.issue(target.repoId, target.number);
      return {
        ...example("issues", "transferred"),
        ...common,
        issue: body,
        changes: {
          new_issue: issuePayload(sim.view, to),
          new_repository: repoEventCommon(sim, to.repoId, sender).repository,
        },
      };
    },
    deleted: () => ({ ...example("issues", "deleted"), ...common, issue: body }),
  };
  return { event: "issues", payload: build[action]() };
}

export type IssueCommentAction = "created" | "edited" | "deleted";

/**
 * An `issue_comment` event about a comment of the model (deleted ones stay
 * readable for `deleted`). `edited` takes `changes.body.from` from the
 * comment's last edit. The sender defaults to the author (the editor, for `edited`).
 */
export function issueCommentEvent<A extends IssueCommentAction>(
  sim: GitHubSimulator,
  action: A,
  ref: { readonly id: number },
  options: { sender?: string } = {},
): Webhook<"issue_comment", EventOf<"issue_comment", A>> {
  const comment = sim.comments.get(ref.id);
  if (!comment) throw new Error(`issue_comment.${action}: no comment ${ref.id}`);
  const lastEdit = comment.edits.at(-1);
  const sender =
    options.sender ?? (action === "edited" ? lastEdit?.by : undefined) ?? comment.author;
  const common = repoEventCommon(sim, comment.repoId, sender);
  const issue = issuePayload(sim.view, sim.issue(comment.repoId, comment.number));
  const parts = {
    ...common,
    issue: { ...issue, labels: issue.labels ?? [], locked: false, assignee: null },
    comment: commentPayload(sim.view, comment),
  };
  const build: { [K in IssueCommentAction]: () => EventOf<"issue_comment", K> } = {
    created: () => ({ ...example("issue_comment", "created"), ...parts }),
    edited: () => ({
      ...example("issue_comment", "edited"),
      ...parts,
      changes: {
        body: { from: required(lastEdit, "an edit of the comment", "issue_comment.edited").body },
      },
    }),
    deleted: () => ({ ...example("issue_comment", "deleted"), ...parts }),
  };
  return { event: "issue_comment", payload: build[action]() };
}

/** What `opened` and `reopened` say of a pull request, whatever happened to it since. */
const STILL_OPEN = {
  state: "open",
  closed_at: null,
  merged_at: null,
  merged_by: null,
  active_lock_reason: null,
} as const;

export type PullRequestAction =
  | "opened"
  | "edited"
  | "labeled"
  | "unlabeled"
  | "synchronize"
  | "closed"
  | "reopened";

/**
 * A `pull_request` event about the pull request as the model has it now.
 * `synchronize` needs `before` (the head before the push; `after` is the
 * current head); `closed` is a merge when the model says merged. The sender
 * defaults to the author (the merger or closer, for `closed`).
 */
export function pullRequestEvent<A extends PullRequestAction>(
  sim: GitHubSimulator,
  action: A,
  ref: IssueRef,
  options: { sender?: string; label?: string; changes?: Changes; before?: string } = {},
): Webhook<"pull_request", EventOf<"pull_request", A>> {
  const issue = sim.pull(ref.repoId, ref.number);
  const closer = action === "closed" ? (issue.pull.mergedBy ?? issue.closedBy) : null;
  const sender = options.sender ?? closer ?? issue.author;
  const common = { ...repoEventCommon(sim, issue.repoId, sender), number: issue.number };
  const pr = (base: Parameters<typeof pullRequestPayload>[2]) =>
    pullRequestPayload(sim.view, issue, base);
  const label = () =>
    labelPayload(
      sim.view,
      sim.repo(issue.repoId),
      required(options.label, "label", `pull_request.${action}`),
    );
  const build: { [K in PullRequestAction]: () => EventOf<"pull_request", K> } = {
    opened: () => {
      const base = example("pull_request", "opened");
      return { ...base, ...common, pull_request: { ...pr(base.pull_request), ...STILL_OPEN } };
    },
    // The examples have no pull_request.edited: it is the opened one, edited.
    edited: () => {
      const base = example("pull_request", "opened");
      return {
        ...base,
        ...common,
        action: "edited",
        changes: options.changes ?? {},
        pull_request: pr(base.pull_request),
      };
    },
    labeled: () => {
      const base = example("pull_request", "labeled");
      return { ...base, ...common, pull_request: pr(base.pull_request), label: label() };
    },
    unlabeled: () => {
      const base = example("pull_request", "unlabeled");
      return { ...base, ...common, pull_request: pr(base.pull_request), label: label() };
    },
    synchronize: () => {
      const base = example("pull_request", "synchronize");
      const before = required(options.before, "before", "pull_request.synchronize");
      return {
        ...base,
        ...common,
        pull_request: pr(base.pull_request),
        before,
        after: issue.pull.head.sha,
      };
    },
    closed: () => {
      const base = example("pull_request", "closed");
      const closed = pr(base.pull_request);
      return {
        ...base,
        ...common,
        pull_request: {
          ...closed,
          state: "closed",
          closed_at: closed.closed_at ?? iso(sim.now()),
          merged: issue.pull.merged,
        },
      };
    },
    reopened: () => {
      const base = example("pull_request", "reopened");
      return {
        ...base,
        ...common,
        pull_request: { ...pr(base.pull_request), ...STILL_OPEN, merged: false },
      };
    },
  };
  return { event: "pull_request", payload: build[action]() };
}

export type PullRequestReviewAction = "submitted" | "dismissed";

/**
 * A `pull_request_review` event about a review of the model (`sim.review`,
 * then `sim.dismissReview` for `dismissed`). The sender defaults to the reviewer.
 */
export function pullRequestReviewEvent<A extends PullRequestReviewAction>(
  sim: GitHubSimulator,
  action: A,
  ref: { readonly repoId: number; readonly number: number; readonly id: number },
  options: { sender?: string } = {},
): Webhook<"pull_request_review", EventOf<"pull_request_review", A>> {
  const issue: PullRequest = sim.pull(ref.repoId, ref.number);
  const review = issue.pull.reviews.find((r) => r.id === ref.id);
  if (!review) throw new Error(`pull_request_review.${action}: no review ${ref.id}`);
  const common = repoEventCommon(sim, issue.repoId, options.sender ?? review.user);
  const body = reviewPayload(sim.view, review);
  const build: { [K in PullRequestReviewAction]: () => EventOf<"pull_request_review", K> } = {
    submitted: () => {
      const base = example("pull_request_review", "submitted");
      return {
        ...base,
        ...common,
        review: body,
        pull_request: { ...base.pull_request, ...simplePullRequestPayload(sim.view, issue) },
      };
    },
    dismissed: () => {
      const base = example("pull_request_review", "dismissed");
      return {
        ...base,
        ...common,
        review: { ...body, state: "dismissed" },
        pull_request: { ...base.pull_request, ...simplePullRequestPayload(sim.view, issue) },
      };
    },
  };
  return { event: "pull_request_review", payload: build[action]() };
}
