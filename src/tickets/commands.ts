import { createHash } from "node:crypto";
import type { ApprovalRefusal, CommandName } from "#src/app-metrics.js";
import type { BoundResource } from "#src/rules/bind.js";
import { type Ownership, ownersOf } from "#src/rules/codeowners.js";
import { type Command, parseCommand } from "#src/rules/command.js";
import { formatDuration } from "#src/rules/duration.js";
import { isBotAccount } from "#src/rules/principal.js";
import { parseRequest, requestHash } from "#src/rules/request.js";
import {
  closeExtension,
  type Extension,
  pendingExtension,
  requestExtension,
} from "#src/store/extensions.js";
import { type Grant, latestGrant, openGrant } from "#src/store/grant-lifecycle.js";
import type { LifecycleDeps, RepoContext } from "#src/tickets/context.js";
import { decideTicket, mayApprove, isOwner as ownsPath } from "#src/tickets/decision.js";
import {
  evaluateTicket,
  grantTerms,
  readRequest,
  type TicketView,
  viewTicket,
} from "#src/tickets/evaluate.js";
import { answered, refuse as refuseOnce } from "#src/tickets/refusals.js";
import { endOpenGrant, extend, record, recordApproval, say } from "#src/tickets/transitions.js";

/** A new comment, as the `issue_comment.created` payload gives it. */
export interface NewComment {
  readonly id: number;
  readonly body: string;
  readonly author: { readonly id: number; readonly login: string; readonly isBot: boolean };
  readonly createdAt: Date;
  readonly issue: {
    readonly number: number;
    readonly body: string;
    readonly isPullRequest: boolean;
  };
}

interface Env {
  readonly deps: LifecycleDeps;
  readonly ctx: RepoContext;
  readonly view: TicketView;
  readonly comment: NewComment;
  /** Set once the command was refused (counted then), so that it is not counted done too. */
  refused?: boolean;
}

/**
 * Carries out the command of a new comment. Only new comments act (edits and
 * deletions never do); commands from bots and from people without read
 * access to the repository are ignored (`answered`), before anything is
 * read: a comment costs hallpass one API call unless its author could act.
 * A command from someone not allowed to give it gets a short reply saying
 * why, and an audit event, at most once per person and ticket a minute
 * (`refuse`).
 */
export async function handleComment(
  deps: LifecycleDeps,
  ctx: RepoContext,
  comment: NewComment,
): Promise<void> {
  if (isBotAccount(comment.author)) return;
  const parsed = parseCommand(comment.body);
  if (!parsed) return;
  if (!(await answered(ctx, comment.author))) {
    return deps.log.debug(
      { ticket: comment.issue.number, actor: comment.author.login },
      "command from someone without access to the repository; ignored",
    );
  }
  const view = await viewTicket(deps, ctx, comment.issue.number);
  const env: Env = { deps, ctx, view, comment };
  if (!view.labeled && !(await latestGrant(deps.db, view.ticket.id))) {
    return deps.log.debug(
      { ticket: comment.issue.number },
      "command on a ticket that is not an access request",
    );
  }
  if (!parsed.ok) return refuse(env, parsed.command, parsed.problem);
  const command = parsed.command;
  await carryOut(env, command);
  if (!env.refused) deps.metrics?.command(command.name, "done");
}

function carryOut(env: Env, command: Command): Promise<void> {
  switch (command.name) {
    case "status":
      return status(env);
    case "approve":
      return approve(env);
    case "deny":
      return deny(env, command.reason);
    case "revoke":
    case "done":
      return revoke(env, command);
    case "extend":
      return extendCommand(env, command.seconds);
    case "break-glass":
      return breakGlass(env, command.reason);
  }
}

/**
 * Answers a refused command (at most once per person and ticket a minute,
 * whatever the channel: `refuseOnce`) and counts it; a refused `/approve`
 * also counts as a refused approval, by `reason`.
 */
async function refuse(
  env: Env,
  command: `/${CommandName}`,
  why: string,
  reason?: ApprovalRefusal,
): Promise<void> {
  await refuseOnce(
    env.deps,
    env.view.scope,
    env.comment.author,
    { command, why },
    { kind: "command.refused", data: { comment_id: env.comment.id } },
  );
  env.refused = true;
  env.deps.metrics?.command(command.slice(1) as CommandName, "refused");
  if (reason) env.deps.metrics?.approvalRefused(reason);
}

const isRequester = (env: Env, grant: Grant | null) =>
  grant !== null
    ? grant.requesterId === env.comment.author.id
    : env.view.live.author.id === env.comment.author.id;

