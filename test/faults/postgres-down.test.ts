/**
 * Postgres goes away in the middle of a ticket's flow and comes back: while
 * an approval arrives, while the proxy serves a grant, while a comment is on
 * its way to GitHub.
 *
 * The outage is simulated at the network: hallpass reaches Postgres through
 * a TCP link that the test cuts (every connection dropped, new ones refused)
 * and restores. The server itself is not stopped: it is shared by every test
 * file running in parallel, and a stopped server would break them. What
 * hallpass sees is the same as a stopped and restarted server: its
 * connections die and it cannot open new ones until the database is back.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { Db } from "#src/store/db.js";
import { openPostgres } from "#src/store/postgres.js";
import { createTestDb, TEST_DATABASE_URL } from "../support/db.js";
import { GitHubSimulator } from "../support/github/simulator.js";
import { issueCommentEvent, issuesEvent } from "../support/github/webhooks.js";
import { startUpstream } from "../support/upstream.js";
import { requestBody, seedAcme } from "../tickets/fixtures.js";
import {
  FLEET_SECRET,
  fleetEnv,
  grantsOf,
  type Link,
  outboxSettled,
  processed,
  SkewedClock,
  startLink,
  startReplica,
} from "./support.js";

/** A pool on the test database's schema through a link to Postgres. */
async function behindLink(schema: string): Promise<{ link: Link; db: Db }> {
  const url = new URL(TEST_DATABASE_URL as string);
  const link = await startLink({ host: url.hostname, port: Number(url.port || 5432) });
  url.hostname = "127.0.0.1";
  url.port = String(link.port);
  return {
    link,
    db: openPostgres(url.toString(), { searchPath: schema, applicationName: schema }),
  };
}

