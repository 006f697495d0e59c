import type { KeyObject } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { AppMetrics } from "#src/app-metrics.js";
import { sealedEvent } from "#src/audit/append.js";
import type { GitHub } from "#src/github/api.js";
import {
  DEFAULT_RETRY,
  describeFailure,
  type RetryPolicy,
  untilReset,
  whenToRetry,
} from "#src/github/retry.js";
import type { Logger } from "#src/log.js";
import { type Loop, startLoop } from "#src/loop.js";
import type { Db, Sql } from "#src/store/db.js";
import {
  type ClaimedSideEffect,
  claimOutbox,
  completeOutbox,
  failOutbox,
  pausedFor,
  pauseInstallation,
  releaseOutbox,
  renewOutbox,
  reserveWrite,
} from "#src/store/outbox.js";
import { recordComment } from "#src/store/ticket-comments.js";
import { getTicketById, setCheckRun } from "#src/store/tickets.js";
import { usageOf } from "#src/store/usage.js";
import type { Notice, SideEffect } from "#src/tickets/notices.js";
import { hasMarker, markerOf, renderCheck, renderNotice } from "#src/tickets/render.js";

/** Who hallpass is on GitHub: what tells its own comments and check runs from copies. */
export interface AppIdentity {
  /** The App's id: `performed_via_github_app.id` of its comments, `app.id` of its check runs. */
  readonly id: number;
  /** The App's slug: its comments are by the bot account `<slug>[bot]`. */
  readonly slug: string;
}

export interface OutboxWorkerOptions {
  readonly db: Db;
  readonly log: Logger;
  /** An installation's client (production: `(id) => probot.auth(id)`). */
  readonly github: (installationId: number) => Promise<GitHub>;
  /** The App's identity (production: `GET /app`, once); asked only when an earlier attempt is looked for. */
  readonly identity: () => Promise<AppIdentity>;
  /** The key of the comments' hidden markers (derived from the master key, see `deriveKey`). */
  readonly markerKey: KeyObject;
  readonly idleMs?: number;
  /** Attempts before a side effect is given up (state `dead`); rate limits do not count. Default 10. */
  readonly maxAttempts?: number;
  /** Delay after a first failure, doubling per attempt up to 10 minutes. Default 2 s. */
  readonly retryBaseMs?: number;
  /** How long a claimed row is ours; past it, another worker may take it over. Default 2 minutes. */
  readonly leaseMs?: number;
  /**
   * How long after a grant ended its closing comment reads the grant's
   * usage: the proxies write reads in batches, each within a fraction of
   * a second. Default 1 s.
   */
  readonly usageSettleMs?: number;
  /**
   * At least this long between the starts of two writes of one installation,
   * across replicas. Default {@link WRITE_INTERVAL_MS}; 0 turns pacing off.
   */
  readonly writeIntervalMs?: number;
  /**
   * How long one request to GitHub may take before it counts as unanswered;
   * without it, the App's deadline for every GitHub request applies
   * (`GITHUB_REQUEST_TIMEOUT_MS`).
   */
  readonly requestTimeoutMs?: number;
  /** Counts each attempt's result. */
  readonly metrics?: AppMetrics;
}

/**
 * The App's identity from `GET /app` (with the App's JWT), asked once; a
 * failed ask is asked again the next time.
 */
export function appIdentity(app: () => Promise<GitHub>): () => Promise<AppIdentity> {
  let known: Promise<AppIdentity> | null = null;
  return () => {
    known ??= (async () => {
      const { data } = await (await app()).rest.apps.getAuthenticated();
      if (!data?.slug) throw new Error("GET /app did not name the App");
      return { id: data.id, slug: data.slug };
    })().catch((error: unknown) => {
      known = null;
      throw error;
    });
    return known;
  };
}

/** The name of the check run hallpass keeps on a pull request's head commit. */
export const CHECK_NAME = "hallpass";

const BATCH = 5;
const DEFAULT_USAGE_SETTLE_MS = 1_000;

