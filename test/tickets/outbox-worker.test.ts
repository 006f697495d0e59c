import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { sealedEvent } from "#src/audit/append.js";
import type { GitHub } from "#src/github/api.js";
import type { Loop } from "#src/loop.js";
import { deriveKey } from "#src/secret.js";
import { claimOutbox } from "#src/store/outbox.js";
import { sha256Hex } from "#src/store/ticket-comments.js";
import { getTicketById, type Ticket } from "#src/store/tickets.js";
import type { Notice, SideEffect } from "#src/tickets/notices.js";
import {
  appIdentity,
  type OutboxWorkerOptions,
  startOutboxWorker,
} from "#src/tickets/outbox-worker.js";
import { markerComment, markerOf, renderNotice } from "#src/tickets/render.js";
import { createTestDb, primaryBackend, type TestDb } from "../support/db.js";
import { captureLogger } from "../support/log.js";
import {
  type GitHubWorld,
  outboxRow,
  queueEffect,
  REPO,
  startGitHubWorld,
  storeTicket,
} from "../support/outbox.js";

const SECRET_REASON = "refund for order 5521, customer Jane Roe";
const MARKER_KEY = deriveKey(randomBytes(32), "outbox-marker");
const marker = (dedupeKey: string) => markerOf(MARKER_KEY, dedupeKey);

let world: GitHubWorld;
let db: TestDb;
let workers: Loop[] = [];
let logs: ReturnType<typeof captureLogger>;

beforeAll(async () => {
  world = await startGitHubWorld();
});
afterAll(() => world.sim.close());

beforeEach(async () => {
  db = await createTestDb(primaryBackend);
  logs = captureLogger("debug");
});

afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  workers = [];
  await db.close();
  const unexpected = world.sim.unexpected;
  world.sim.clearRequests();
  world.sim.limits = null;
  expect(unexpected).toEqual([]);
});

/** Starts a worker (call it twice for two replicas on one database). */
function start(options: Partial<OutboxWorkerOptions> = {}): void {
  workers.push(
    startOutboxWorker({
      db,
      log: logs.log,
      github: world.github,
      identity: appIdentity(() => world.probot.auth() as Promise<GitHub>),
      markerKey: MARKER_KEY,
      idleMs: 20,
      retryBaseMs: 20,
      writeIntervalMs: 0,
      ...options,
    }),
  );
}

async function issueTicket(): Promise<Ticket> {
  const issue = world.sim.openIssue(REPO, {
    author: "alice",
    body: "access please",
    labels: ["hallpass"],
  });
  return storeTicket(db, world, issue.number);
}

function commentOn(ticket: Ticket, notice: Notice): SideEffect {
  return { kind: "comment", repo: world.repo, number: ticket.number, notice };
}

const denied = (reason = SECRET_REASON): Notice => ({ kind: "denied", by: "bob", reason });

async function settled(dedupeKey: string, state: "done" | "dead" = "done") {
  await expect
    .poll(async () => (await outboxRow(db, dedupeKey))?.state, { timeout: 10_000 })
    .toBe(state);
  const row = await outboxRow(db, dedupeKey);
  if (!row) throw new Error("no outbox row");
  return row;
}

const commentsPath = (ticket: Ticket) => `/repos/${REPO}/issues/${ticket.number}/comments`;

