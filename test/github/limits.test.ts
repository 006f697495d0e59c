/**
 * hallpass against a GitHub that enforces its rate limits (the simulator's
 * `limits`, with small numbers and windows of a second or two): the whole
 * server, its webhooks, sweeper and outbox worker, over real HTTP.
 */
import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RecordedRequest } from "../support/github/simulator.js";
import { issueCommentEvent, issuesEvent } from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import {
  commentOn,
  grantsOf,
  openIssueTicket,
  operatorYaml,
  requestBody,
  seedAcme,
  syncClock,
  type TicketRef,
} from "../tickets/fixtures.js";

const REPO = "acme/payments";
const commentsPath = (ref: TicketRef) => `/repos/${REPO}/issues/${ref.number}/comments`;
const postsOfComments = (h: Hallpass): RecordedRequest[] =>
  h.sim.requests({ method: "POST", path: /\/issues\/\d+\/comments$/ });

let h: Hallpass;
let installationId: number;

beforeAll(async () => {
  h = await startHallpass({ seed: seedAcme, operatorYaml });
  installationId = h.sim.installationFor(h.sim.repo(REPO))!.id;
});
afterAll(() => h.stop());
beforeEach(() => syncClock(h));
afterEach(async () => {
  await h.settle();
  h.sim.limits = null;
  const unexpected = h.sim.unexpected;
  h.sim.clearRequests();
  expect(unexpected).toEqual([]);
});

interface Row {
  id: number;
  state: string;
  attempts: number;
  throttled: number;
  kind: string;
  payload: { number: number; notice?: { kind: string } };
  result: { commentId?: number } | null;
}

async function outbox(): Promise<Row[]> {
  const { rows } = await h.db.query<Row>(
    "SELECT id::int AS id, state, attempts, throttled, kind, payload, result FROM outbox ORDER BY id",
  );
  return rows;
}

/**
 * Every comment the outbox was asked for is on GitHub exactly once, and
 * GitHub has no other comment of the App; none was given up, and no attempt
 * failed other than by a rate limit (unless `failures` allows it).
 */
async function everyCommentOnce(failures = 0): Promise<void> {
  const rows = (await outbox()).filter((r) => r.kind === "comment");
  expect(rows.filter((r) => r.state !== "done")).toEqual([]);
  expect(rows.reduce((n, r) => n + r.attempts - r.throttled - 1, 0)).toBe(failures);
  const recorded = rows.map((r) => r.result?.commentId).sort();
  const numbers = [...new Set(rows.map((r) => r.payload.number))];
  const onGitHub = numbers
    .flatMap((n) => h.sim.commentsOn(REPO, n))
    .filter((c) => c.author === "hallpass[bot]")
    .map((c) => c.id)
    .sort();
  expect(onGitHub).toEqual(recorded);
}

/**
 * Sets a primary limit of `limit` requests per `windowMs` and spends it, as
 * other work of the installation would; returns its reset (epoch seconds).
 */
async function spendPrimaryLimit(limit: number, windowMs: number): Promise<number> {
  h.sim.limits = { primary: { limit, windowMs } };
  const token = h.sim.installationToken(installationId);
  for (let i = 0; i < limit; i++) {
    const response = await fetch(`${h.sim.apiUrl}/repos/${REPO}`, {
      headers: { authorization: `token ${token}` },
    });
    expect(response.status).toBe(200);
  }
  return h.sim.rateLimit(installationId)!.reset;
}

/** An issue ticket by alice, approved by carol: active. */
async function activeIssue(): Promise<TicketRef> {
  const issue = await openIssueTicket(h, "alice", requestBody({ duration: "1h" }));
  await commentOn(h, issue, "carol", "/approve");
  expect((await grantsOf(h, issue))[0]?.state).toBe("active");
  return issue;
}

