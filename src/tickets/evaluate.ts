import { createHash } from "node:crypto";
import { fetchTicket, type LiveTicket } from "#src/github/api.js";
import { loadRules, type RepoRules } from "#src/github/rules.js";
import { type BoundResource, bindPolicy } from "#src/rules/bind.js";
import { type Ownership, ownersOf } from "#src/rules/codeowners.js";
import type { Decision } from "#src/rules/decide.js";
import type { Policy } from "#src/rules/policy.js";
import { formatPolicyError } from "#src/rules/policy-load.js";
import {
  type AccessRequest,
  parseRequest,
  type RequestResult,
  requestHash,
} from "#src/rules/request.js";
import {
  type EndCause,
  type Grant,
  latestGrant,
  openGrant,
  type RequestTerms,
} from "#src/store/grant-lifecycle.js";
import { recordPolicySources } from "#src/store/policy-sources.js";
import { rulesGeneration } from "#src/store/rules-generations.js";
import { type BodySet, bodySetter, recordBodySet } from "#src/store/ticket-bodies.js";
import { type Ticket, upsertTicket } from "#src/store/tickets.js";
import {
  type LifecycleDeps,
  OPENS_REQUESTS,
  type RepoContext,
  type Trigger,
} from "#src/tickets/context.js";
import { decideTicket, ownersAmong } from "#src/tickets/decision.js";
import type { Terms } from "#src/tickets/notices.js";
import {
  activate,
  editRequest,
  endOpenGrant,
  openRequest,
  say,
  type TicketScope,
} from "#src/tickets/transitions.js";

/** The ticket, its rules and its request, as read at one moment. */
export interface TicketView {
  readonly live: LiveTicket;
  readonly ticket: Ticket;
  readonly scope: TicketScope;
  readonly rules: RepoRules;
  readonly policy: Policy | null;
  /** Problems of the policy itself (not of the request). */
  readonly policyProblems: readonly string[];
  readonly bound: ReadonlyMap<string, BoundResource>;
  readonly label: string;
  readonly labeled: boolean;
  /** The repository's rules generation, read before the rules: activation needs it unchanged. */
  readonly rulesGeneration: number;
}

const DEFAULT_LABEL = "hallpass";

/** Reads the ticket from GitHub and the rules from its default branch, and records the ticket. */
export async function viewTicket(
  deps: LifecycleDeps,
  ctx: RepoContext,
  number: number,
): Promise<TicketView> {
  const repoName = { owner: ctx.repo.owner, name: ctx.repo.name };
  const generation = await rulesGeneration(deps.db, ctx.repo.id);
  const [live, rules] = await Promise.all([
    fetchTicket(ctx.gh, repoName, number),
    loadRules(ctx.gh, { ...repoName, id: ctx.repo.id }, ctx.repo.defaultBranch),
  ]);
  // A push to any of these files re-decides this repository's tickets.
  await recordPolicySources(deps.db, ctx.repo.id, ctx.installation.id, rules.policyFiles);
  const policy = rules.policy?.ok ? rules.policy.policy : null;
  const policyProblems: string[] = [];
  if (rules.policy === null) {
    policyProblems.push(
      `this repository has no .github/hallpass.yml on its default branch (${rules.defaultBranch})`,
    );
  } else if (!rules.policy.ok) {
    // As `hallpass policy check` prints them.
    for (const e of rules.policy.errors) policyProblems.push(formatPolicyError(e));
  }
  const binding = policy
    ? bindPolicy(policy, deps.operator, {
        id: ctx.repo.id,
        ownerId: ctx.repo.ownerId,
        fullName: `${ctx.repo.owner}/${ctx.repo.name}`,
      })
    : null;
  for (const e of binding?.errors ?? [])
    policyProblems.push(`.github/hallpass.yml: ${e.path}: ${e.message}`);
  const label = policy?.label ?? DEFAULT_LABEL;
  const ticket = await upsertTicket(deps.db, {
    installationId: ctx.installation.id,
    installationAccount: ctx.installation.account,
    repoId: ctx.repo.id,
    repoOwnerId: ctx.repo.ownerId,
    repoFullName: `${ctx.repo.owner}/${ctx.repo.name}`,
    number,
    kind: live.kind,
    author: { id: live.author.id, login: live.author.login },
    title: live.title,
    state: live.state,
    merged: live.merged,
    labels: live.labels,
    headSha: live.headSha,
    headRepoId: live.headRepoId,
  });
  return {
    live,
    ticket,
    scope: { ticket, repo: { id: ctx.repo.id, owner: ctx.repo.owner, name: ctx.repo.name } },
    rules,
    policy,
    policyProblems,
    bound: binding?.resources ?? new Map(),
    label,
    labeled: live.labels.some((l) => l.toLowerCase() === label.toLowerCase()),
    rulesGeneration: generation,
  };
}

