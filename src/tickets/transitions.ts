import type { AppMetrics } from "#src/app-metrics.js";
import { appendAudit } from "#src/audit/append.js";
import type { Json } from "#src/audit/event.js";
import {
  bindEarlyApprovals,
  recordApproval as insertApproval,
  type NewApproval,
  voidTicketApprovals,
} from "#src/store/approvals.js";
import type { Db, Sql } from "#src/store/db.js";
import {
  type Activation,
  activateGrant,
  type EndCause,
  type EndState,
  endGrant,
  extendGrant,
  type Grant,
  insertPendingGrant,
  lockOpenGrant,
  markReviewed,
  markWarned,
  type RequestTerms,
  updatePendingTerms,
} from "#src/store/grant-lifecycle.js";
import { enqueue } from "#src/store/outbox.js";
import { rulesGeneration } from "#src/store/rules-generations.js";
import { lockTicket, type Ticket } from "#src/store/tickets.js";
import { usageOf } from "#src/store/usage.js";
import type { Notice, RepoRef, SideEffect } from "#src/tickets/notices.js";

/** Where a ticket lives, for side effects. */
export interface TicketScope {
  readonly ticket: Ticket;
  readonly repo: RepoRef;
  /**
   * Side effects are skipped when hallpass can no longer write to the ticket
   * (installation deleted or suspended, ticket or repository gone or archived).
   */
  readonly quiet?: boolean;
  /**
   * Skip the transition (null) when another replica holds the ticket, instead
   * of waiting for it: background sweeps use this, so each due grant is
   * handled by one replica.
   */
  readonly skipLocked?: boolean;
}

interface AuditSpec {
  readonly kind: string;
  readonly actor: string;
  readonly data?: { readonly [key: string]: Json | undefined };
}

/**
 * Runs one ticket transition: in one transaction, lock the ticket (every
 * change to a ticket's grants is serialised on it), apply `change`, append
 * its audit event and queue its side effects. When `change` returns null the
 * transition did not apply (the grant moved on meanwhile) and nothing is
 * written.
 */
async function transition<T>(
  db: Db,
  scope: TicketScope,
  change: (tx: Sql) => Promise<{
    result: T;
    audit: AuditSpec;
    grantId: string | null;
    notices: Notice[];
    check?: CheckState;
    effects?: SideEffect[];
  } | null>,
): Promise<T | null> {
  return db.transaction(async (tx) => {
    if (!(await lockTicket(tx, scope.ticket.id, { skipLocked: scope.skipLocked === true })))
      return null;
    const applied = await change(tx);
    if (!applied) return null;
    const event = await appendAudit(tx, {
      kind: applied.audit.kind,
      actor: applied.audit.actor,
      ticketId: scope.ticket.id,
      grantId: applied.grantId,
      data: {
        ticket: `${scope.repo.owner}/${scope.repo.name}#${scope.ticket.number}`,
        ...applied.audit.data,
      },
    });
    if (!scope.quiet) {
      const effects: SideEffect[] = applied.notices.map((notice) => ({
        kind: "comment",
        repo: scope.repo,
        number: scope.ticket.number,
        notice,
      }));
      const check = applied.check && checkRun(scope, applied.check);
      if (check) effects.push(check);
      effects.push(...(applied.effects ?? []));
      for (const [i, effect] of effects.entries()) {
        await enqueue(tx, {
          installationId: scope.ticket.installationId,
          ticketId: scope.ticket.id,
          dedupeKey: `${event.id}/${i}`,
          auditEventId: event.id,
          effect,
        });
      }
    }
    return applied.result;
  });
}

const who = (login: string) => `github:${login}`;

/** A new request (pending grant). */
export function openRequest(
  db: Db,
  scope: TicketScope,
  requester: { id: number; login: string },
  terms: RequestTerms,
  notice: Notice,
): Promise<Grant | null> {
  return transition(db, scope, async (tx) => {
    if (await lockOpenGrant(tx, scope.ticket.id)) return null;
    const grant = await insertPendingGrant(tx, scope.ticket.id, requester, terms);
    await bindEarlyApprovals(tx, scope.ticket.id, grant.id);
    return {
      result: grant,
      grantId: grant.id,
      audit: { kind: "grant.requested", actor: who(requester.login), data: termsData(terms) },
      notices: [notice],
      check: { state: "pending", title: "Waiting for approval", summary: "" },
    };
  });
}

