/**
 * Webhooks: acknowledgements per second with p50/p99 acknowledgement time,
 * and p50/p99 time from delivery to grant (an auto-approved request: one
 * delivery, the whole evaluation, the grant's commit). GitHub is the local
 * simulator answering at once; the database is Postgres when
 * BENCH_DATABASE_URL or TEST_DATABASE_URL is set, else PGlite. Baseline in
 * the same run: GET /healthz over the same HTTP stack.
 */
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { sign } from "@octokit/webhooks-methods";
import { issuesEvent } from "../test/support/github/webhooks.js";
import { SECRET, startHallpass } from "../test/support/hallpass.js";
import { operatorYaml, requestBody, seedAcme } from "../test/tickets/fixtures.js";
import { median, percentile, printTable, type Row } from "./support.js";

const ACKS = 2_000;
const CONCURRENCY = 16;
const GRANTS = 60;

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const result = await fn();
  return [performance.now() - start, result];
}

async function pool(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<number>,
): Promise<number[]> {
  const times: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        times.push(await task(i));
      }
    }),
  );
  return times;
}

export async function benchWebhooks(): Promise<Row[]> {
  if (!process.env.TEST_DATABASE_URL && process.env.BENCH_DATABASE_URL) {
    process.env.TEST_DATABASE_URL = process.env.BENCH_DATABASE_URL;
  }
  const h = await startHallpass({ seed: seedAcme, operatorYaml });
  try {
    const url = `${h.server.url}/api/github/webhooks`;
    // A realistic body (a labelled issue), signed as GitHub does.
    const issue = h.sim.openIssue("acme/payments", {
      author: "dave",
      body: "not a request",
      labels: [],
    });
    const body = JSON.stringify(issuesEvent(h.sim, "edited", issue).payload);
    const signature = await sign(SECRET, body);
    const send = async () => {
      const [ms, response] = await timed(() =>
        fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-github-event": "issues",
            "x-github-delivery": randomUUID(),
            "x-hub-signature-256": signature,
          },
          body,
        }),
      );
      if (response.status !== 202) throw new Error(`ack ${response.status}`);
      await response.arrayBuffer();
      return ms;
    };
    const health = async () => {
      const [ms, response] = await timed(() => fetch(`${h.server.url}/healthz`));
      await response.arrayBuffer();
      return ms;
    };
    await pool(200, CONCURRENCY, send); // warm-up
    await pool(200, CONCURRENCY, health);
    const [baseTotal, base] = await timed(() => pool(ACKS, CONCURRENCY, health));
    const [ackTotal, acks] = await timed(() => pool(ACKS, CONCURRENCY, send));

    // Delivery to grant: sam is allowed auto-approval of `read` for up to 30 minutes.
    await h.db.query("UPDATE webhook_deliveries SET state = 'done' WHERE state = 'pending'");
    const activated = new Map<string, () => void>();
    const unlisten = await h.db.listen("hallpass_grants", (payload) => {
      const [id, state] = payload.split(":");
      if (state === "active" && id) activated.get(id)?.();
    });
    const toGrant: number[] = [];
    for (let i = 0; i < GRANTS; i++) {
      const requester = `bench${i}`;
      h.sim.addOrgMember("acme", requester);
      h.sim.addTeamMember("acme", "sre", requester);
      const ticket = h.sim.openIssue("acme/payments", {
        author: requester,
        body: requestBody({ duration: "20m" }),
        labels: ["hallpass"],
      });
      const start = performance.now();
      const granted = new Promise<void>((resolve) => {
        const poll = setInterval(async () => {
          const [g] = await h.grants(ticket.number);
          if (g?.id) {
            clearInterval(poll);
            activated.set(String(g.id), resolve);
            if (g.state === "active") resolve();
          }
        }, 2);
      });
      await h.sim.deliver(issuesEvent(h.sim, "opened", ticket));
      await granted;
      toGrant.push(performance.now() - start);
    }
    await unlisten();
    return [
      {
        name: "acknowledgements",
        value: ACKS / (ackTotal / 1000),
        unit: "acks/s",
        note: `${CONCURRENCY} concurrent; GET /healthz baseline ${Math.round(ACKS / (baseTotal / 1000))}/s`,
      },
      {
        name: "acknowledgement p50",
        value: median(acks),
        unit: "ms",
        note: `healthz p50 ${median(base).toFixed(2)} ms; ratio ${(median(acks) / median(base)).toFixed(1)}x`,
      },
      {
        name: "acknowledgement p99",
        value: percentile(acks, 99),
        unit: "ms",
        note: `healthz p99 ${percentile(base, 99).toFixed(2)} ms`,
      },
      {
        name: "delivery to grant p50",
        value: median(toGrant),
        unit: "ms",
        note: `${GRANTS} auto-approved requests, one at a time`,
      },
      { name: "delivery to grant p99", value: percentile(toGrant, 99), unit: "ms" },
    ];
  } finally {
    await h.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  printTable("webhooks", await benchWebhooks());
}