describe("outbox worker: comments", () => {
  it("posts a comment once, with its marker and the audit event's hash, and remembers it", async () => {
    const ticket = await issueTicket();
    const { dedupeKey, eventId } = await queueEffect(db, ticket, commentOn(ticket, denied()));
    start();
    const row = await settled(dedupeKey);

    const sealed = await sealedEvent(db, eventId);
    const comments = world.sim.commentsOn(REPO, ticket.number);
    expect(comments).toHaveLength(1);
    const [posted] = comments;
    expect(posted?.author).toBe("hallpass[bot]");
    expect(posted?.body.startsWith(`${markerComment(marker(dedupeKey))}\n`)).toBe(true);
    // The marker is an HMAC of the dedupe key, not the key itself.
    expect(posted?.body).not.toContain(dedupeKey);
    expect(posted?.body).toContain(`audit event #&#8203;${sealed?.seq}`);
    expect(posted?.body).toContain(`<code>${sealed?.hash}</code>`);
    expect(row).toMatchObject({ attempts: 1, result: { commentId: posted?.id } });
    // A first attempt does not look for an earlier one.
    expect(world.sim.requests({ method: "GET", path: commentsPath(ticket) })).toHaveLength(0);

    const { rows } = await db.query<{
      ticket_id: string;
      outbox_id: number;
      audit_event_id: string;
      body_sha256: string;
    }>(
      "SELECT ticket_id, outbox_id::int AS outbox_id, audit_event_id, body_sha256 FROM ticket_comments WHERE comment_id = $1::bigint",
      [posted?.id],
    );
    expect(rows).toEqual([
      {
        ticket_id: ticket.id,
        outbox_id: row.id,
        audit_event_id: eventId,
        body_sha256: sha256Hex(posted?.body ?? ""),
      },
    ]);
    // Comment bodies stay out of logs above debug.
    const loud = logs.lines().filter((line) => Number(line.level) >= 30);
    expect(JSON.stringify(loud)).not.toContain("Jane Roe");
  });

  it("does not post again after a crash when the comment already reached GitHub", async () => {
    const ticket = await issueTicket();
    const notice = denied();
    const { dedupeKey, eventId } = await queueEffect(db, ticket, commentOn(ticket, notice));
    // The crashed process: it claimed the row (lease now over) and posted before dying.
    expect(await claimOutbox(db, 10, 1)).toHaveLength(1);
    const body = renderNotice(notice, await sealedEvent(db, eventId), marker(dedupeKey));
    const before = world.sim.comment(REPO, ticket.number, { author: world.sim.app.bot, body });
    world.sim.comment(REPO, ticket.number, {
      author: "mallory",
      body: `${markerComment("other/0")}\nhi`,
    });
    await new Promise((resolve) => setTimeout(resolve, 10));

    start();
    const row = await settled(dedupeKey);
    expect(row).toMatchObject({ attempts: 2, result: { commentId: before.id } });
    expect(world.sim.requests({ method: "POST", path: commentsPath(ticket) })).toHaveLength(0);
    expect(world.sim.requests({ method: "GET", path: commentsPath(ticket) })).toHaveLength(1);
    expect(
      world.sim.commentsOn(REPO, ticket.number).filter((c) => c.author === "hallpass[bot]"),
    ).toHaveLength(1);
    const { rows } = await db.query("SELECT 1 FROM ticket_comments WHERE comment_id = $1::bigint", [
      before.id,
    ]);
    expect(rows).toHaveLength(1);
  });

  it("writes nothing for a claim whose lease ran out while it waited, and another claim took the row", async () => {
    const ticket = await issueTicket();
    // A closing comment waits for the proxies' last usage before it is posted.
    const ending: Notice = {
      kind: "ended",
      state: "revoked",
      reason: "ticket closed",
      by: "alice",
      usage: { tokens: [], requests: [], requestsTotal: 0 },
      grantId: randomUUID(),
    };
    const { dedupeKey } = await queueEffect(db, ticket, commentOn(ticket, ending));
    // Worker a claims it for 300 ms, then waits a second for the usage to settle ...
    start({ leaseMs: 300, usageSettleMs: 1_000 });
    await expect.poll(async () => (await outboxRow(db, dedupeKey))?.attempts).toBe(1);
    // ... by when its lease has run out, and worker b has taken the row and posted it.
    await new Promise((resolve) => setTimeout(resolve, 400));
    start({ usageSettleMs: 0 });
    await settled(dedupeKey);
    // a then comes back to the row with its old claim: it posts nothing.
    await expect
      .poll(() => logs.lines().some((l) => /lease ran out/.test(String(l.msg))), {
        timeout: 5_000,
      })
      .toBe(true);
    expect(
      world.sim.commentsOn(REPO, ticket.number).filter((c) => c.author === "hallpass[bot]"),
    ).toHaveLength(1);
    expect(world.sim.requests({ method: "POST", path: commentsPath(ticket) })).toHaveLength(1);
    expect(await outboxRow(db, dedupeKey)).toMatchObject({ state: "done", attempts: 2 });
  });

  it("recognises its own comment with the marker an older version wrote (the dedupe key)", async () => {
    const ticket = await issueTicket();
    const notice = denied();
    const { dedupeKey, eventId } = await queueEffect(db, ticket, commentOn(ticket, notice));
    expect(await claimOutbox(db, 10, 1)).toHaveLength(1);
    const body = renderNotice(notice, await sealedEvent(db, eventId), dedupeKey);
    const before = world.sim.comment(REPO, ticket.number, { author: world.sim.app.bot, body });
    await new Promise((resolve) => setTimeout(resolve, 10));

    start();
    const row = await settled(dedupeKey);
    expect(row).toMatchObject({ attempts: 2, result: { commentId: before.id } });
    expect(world.sim.requests({ method: "POST", path: commentsPath(ticket) })).toHaveLength(0);
  });

  it.each([
    ["another App's bot", "forger[bot]"],
    ["a person", "mallory"],
  ])("does not take a copy by %s carrying its marker for its own", async (_who, author) => {
    const ticket = await issueTicket();
    const notice: Notice = {
      kind: "granted",
      terms: {
        resource: "payments-api",
        scopes: ["refund"],
        permissions: ["POST /v1/refunds"],
        durationSeconds: 3600,
        start: null,
        reason: "forged",
      },
      requester: "mallory",
      approvers: ["bob"],
      decision: "approvals",
      rule: null,
      reviewBy: null,
      startsAt: "2025-03-04T10:00:00.000Z",
      endsAt: "2025-03-04T11:00:00.000Z",
      ticketRef: `${REPO}#${ticket.number}`,
      ticketKind: "issue",
      serverUrl: "https://hallpass.example.test",
    };
    const { dedupeKey, eventId } = await queueEffect(db, ticket, commentOn(ticket, denied()));
    // The first attempt failed after GitHub took the comment, or an attempt crashed:
    // the row is claimed again, and the forger wrote first, with the marker
    // (this version's and the one older versions wrote) copied.
    expect(await claimOutbox(db, 10, 1)).toHaveLength(1);
    const sealed = await sealedEvent(db, eventId);
    const forgeries = [marker(dedupeKey), dedupeKey].map((m) =>
      world.sim.comment(REPO, ticket.number, { author, body: renderNotice(notice, sealed, m) }),
    );
    expect(forgeries[0]?.body).toContain("✅ Access granted");
    await new Promise((resolve) => setTimeout(resolve, 10));

    start();
    const row = await settled(dedupeKey);
    expect(world.sim.requests({ method: "GET", path: commentsPath(ticket) })).toHaveLength(1);
    expect(world.sim.requests({ method: "POST", path: commentsPath(ticket) })).toHaveLength(1);
    const comments = world.sim.commentsOn(REPO, ticket.number);
    expect(comments.map((c) => c.author)).toEqual([author, author, "hallpass[bot]"]);
    const real = comments[2];
    expect(real?.body).toContain("⛔ Access request denied");
    expect(row.result).toEqual({ commentId: real?.id });
    // Only the real comment is remembered as hallpass's (and guarded against tampering).
    const { rows } = await db.query<{ comment_id: number }>(
      "SELECT comment_id FROM ticket_comments WHERE ticket_id = $1::uuid",
      [ticket.id],
    );
    expect(rows.map((r) => r.comment_id)).toEqual([real?.id]);
  });

  it("retries server errors with backoff: 500 twice, then posted once", async () => {
    const ticket = await issueTicket();
    world.sim.failNext({ method: "POST", path: commentsPath(ticket), status: 500, times: 2 });
    const { dedupeKey } = await queueEffect(db, ticket, commentOn(ticket, denied()));
    start();
    const row = await settled(dedupeKey);
    expect(row.attempts).toBe(3);
    const posts = world.sim.requests({ method: "POST", path: commentsPath(ticket) });
    expect(posts.map((r) => r.status)).toEqual([500, 500, 201]);
    // 20 ms, then 40 ms: the second wait is the longer.
    expect(posts[2]!.at - posts[1]!.at).toBeGreaterThanOrEqual(35);
    expect(world.sim.commentsOn(REPO, ticket.number)).toHaveLength(1);
    const warnings = logs.lines().filter((l) => l.msg === "GitHub side effect failed; will retry");
    expect(warnings.map((l) => l.status)).toEqual([500, 500]);
  });

  it("waits out a secondary rate limit for as long as retry-after says", async () => {
    const ticket = await issueTicket();
    world.sim.failNext({ method: "POST", path: commentsPath(ticket), status: 403, retryAfter: 1 });
    const { dedupeKey } = await queueEffect(db, ticket, commentOn(ticket, denied()));
    start();
    await expect
      .poll(async () => (await outboxRow(db, dedupeKey))?.last_error ?? "")
      .toMatch(/secondary rate limit/);
    const row = await settled(dedupeKey);
    const posts = world.sim.requests({ method: "POST", path: commentsPath(ticket) });
    expect(posts.map((r) => r.status)).toEqual([403, 201]);
    expect(posts[1]!.at - posts[0]!.at).toBeGreaterThanOrEqual(950);
    expect(
      logs.lines().find((l) => l.msg === "GitHub rate limit; the installation's side effects wait"),
    ).toMatchObject({
      status: 403,
      retryInMs: 1000,
      why: "secondary rate limit",
      installation: world.installationId,
    });
    // The refused attempt did nothing on GitHub: no look for its comment before posting.
    expect(row).toMatchObject({ attempts: 2 });
    expect(world.sim.requests({ method: "GET", path: commentsPath(ticket) })).toHaveLength(0);
  });

  it("gives up at once on a 404 (the ticket is gone), with a log line and no retry", async () => {
    const ticket = await storeTicket(db, world, 9_999);
    const { dedupeKey } = await queueEffect(db, ticket, commentOn(ticket, denied()));
    start();
    const row = await settled(dedupeKey, "dead");
    expect(row.attempts).toBe(1);
    expect(row.last_error).toMatch(/^404: Not Found/);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(world.sim.requests({ method: "POST", path: commentsPath(ticket) })).toHaveLength(1);
    expect(logs.lines().find((l) => l.msg === "GitHub side effect given up")).toMatchObject({
      level: 50,
      status: 404,
      retryInMs: null,
      outbox: row.id,
    });
    expect(logs.text()).not.toContain("Jane Roe");
  });

  it("gives up on a deleted installation", async () => {
    const gone = world.sim.addInstallation("acme", { repositories: [REPO] }).id;
    world.sim.deleteInstallation(gone);
    const issue = world.sim.openIssue(REPO, { author: "alice", body: "x", labels: ["hallpass"] });
    const ticket = await storeTicket(db, world, issue.number, { installationId: gone });
    const { dedupeKey } = await queueEffect(db, ticket, commentOn(ticket, denied()));
    start();
    const row = await settled(dedupeKey, "dead");
    expect(row.attempts).toBe(1);
    expect(world.sim.commentsOn(REPO, issue.number)).toHaveLength(0);
  });

  it("gives up after maxAttempts", async () => {
    const ticket = await issueTicket();
    world.sim.failNext({ method: "POST", path: commentsPath(ticket), status: 502, times: 5 });
    const { dedupeKey } = await queueEffect(db, ticket, commentOn(ticket, denied()));
    start({ maxAttempts: 3 });
    const row = await settled(dedupeKey, "dead");
    expect(row.attempts).toBe(3);
    expect(row.last_error).toMatch(/^502/);
    expect(world.sim.commentsOn(REPO, ticket.number)).toHaveLength(0);
  });

  it("posts a ticket's comments in order, even when the first fails once", async () => {
    const ticket = await issueTicket();
    world.sim.failNext({ method: "POST", path: commentsPath(ticket), status: 500 });
    const first = await queueEffect(db, ticket, commentOn(ticket, denied("first")));
    const second = await queueEffect(db, ticket, commentOn(ticket, denied("second")));
    const other = await issueTicket();
    const elsewhere = await queueEffect(db, other, commentOn(other, denied("elsewhere")));
    start();
    await settled(first.dedupeKey);
    await settled(second.dedupeKey);
    await settled(elsewhere.dedupeKey);
    const bodies = world.sim.commentsOn(REPO, ticket.number).map((c) => c.body);
    expect(bodies).toHaveLength(2);
    expect(bodies[0]).toContain("| Reason | first |");
    expect(bodies[1]).toContain("| Reason | second |");
    // The other ticket was not held back by this one's failure.
    const posts = world.sim.requests({ method: "POST", path: /\/comments$/ });
    expect(posts.map((r) => r.path)).toEqual([
      commentsPath(ticket),
      commentsPath(other),
      commentsPath(ticket),
      commentsPath(ticket),
    ]);
  });
});

