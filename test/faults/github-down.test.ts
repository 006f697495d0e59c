/**
 * GitHub unreachable for a while ("minutes", compressed to seconds): the
 * App's connections to it go through a link the test takes away, in the two
 * ways GitHub goes missing: connections refused, or accepted and never
 * answered. hallpass keeps answering webhooks at once and stays ready (no
 * database transaction or lock is held while it waits on GitHub: on the
 * embedded database, one held connection stalls every query), decides
 * nothing that needs GitHub until it can read GitHub again (and then on
 * what GitHub says then, not on what it read before), and once GitHub is
 * back, processes what waited and posts each comment once.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { type Backend, backends, createTestDb, primaryBackend } from "../support/db.js";
import { GitHubSimulator } from "../support/github/simulator.js";
import { issueCommentEvent, issuesEvent } from "../support/github/webhooks.js";
import { freePort } from "../support/net.js";
import { startUpstream } from "../support/upstream.js";
import { operatorYaml, requestBody, seedAcme } from "../tickets/fixtures.js";
import {
  deliverTo,
  fleetEnv,
  grantsOf,
  outboxSettled,
  processed,
  type ReadySample,
  type ReplicaOptions,
  SkewedClock,
  serve,
  startLink,
  startReplica,
  waitReady,
  watchReadiness,
} from "./support.js";

const simPort = (sim: GitHubSimulator) => Number(sim.host.split(":")[1]);

/** The App's own comments on a ticket. */
const botComments = (sim: GitHubSimulator, number: number) =>
  sim.commentsOn("acme/payments", number).filter((c) => c.author.endsWith("[bot]"));

/** Readiness answers that were not a quick 200, as `status ms reason`. */
const unready = (samples: readonly ReadySample[]) =>
  samples
    .filter((s) => s.status !== 200 || s.ms > 1_000)
    .map((s) => `${s.status} ${Math.round(s.ms)} ms ${s.reason ?? ""}`.trim());

/**
 * `hallpass serve` in its own process, started while GitHub refuses every
 * connection, so that the start-up path runs as in production (the
 * redelivery pass, the App's retrying and throttled clients) on the
 * embedded database, where one connection serves every query. Its readiness
 * is watched from its first answer on. It runs in the background from the
 * start of the file (its database takes seconds to come up, and GitHub's
 * throttling spaces its comments by seconds), beside the tests in this
 * process; the last test checks what it saw.
 */
interface ServedOutcome {
  /** Milliseconds to acknowledge each delivery. */
  readonly acks: readonly number[];
  /** Comments of the App per ticket while GitHub was away, and after. */
  readonly commentsWhileDown: readonly number[];
  readonly commentsAfter: readonly number[];
  readonly readiness: readonly ReadySample[];
  readonly exitCode: number | null;
}