/** A pending request's fields changed: new terms and hash; earlier approvals no longer match. */
export function editRequest(
  db: Db,
  scope: TicketScope,
  grantId: string,
  actor: string,
  terms: RequestTerms,
  notice: Notice,
): Promise<Grant | null> {
  return transition(db, scope, async (tx) => {
    const open = await lockOpenGrant(tx, scope.ticket.id);
    if (open?.id !== grantId || open.state !== "pending") return null;
    const grant = await updatePendingTerms(tx, grantId, terms);
    if (!grant) return null;
    return {
      result: grant,
      grantId,
      audit: {
        kind: "grant.request_edited",
        actor: who(actor),
        data: { ...termsData(terms), previous_hash: open.requestHash },
      },
      notices: [notice],
      check: { state: "pending", title: "Waiting for approval (request edited)", summary: "" },
    };
  });
}

/**
 * pending → active, only if the request is still the one that was decided
 * (same hash) and the repository's rules are still those it was decided on
 * (same generation: no push changed them meanwhile).
 */
export function activate(
  db: Db,
  scope: TicketScope,
  grantId: string,
  decided: { readonly hash: string; readonly rulesGeneration: number },
  activation: Activation,
  actor: string,
  notice: Notice,
  data: { readonly [key: string]: Json | undefined },
): Promise<Grant | null> {
  return transition(db, scope, async (tx) => {
    const open = await lockOpenGrant(tx, scope.ticket.id);
    if (open?.id !== grantId || open.state !== "pending" || open.requestHash !== decided.hash)
      return null;
    if ((await rulesGeneration(tx, scope.repo.id)) !== decided.rulesGeneration) return null;
    const grant = await activateGrant(tx, grantId, activation);
    if (!grant) return null;
    return {
      result: grant,
      grantId,
      audit: {
        kind: "grant.activated",
        actor,
        data: {
          ...data,
          decision: activation.decision,
          scopes: [...activation.scopes],
          permissions: [...activation.permissions],
          approvers: [...activation.approvers],
          starts_at: activation.startsAt.toISOString(),
          ends_at: activation.endsAt.toISOString(),
          policy_commit: activation.policySha,
          policy_files: activation.policyFiles.map((f) => ({ ...f })),
          approved_commit: activation.approvedCommit,
        },
      },
      notices: [notice],
      check: {
        state: "active",
        title: `Access granted until ${activation.endsAt.toISOString().slice(0, 16).replace("T", " ")} UTC`,
        summary: "",
      },
    };
  });
}

const ENDS: Record<EndState, { kind: string; check: CheckState["state"] }> = {
  revoked: { kind: "grant.revoked", check: "revoked" },
  expired: { kind: "grant.expired", check: "expired" },
  denied: { kind: "grant.denied", check: "denied" },
  cancelled: { kind: "grant.cancelled", check: "cancelled" },
};

/**
 * Ends the ticket's open grant: active → revoked | expired, pending →
 * denied | cancelled. `state` may be given per starting state. Illegal
 * transitions are not applied (null).
 */
export function endOpenGrant(
  db: Db,
  scope: TicketScope,
  options: {
    readonly grantId?: string;
    readonly whenActive: "revoked" | "expired";
    readonly whenPending: "denied" | "cancelled";
    readonly reason: string;
    /** A login, `operator`, or `hallpass`. */
    readonly by: string;
    /** Re-checked under the lock: the transition applies only if this still holds. */
    readonly onlyIf?: (grant: Grant) => boolean;
    /** Also close the issue (stale requests). */
    readonly closeIssue?: boolean;
    /** Recorded on the grant when what may follow depends on it. */
    readonly cause?: EndCause;
  },
): Promise<Grant | null> {
  return transition(db, scope, async (tx) => {
    const open = await lockOpenGrant(tx, scope.ticket.id);
    if (!open || (options.grantId !== undefined && open.id !== options.grantId)) return null;
    if (options.onlyIf && !options.onlyIf(open)) return null;
    const state: EndState = open.state === "active" ? options.whenActive : options.whenPending;
    const grant = await endGrant(tx, open.id, state, options.reason, options.by, options.cause);
    if (!grant) return null;
    // Approvals were given to this grant: a request asked again (edit, relabel, reopen) needs new ones.
    await voidTicketApprovals(tx, scope.ticket.id, `the grant was ${state}`);
    const usage = open.state === "active" ? await usageOf(tx, open.id) : null;
    const notice: Notice =
      state === "denied"
        ? { kind: "denied", by: options.by, reason: options.reason }
        : { kind: "ended", state, reason: options.reason, by: options.by, usage, grantId: open.id };
    return {
      result: grant,
      grantId: open.id,
      audit: {
        kind: ENDS[state].kind,
        actor: options.by.includes(":") || options.by === "hallpass" ? options.by : who(options.by),
        data: {
          reason: options.reason,
          tokens: usage ? usage.tokens.reduce((n, t) => n + t.count, 0) : 0,
          proxy_requests: usage?.requestsTotal ?? 0,
        },
      },
      notices: [notice],
      check: { state: ENDS[state].check, title: `Access ${state}`, summary: options.reason },
      effects:
        options.closeIssue && scope.ticket.kind === "issue"
          ? [
              {
                kind: "close_issue",
                repo: scope.repo,
                number: scope.ticket.number,
                reason: "not_planned",
              },
            ]
          : [],
    };
  });
}