/** The resource of the open grant (or of the ticket's request), with its ownership. */
function resourceOf(
  env: Pick<Env, "deps" | "view">,
  grant: Grant | null,
): { resource: BoundResource; ownership: Ownership } | null {
  const name =
    grant?.resource ??
    (() => {
      const parsed = parseRequest(env.view.live.body, env.view.bound, env.deps.now());
      return parsed.ok ? parsed.request.resource : null;
    })();
  const resource = name ? env.view.bound.get(name) : undefined;
  if (!resource) return null;
  return { resource, ownership: ownersOf(env.view.rules.codeowners, resource.policy.path) };
}

/** Whether the commenter is a code owner of the resource path, as CODEOWNERS of the default branch says now. */
function isOwner(env: Env, resource: BoundResource, ownership: Ownership): Promise<boolean> {
  return ownsPath(env.ctx, resource, ownership, env.comment.author.login);
}

const ownersText = (ownership: Ownership) =>
  ownership.status === "owned"
    ? ownership.owners.map((o) => o.text).join(", ")
    : "nobody (see CODEOWNERS)";

async function approve(env: Env): Promise<void> {
  const { deps, view, comment } = env;
  const grant = await openGrant(deps.db, view.ticket.id);
  if (comment.issue.isPullRequest) {
    return refuse(
      env,
      "/approve",
      "on a pull request, approve with a review: it binds the approval to the reviewed commit",
      "pull_request_comment",
    );
  }
  if (!grant)
    return refuse(
      env,
      "/approve",
      "there is no pending request on this ticket to approve",
      "no_pending_request",
    );
  const target = resourceOf(env, grant);
  if (!target)
    return refuse(
      env,
      "/approve",
      "there is no valid request on this ticket to approve",
      "unreadable_request",
    );
  if (isRequester(env, grant))
    return refuse(env, "/approve", "you cannot approve your own request", "own_request");
  const may = await mayApprove(env, target.resource, target.ownership, comment.author.login);
  if (may !== null) {
    return refuse(
      env,
      "/approve",
      may.reason === "not_code_owner" ? `${may.why} (${ownersText(target.ownership)})` : may.why,
      may.reason,
    );
  }
  if (grant.state === "active") {
    const extension = await pendingExtension(deps.db, grant.id);
    if (extension) return approveExtension(env, grant, extension);
    if (grant.breakGlass && !grant.reviewedAt) return reviewBreakGlass(env, grant);
    return refuse(env, "/approve", "this access is already granted", "already_granted");
  }
  // Bound to the request as the approver saw it when commenting.
  const seen = readRequest(comment.issue.body, view, comment.createdAt, grant);
  const seenResource = seen.ok ? view.bound.get(seen.request.resource) : undefined;
  if (!seen.ok || !seenResource)
    return refuse(
      env,
      "/approve",
      "the request on this ticket cannot be read, so there is nothing to approve",
      "unreadable_request",
    );
  const hash = requestHash(seen.request, seenResource);
  const recorded = await approveByComment(env, grant, hash, { request_hash: hash });
  if (recorded === "stale")
    return refuse(env, "/approve", "the request it approved is no longer pending");
  await evaluateTicket(deps, env.ctx, view.ticket.number, {
    kind: "approval",
    actor: comment.author.login,
    view,
  });
}

/** A code owner's `/approve` of an active break-glass grant is its review after the fact. */
async function reviewBreakGlass(env: Env, grant: Grant): Promise<void> {
  await approveByComment(env, grant, grant.requestHash, {}, { reviewed: true });
}

/** Records the comment's `/approve` as an approval of `grant`, bound to `hash`. */
function approveByComment(
  env: Env,
  grant: Grant,
  hash: string,
  data: { readonly [key: string]: string },
  options: { readonly reviewed?: boolean } = {},
): Promise<"recorded" | "known" | "stale"> {
  const { deps, view, comment } = env;
  return recordApproval(
    deps.db,
    view.scope,
    {
      grantId: grant.id,
      approverId: comment.author.id,
      approverLogin: comment.author.login,
      channel: "comment",
      sourceId: comment.id,
      requestHash: hash,
      commitId: null,
      at: notAfter(comment.createdAt, deps.now()),
    },
    { comment_id: comment.id, ...data },
    { ...options, ...(deps.metrics ? { metrics: deps.metrics } : {}) },
  );
}

