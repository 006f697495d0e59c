/**
 * Two replicas on one Postgres, with one GitHub: each with its own pool,
 * workers, sweeper, token service and proxy, and its own clock, 3 s ahead
 * of the other's. GitHub (or a load balancer) hands both the same
 * deliveries; both sweep the same expiries; both proxies serve the same
 * grant. Every effect happens once, and a revocation on one is refused by
 * the other's proxy on its next request.
 *
 * Clocks: leases (deliveries, the outbox, redelivery) are taken and checked
 * with the database's `now()`, so process clocks do not enter them. The
 * sweeper, decisions (a grant's window) and token times use the process
 * clock; what the skew does there is shown below.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, TEST_DATABASE_URL, type TestDb } from "../support/db.js";
import { GitHubSimulator } from "../support/github/simulator.js";
import { issueCommentEvent, issuesEvent } from "../support/github/webhooks.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import { requestBody, seedAcme } from "../tickets/fixtures.js";
import {
  deliverTo,
  FLEET_SECRET,
  fleetEnv,
  grantsOf,
  outboxSettled,
  processed,
  type Replica,
  SkewedClock,
  startReplica,
} from "./support.js";

const SKEW_MS = 3_000;

describe.runIf(TEST_DATABASE_URL)("two replicas on one database", () => {
  let db: TestDb;
  let sim: GitHubSimulator;
  let upstream: Upstream;
  let dir: string;
  let ids: { repoId: number; ownerId: number };
  let a: Replica;
  let b: Replica;
  const both = () => [a.url, b.url];

  beforeAll(async () => {
    db = await createTestDb("postgres");
    sim = await GitHubSimulator.start({ appId: 9600 + Math.floor(Math.random() * 300) });
    ids = seedAcme(sim);
    upstream = await startUpstream();
    dir = await mkdtemp(path.join(tmpdir(), "hallpass-replicas-"));
    const env = await fleetEnv({ sim, ids, upstreamUrl: upstream.url, dir });
    const clock = new SkewedClock();
    a = await startReplica({ name: "a", db: db.another(), env, clock });
    b = await startReplica({
      name: "b",
      db: db.another(),
      env,
      clock: new SkewedClock({ base: clock, skewMs: SKEW_MS }),
    });
  });
  afterAll(async () => {
    await b?.stop();
    await a?.stop();
    await sim?.close();
    await upstream?.close();
    await db?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A ticket of alice's, opened and approved by bob, each delivery given to both replicas. */
  async function grantedTicket(scopes = "read") {
    const issue = sim.openIssue("acme/payments", {
      author: "alice",
      body: requestBody({ scopes }),
      labels: ["hallpass"],
    });
    const opened = await deliverTo(both(), issuesEvent(sim, "opened", issue));
    await processed(db, opened.deliveryId);
    const approve = sim.comment("acme/payments", issue.number, { author: "bob", body: "/approve" });
    const approved = await deliverTo(both(), issueCommentEvent(sim, "created", approve));
    await processed(db, approved.deliveryId);
    const [grant] = await grantsOf(db, ids.repoId, issue.number);
    expect(grant?.state).toBe("active");
    // The grant's window starts at the clock of the replica that activated it,
    // up to SKEW_MS ahead of the other's; until that clock gets there, the other
    // refuses the grant (GRANT_NOT_ACTIVE, in its mint and its proxy).
    a.clock.advance(SKEW_MS + 1_000);
    return { issue, grantId: grant?.id as string, answers: [opened, approved] };
  }

  const auditKinds = async (number: number) =>
    (
      await db.query<{ kind: string }>(
        `SELECT e.kind FROM audit_events e JOIN tickets t ON t.id = e.ticket_id
          WHERE t.number = $1::int ORDER BY e.seq`,
        [number],
      )
    ).rows.map((r) => r.kind);

  /** The comments the outbox posted for a ticket, and the App's comments GitHub has. */
  const comments = async (number: number) => {
    const { rows } = await db.query<{ notice: string; comment_id: string | null }>(
      `SELECT o.payload->'notice'->>'kind' AS notice, o.result->>'commentId' AS comment_id
         FROM outbox o JOIN tickets t ON t.id = o.ticket_id
        WHERE t.number = $1::int AND o.kind = 'comment' AND o.state = 'done' ORDER BY o.id`,
      [number],
    );
    const onGitHub = sim
      .commentsOn("acme/payments", number)
      .filter((c) => c.author.endsWith("[bot]"));
    return { notices: rows.map((r) => r.notice), ids: rows.map((r) => r.comment_id), onGitHub };
  };

  it("takes each delivery given to both once: one grant, one comment each, one audit event each", async () => {
    const { issue, answers } = await grantedTicket();
    // One replica stored it; the other found it stored.
    for (const answer of answers) expect([...answer.statuses].sort()).toEqual([200, 202]);
    expect((await grantsOf(db, ids.repoId, issue.number)).map((g) => g.state)).toEqual(["active"]);
    expect(await auditKinds(issue.number)).toEqual([
      "grant.requested",
      "approval.recorded",
      "grant.activated",
    ]);
    await outboxSettled(db);
    const posted = await comments(issue.number);
    expect(new Set(posted.notices).size).toBe(posted.notices.length);
    expect(posted.onGitHub.map((c) => String(c.id)).sort()).toEqual([...posted.ids].sort());
  });

  it("asks GitHub once for a delivery neither replica got, though both look at once", async () => {
    const issue = sim.openIssue("acme/payments", {
      author: "alice",
      body: requestBody(),
      labels: ["hallpass"],
    });
    sim.webhookTarget = { url: b.url, secret: FLEET_SECRET };
    const { delivery } = await sim.deliver(issuesEvent(sim, "opened", issue), { drop: true });
    const asked = await Promise.all([a.redeliver(), b.redeliver()]);
    expect(asked.sort()).toEqual([0, 1]);
    await sim.settled();
    await processed(db, delivery.guid);
    expect(sim.deliveries.filter((d) => d.guid === delivery.guid && d.redelivery)).toHaveLength(1);
    expect((await grantsOf(db, ids.repoId, issue.number)).map((g) => g.state)).toEqual(["pending"]);
  });

  it("serves one grant on both proxies; after /revoke on one, the other refuses the next call", async () => {
    const { issue, grantId } = await grantedTicket();
    const token = await a.token(grantId);
    expect((await a.call("/payments-api/v1/charges", token)).status).toBe(200);
    expect((await b.call("/payments-api/v1/charges", token)).status).toBe(200);

    const revoke = sim.comment("acme/payments", issue.number, { author: "alice", body: "/revoke" });
    await processed(
      db,
      (await deliverTo([a.url], issueCommentEvent(sim, "created", revoke))).deliveryId,
    );
    const refused = await b.call("/payments-api/v1/charges", token);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: "TOKEN_REVOKED" });
    expect((await a.call("/payments-api/v1/charges", token)).status).toBe(401);
    expect(upstream.seen.filter((s) => s.url === "/v1/charges")).toHaveLength(2);
  });

  it("accepts at once, on the other replica, a token minted by the replica whose clock is ahead", async () => {
    const { grantId } = await grantedTicket();
    // b's clock is SKEW_MS ahead: its token's nbf (= iat) is in a's future.
    const token = await b.token(grantId);
    const answer = await a.call("/payments-api/v1/charges", token);
    expect(answer.status, JSON.stringify(await answer.clone().json())).toBe(200);
    expect((await b.call("/payments-api/v1/charges", token)).status).toBe(200);
    // The leeway is for `nbf` alone: at its `exp` the token is expired, to the second.
    const { exp } = JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString());
    a.clock.advance(exp * 1000 - a.clock.now().getTime());
    const verifier = a.tokens().verifier;
    await expect(verifier.verify(token)).rejects.toThrow("invalid token: expired");
    expect(await verifier.verify(token, { allowExpired: true })).toMatchObject({ expired: true });
  });

  it("warns and expires each grant once though both replicas sweep, their clocks 3 s apart", async () => {
    const tickets = [await grantedTicket(), await grantedTicket(), await grantedTicket()];
    await outboxSettled(db);
    const sweepBoth = async () => {
      for (let round = 0; round < 3; round++) await Promise.all([a.sweep(), b.sweep()]);
    };
    const { rows } = await db.query<{ ends_at: Date }>(
      "SELECT max(ends_at) AS ends_at FROM grants WHERE id = ANY($1::uuid[])",
      [tickets.map((t) => t.grantId)],
    );
    const endsAt = (rows[0] as { ends_at: Date }).ends_at.getTime();
    // Five minutes before the end (on a's clock): both are within the warning.
    a.clock.advance(endsAt - 5 * 60_000 - a.clock.now().getTime());
    await sweepBoth();
    // a is a second before the end, b two seconds past it: b expires them, a finds them expired.
    a.clock.advance(endsAt - 1_000 - a.clock.now().getTime());
    await sweepBoth();
    a.clock.advance(SKEW_MS);
    await sweepBoth();
    await outboxSettled(db);
    for (const { issue, grantId } of tickets) {
      expect((await grantsOf(db, ids.repoId, issue.number)).map((g) => g.state)).toEqual([
        "expired",
      ]);
      const kinds = await auditKinds(issue.number);
      expect(kinds.filter((k) => k === "grant.expiry_warned")).toHaveLength(1);
      expect(kinds.filter((k) => k === "grant.expired")).toHaveLength(1);
      const posted = await comments(issue.number);
      expect(posted.notices.filter((n) => n === "expiry_warning")).toHaveLength(1);
      expect(posted.notices.filter((n) => n === "ended")).toHaveLength(1);
      expect(posted.onGitHub).toHaveLength(posted.notices.length);
      const token = await a.token(grantId).catch((error: Error) => error);
      expect(token).toBeInstanceOf(Error);
    }
  });
});