export function extend(
  db: Db,
  scope: TicketScope,
  grantId: string,
  endsAt: Date,
  approvers: readonly string[],
  actor: string,
): Promise<Grant | null> {
  return transition(db, scope, async (tx) => {
    const open = await lockOpenGrant(tx, scope.ticket.id);
    if (open?.id !== grantId || open.state !== "active" || !open.endsAt) return null;
    const previous = open.endsAt;
    const grant = await extendGrant(tx, grantId, endsAt, approvers);
    if (!grant) return null;
    return {
      result: grant,
      grantId,
      audit: {
        kind: "grant.extended",
        actor,
        data: {
          previous_ends_at: previous.toISOString(),
          ends_at: endsAt.toISOString(),
          approvers: [...approvers],
        },
      },
      notices: [
        {
          kind: "extended",
          by: [...approvers],
          previousEndsAt: previous.toISOString(),
          endsAt: endsAt.toISOString(),
        },
      ],
      check: {
        state: "active",
        title: `Access extended until ${endsAt.toISOString().slice(0, 16).replace("T", " ")} UTC`,
        summary: "",
      },
    };
  });
}

/** The expiry warning, once per grant (and again after an extension). */
export function warnExpiry(db: Db, scope: TicketScope, grant: Grant): Promise<boolean | null> {
  return transition(db, scope, async (tx) => {
    const open = await lockOpenGrant(tx, scope.ticket.id);
    if (open?.id !== grant.id || !grant.endsAt || !(await markWarned(tx, grant.id))) return null;
    return {
      result: true,
      grantId: grant.id,
      audit: {
        kind: "grant.expiry_warned",
        actor: "hallpass",
        data: { ends_at: grant.endsAt.toISOString() },
      },
      notices: [
        {
          kind: "expiry_warning",
          requester: grant.requesterLogin,
          endsAt: grant.endsAt.toISOString(),
        },
      ],
    };
  });
}

/**
 * Records an approval and its audit event, in one transaction under the
 * ticket lock, bound to the request it was given to: `grantId` must still be
 * the ticket's open grant (null: the ticket has had no request yet, and the
 * first it opens takes it). `reviewed` also marks an active break-glass grant
 * reviewed. Returns `stale` when the request it was given to is gone, `known`
 * when this review or comment was recorded before. `metrics` counts it, once
 * committed: recorded, or refused as stale.
 */
export async function recordApproval(
  db: Db,
  scope: TicketScope,
  approval: Omit<NewApproval, "ticketId">,
  data: { readonly [key: string]: Json | undefined },
  options: { readonly reviewed?: boolean; readonly metrics?: AppMetrics } = {},
): Promise<"recorded" | "known" | "stale"> {
  const outcome = await insertApprovalOf(db, scope, approval, data, options.reviewed === true);
  if (outcome === "recorded") options.metrics?.approvalRecorded(approval.channel);
  else if (outcome === "stale") options.metrics?.approvalRefused("stale");
  return outcome;
}