/** A side effect that cannot ever be carried out as written. */
class Unworkable extends Error {}

/**
 * The claim's lease ran out and another claim (another replica, or this one
 * later) took the row: this one must neither write nor record anything.
 */
class LeaseLost extends Error {}

/** The installation was paused (a rate limit) after the row was claimed: give it back untried. */
class Paused extends Error {}

/** A write GitHub answered without what it made: it may have been made; the next attempt looks first. */
class NoAnswer extends Error {}

type Effect<K extends SideEffect["kind"]> = Extract<SideEffect, { kind: K }>;

interface Deps {
  readonly db: Db;
  readonly log: Logger;
  readonly github: (installationId: number) => Promise<GitHub>;
  readonly identity: () => Promise<AppIdentity>;
  readonly markerKey: KeyObject;
  readonly usageSettleMs?: number;
  readonly writeIntervalMs?: number;
  readonly requestTimeoutMs?: number;
  readonly metrics?: AppMetrics;
  readonly leaseMs: number;
}

/**
 * Carries out the outbox: comments, check runs and issue closures on GitHub.
 * Each ticket's side effects run in the order they were written (a failing
 * one holds back those after it until it succeeds or is given up); side
 * effects run one after another, as GitHub asks of writes.
 *
 * At most once: a row claimed again after an attempt that may have reached
 * GitHub (a server error, no answer, a crash whose lease ran out) first
 * looks on GitHub for what that attempt may have done — a comment carrying
 * its marker, a check run carrying its ticket — and records that instead of
 * doing it twice. Only what the App itself wrote counts: a copy by anyone
 * else, marker and all, is not adopted (it would then be recorded, and
 * guarded against tampering, as hallpass's). An attempt refused by a rate
 * limit did nothing, and needs no such look (which would cost requests).
 *
 * Rate limits count per installation: when GitHub refuses one, the
 * installation is paused in the database until `retry-after` (or
 * `x-ratelimit-reset`), and no replica sends its writes until then; other
 * installations carry on. The refusal does not count as a failed attempt:
 * a backlog is never given up because GitHub throttled it. It drains as
 * fast as GitHub allows, most important first (see `priorityOf`).
 */
export function startOutboxWorker(options: OutboxWorkerOptions): Loop {
  const policy: RetryPolicy = {
    ...DEFAULT_RETRY,
    maxAttempts: options.maxAttempts ?? DEFAULT_RETRY.maxAttempts,
    baseMs: options.retryBaseMs ?? DEFAULT_RETRY.baseMs,
  };
  const deps: Deps = { ...options, leaseMs: options.leaseMs ?? 120_000 };
  return startLoop({
    name: "outbox",
    log: options.log,
    idleMs: options.idleMs ?? 1_000,
    pass: async () => {
      const claimed = await claimOutbox(options.db, BATCH, deps.leaseMs);
      for (const item of claimed) await attempt(deps, policy, item);
      return claimed.length > 0;
    },
  });
}

/**
 * GitHub asks integrators to wait at least a second between two
 * content-creating requests of one user or installation; hallpass does, for
 * every write of the outbox.
 */
export const WRITE_INTERVAL_MS = 1_000;

/**
 * 1. Give the row back untried while its installation is paused (by a rate
 *    limit another row, or another replica, met since it was claimed).
 * 2. Carry it out.
 * 3. On a rate limit: pause the installation, retry the row after the pause,
 *    without counting the attempt. On another failure: retry with backoff,
 *    or give up.
 */