describe("hallpass under GitHub's rate limits", () => {
  it("drains a backlog larger than the secondary limit at the rate GitHub allows, every comment once", async () => {
    h.sim.limits = { secondary: { perMinute: 5, minuteMs: 1_000 } };
    // The worker is held on its first post while twelve requests arrive: a backlog.
    const held = h.sim.holdNext({ method: "POST", path: /\/comments$/ });
    const tickets: TicketRef[] = [];
    for (let i = 0; i < 12; i++) tickets.push(await openIssueTicket(h, "alice"));
    await held.reached;
    const released = Date.now();
    held.release();
    await h.settle();
    const took = Date.now() - released;

    for (const t of tickets) {
      expect(h.sim.commentsOn(REPO, t.number).map((c) => c.author)).toEqual(["hallpass[bot]"]);
    }
    await everyCommentOnce();
    const posts = postsOfComments(h);
    const refused = posts.filter((r) => r.status === 403);
    // Twelve at five a second: two or three windows, and one refusal per window
    // at most: after one, the installation waited for the retry-after.
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeLessThanOrEqual(3);
    for (const no of refused) {
      const next = posts.find((r) => r.at > no.at);
      expect(next!.at - no.at).toBeGreaterThanOrEqual(900);
    }
    expect(posts.filter((r) => r.status === 201)).toHaveLength(12);
    // A refused post did nothing, so none was looked for before posting again.
    expect(h.sim.requests({ method: "GET", path: /\/comments$/ })).toEqual([]);
    expect(took).toBeLessThan(6_000);
  });

  it("posts a revocation before an older /status reply of another ticket while throttled", async () => {
    const revoked = await activeIssue();
    const asking = await openIssueTicket(h, "alice");
    const other = await openIssueTicket(h, "alice");
    await h.settle();
    h.sim.clearRequests();

    h.sim.limits = { secondary: { perMinute: 1, minuteMs: 1_500 } };
    // The worker is held on a first reply (which will take the window's one write) ...
    const held = h.sim.holdNext({ method: "POST", path: commentsPath(other) });
    await commentOn(h, other, "mallory", "/status");
    await held.reached;
    // ... while a /status reply, then a revocation, are queued behind it.
    await commentOn(h, asking, "mallory", "/status");
    h.sim.closeIssue(REPO, revoked.number, { by: "alice" });
    await h.deliver(issuesEvent(h.sim, "closed", h.sim.issue(REPO, revoked.number)));
    held.release();
    await h.settle();

    const rows = await outbox();
    const reply = rows.findLast((r) => r.payload.number === asking.number);
    const ending = rows.findLast((r) => r.payload.number === revoked.number);
    expect(reply?.payload.notice?.kind).toBe("status");
    expect(ending?.payload.notice?.kind).toBe("ended");
    expect(reply!.id).toBeLessThan(ending!.id);

    // GitHub refused while the two waited: the order is the outbox's, not the window's.
    expect(postsOfComments(h).filter((r) => r.status === 403).length).toBeGreaterThanOrEqual(1);
    const posted = postsOfComments(h).filter((r) => r.status === 201);
    expect(posted.map((r) => r.path)).toEqual([
      commentsPath(other),
      commentsPath(revoked),
      commentsPath(asking),
    ]);
    expect(h.sim.commentsOn(REPO, revoked.number).at(-1)?.body).toMatch(
      /Access (revoked|cancelled)/,
    );
    await everyCommentOnce();
  });

  it("waits for the primary limit's reset once it is spent, without trying each side effect", async () => {
    const first = await activeIssue();
    const second = await activeIssue();
    await h.settle();
    h.sim.clearRequests();

    const reset = await spendPrimaryLimit(20, 1_500);
    // Both grants run out: the sweeper queues two closing comments (no GitHub call).
    h.clock.advance(2 * 3_600_000);
    await h.sweep();
    await h.settle();

    const posts = [first, second].flatMap((t) =>
      h.sim.requests({ method: "POST", path: commentsPath(t) }),
    );
    const refused = posts.filter((r) => r.status === 403);
    // One refusal paused the installation; the other side effect was not tried until the reset.
    expect(refused).toHaveLength(1);
    const after = posts.filter((r) => r.status === 201);
    expect(after).toHaveLength(2);
    for (const r of after) expect(r.at).toBeGreaterThanOrEqual(reset * 1000);
    for (const t of [first, second]) {
      expect(h.sim.commentsOn(REPO, t.number).at(-1)?.body).toMatch(/expired/i);
    }
    await everyCommentOnce();
  });

  it("decides a webhook whose reads GitHub refused for a spent primary limit once the limit resets", async () => {
    const issue = await openIssueTicket(h, "alice");
    await h.settle();
    h.sim.clearRequests();

    const reset = await spendPrimaryLimit(40, 2_000);
    const approval = h.sim.comment(issue.repoId, issue.number, {
      author: "carol",
      body: "/approve",
    });
    const deliveryId = randomUUID();
    const { response } = await h.sim.deliver(issueCommentEvent(h.sim, "created", approval), {
      deliveryId,
    });
    expect(response?.status).toBe(202);
    const delivery = async () =>
      (
        await h.db.query<{ state: string; attempts: number }>(
          "SELECT state, attempts FROM webhook_deliveries WHERE id = $1::text",
          [deliveryId],
        )
      ).rows[0];
    await expect.poll(async () => (await delivery())?.state, { timeout: 15_000 }).toBe("done");

    // Refused while the limit was spent: nothing decided then, the delivery tried again.
    const refused = h.sim.requests().filter((r) => !r.fault && r.status === 403);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) expect(r.at).toBeLessThan(reset * 1000);
    expect((await delivery())?.attempts).toBeGreaterThan(1);
    expect(await grantsOf(h, issue)).toMatchObject([{ state: "active", approvers: ["carol"] }]);
  });

  it("retries server errors and lost answers, and posts each comment once", async () => {
    const comments = /\/issues\/\d+\/comments$/;
    // In the order the three comments are posted: a 500 that did nothing; GitHub
    // timing out after it created the comment; the connection lost after it did.
    h.sim.failNext({ method: "POST", path: comments, status: 500 });
    h.sim.failNext({ method: "POST", path: comments, status: 502, delayMs: 200, applied: true });
    h.sim.failNext({ method: "POST", path: comments, noAnswer: "close" });
    const tickets: TicketRef[] = [];
    for (let i = 0; i < 3; i++) {
      tickets.push(await openIssueTicket(h, "alice"));
      // Each comment tried once before the next ticket's: the faults meet them in order.
      await expect.poll(() => postsOfComments(h).length).toBe(i + 1);
    }
    await h.settle();

    expect(postsOfComments(h).map((r) => [r.status, r.fault])).toEqual([
      [500, true],
      [502, true],
      [0, true],
      [201, false],
    ]);
    for (const t of tickets) {
      expect(
        h.sim.commentsOn(REPO, t.number).filter((c) => c.author === "hallpass[bot]"),
      ).toHaveLength(1);
      // The retry looked for what the failed attempt might have posted.
      expect(h.sim.requests({ method: "GET", path: commentsPath(t) })).toHaveLength(1);
    }
    await everyCommentOnce(3);
  });
});