describe.runIf(TEST_DATABASE_URL)("Postgres unreachable mid-flow", () => {
  it("fails a transaction whose connection is lost between statements, and the process lives on", async () => {
    const db = await createTestDb("postgres");
    const { link, db: behind } = await behindLink(db.schema);
    try {
      // The client is checked out and idle when its connection goes: pg reports
      // that as an 'error' event, which nothing heard (an uncaught exception).
      await expect(
        behind.transaction(async (tx) => {
          await tx.query("SELECT 1");
          link.cut();
          await sleep(200);
          await tx.query("SELECT 1");
        }),
      ).rejects.toThrow();
      link.restore();
      expect((await behind.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await behind.close();
      await link.close();
      await db.close();
    }
  });

  it("grants nothing, loses no webhook, refuses in the proxy while unsure, and resumes every piece of work once it is back", async () => {
    const db = await createTestDb("postgres"); // the test's own view: straight to Postgres
    const { link, db: behind } = await behindLink(db.schema);
    const sim = await GitHubSimulator.start({ appId: 9100 + Math.floor(Math.random() * 400) });
    const ids = seedAcme(sim);
    const upstream = await startUpstream();
    const dir = await mkdtemp(path.join(tmpdir(), "hallpass-postgres-down-"));
    const env = await fleetEnv({ sim, ids, upstreamUrl: upstream.url, dir });
    const replica = await startReplica({ name: "a", db: behind, env, clock: new SkewedClock() });
    sim.webhookTarget = { url: replica.url, secret: FLEET_SECRET };
    const deliver = async (webhook: Parameters<GitHubSimulator["deliver"]>[0]) => {
      const { delivery, response } = await sim.deliver(webhook);
      if (response?.status !== 202) throw new Error(`delivery answered ${response?.status}`);
      await processed(db, delivery.guid);
    };
    const openTicket = async (scopes: string) => {
      const issue = sim.openIssue("acme/payments", {
        author: "alice",
        body: requestBody({ scopes }),
        labels: ["hallpass"],
      });
      await deliver(issuesEvent(sim, "opened", issue));
      return issue;
    };
    const comment = (number: number, author: string, body: string) =>
      issueCommentEvent(sim, "created", sim.comment("acme/payments", number, { author, body }));
    const readyz = async () => {
      const response = await fetch(`${replica.url}/readyz`);
      const body = (await response.json()) as { database: string };
      return { http: response.status, database: body.database };
    };
    // Every call of the grant's token through the proxy, with its answer.
    const calls: Array<{ status: number; error?: string }> = [];
    const call = async (token: string, init: RequestInit = {}, target = "/v1/charges/ch_1") => {
      const response = await replica.call(`/payments-api${target}`, token, init);
      const body = (await response.json().catch(() => ({}))) as { error?: string };
      calls.push({ status: response.status, ...(body.error ? { error: body.error } : {}) });
      return response.status;
    };

    try {
      // Ticket A: granted before the outage, served by the proxy through it.
      const a = await openTicket("refund");
      await deliver(comment(a.number, "bob", "/approve"));
      const [grantA] = await grantsOf(db, ids.repoId, a.number);
      expect(grantA?.state).toBe("active");
      const token = await replica.token(grantA?.id as string);
      expect(await call(token)).toBe(200);
      // Ticket B: requested before the outage, approved during it.
      const b = await openTicket("read");
      await outboxSettled(db);

      // A comment in flight: GitHub takes it, then the database goes before hallpass records it.
      const held = sim.holdNext({ method: "POST", path: /\/issues\/\d+\/comments$/ });
      await deliver(comment(b.number, "alice", "/status"));
      await held.reached;
      link.cut();
      const cutAt = Date.now();
      held.release();

      // Readiness reports it.
      await expect.poll(readyz, { timeout: 5_000, interval: 100 }).toMatchObject({
        http: 503,
        database: "unreachable",
      });
      // The approval arrives: answered 503 (GitHub records the delivery as failed).
      const approval = comment(b.number, "bob", "/approve");
      const started = performance.now();
      const { delivery: missed, response } = await sim.deliver(approval);
      expect(response?.status).toBe(503);
      expect(await response?.json()).toMatchObject({ error: "DB_UNAVAILABLE" });
      expect(performance.now() - started).toBeLessThan(6_000);
      // The proxy: a mutating request that cannot be recorded is not forwarded; then, unsure, it refuses all.
      const forwardedBefore = upstream.seen.length;
      expect(await call(token, { method: "POST", body: "{}" }, "/v1/refunds")).toBe(503);
      await expect.poll(() => call(token), { timeout: 5_000, interval: 100 }).toBe(503);
      expect(calls.at(-1)?.error).toBe("GRANT_STATUS_UNKNOWN");
      expect(upstream.seen.slice(forwardedBefore).every((s) => s.method === "GET")).toBe(true);
      // No token is given out.
      await expect(replica.token(grantA?.id as string)).rejects.toThrow();
      // Hold the outage a few seconds; nothing is granted meanwhile.
      await sleep(Math.max(0, 3_000 - (Date.now() - cutAt)));
      expect((await grantsOf(db, ids.repoId, b.number)).map((g) => g.state)).toEqual(["pending"]);
      // The comment GitHub took is still this replica's (its lease lasts two minutes).
      const { rows: leased } = await db.query<{ id: string }>(
        "SELECT id::text FROM outbox WHERE state = 'pending' AND locked_until > now()",
      );
      expect(leased).toHaveLength(1);

      link.restore();
      await expect.poll(readyz, { timeout: 15_000, interval: 100 }).toMatchObject({
        http: 200,
        database: "ok",
      });
      // The delivery GitHub failed to make is asked for again, and the approval counts.
      expect(await replica.redeliver()).toBe(1);
      await sim.settled();
      await processed(db, missed.guid);
      expect(await grantsOf(db, ids.repoId, b.number)).toMatchObject([
        { state: "active", approvers: ["bob"] },
      ]);
      // As if the two minutes had passed: another attempt finds the comment GitHub took.
      await db.query("UPDATE outbox SET locked_until = now() WHERE id = $1::bigint", [
        leased[0]?.id,
      ]);
      await outboxSettled(db);
      for (const ticket of [a, b]) {
        const { rows } = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM outbox o JOIN tickets t ON t.id = o.ticket_id
            WHERE t.number = $1::int AND o.kind = 'comment' AND o.state = 'done'`,
          [ticket.number],
        );
        const posted = sim
          .commentsOn("acme/payments", ticket.number)
          .filter((c) => c.author.endsWith("[bot]"));
        expect(posted).toHaveLength(rows[0]?.n as number);
      }
      // The proxy serves again, and every request of the token is a usage row but
      // the POST it could not record (and so did not forward).
      await expect.poll(() => call(token), { timeout: 10_000, interval: 200 }).toBe(200);
      await replica.proxy.state?.usage.flush();
      const { rows: usage } = await db.query<{ outcome: string; reason: string | null }>(
        "SELECT outcome, reason FROM proxy_requests WHERE grant_id = $1::uuid ORDER BY id",
        [grantA?.id],
      );
      const unrecorded = calls.filter((c) => c.error === "USAGE_UNAVAILABLE").length;
      expect(unrecorded).toBe(1);
      expect(usage).toHaveLength(calls.length - unrecorded);
      expect(usage.filter((u) => u.outcome === "forwarded")).toHaveLength(
        calls.filter((c) => c.status === 200).length,
      );
      expect(usage.filter((u) => u.outcome === "forwarding")).toEqual([]);
    } finally {
      await replica.stop();
      await behind.close();
      await link.close();
      await Promise.all([sim.close(), upstream.close()]);
      await db.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 45_000);
});