/** Why a ticket is looked at, by whom, and what it already read of GitHub. */
export interface EvaluationTrigger {
  readonly kind: Trigger;
  readonly actor: string;
  readonly breakGlass?: { reason: string };
  /** The view this event already read, so it reads the ticket and its rules once. */
  readonly view?: TicketView;
  /** Who set the ticket's body, when the event says (see `bodySetBy`). */
  readonly bodySet?: BodySet | null;
}

/** A decision taken on rules that a push changed meanwhile is taken again, at most this often. */
const RULES_RACE_RETRIES = 3;

/**
 * Brings a ticket's grant in line with GitHub as it is now. Safe to call for
 * any event, any number of times, in any order:
 *
 * 1. A closed or unlabeled ticket ends its open grant.
 * 2. An active grant keeps its approved terms; it is revoked when the rules of
 *    the default branch no longer allow it or (PR) new commits came after the
 *    approved one.
 * 3. A readable request opens a pending grant (or updates the pending one's
 *    terms, which voids approvals of the old version), only on terms its
 *    requester is recorded as having written (someone else's cancel the
 *    pending one); an unreadable one gets the list of problems.
 * 4. A pending grant is decided: granted (approvals, auto-approval,
 *    break-glass), denied, or left waiting.
 */
export async function evaluateTicket(
  deps: LifecycleDeps,
  ctx: RepoContext,
  number: number,
  trigger: EvaluationTrigger,
): Promise<void> {
  let view = trigger.view ?? (await viewTicket(deps, ctx, number));
  if (trigger.bodySet) await recordBodySet(deps.db, view.ticket.id, trigger.bodySet);
  for (let attempt = 1; ; attempt++) {
    const outcome = await evaluateView(deps, ctx, view, trigger);
    if (outcome !== "rules_changed" || attempt >= RULES_RACE_RETRIES) return;
    deps.log.info(
      { ticket: `${ctx.repo.owner}/${ctx.repo.name}#${number}` },
      "the rules changed while deciding; deciding again on the new ones",
    );
    view = await viewTicket(deps, ctx, number);
  }
}