function insertApprovalOf(
  db: Db,
  scope: TicketScope,
  approval: Omit<NewApproval, "ticketId">,
  data: { readonly [key: string]: Json | undefined },
  reviewed: boolean,
): Promise<"recorded" | "known" | "stale"> {
  return db.transaction(async (tx) => {
    await lockTicket(tx, scope.ticket.id, { skipLocked: false });
    const open = await lockOpenGrant(tx, scope.ticket.id);
    if (approval.grantId === null) {
      const { rows } = await tx.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM grants WHERE ticket_id = $1::uuid",
        [scope.ticket.id],
      );
      if ((rows[0]?.n ?? 0) > 0) return "stale";
    } else if (open?.id !== approval.grantId) {
      return "stale";
    }
    if (!(await insertApproval(tx, { ...approval, ticketId: scope.ticket.id }))) return "known";
    const actor = who(approval.approverLogin);
    await record(tx, scope, {
      kind: "approval.recorded",
      actor,
      grantId: approval.grantId,
      data: { channel: approval.channel, ...data },
    });
    if (reviewed && open?.state === "active" && (await markReviewed(tx, open.id))) {
      await record(tx, scope, { kind: "grant.reviewed", actor, grantId: open.id, data });
    }
    return "recorded";
  });
}

/**
 * A notice with no state change (a refused command, /status, a request that
 * cannot be read...), once per `dedupeKey`, with its own audit event.
 */
export async function say(
  db: Db,
  scope: TicketScope,
  dedupeKey: string,
  notice: Notice,
  audit: AuditSpec & { readonly grantId?: string | null },
  /** Checked (and applied) under the ticket lock; when false nothing is said. */
  guard?: (tx: Sql) => Promise<boolean>,
): Promise<void> {
  await db.transaction(async (tx) => {
    if (!(await lockTicket(tx, scope.ticket.id, { skipLocked: scope.skipLocked === true }))) return;
    if (guard && !(await guard(tx))) return;
    const { rows } = await tx.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM outbox WHERE dedupe_key = $1::text",
      [dedupeKey],
    );
    if ((rows[0]?.n ?? 0) > 0) return;
    const event = await appendAudit(tx, {
      kind: audit.kind,
      actor: audit.actor,
      ticketId: scope.ticket.id,
      grantId: audit.grantId ?? null,
      data: {
        ticket: `${scope.repo.owner}/${scope.repo.name}#${scope.ticket.number}`,
        ...audit.data,
      },
    });
    if (scope.quiet) return;
    await enqueue(tx, {
      installationId: scope.ticket.installationId,
      ticketId: scope.ticket.id,
      dedupeKey,
      auditEventId: event.id,
      effect: { kind: "comment", repo: scope.repo, number: scope.ticket.number, notice },
    });
  });
}

/** Records a fact with no notice (an approval seen, a review dismissed...). */
export async function record(
  db: Sql,
  scope: TicketScope,
  audit: AuditSpec & { readonly grantId?: string | null },
): Promise<void> {
  await appendAudit(db, {
    kind: audit.kind,
    actor: audit.actor,
    ticketId: scope.ticket.id,
    grantId: audit.grantId ?? null,
    data: {
      ticket: `${scope.repo.owner}/${scope.repo.name}#${scope.ticket.number}`,
      ...audit.data,
    },
  });
}

export interface CheckState {
  readonly state: "pending" | "active" | "revoked" | "expired" | "denied" | "cancelled";
  readonly title: string;
  readonly summary: string;
}

/** The `hallpass` check run of a PR ticket, showing the grant's state on its head commit. */
function checkRun(scope: TicketScope, check: CheckState): SideEffect | null {
  if (scope.ticket.kind !== "pull_request" || !scope.ticket.headSha) return null;
  const completed = check.state !== "pending";
  return {
    kind: "check_run",
    repo: scope.repo,
    number: scope.ticket.number,
    headSha: scope.ticket.headSha,
    status: completed ? "completed" : "in_progress",
    conclusion: !completed
      ? null
      : check.state === "active"
        ? "success"
        : check.state === "denied"
          ? "failure"
          : "neutral",
    title: check.title,
    summary: check.summary,
  };
}

function termsData(terms: RequestTerms): { [key: string]: Json } {
  return {
    resource: terms.resource,
    scopes: [...terms.scopes],
    duration_s: terms.durationS,
    start: terms.requestedStart?.toISOString() ?? null,
    reason: terms.reason,
    request_hash: terms.requestHash,
  };
}