async function attempt(deps: Deps, policy: RetryPolicy, item: ClaimedSideEffect): Promise<void> {
  const { effect } = item;
  const log = deps.log.child({
    outbox: item.id,
    effect: effect.kind,
    ticket: `${effect.repo.owner}/${effect.repo.name}#${effect.number}`,
    attempt: item.attempts,
  });
  try {
    if ((await pausedFor(deps.db, item.installationId)) > 0) throw new Paused();
    if (effect.kind === "comment") await comment(deps, log, item, effect);
    else if (effect.kind === "check_run") await checkRun(deps, log, item, effect);
    else await closeIssue(deps, item, effect);
    deps.metrics?.outboxWrite(effect.kind, "done");
  } catch (error) {
    if (error instanceof Paused) {
      log.debug("installation paused by a GitHub rate limit; not tried");
      // The pause holds back every row of the installation; when it ends they
      // are claimed together, most important first.
      await releaseOutbox(deps.db, item);
      return;
    }
    if (error instanceof LeaseLost) {
      log.warn("the claim's lease ran out before it was done; left to the claim that took it");
      deps.metrics?.outboxWrite(effect.kind, "lease_lost");
      return;
    }
    const failure = describeFailure(error);
    const decision =
      error instanceof Unworkable
        ? { retryInMs: null, why: error.message }
        : whenToRetry(error, item.attempts - item.throttled, policy, item.throttled);
    const fields = { status: failure.status, retryInMs: decision.retryInMs, why: decision.why };
    const text = `${failure.status ?? "error"}: ${failure.message}`;
    if (decision.retryInMs !== null && decision.rateLimit) {
      log.warn(
        { ...fields, installation: item.installationId },
        "GitHub rate limit; the installation's side effects wait",
      );
      await pauseInstallation(deps.db, item.installationId, decision.retryInMs, decision.why);
      // Held back by the pause, like the installation's other rows (see above).
      await failOutbox(deps.db, item, text, 0, { throttled: true });
      deps.metrics?.outboxWrite(effect.kind, "rate_limited");
      return;
    }
    if (decision.retryInMs === null) log.error(fields, "GitHub side effect given up");
    else log.warn(fields, "GitHub side effect failed; will retry");
    await failOutbox(deps.db, item, text, decision.retryInMs);
    deps.metrics?.outboxWrite(effect.kind, decision.retryInMs === null ? "dead" : "retry");
  }
}

/**
 * Request options of every call: no retry inside the call (a write that got
 * no answer may have been done, and only the next attempt, which looks
 * first, may repeat it), and the deadline `requestTimeoutMs` when set.
 */
function timeout(deps: Deps): { request: { signal?: AbortSignal; retries: 0 } } {
  return {
    request: {
      retries: 0,
      ...(deps.requestTimeoutMs ? { signal: AbortSignal.timeout(deps.requestTimeoutMs) } : {}),
    },
  };
}

/**
 * Just before a write:
 * 1. the row must still be this claim's: its lease is renewed, or, when
 *    another claim took it meanwhile, nothing is written (`LeaseLost`);
 * 2. the installation must not have been paused since the claim (`Paused`);
 * 3. the write waits for the installation's next slot (`writeIntervalMs`).
 */
async function beforeWrite(deps: Deps, item: ClaimedSideEffect): Promise<void> {
  if (!(await renewOutbox(deps.db, item, deps.leaseMs))) throw new LeaseLost();
  if ((await pausedFor(deps.db, item.installationId)) > 0) throw new Paused();
  const interval = deps.writeIntervalMs ?? WRITE_INTERVAL_MS;
  if (interval <= 0) return;
  const wait = await reserveWrite(deps.db, item.installationId, interval);
  if (wait > 0) await sleep(wait);
}

/** Completes the row for this claim, in `tx`; rolls it back when the claim lost the row. */
async function complete(tx: Sql, item: ClaimedSideEffect, result: unknown): Promise<void> {
  if (!(await completeOutbox(tx, item, result))) throw new LeaseLost();
}

/** What a write made, by its id: an answer without one may hide a write that was made. */
function made<T extends { id?: unknown }>(data: T | string | undefined): T & { id: number } {
  if (typeof data !== "object" || data === null || typeof data.id !== "number")
    throw new NoAnswer("GitHub's answer to the write did not say what it made");
  return data as T & { id: number };
}

/**
 * After an answer that spent the installation's last request of the
 * primary limit: pause it until the limit resets, rather than be refused.
 */