async function evaluateView(
  deps: LifecycleDeps,
  ctx: RepoContext,
  view: TicketView,
  trigger: EvaluationTrigger,
): Promise<"done" | "rules_changed"> {
  const number = view.ticket.number;
  const { db } = deps;
  const { live, scope } = view;
  const open = await openGrant(db, view.ticket.id);
  const log = deps.log.child({
    ticket: `${ctx.repo.owner}/${ctx.repo.name}#${number}`,
    trigger: trigger.kind,
  });

  // 1. Closed or no longer labeled.
  if (live.state === "closed" || !view.labeled) {
    if (!open) {
      log.debug("not an open labeled ticket; nothing to do");
      return "done";
    }
    const reason =
      live.state === "closed"
        ? live.merged
          ? "the pull request was merged"
          : `the ${live.kind === "issue" ? "issue" : "pull request"} was closed`
        : `the ${view.label} label was removed`;
    await endOpenGrant(db, scope, {
      whenActive: "revoked",
      whenPending: "cancelled",
      reason,
      by: trigger.actor,
    });
    return "done";
  }

  // 2. An active grant keeps its terms.
  if (open?.state === "active") {
    const ended = await noLongerAllowed(ctx, view, open);
    if (ended) {
      await endOpenGrant(db, scope, {
        grantId: open.id,
        whenActive: "revoked",
        whenPending: "cancelled",
        reason: ended.why,
        by: "hallpass",
        ...(ended.cause ? { cause: ended.cause } : {}),
      });
      return "done";
    }
    if (trigger.kind === "edited") {
      const parsed = parseRequest(live.body, view.bound, deps.now());
      const resource = parsed.ok ? view.bound.get(parsed.request.resource) : undefined;
      const edited = parsed.ok && resource ? requestHash(parsed.request, resource) : null;
      if (edited !== null && edited !== open.requestHash) {
        await say(
          db,
          scope,
          `terms_kept/${open.id}/${edited}`,
          { kind: "terms_kept", terms: grantTerms(open) },
          {
            kind: "grant.edit_ignored",
            actor: `github:${trigger.actor}`,
            grantId: open.id,
            data: { request_hash: edited },
          },
        );
      }
    }
    return "done";
  }

  // 3. The request as the ticket states it now.
  const parsed = readRequest(live.body, view, deps.now(), open);
  if (!parsed.ok || (view.policyProblems.length > 0 && !parsed.ok)) {
    const problems = [...view.policyProblems, ...(parsed.ok ? [] : parsed.problems)];
    if (open) {
      await endOpenGrant(db, scope, {
        grantId: open.id,
        whenActive: "revoked",
        whenPending: "cancelled",
        reason: "the request was edited and can no longer be read",
        by: trigger.actor,
      });
    }
    if (open || OPENS_REQUESTS.has(trigger.kind)) {
      const key = createHash("sha256").update(problems.join("\n")).digest("hex").slice(0, 16);
      await say(
        db,
        scope,
        `invalid/${view.ticket.id}/${key}`,
        { kind: "request_invalid", problems },
        {
          kind: "request.invalid",
          actor: `github:${trigger.actor}`,
          data: { problems },
        },
      );
    }
    return "done";
  }
  const request = parsed.request;
  const resource = view.bound.get(request.resource);
  if (!resource) return "done"; // parseRequest only accepts bound resources
  const hash = requestHash(request, resource);
  const ownership = ownersOf(view.rules.codeowners, resource.policy.path);
  const terms = requestTerms(request, hash, resource);
  let grant: Grant | null = open;
  // New terms are asked for only as their requester wrote them (see `ticket_bodies`).
  const asks = !grant || grant.requestHash !== hash;
  const setter = asks ? await bodySetter(db, view.ticket.id, live.body) : null;
  if (asks && setter?.id !== (grant?.requesterId ?? live.author.id)) {
    if (!grant || !setter) {
      log.debug(
        { setBy: setter?.login ?? null },
        "the request's terms were not written by its requester (or not known to be); not asked for",
      );
      return "done";
    }
    await endOpenGrant(db, scope, {
      grantId: grant.id,
      whenActive: "revoked",
      whenPending: "cancelled",
      reason: `the request was edited by ${setter.login}, not by its requester ${grant.requesterLogin}`,
      by: setter.login,
    });
    return "done";
  }
  if (!grant) {
    const last = await latestGrant(db, view.ticket.id);
    if (!mayOpen(trigger, view, last, hash)) {
      log.debug(
        "this request was already decided; reopen, relabel or edit the ticket to ask again",
      );
      return "done";
    }
    grant = await openRequest(
      db,
      scope,
      { id: live.author.id, login: live.author.login },
      terms,
      receivedNotice(view, request, resource, ownership, false),
    );
  } else if (grant.requestHash !== hash) {
    grant = await editRequest(
      db,
      scope,
      grant.id,
      trigger.actor,
      terms,
      receivedNotice(view, request, resource, ownership, true),
    );
  }
  if (!grant) {
    log.debug("the grant moved on meanwhile");
    return "done";
  }

  // 4. Decide.
  const decision = await decideTicket(
    { deps, ctx, view },
    { grant, request, requestHash: hash, resource, ownership, breakGlass: trigger.breakGlass },
  );
  return applyDecision(deps, ctx, view, grant, hash, resource, decision, trigger.actor);
}

/**
 * Whether this event may open a new request on a ticket with no open grant
 * (`last` its latest grant, if any), whose body its requester wrote.
 * Opening, labelling and reopening ask, and so does an edit by the requester
 * (never one by anyone else); an approving review of the new head asks again
 * after new commits ended the last grant; any other event asks only for
 * terms not decided yet.
 */