async function deny(env: Env, reason: string): Promise<void> {
  const grant = await openGrant(env.deps.db, env.view.ticket.id);
  if (grant?.state !== "pending")
    return refuse(env, "/deny", "there is no pending request to deny");
  const target = resourceOf(env, grant);
  if (!target || !(await isOwner(env, target.resource, target.ownership))) {
    return refuse(
      env,
      "/deny",
      `only code owners of ${target?.resource.policy.path ?? "the resource"} can deny`,
    );
  }
  await endOpenGrant(env.deps.db, env.view.scope, {
    grantId: grant.id,
    whenActive: "revoked",
    whenPending: "denied",
    reason,
    by: env.comment.author.login,
  });
}

async function revoke(
  env: Env,
  command: Extract<Command, { name: "revoke" | "done" }>,
): Promise<void> {
  const grant = await openGrant(env.deps.db, env.view.ticket.id);
  const name = `/${command.name}` as const;
  if (!grant) return refuse(env, name, "there is no pending or active access on this ticket");
  const requester = isRequester(env, grant);
  if (command.name === "done" && !requester)
    return refuse(
      env,
      name,
      "only the requester can give access back with /done; code owners use /revoke",
    );
  if (!requester) {
    const target = resourceOf(env, grant);
    if (!target || !(await isOwner(env, target.resource, target.ownership))) {
      return refuse(
        env,
        name,
        `only the requester or a code owner of ${target?.resource.policy.path ?? "the resource"} can revoke`,
      );
    }
  }
  await endOpenGrant(env.deps.db, env.view.scope, {
    grantId: grant.id,
    whenActive: "revoked",
    whenPending: "cancelled",
    reason:
      command.name === "done"
        ? "the requester gave access back"
        : `revoked by ${env.comment.author.login}`,
    by: env.comment.author.login,
  });
}

async function breakGlass(env: Env, reason: string): Promise<void> {
  const grant = await openGrant(env.deps.db, env.view.ticket.id);
  if (grant?.state === "active")
    return refuse(env, "/break-glass", "access is already granted on this ticket");
  if (!isRequester(env, grant))
    return refuse(
      env,
      "/break-glass",
      "only the requester can break the glass on their own request",
    );
  await evaluateTicket(env.deps, env.ctx, env.view.ticket.number, {
    kind: "command",
    actor: env.comment.author.login,
    breakGlass: { reason },
    view: env.view,
  });
}

async function status(env: Env): Promise<void> {
  const { deps, view } = env;
  const grant =
    (await openGrant(deps.db, view.ticket.id)) ?? (await latestGrant(deps.db, view.ticket.id));
  const trace: string[] = [];
  let state = grant?.state ?? "no request";
  if (!view.labeled) trace.push(`the ticket does not carry the ${view.label} label`);
  trace.push(...view.policyProblems);
  if (grant?.state === "pending") {
    const parsed = readRequest(view.live.body, view, deps.now(), grant);
    const target = resourceOf(env, grant);
    if (parsed.ok && target) {
      const decision = await decideTicket(env, {
        grant,
        request: parsed.request,
        requestHash: requestHash(parsed.request, target.resource),
        resource: target.resource,
        ownership: target.ownership,
      });
      trace.push(...decision.trace);
    } else if (!parsed.ok) {
      trace.push(...parsed.problems);
    }
  } else if (grant?.state === "active" && grant.endsAt) {
    state = `active until ${grant.endsAt.toISOString()}`;
    trace.push(
      `granted ${grant.scopes.join(", ")} on ${grant.resource} (${grant.decision}${grant.approvers.length > 0 ? ` by ${grant.approvers.join(", ")}` : ""})`,
    );
  } else if (grant) {
    trace.push(`${grant.state}${grant.endReason ? `: ${grant.endReason}` : ""}`);
  }
  await say(
    deps.db,
    view.scope,
    `status/${env.comment.id}`,
    { kind: "status", state, trace },
    {
      kind: "status.requested",
      actor: `github:${env.comment.author.login}`,
      grantId: grant?.id ?? null,
      data: { comment_id: env.comment.id },
    },
  );
}

/**
 * `/extend <duration>` on an active grant: more time on the same terms. It
 * needs code owners' approval again (bound to the extension's own hash),
 * unless an auto-approve rule covers the whole extended duration.
 */