async function servedWhileGitHubIsDown(): Promise<ServedOutcome> {
  const sim = await GitHubSimulator.start({ appId: 8600 + Math.floor(Math.random() * 400) });
  const ids = seedAcme(sim);
  const github = await startLink({ host: "127.0.0.1", port: simPort(sim) });
  const dir = await mkdtemp(path.join(tmpdir(), "hallpass-github-down-serve-"));
  const operatorFile = path.join(dir, "operator.yml");
  await writeFile(operatorFile, operatorYaml(ids));
  github.cut("refuse");
  const served = serve(await freePort(), {
    ...sim.appEnv("serve-secret"),
    GHE_HOST: github.host,
    HALLPASS_DATA_DIR: path.join(dir, "data"),
    HALLPASS_MASTER_KEY: randomBytes(32).toString("base64"),
    HALLPASS_CONFIG: operatorFile,
    LOG_LEVEL: "info",
  });
  sim.webhookTarget = { url: served.url, secret: "serve-secret" };
  const readiness = watchReadiness(served.url);
  try {
    await waitReady(served);
    const issues = [1, 2, 3].map(() =>
      sim.openIssue("acme/payments", {
        author: "alice",
        body: requestBody(),
        labels: ["hallpass"],
      }),
    );
    // Three requests, and comments that are no commands: 30 deliveries.
    const webhooks = [
      ...issues.map((issue) => issuesEvent(sim, "opened", issue)),
      ...Array.from({ length: 27 }, (_, i) => {
        const issue = issues[i % issues.length] as (typeof issues)[0];
        const comment = sim.comment("acme/payments", issue.number, {
          author: "dave",
          body: `note ${i}`,
        });
        return issueCommentEvent(sim, "created", comment);
      }),
    ];
    const acks: number[] = [];
    for (const webhook of webhooks) {
      const started = performance.now();
      const { response } = await sim.deliver(webhook);
      acks.push(performance.now() - started);
      if (response?.status !== 202) throw new Error(`delivery answered ${response?.status}`);
      await sleep(50);
    }
    await sleep(1_000);
    const count = () => issues.map((i) => botComments(sim, i.number).length);
    const commentsWhileDown = count();

    github.restore();
    const deadline = Date.now() + 40_000;
    while (count().some((n) => n === 0) && Date.now() < deadline) await sleep(200);
    await sleep(500);
    const commentsAfter = count();
    const samples = await readiness.stop();
    served.child.kill("SIGTERM");
    const exitCode = await served.exited;
    return { acks, commentsWhileDown, commentsAfter, readiness: samples, exitCode };
  } finally {
    await readiness.stop();
    await served.kill();
    await github.close();
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * One in-process replica on `backend` whose connections to the GitHub
 * simulator go through a link the test can cut; `close` stops all of it.
 */
async function behindLink(
  backend: Backend,
  options: Pick<ReplicaOptions, "githubTimeoutMs" | "deliveryAttempts">,
) {
  const sim = await GitHubSimulator.start({ appId: 8100 + Math.floor(Math.random() * 800) });
  const ids = seedAcme(sim);
  const github = await startLink({ host: "127.0.0.1", port: simPort(sim) });
  const upstream = await startUpstream();
  const dir = await mkdtemp(path.join(tmpdir(), "hallpass-github-down-"));
  const db = await createTestDb(backend);
  const env = await fleetEnv({ sim, ids, upstreamUrl: upstream.url, dir, githubHost: github.host });
  const replica = await startReplica({ name: "a", db, env, clock: new SkewedClock(), ...options });
  return {
    sim,
    ids,
    github,
    db,
    replica,
    async close() {
      await replica.stop();
      await Promise.all([github.close(), upstream.close()]);
      await sim.close();
      await db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe("GitHub unreachable", () => {
  let served: Promise<ServedOutcome>;
  beforeAll(() => {
    served = servedWhileGitHubIsDown();
    served.catch(() => {}); // observed by the test that checks it
  });

  it.for(backends)(
    "stops answering (%s): hallpass acknowledges at once, stays ready, decides nothing until GitHub answers, then resumes on what GitHub says",
    { timeout: 45_000 },
    async (backend: Backend, { expect }) => {
      // One GitHub call may take a second here (20 s in production).
      const { sim, ids, github, db, replica, close } = await behindLink(backend, {
        githubTimeoutMs: 1_000,
      });
      const url = [replica.url];
      try {
        const tickets = [1, 2].map(() =>
          sim.openIssue("acme/payments", {
            author: "alice",
            body: requestBody(),
            labels: ["hallpass"],
          }),
        );
        for (const issue of tickets) {
          await processed(db, (await deliverTo(url, issuesEvent(sim, "opened", issue))).deliveryId);
        }
        await outboxSettled(db);
        const [byBob, byCarol] = tickets as [(typeof tickets)[0], (typeof tickets)[0]];

        github.cut("blackhole");
        const readiness = watchReadiness(replica.url);
        const approve = (ticket: typeof byBob, login: string) =>
          deliverTo(
            url,
            issueCommentEvent(
              sim,
              "created",
              sim.comment("acme/payments", ticket.number, { author: login, body: "/approve" }),
            ),
          );
        // bob owns services/payments/ by name; carol through the team payments-owners.
        const approvals = [await approve(byBob, "bob"), await approve(byCarol, "carol")];
        // While GitHub is away, carol leaves the team: her approval no longer counts.
        sim.removeTeamMember("acme", "payments-owners", "carol");
        const acks = approvals.flatMap((a) => a.ms);
        for (let i = 0; i < 30; i++) {
          const ticket = i % 2 === 0 ? byBob : byCarol;
          const comment = sim.comment("acme/payments", ticket.number, {
            author: "dave",
            body: `note ${i}`,
          });
          const answer = await deliverTo(url, issueCommentEvent(sim, "created", comment));
          expect(answer.statuses).toEqual([202]);
          acks.push(...answer.ms);
        }
        expect(approvals.map((a) => a.statuses)).toEqual([[202], [202]]);
        // Every delivery acknowledged within a second, though GitHub never answers.
        expect(Math.max(...acks), `acks (ms): ${acks.map(Math.round).join(", ")}`).toBeLessThan(
          1_000,
        );

        // The approvals are tried, and wait: nothing is decided without GitHub.
        await expect
          .poll(
            async () =>
              (
                await db.query<{ attempts: number }>(
                  "SELECT attempts FROM webhook_deliveries WHERE id = $1::text",
                  [approvals[0]?.deliveryId],
                )
              ).rows[0]?.attempts,
            { timeout: 10_000, interval: 100 },
          )
          .toBeGreaterThanOrEqual(2);
        for (const ticket of tickets) {
          expect((await grantsOf(db, ids.repoId, ticket.number)).map((g) => g.state)).toEqual([
            "pending",
          ]);
        }

        github.restore();
        for (const approval of approvals) await processed(db, approval.deliveryId, 20_000);
        expect(await grantsOf(db, ids.repoId, byBob.number)).toMatchObject([
          { state: "active", approvers: ["bob"] },
        ]);
        // Decided on the team as GitHub has it now, not as it was when the rules were last read.
        expect(await grantsOf(db, ids.repoId, byCarol.number)).toMatchObject([
          { state: "pending", approvers: [] },
        ]);
        await expect
          .poll(
            async () =>
              (
                await db.query<{ n: number }>(
                  "SELECT count(*)::int AS n FROM webhook_deliveries WHERE state <> 'done'",
                )
              ).rows[0]?.n,
            { timeout: 15_000, interval: 100 },
          )
          .toBe(0);
        await outboxSettled(db, 20_000);
        // Each comment queued was posted once.
        const { rows: posted } = await db.query<{ number: number; state: string; n: number }>(
          `SELECT t.number, o.state, count(*)::int AS n FROM outbox o JOIN tickets t ON t.id = o.ticket_id
          WHERE o.kind = 'comment' GROUP BY t.number, o.state ORDER BY t.number`,
        );
        expect(posted.map((r) => r.state)).toEqual(["done", "done"]);
        for (const ticket of tickets) {
          const count = posted.find((r) => r.number === ticket.number)?.n;
          expect(botComments(sim, ticket.number)).toHaveLength(count as number);
        }
        expect(botComments(sim, byBob.number).length).toBeGreaterThanOrEqual(2); // received, granted
        expect(unready(await readiness.stop())).toEqual([]);
      } finally {
        await close();
      }
    },
  );

  it("keeps a delivery that waits on GitHub past its attempts (ten in production, about ten minutes; two here)", async ({
    expect,
  }) => {
    const { sim, ids, github, db, replica, close } = await behindLink(primaryBackend, {
      deliveryAttempts: 2,
    });
    try {
      github.cut("refuse");
      const issue = sim.openIssue("acme/payments", {
        author: "alice",
        body: requestBody(),
        labels: ["hallpass"],
      });
      const { deliveryId } = await deliverTo([replica.url], issuesEvent(sim, "opened", issue));
      const attempts = async () =>
        (
          await db.query<{ attempts: number; state: string }>(
            "SELECT attempts, state FROM webhook_deliveries WHERE id = $1::text",
            [deliveryId],
          )
        ).rows[0];
      // Both attempts used up while GitHub refuses: still waiting, not given up.
      await expect
        .poll(async () => (await attempts())?.attempts, { timeout: 10_000, interval: 50 })
        .toBeGreaterThanOrEqual(2);
      await sleep(300);
      expect(await attempts()).toMatchObject({ state: "pending" });
      github.restore();
      await processed(db, deliveryId, 15_000);
      expect((await grantsOf(db, ids.repoId, issue.number)).map((g) => g.state)).toEqual([
        "pending",
      ]);
    } finally {
      await close();
    }
  });

  it("refuses connections while hallpass serve starts on the embedded database: it acknowledges every delivery within a second and stays ready; once GitHub is back, posts each comment once", async () => {
    const outcome = await served;
    const { acks } = outcome;
    expect(Math.max(...acks), `acks (ms): ${acks.map(Math.round).join(", ")}`).toBeLessThan(1_000);
    expect(outcome.commentsWhileDown).toEqual([0, 0, 0]);
    // One "request received" comment each, none twice.
    expect(outcome.commentsAfter).toEqual([1, 1, 1]);
    // The database is in the process: never reported unreachable.
    const samples = outcome.readiness;
    expect(samples.filter((s) => s.reason !== undefined && s.reason !== "starting")).toEqual([]);
    // Once ready, ready throughout, each answer quick. (The answer that first
    // found it ready may have been asked for while the embedded database was
    // being created, which holds the event loop.)
    const firstReady = samples.findIndex((s) => s.status === 200);
    expect(firstReady).toBeGreaterThanOrEqual(0);
    expect(unready(samples.slice(firstReady + 1))).toEqual([]);
    expect(outcome.exitCode).toBe(0);
  }, 60_000);
});