function mayOpen(
  trigger: EvaluationTrigger,
  view: TicketView,
  last: Grant | null,
  hash: string,
): boolean {
  if (!OPENS_REQUESTS.has(trigger.kind)) return last?.requestHash !== hash;
  if (trigger.kind === "edited") {
    return trigger.actor.toLowerCase() === view.live.author.login.toLowerCase();
  }
  if (trigger.kind === "reapproval") return last?.endCause === "new_commits";
  return true;
}

/**
 * Reads the request in `body` as of `at`. A body whose terms are still those
 * of the pending grant was checked when it was asked: its scheduled start may
 * have passed since (the window then starts at approval), so it is read as of
 * the request rather than refused as a start in the past.
 */
export function readRequest(
  body: string,
  view: TicketView,
  at: Date,
  open: Grant | null,
): RequestResult {
  const parsed = parseRequest(body, view.bound, at);
  if (parsed.ok || open?.state !== "pending") return parsed;
  const asked = parseRequest(body, view.bound, open.createdAt);
  if (!asked.ok) return parsed;
  const resource = view.bound.get(asked.request.resource);
  return resource && requestHash(asked.request, resource) === open.requestHash ? asked : parsed;
}

async function applyDecision(
  deps: LifecycleDeps,
  ctx: RepoContext,
  view: TicketView,
  grant: Grant,
  hash: string,
  resource: BoundResource,
  decision: Decision,
  actor: string,
): Promise<"done" | "rules_changed"> {
  const { db } = deps;
  const { scope } = view;
  if (decision.kind === "denied") {
    await endOpenGrant(db, scope, {
      grantId: grant.id,
      whenActive: "revoked",
      whenPending: "denied",
      reason: decision.why,
      by: "hallpass",
    });
    return "done";
  }
  if (decision.kind === "needs_approval") return "done";
  if (decision.kind === "break_glass" && !decision.allowed) {
    await say(
      db,
      scope,
      `break_glass_refused/${grant.id}/${hash}/${actor}`,
      {
        kind: "command_refused",
        command: "/break-glass",
        actor,
        why: decision.why,
      },
      {
        kind: "break_glass.refused",
        actor: `github:${actor}`,
        grantId: grant.id,
        data: { why: decision.why },
      },
    );
    return "done";
  }
  const approvers = decision.kind === "grant" ? decision.approvers.map((a) => a.login) : [];
  const kind =
    decision.kind === "grant"
      ? "approvals"
      : decision.kind === "auto_approved"
        ? "auto"
        : "break_glass";
  const scopePermissions: Record<string, string[]> = {};
  for (const scope of decision.scopes) {
    scopePermissions[scope] = (resource.policy.scopes.get(scope) ?? []).map((p) => p.text);
  }
  const reviewBy = decision.kind === "break_glass" ? decision.reviewBy : null;
  const startsAt = decision.window.start;
  const endsAt = decision.window.end;
  const terms = grantTerms(grant);
  const activated = await activate(
    db,
    scope,
    grant.id,
    { hash, rulesGeneration: view.rulesGeneration },
    {
      startsAt,
      endsAt,
      scopes: decision.scopes,
      permissions: decision.permissions,
      scopePermissions,
      approvers,
      decision: kind,
      autoRule: decision.kind === "auto_approved" ? decision.rule : null,
      reviewDueAt: reviewBy,
      // The commit of the nearest policy file (the organization's, when it is that one).
      policySha: view.rules.policyFiles[0]?.sha ?? view.rules.sha,
      policyFiles: view.rules.policyFiles,
      approvedCommit: view.live.kind === "pull_request" ? view.live.headSha : null,
      constraints: resource.policy.actions,
      tokenTtlS: Math.min(resource.policy.tokenTtl, decision.window.seconds),
      rateLimit: resource.policy.rateLimit,
    },
    kind === "approvals" ? `github:${approvers[approvers.length - 1] ?? actor}` : `github:${actor}`,
    {
      kind: "granted",
      terms: {
        ...terms,
        permissions: decision.permissions,
        durationSeconds: decision.window.seconds,
      },
      requester: grant.requesterLogin,
      approvers,
      decision: kind,
      rule: decision.kind === "auto_approved" ? decision.rule : null,
      reviewBy: reviewBy?.toISOString() ?? null,
      startsAt: startsAt.toISOString(),
      endsAt: endsAt.toISOString(),
      ticketRef: `${ctx.repo.owner}/${ctx.repo.name}#${view.ticket.number}`,
      ticketKind: view.ticket.kind,
      serverUrl: deps.serverUrl,
    },
    {
      trace: [...decision.trace],
      ...(decision.kind === "break_glass" ? { break_glass_reason: decision.reason } : {}),
    },
  );
  if (activated) return "done";
  const now = await rulesGeneration(db, ctx.repo.id);
  return now === view.rulesGeneration ? "done" : "rules_changed";
}