describe("outbox worker: GitHub's rate limits", () => {
  const status = (): Notice => ({ kind: "status", state: "pending", trace: ["asked"] });
  const ended = (): Notice => ({
    kind: "ended",
    state: "revoked",
    reason: "ticket closed",
    by: "alice",
    usage: null,
  });
  const throttledOf = async (dedupeKey: string) =>
    (
      await db.query<{ throttled: number }>(
        "SELECT throttled FROM outbox WHERE dedupe_key = $1::text",
        [dedupeKey],
      )
    ).rows[0]?.throttled;

  it("pauses only the limited installation, on every replica, and posts all of it once the limit lets it", async () => {
    // Two writes a window each; the first installation has five to post, the second two.
    world.sim.limits = { secondary: { perMinute: 2, minuteMs: 1_000 } };
    const second = world.sim.addInstallation("acme", { repositories: [REPO] }).id;
    const queued: { dedupeKey: string; ticket: Ticket }[] = [];
    for (let i = 0; i < 5; i++) {
      const ticket = await issueTicket();
      queued.push({
        ticket,
        ...(await queueEffect(db, ticket, commentOn(ticket, denied(`a${i}`)))),
      });
    }
    for (let i = 0; i < 2; i++) {
      const issue = world.sim.openIssue(REPO, { author: "alice", body: "x", labels: ["hallpass"] });
      const ticket = await storeTicket(db, world, issue.number, { installationId: second });
      queued.push({
        ticket,
        ...(await queueEffect(db, ticket, commentOn(ticket, denied(`b${i}`)))),
      });
    }
    start();
    start();
    for (const { dedupeKey } of queued) await settled(dedupeKey);

    for (const { ticket } of queued)
      expect(world.sim.commentsOn(REPO, ticket.number)).toHaveLength(1);
    const writes = world.sim.requests({ method: "POST", path: /\/comments$/ });
    const first = writes.filter((r) => r.installationId === world.installationId);
    const other = writes.filter((r) => r.installationId === second);
    expect(other.map((r) => r.status)).toEqual([201, 201]);
    // Each refusal paused the installation for both workers: nothing was sent
    // until its retry-after was over, so no refusal followed another.
    const refused = first.filter((r) => r.status === 403);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeLessThanOrEqual(3);
    for (const no of refused) {
      const next = first.find((r) => r.at > no.at);
      expect(next?.status).toBe(201);
      expect(next!.at - no.at).toBeGreaterThanOrEqual(950);
    }
    // The other installation did not wait for the first one's pause.
    expect(Math.max(...other.map((r) => r.at))).toBeLessThan(refused[0]!.at + 900);
    // The refused attempts count as throttled, did not look for an earlier comment, and none died.
    let throttled = 0;
    for (const { dedupeKey } of queued) throttled += (await throttledOf(dedupeKey)) ?? 0;
    expect(throttled).toBe(refused.length);
    expect(world.sim.requests({ method: "GET", path: /\/comments$/ })).toHaveLength(0);
  });

  it("never gives a side effect up for rate limits, however many", async () => {
    const ticket = await issueTicket();
    world.sim.failNext({
      method: "POST",
      path: commentsPath(ticket),
      status: 429,
      retryAfter: 0.05,
      times: 4,
    });
    const { dedupeKey } = await queueEffect(db, ticket, commentOn(ticket, denied()));
    start({ maxAttempts: 2 });
    const row = await settled(dedupeKey);
    expect(row.attempts).toBe(5);
    expect(await throttledOf(dedupeKey)).toBe(4);
    expect(world.sim.commentsOn(REPO, ticket.number)).toHaveLength(1);
  });

  it("carries out the most important first, a ticket's own in order, then the oldest", async () => {
    // A backlog, as a rate limit leaves it.
    const [x, w, y, z] = [
      await issueTicket(),
      await issueTicket(),
      await issueTicket(),
      await issueTicket(),
    ];
    await queueEffect(db, x, commentOn(x, status()));
    await queueEffect(db, w, commentOn(w, status()));
    await queueEffect(db, y, commentOn(y, denied()));
    await queueEffect(db, z, commentOn(z, ended()));
    const last = await queueEffect(db, w, commentOn(w, ended()));
    start();
    await settled(last.dedupeKey);
    await expect.poll(() => world.sim.requests({ method: "POST" }).length).toBe(5);
    const order = world.sim
      .requests({ method: "POST", path: /\/comments$/ })
      .map((r) => [x, w, y, z].find((t) => commentsPath(t) === r.path));
    // w's /status reply goes first: the revocation waiting behind it ranks it so.
    expect(order.slice(0, 4)).toEqual([w, z, y, x]);
    expect(order[4]).toBe(w);
    expect(world.sim.commentsOn(REPO, w.number).map((c) => c.body)).toEqual([
      expect.stringContaining("Status: "),
      expect.stringContaining("Access revoked"),
    ]);
  });

  it("gives a request no answer in time up, and then finds the comment it posted instead of posting again", async () => {
    const ticket = await issueTicket();
    // GitHub creates the comment and never answers; later it times out after creating one.
    world.sim.failNext({ method: "POST", path: commentsPath(ticket), noAnswer: "hang" });
    const { dedupeKey } = await queueEffect(db, ticket, commentOn(ticket, denied("hung")));
    const other = await issueTicket();
    world.sim.failNext({
      method: "POST",
      path: commentsPath(other),
      status: 504,
      delayMs: 50,
      applied: true,
    });
    const late = await queueEffect(db, other, commentOn(other, denied("late")));
    start({ requestTimeoutMs: 300 });
    const row = await settled(dedupeKey);
    const lateRow = await settled(late.dedupeKey);

    for (const [t, r] of [
      [ticket, row],
      [other, lateRow],
    ] as const) {
      const comments = world.sim.commentsOn(REPO, t.number);
      expect(comments).toHaveLength(1);
      expect(r).toMatchObject({ attempts: 2, result: { commentId: comments[0]?.id } });
      expect(world.sim.requests({ method: "POST", path: commentsPath(t) })).toHaveLength(1);
      expect(world.sim.requests({ method: "GET", path: commentsPath(t) })).toHaveLength(1);
    }
    expect(world.sim.requests({ path: commentsPath(ticket) })[0]?.status).toBe(0);
    const warnings = logs.lines().filter((l) => l.msg === "GitHub side effect failed; will retry");
    expect(warnings.map((l) => [l.status, l.why])).toEqual(
      expect.arrayContaining([
        [504, "GitHub answered 504"],
        [null, "no answer from GitHub"],
      ]),
    );
    expect(warnings).toHaveLength(2);
  });

  it("spaces an installation's writes by writeIntervalMs, across replicas", async () => {
    const queued = [];
    for (let i = 0; i < 4; i++) {
      const ticket = await issueTicket();
      queued.push(await queueEffect(db, ticket, commentOn(ticket, denied(`p${i}`))));
    }
    start({ writeIntervalMs: 150 });
    start({ writeIntervalMs: 150 });
    for (const { dedupeKey } of queued) await settled(dedupeKey);
    const at = world.sim.requests({ method: "POST", path: /\/comments$/ }).map((r) => r.at);
    expect(at).toHaveLength(4);
    // Slots start 150 ms apart; arrivals jitter by what each request does
    // before it is sent (each replica's first write also fetches the
    // installation's token), so gaps and the span of three slots (450 ms) are
    // asserted less that jitter. Unpaced, the four arrive within milliseconds.
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(50);
    expect(at[3]! - at[0]!).toBeGreaterThanOrEqual(350);
  });

  it("stops before a refusal when an answer says the primary limit is spent, until it resets", async () => {
    const ticket = await issueTicket();
    const token = world.sim.installationToken(world.installationId);
    world.sim.limits = { primary: { limit: 6, windowMs: 1_500 } };
    // Other work of the installation spent five of six: the first comment takes the last one.
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${world.sim.apiUrl}/repos/${REPO}`, {
        headers: { authorization: `token ${token}` },
      });
      expect(response.status).toBe(200);
    }
    const reset = world.sim.rateLimit(world.installationId)!.reset;
    const first = await queueEffect(db, ticket, commentOn(ticket, denied("one")));
    const second = await queueEffect(db, ticket, commentOn(ticket, denied("two")));
    start();
    await settled(first.dedupeKey);
    await settled(second.dedupeKey);
    const posts = world.sim.requests({ method: "POST", path: commentsPath(ticket) });
    expect(posts.map((r) => r.status)).toEqual([201, 201]);
    expect(posts[1]!.at).toBeGreaterThanOrEqual(reset * 1000);
    expect(world.sim.requests({ status: 403 })).toEqual([]);
  });
});

describe("outbox worker: check runs and issues", () => {
  function check(ticket: Ticket, headSha: string, state: "pending" | "granted"): SideEffect {
    return {
      kind: "check_run",
      repo: world.repo,
      number: ticket.number,
      headSha,
      status: state === "pending" ? "in_progress" : "completed",
      conclusion: state === "pending" ? null : "success",
      title:
        state === "pending" ? "Waiting for approval" : "Access granted until 2025-03-04 11:00 UTC",
      summary: "",
    };
  }

  it("creates the hallpass check run, updates it on the same head, and starts a new one on a new head", async () => {
    const branch = `access-${Date.now()}`;
    const pr = world.sim.openPullRequest(REPO, {
      author: "alice",
      head: branch,
      files: { "a.txt": "1" },
      labels: ["hallpass"],
    });
    const firstSha = pr.pull.head.sha;
    let ticket = await storeTicket(db, world, pr.number, {
      kind: "pull_request",
      headSha: firstSha,
    });
    start();

    const created = await queueEffect(db, ticket, check(ticket, firstSha, "pending"));
    const createdRow = await settled(created.dedupeKey);
    const [run] = world.sim.checkRunsFor(REPO, firstSha);
    expect(run).toMatchObject({ name: "hallpass", externalId: ticket.id, status: "in_progress" });
    expect(run?.output.title).toBe("Waiting for approval");
    expect(createdRow.result).toEqual({ checkRunId: run?.id, headSha: firstSha });
    expect((await getTicketById(db, ticket.id))?.checkRunId).toBe(run?.id);

    const updated = await queueEffect(db, ticket, check(ticket, firstSha, "granted"));
    await settled(updated.dedupeKey);
    expect(world.sim.checkRunsFor(REPO, firstSha)).toHaveLength(1);
    expect(world.sim.checkRunsFor(REPO, firstSha)[0]).toMatchObject({
      status: "completed",
      conclusion: "success",
    });
    expect(
      world.sim.requests({ method: "PATCH", path: `/repos/${REPO}/check-runs/${run?.id}` }),
    ).toHaveLength(1);

    const newSha = world.sim.commit(REPO, { branch, files: { "b.txt": "2" } });
    ticket = await storeTicket(db, world, pr.number, { kind: "pull_request", headSha: newSha });
    const moved = await queueEffect(db, ticket, check(ticket, newSha, "pending"));
    await settled(moved.dedupeKey);
    const [newRun] = world.sim.checkRunsFor(REPO, newSha);
    expect(newRun).toMatchObject({ name: "hallpass", status: "in_progress" });
    expect(newRun?.id).not.toBe(run?.id);
    expect(world.sim.checkRunsFor(REPO, firstSha)[0]).toMatchObject({ conclusion: "success" });
    expect((await getTicketById(db, ticket.id))?.checkRunId).toBe(newRun?.id);
  });

  it("after a crash, updates the check run an earlier attempt created instead of creating another", async () => {
    const pr = world.sim.openPullRequest(REPO, {
      author: "alice",
      head: `crash-${Date.now()}`,
      files: { "c.txt": "1" },
    });
    const sha = pr.pull.head.sha;
    const ticket = await storeTicket(db, world, pr.number, { kind: "pull_request", headSha: sha });
    const { dedupeKey } = await queueEffect(db, ticket, check(ticket, sha, "pending"));
    // The crashed attempt: claimed, created the run, died before recording it.
    expect(await claimOutbox(db, 10, 1)).toHaveLength(1);
    const gh = await world.github(world.installationId);
    const { data: orphan } = await gh.rest.checks.create({
      owner: "acme",
      repo: "payments",
      name: "hallpass",
      head_sha: sha,
      external_id: ticket.id,
      status: "queued",
    });
    await new Promise((resolve) => setTimeout(resolve, 10));

    start();
    const row = await settled(dedupeKey);
    expect(row.result).toEqual({ checkRunId: orphan.id, headSha: sha });
    expect(world.sim.checkRunsFor(REPO, sha)).toHaveLength(1);
    expect(world.sim.checkRunsFor(REPO, sha)[0]).toMatchObject({ status: "in_progress" });
    expect((await getTicketById(db, ticket.id))?.checkRunId).toBe(orphan.id);
  });

  it("closes an issue with its reason", async () => {
    const ticket = await issueTicket();
    const { dedupeKey } = await queueEffect(db, ticket, {
      kind: "close_issue",
      repo: world.repo,
      number: ticket.number,
      reason: "not_planned",
    });
    start();
    await settled(dedupeKey);
    expect(world.sim.issue(REPO, ticket.number)).toMatchObject({ state: "closed" });
    expect(
      world.sim.requests({ method: "PATCH", path: `/repos/${REPO}/issues/${ticket.number}` })[0]
        ?.body,
    ).toEqual({
      state: "closed",
      state_reason: "not_planned",
    });
  });
});
