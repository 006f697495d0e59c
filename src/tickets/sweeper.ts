import type { Logger } from "#src/log.js";
import { type Loop, startLoop } from "#src/loop.js";
import { formatDuration } from "#src/rules/duration.js";
import type { Db } from "#src/store/db.js";
import { dueGrants, type Grant, markReviewFlagged } from "#src/store/grant-lifecycle.js";
import { getTicketById } from "#src/store/tickets.js";
import { endOpenGrant, say, type TicketScope, warnExpiry } from "#src/tickets/transitions.js";

export interface SweeperOptions {
  readonly db: Db;
  readonly log: Logger;
  readonly now: () => Date;
  /** Warn this long before a grant ends. */
  readonly warnBeforeS: number;
  /** Pause between sweeps; expiry is exact to about this. */
  readonly intervalMs?: number;
}

const BATCH = 50;

/**
 * The clock of the lifecycle. Each sweep: expire active grants at their end,
 * warn requesters shortly before, cancel requests pending past their
 * `request_ttl` (closing issue tickets), and flag break-glass grants no code
 * owner approved in time. Every step re-checks under the ticket lock and
 * skips tickets another replica holds, so each grant expires once and each
 * comment is queued once.
 */
export function startSweeper(options: SweeperOptions): Loop {
  return startLoop({
    name: "sweeper",
    log: options.log,
    idleMs: options.intervalMs ?? 1_000,
    pass: () => sweep(options),
  });
}

/** One sweep; true when it found a full batch (more may be due). */
export async function sweep(options: SweeperOptions): Promise<boolean> {
  const { db, warnBeforeS } = options;
  const now = options.now();
  let busy = false;
  for (const what of ["expire", "warn", "stale", "review_overdue"] as const) {
    const due = await dueGrants(db, what, now, warnBeforeS, BATCH);
    busy ||= due.length === BATCH;
    for (const grant of due) {
      const scope = await scopeOf(db, grant);
      if (!scope) continue;
      await step(options, what, scope, grant, now);
    }
  }
  return busy;
}

async function step(
  options: SweeperOptions,
  what: "expire" | "warn" | "stale" | "review_overdue",
  scope: TicketScope,
  grant: Grant,
  now: Date,
): Promise<void> {
  const { db } = options;
  switch (what) {
    case "expire":
      await endOpenGrant(db, scope, {
        grantId: grant.id,
        whenActive: "expired",
        whenPending: "cancelled",
        reason: "its time ran out",
        by: "hallpass",
        onlyIf: (g) =>
          g.state === "active" && g.endsAt !== null && g.endsAt.getTime() <= now.getTime(),
      });
      return;
    case "warn":
      await warnExpiry(db, scope, grant);
      return;
    case "stale":
      await endOpenGrant(db, scope, {
        grantId: grant.id,
        whenActive: "revoked",
        whenPending: "cancelled",
        reason: `no approval within ${formatDuration(grant.requestTtlS)}; the request is stale`,
        by: "hallpass",
        closeIssue: true,
        onlyIf: (g) =>
          g.state === "pending" && g.createdAt.getTime() + g.requestTtlS * 1000 <= now.getTime(),
      });
      return;
    case "review_overdue": {
      if (!grant.reviewDueAt) return;
      const reviewBy = grant.reviewDueAt.toISOString();
      await say(
        db,
        scope,
        `review_overdue/${grant.id}`,
        { kind: "review_overdue", reviewBy },
        {
          kind: "grant.review_overdue",
          actor: "hallpass",
          grantId: grant.id,
          data: { review_due_at: reviewBy },
        },
        (tx) => markReviewFlagged(tx, grant.id),
      );
      return;
    }
  }
}

async function scopeOf(db: Db, grant: Grant): Promise<TicketScope | null> {
  const ticket = await getTicketById(db, grant.ticketId);
  if (!ticket) return null;
  const [owner = "", name = ""] = ticket.repoFullName.split("/");
  return { ticket, repo: { id: ticket.repoId, owner, name }, skipLocked: true };
}