/**
 * Why an active grant is no longer allowed by the default branch (resource
 * or scopes gone, approvers no longer owners), or by the PR (commits after
 * the approved one); null when it stands.
 */
async function noLongerAllowed(
  ctx: RepoContext,
  view: TicketView,
  grant: Grant,
): Promise<{ why: string; cause?: EndCause } | null> {
  if (
    view.live.kind === "pull_request" &&
    grant.approvedCommit &&
    view.live.headSha !== grant.approvedCommit
  ) {
    return {
      why: `new commits were pushed after the approved commit ${grant.approvedCommit.slice(0, 7)}`,
      cause: "new_commits",
    };
  }
  const resource = view.bound.get(grant.resource);
  if (!resource) {
    return {
      why: `${grant.resource} is no longer in this repository's policy on ${view.rules.defaultBranch} (or no longer bound to it)`,
    };
  }
  for (const scope of grant.scopes) {
    if (!resource.policy.scopes.has(scope))
      return { why: `scope ${scope} of ${grant.resource} is no longer in the policy` };
  }
  const allowed = new Set([...resource.policy.scopes.values()].flat().map((p) => p.text));
  const lost = grant.permissions.filter((p) => !allowed.has(p));
  if (lost.length > 0) return { why: `the policy no longer allows ${lost.join(", ")}` };
  if (grant.decision !== "approvals" || grant.approvers.length === 0) return null;
  const ownership = ownersOf(view.rules.codeowners, resource.policy.path);
  if (ownership.status !== "owned")
    return { why: `CODEOWNERS no longer gives ${resource.policy.path} owners who can approve` };
  const stillOwners = await ownersAmong(ctx, resource, ownership, grant.approvers);
  if (stillOwners.length < Math.min(resource.policy.approvals, grant.approvers.length)) {
    const gone = grant.approvers.filter((a) => !stillOwners.includes(a));
    return {
      why: `${gone.join(", ")} ${gone.length === 1 ? "is" : "are"} no longer a code owner of ${resource.policy.path}`,
    };
  }
  return null;
}

function requestTerms(request: AccessRequest, hash: string, resource: BoundResource): RequestTerms {
  return {
    resource: request.resource,
    audience: resource.operator.audience,
    scopes: request.scopes,
    durationS: request.durationSeconds,
    reason: request.reason,
    requestedStart: request.start,
    requestHash: hash,
    requestTtlS: resource.policy.requestTtl,
    tokenTtlS: resource.policy.tokenTtl,
  };
}

export function grantTerms(grant: Grant): Terms {
  return {
    resource: grant.resource,
    scopes: grant.scopes,
    permissions: grant.permissions,
    durationSeconds:
      grant.startsAt && grant.endsAt
        ? (grant.endsAt.getTime() - grant.startsAt.getTime()) / 1000
        : grant.durationS,
    start: grant.requestedStart?.toISOString() ?? null,
    reason: grant.reason,
  };
}

function receivedNotice(
  view: TicketView,
  request: AccessRequest,
  resource: BoundResource,
  ownership: Ownership,
  edited: boolean,
) {
  const permissions = request.scopes.flatMap((s) =>
    (resource.policy.scopes.get(s) ?? []).map((p) => p.text),
  );
  return {
    kind: "request_received" as const,
    terms: {
      resource: request.resource,
      scopes: request.scopes,
      permissions,
      durationSeconds: request.durationSeconds,
      start: request.start?.toISOString() ?? null,
      reason: request.reason,
    },
    requester: view.live.author.login,
    approvalsNeeded: resource.policy.approvals,
    approvers:
      ownership.status === "owned"
        ? ownership.owners.filter((o) => o.kind !== "email").map((o) => o.text)
        : [],
    edited,
  };
}