async function heed(
  deps: Deps,
  item: ClaimedSideEffect,
  headers: Record<string, string | number | undefined>,
): Promise<void> {
  const ms = untilReset(headers);
  if (ms !== null) await pauseInstallation(deps.db, item.installationId, ms, "rate limit spent");
}

/**
 * 1. Render with the sealed audit event (committed with the row, so sealed).
 * 2. On a repeated attempt, look for the App's own comment carrying the marker.
 * 3. Otherwise post; then remember the comment and complete the row, together.
 */
async function comment(
  deps: Deps,
  log: Logger,
  item: ClaimedSideEffect,
  effect: Effect<"comment">,
): Promise<void> {
  const audit = item.auditEventId ? await sealedEvent(deps.db, item.auditEventId) : null;
  if (item.auditEventId && !audit)
    throw new Error(`audit event ${item.auditEventId} is not sealed yet`);
  const marker = markerOf(deps.markerKey, item.dedupeKey);
  const body = renderNotice(await withUsage(deps, item, effect.notice), audit, marker);
  const gh = await deps.github(item.installationId);
  const target = { owner: effect.repo.owner, repo: effect.repo.name, issue_number: effect.number };
  let posted = item.maybeDone
    ? await findMarked(deps, gh, target, await deps.identity(), [marker, item.dedupeKey])
    : null;
  if (posted)
    log.info({ commentId: posted.id }, "comment was posted by an earlier attempt; recording it");
  if (!posted) {
    await beforeWrite(deps, item);
    const response = await gh.rest.issues.createComment({ ...target, body, ...timeout(deps) });
    await heed(deps, item, response.headers);
    posted = made(response.data);
  }
  const { id, body: postedBody } = posted;
  await deps.db.transaction(async (tx) => {
    if (item.ticketId) {
      await recordComment(tx, {
        commentId: id,
        ticketId: item.ticketId,
        outboxId: item.id,
        auditEventId: item.auditEventId,
        body: postedBody ?? body,
      });
    }
    await complete(tx, item, { commentId: id });
  });
  log.debug({ commentId: id }, "comment posted");
}

/**
 * A closing comment shows the grant's usage as it is when posted, once the
 * proxies' last batches are in (`usageSettleMs` after the grant ended),
 * rather than as it was at the transition.
 */
async function withUsage(deps: Deps, item: ClaimedSideEffect, notice: Notice): Promise<Notice> {
  if (notice.kind !== "ended" || notice.usage === null || !notice.grantId) return notice;
  const wait = (deps.usageSettleMs ?? DEFAULT_USAGE_SETTLE_MS) - item.ageMs;
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  return { ...notice, usage: await usageOf(deps.db, notice.grantId) };
}

/**
 * The App's own comment carrying one of the markers (this version's, then
 * the dedupe key older versions wrote), if an earlier attempt posted it.
 * Page by page (Octokit's paginator drops the request's deadline), each a
 * request against the installation's primary limit.
 */
async function findMarked(
  deps: Deps,
  gh: GitHub,
  target: { owner: string; repo: string; issue_number: number },
  self: AppIdentity,
  markers: readonly string[],
): Promise<{ id: number; body?: string | undefined } | null> {
  for (let page = 1; ; page++) {
    const { data, headers } = await gh.rest.issues.listComments({
      ...target,
      per_page: 100,
      page,
      ...timeout(deps),
    });
    const found = data.find(
      (c) => isOwnComment(c, self) && markers.some((m) => hasMarker(c.body ?? "", m)),
    );
    if (found) return found;
    if (!/rel="next"/.test(headers.link ?? "")) return null;
  }
}

/**
 * Whether the App's bot account wrote the comment. The login decides: an
 * App's user-to-server token (hallpass's own, held by a person) also names
 * the App in `performed_via_github_app`, but writes as that person.
 */
function isOwnComment(
  comment: {
    readonly user?: { readonly login: string; readonly type: string } | null;
    readonly performed_via_github_app?: { readonly id: number } | null;
  },
  self: AppIdentity,
): boolean {
  const { user } = comment;
  if (user?.type !== "Bot" || user.login.toLowerCase() !== botLogin(self)) return false;
  const app = comment.performed_via_github_app;
  return !app || app.id === self.id;
}