async function extendCommand(env: Env, seconds: number): Promise<void> {
  const { deps, view, comment } = env;
  const grant = await openGrant(deps.db, view.ticket.id);
  if (grant?.state !== "active" || !grant.startsAt || !grant.endsAt)
    return refuse(env, "/extend", "there is no active access to extend");
  if (!isRequester(env, grant))
    return refuse(env, "/extend", "only the requester can ask for more time");
  const target = resourceOf(env, grant);
  if (!target)
    return refuse(env, "/extend", `${grant.resource} is no longer in this repository's policy`);
  const total = (grant.endsAt.getTime() - grant.startsAt.getTime()) / 1000 + seconds;
  if (total > target.resource.maxTtl) {
    return refuse(
      env,
      "/extend",
      `that would make ${formatDuration(total)} in all; ${grant.resource} allows at most ${formatDuration(target.resource.maxTtl)}`,
    );
  }
  const hash = createHash("sha256")
    .update(`${grant.id}/${grant.endsAt.toISOString()}/${seconds}`)
    .digest("hex");
  const extension = await deps.db.transaction(async (tx) => {
    const e = await requestExtension(tx, {
      grantId: grant.id,
      extendByS: seconds,
      requestHash: hash,
      by: comment.author,
      commentId: comment.id,
    });
    await record(tx, view.scope, {
      kind: "grant.extension_requested",
      actor: `github:${comment.author.login}`,
      grantId: grant.id,
      data: { extend_by_s: seconds, request_hash: hash },
    });
    return e;
  });
  if (await tryExtend(env, grant, extension, target)) return;
  await say(
    deps.db,
    view.scope,
    `extension/${extension.id}`,
    {
      kind: "extension_requested",
      requester: comment.author.login,
      extendBySeconds: seconds,
      approvers:
        target.ownership.status === "owned"
          ? target.ownership.owners.filter((o) => o.kind !== "email").map((o) => o.text)
          : [],
    },
    {
      kind: "grant.extension_pending",
      actor: "hallpass",
      grantId: grant.id,
      data: { extend_by_s: seconds },
    },
  );
}

/**
 * An approving review of a PR whose active grant has a pending extension:
 * the review approves the extension (bound to its own hash), as `/approve`
 * does on an issue.
 */
export async function approveExtensionByReview(
  env: Pick<Env, "deps" | "ctx" | "view">,
  grant: Grant,
  extension: Extension,
  review: { id: number; reviewer: { id: number; login: string }; commitId: string; at: Date },
): Promise<void> {
  const { deps, view } = env;
  await recordApproval(
    deps.db,
    view.scope,
    {
      grantId: grant.id,
      approverId: review.reviewer.id,
      approverLogin: review.reviewer.login,
      channel: "review",
      sourceId: review.id,
      requestHash: extension.requestHash,
      commitId: review.commitId,
      at: review.at,
    },
    { review_id: review.id, extension: extension.id },
    deps.metrics ? { metrics: deps.metrics } : {},
  );
  const target = resourceOf(env, grant);
  if (target) await tryExtend(env, grant, extension, target);
}

async function approveExtension(env: Env, grant: Grant, extension: Extension): Promise<void> {
  await approveByComment(env, grant, extension.requestHash, { extension: extension.id });
  const target = resourceOf(env, grant);
  if (target) await tryExtend(env, grant, extension, target);
}

/** Decides an extension like a request for the whole extended duration; extends when granted. */
async function tryExtend(
  env: Pick<Env, "deps" | "ctx" | "view">,
  grant: Grant,
  extension: Extension,
  target: { resource: BoundResource; ownership: Ownership },
): Promise<boolean> {
  const { deps, view } = env;
  if (!grant.startsAt || !grant.endsAt) return false;
  const total = (grant.endsAt.getTime() - grant.startsAt.getTime()) / 1000 + extension.extendByS;
  const terms = grantTerms(grant);
  const decision = await decideTicket(env, {
    grant,
    request: {
      resource: grant.resource,
      scopes: grant.scopes,
      durationSeconds: total,
      reason: terms.reason,
      start: null,
      source: "block",
    },
    requestHash: extension.requestHash,
    resource: target.resource,
    ownership: target.ownership,
  });
  if (decision.kind !== "grant" && decision.kind !== "auto_approved") return false;
  const endsAt = new Date(
    grant.startsAt.getTime() + Math.min(total, target.resource.maxTtl) * 1000,
  );
  const approvers = decision.kind === "grant" ? decision.approvers.map((a) => a.login) : [];
  const extended = await extend(
    deps.db,
    view.scope,
    grant.id,
    endsAt,
    approvers,
    decision.kind === "grant" ? `github:${approvers.at(-1)}` : "hallpass",
  );
  if (extended) await deps.db.transaction((tx) => closeExtension(tx, extension.id, "approved"));
  return extended !== null;
}

/**
 * An approval's time as recorded: GitHub's timestamp, but never later than
 * our own clock — with a GitHub clock ahead of ours, a fresh approval would
 * otherwise look dated in the future and not count until a later event.
 */
export function notAfter(at: Date, now: Date): Date {
  return at.getTime() > now.getTime() ? now : at;
}