function botLogin(self: AppIdentity): string {
  return `${self.slug}[bot]`.toLowerCase();
}

/**
 * The `hallpass` check run of the ticket on the head commit: updated while
 * the head stays the same, a new one for a new head.
 */
async function checkRun(
  deps: Deps,
  log: Logger,
  item: ClaimedSideEffect,
  effect: Effect<"check_run">,
): Promise<void> {
  if (!item.ticketId) throw new Unworkable("a check run needs its ticket");
  const ticket = await getTicketById(deps.db, item.ticketId);
  if (!ticket) throw new Unworkable("the ticket is gone");
  const audit = item.auditEventId ? await sealedEvent(deps.db, item.auditEventId) : null;
  const { title, summary } = renderCheck(effect, audit);
  const gh = await deps.github(item.installationId);
  const repo = { owner: effect.repo.owner, repo: effect.repo.name };
  const fields = {
    status: effect.status,
    ...(effect.conclusion ? { conclusion: effect.conclusion } : {}),
    output: { title, summary },
  };
  let runId = await currentRun(deps, gh, repo, ticket.checkRunId, effect.headSha);
  if (runId === null && item.maybeDone)
    runId = await runOfTicket(deps, gh, repo, effect.headSha, item.ticketId, await deps.identity());
  await beforeWrite(deps, item);
  if (runId !== null) {
    const response = await gh.rest.checks.update({
      ...repo,
      check_run_id: runId,
      ...fields,
      ...timeout(deps),
    });
    await heed(deps, item, response.headers);
  } else {
    const response = await gh.rest.checks.create({
      ...repo,
      name: CHECK_NAME,
      head_sha: effect.headSha,
      external_id: item.ticketId,
      ...fields,
      ...timeout(deps),
    });
    await heed(deps, item, response.headers);
    runId = made(response.data).id;
    log.debug({ checkRunId: runId }, "check run created");
  }
  const id = runId;
  await deps.db.transaction(async (tx) => {
    await setCheckRun(tx, ticket.id, id);
    await complete(tx, item, { checkRunId: id, headSha: effect.headSha });
  });
}

/** The ticket's stored check run, if it is on this head commit. */
async function currentRun(
  deps: Deps,
  gh: GitHub,
  repo: { owner: string; repo: string },
  checkRunId: number | null,
  headSha: string,
): Promise<number | null> {
  if (checkRunId === null) return null;
  try {
    const { data } = await gh.rest.checks.get({
      ...repo,
      check_run_id: checkRunId,
      ...timeout(deps),
    });
    return data.head_sha === headSha ? data.id : null;
  } catch (error) {
    if (describeFailure(error).status === 404) return null;
    throw error;
  }
}

/**
 * A check run an earlier attempt created but did not get to record: the
 * App's own, carrying the ticket id (which other Apps can read and copy).
 */
async function runOfTicket(
  deps: Deps,
  gh: GitHub,
  repo: { owner: string; repo: string },
  headSha: string,
  ticketId: string,
  self: AppIdentity,
): Promise<number | null> {
  const { data } = await gh.rest.checks.listForRef({
    ...repo,
    ref: headSha,
    check_name: CHECK_NAME,
    filter: "all",
    per_page: 100,
    ...timeout(deps),
  });
  return (
    data.check_runs.find((r) => r.app?.id === self.id && r.external_id === ticketId)?.id ?? null
  );
}

async function closeIssue(
  deps: Deps,
  item: ClaimedSideEffect,
  effect: Effect<"close_issue">,
): Promise<void> {
  const gh = await deps.github(item.installationId);
  await beforeWrite(deps, item);
  const response = await gh.rest.issues.update({
    owner: effect.repo.owner,
    repo: effect.repo.name,
    issue_number: effect.number,
    state: "closed",
    state_reason: effect.reason,
    ...timeout(deps),
  });
  await heed(deps, item, response.headers);
  await complete(deps.db, item, { closed: true });
}
