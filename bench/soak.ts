/**
 * Soak: tickets through their whole lifecycle on two `hallpass serve`
 * processes sharing one Postgres, all on loopback. The GitHub simulator
 * (its rate limits on) stands in for GitHub behind a round-robin balancer
 * that also sends a tenth of the deliveries to both replicas, a local OIDC
 * issuer for Actions, a local upstream behind both proxies.
 *
 * Each ticket: opened (issue or pull request), approved (`/approve` or a
 * review), exchanged for a token by its workflow run, used through the
 * proxies (within scope, and once outside it), then ended: `/revoke`, the
 * issue closed, a push, a merge, or its time running out. At the end it
 * checks that every grant is in the state its ending calls for, every
 * comment was posted exactly once, the audit chain verifies and every
 * request the upstream saw has its usage row.
 *
 * Knobs: SOAK_TICKETS (1000), SOAK_ORGS (25: installations, each with its
 * own GitHub limits), SOAK_CONCURRENCY (24 tickets in flight),
 * SOAK_WRITES_PER_MINUTE (80, GitHub's documented secondary limit on
 * content-creating requests; GitHub may refuse sooner, and a lower figure
 * has the soak meet refusals under load).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { verifyAudit } from "#src/audit/verify.js";
import { openPostgres } from "#src/store/postgres.js";
import { withSearchPath } from "../test/support/db.js";
import { cleanEnv } from "../test/support/env.js";
import { dispatchRunClaims, pullRequestRunClaims, type SimRepo } from "../test/support/exchange.js";
import { GitHubSimulator } from "../test/support/github/simulator.js";
import {
  issueCommentEvent,
  issuesEvent,
  pullRequestEvent,
  pullRequestReviewEvent,
  type Webhook,
} from "../test/support/github/webhooks.js";
import { freePort } from "../test/support/net.js";
import { startOidcIssuer } from "../test/support/oidc-issuer.js";
import { OIDC_AUDIENCE } from "../test/support/token-service.js";
import { startUpstream } from "../test/support/upstream.js";
import { CODEOWNERS, POLICY, requestBody } from "../test/tickets/fixtures.js";
import { benchDatabaseUrl, median, percentile, type Row } from "./support.js";

const SECRET = "soak-webhook-secret";
const number = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name}: a positive integer`);
  return value;
};

type Ending = "revoke" | "close" | "expire" | "push" | "merge";
/** Ten tickets in a row end these ways: seven issues, three pull requests. */
const ENDINGS: readonly Ending[] = [
  "revoke",
  "revoke",
  "revoke",
  "close",
  "close",
  "revoke",
  "expire",
  "push",
  "push",
  "merge",
];
const FINAL: Record<Ending, string> = {
  revoke: "revoked",
  close: "revoked",
  expire: "expired",
  push: "revoked",
  merge: "revoked",
};
const EXPIRE_DURATION = "1m";
const CALLS_PER_TICKET = 4;

interface Replica {
  readonly name: string;
  readonly url: string;
  readonly proxyUrl: string;
  readonly child: ChildProcess;
  readonly exited: Promise<unknown>;
  webhooks: number;
  exchanges: number;
  proxied: number;
}

export async function benchSoak(): Promise<Row[]> {
  const baseUrl = benchDatabaseUrl();
  if (!baseUrl)
    throw new Error("soak: set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a Postgres");
  const tickets = number("SOAK_TICKETS", 1000);
  const orgs = number("SOAK_ORGS", 25);
  const concurrency = number("SOAK_CONCURRENCY", 24);
  const writesPerMinute = number("SOAK_WRITES_PER_MINUTE", 80);

  const schema = `hallpass_soak_${Date.now()}`;
  const admin = openPostgres(baseUrl);
  await admin.query(`CREATE SCHEMA ${schema}`);
  const db = openPostgres(baseUrl, { searchPath: schema });
  const dir = await mkdtemp(path.join(tmpdir(), "hallpass-soak-"));
  // GitHub's documented limits, per installation: 5,000 requests an hour, 80
  // content-creating requests a minute (unless told fewer) and 500 an hour.
  const sim = await GitHubSimulator.start({
    appId: 9100,
    limits: { secondary: { perMinute: writesPerMinute } },
  });
  const issuer = await startOidcIssuer();
  const upstream = await startUpstream();
  const repos: (SimRepo & { resource: string })[] = [];
  for (let i = 0; i < orgs; i++) repos.push(seedOrg(sim, i));
  const operatorFile = path.join(dir, "operator.yml");
  await writeFile(operatorFile, operatorConfig(repos, upstream.url));

  const [lbPort, portA, portB, proxyA, proxyB] = await Promise.all(
    Array.from({ length: 5 }, () => freePort()),
  );
  const publicUrl = `http://127.0.0.1:${lbPort}`;
  const env = cleanEnv({
    ...sim.appEnv(SECRET),
    DATABASE_URL: withSearchPath(baseUrl, schema),
    HALLPASS_MASTER_KEY: randomBytes(32).toString("base64"),
    HALLPASS_CONFIG: operatorFile,
    HALLPASS_URL: publicUrl,
    HALLPASS_OIDC_ISSUER: issuer.url,
    HALLPASS_OIDC_AUDIENCE: OIDC_AUDIENCE,
    HALLPASS_DATA_DIR: dir,
    UPSTREAM_TOKEN: "soak-upstream-credential",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
  });
  const replicas: Replica[] = [];
  let balancer: Server | null = null;
  try {
    // One after the other: the first migrates the schema.
    replicas.push(await startReplica("a", env, portA as number, proxyA as number));
    replicas.push(await startReplica("b", env, portB as number, proxyB as number));
    balancer = await startBalancer(lbPort as number, replicas);
    sim.webhookTarget = { url: publicUrl, secret: SECRET };

    const watcher = new GrantWatcher(db);
    watcher.start();
    const errors: string[] = [];
    const exchangeMs: number[] = [];
    const proxyMs: number[] = [];
    let next = 0;
    let turn = 0;
    const pick = () => replicas[turn++ % replicas.length] as Replica;
    let duplicates = 0;
    const deliver = async (webhook: Webhook, index: number) => {
      const { delivery, response } = await sim.deliver(webhook);
      if (!response || response.status >= 300)
        throw new Error(`delivery answered ${response?.status}`);
      // GitHub delivers some twice; the balancer sends the copy to the other replica.
      if (index % 10 === 3) {
        duplicates += 1;
        await sim.deliver(webhook, { deliveryId: delivery.guid });
      }
    };
    const proxyCall = async (resource: string, token: string, what: string) => {
      const replica = pick();
      const started = performance.now();
      const answer = await fetch(`${replica.proxyUrl}/${resource}${what}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      await answer.arrayBuffer();
      proxyMs.push(performance.now() - started);
      replica.proxied += 1;
      return answer.status;
    };

    const lifecycle = async (index: number) => {
      const repo = repos[index % repos.length] as SimRepo & { resource: string };
      const ending = ENDINGS[index % ENDINGS.length] as Ending;
      const key = (n: number) => `${repo.id}#${n}`;
      const body = requestBody({
        resource: repo.resource,
        scopes: "read",
        duration: ending === "expire" ? EXPIRE_DURATION : "2h",
      });
      let n: number;
      let claims: Record<string, unknown>;
      if (ending === "push" || ending === "merge") {
        const branch = `soak-${index}`;
        const pr = sim.openPullRequest(repo.id, {
          author: "alice",
          head: branch,
          files: { [`services/payments/${branch}.ts`]: "export {};\n" },
          body,
          labels: ["hallpass"],
        });
        n = pr.number;
        await deliver(pullRequestEvent(sim, "opened", pr), index);
        await watcher.until(key(n), "pending");
        const review = sim.review(repo.id, n, { user: "bob", state: "APPROVED" });
        await deliver(pullRequestReviewEvent(sim, "submitted", review), index);
        await watcher.until(key(n), "active");
        claims = pullRequestRunClaims(sim, repo, n);
      } else {
        const issue = sim.openIssue(repo.id, { author: "alice", body, labels: ["hallpass"] });
        n = issue.number;
        await deliver(issuesEvent(sim, "opened", issue), index);
        await watcher.until(key(n), "pending");
        const approve = sim.comment(repo.id, n, { author: "bob", body: "/approve" });
        await deliver(issueCommentEvent(sim, "created", approve), index);
        await watcher.until(key(n), "active");
        claims = dispatchRunClaims(sim, repo, "alice");
      }

      const exchanger = pick();
      const started = performance.now();
      const answer = await fetch(`${exchanger.url}/v1/exchange`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${await issuer.idToken(OIDC_AUDIENCE, { claims })}`,
        },
        body: JSON.stringify({
          resource: repo.resource,
          ...(claims.event_name === "workflow_dispatch" ? { ticket: n } : {}),
        }),
      });
      exchangeMs.push(performance.now() - started);
      exchanger.exchanges += 1;
      if (answer.status !== 200)
        throw new Error(`exchange answered ${answer.status}: ${await answer.text()}`);
      const { token } = (await answer.json()) as { token: string };

      for (let call = 0; call < CALLS_PER_TICKET; call++) {
        const status = await proxyCall(repo.resource, token, `/v1/charges/${index}-${call}`);
        if (status !== 200) throw new Error(`a call within scope answered ${status}`);
      }
      const outside = await proxyCall(repo.resource, token, "/v2/admin");
      if (outside !== 403) throw new Error(`a call outside scope answered ${outside}`);

      if (ending === "revoke") {
        const revoke = sim.comment(repo.id, n, { author: "alice", body: "/revoke" });
        await deliver(issueCommentEvent(sim, "created", revoke), index);
      } else if (ending === "close") {
        const closed = sim.closeIssue(repo.id, n, { by: "alice" });
        await deliver(issuesEvent(sim, "closed", closed), index);
      } else if (ending === "push") {
        const before = sim.pull(repo.id, n).pull.head.sha;
        sim.commit(repo.id, {
          branch: `soak-${index}`,
          files: { [`services/payments/soak-${index}-more.ts`]: "export {};\n" },
          author: "alice",
        });
        await deliver(
          pullRequestEvent(sim, "synchronize", sim.pull(repo.id, n), { before }),
          index,
        );
      } else if (ending === "merge") {
        sim.mergePullRequest(repo.id, n, { by: "bob" });
        await deliver(pullRequestEvent(sim, "closed", sim.pull(repo.id, n)), index);
      }
      await watcher.until(key(n), FINAL[ending], ending === "expire" ? 180_000 : 60_000);
      const after = await proxyCall(repo.resource, token, "/v1/charges/after");
      if (after !== 401 && after !== 403) throw new Error(`a call after the end answered ${after}`);
      return { key: key(n), ending };
    };

    const results: { key: string; ending: Ending }[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (;;) {
          const index = next++;
          if (index >= tickets) return;
          try {
            results.push(await lifecycle(index));
          } catch (error) {
            errors.push(`ticket ${index}: ${(error as Error).message}`);
          }
        }
      }),
    );
    const lifecycleMs = performance.now() - started;

    // The comments still queued, until GitHub (rate limits and all) has them all.
    const backlogAtEnd = await pendingOutbox(db);
    let maxBacklog = backlogAtEnd;
    const drainStarted = performance.now();
    for (;;) {
      const pending = await pendingOutbox(db);
      maxBacklog = Math.max(maxBacklog, pending);
      if (pending === 0) break;
      if (performance.now() - drainStarted > 900_000) {
        errors.push(`outbox not drained after 15 minutes: ${pending} pending`);
        break;
      }
      await sleep(250);
    }
    const drainMs = performance.now() - drainStarted;
    watcher.stop();

    const checks = await check(db, sim, upstream.seen.length, results);
    errors.push(...checks.errors);
    for (const e of errors.slice(0, 20)) console.error(`  soak: ${e}`);
    const minutes = lifecycleMs / 60_000;
    const rows: Row[] = [
      { name: "tickets", value: results.length, unit: "completed", note: `of ${tickets}` },
      { name: "tickets per minute", value: results.length / minutes, unit: "/min" },
      {
        name: "exchanges per second",
        value: exchangeMs.length / (lifecycleMs / 1000),
        unit: "/s",
        note: `averaged over the run; p50 ${median(exchangeMs).toFixed(1)} ms, p99 ${percentile(exchangeMs, 99).toFixed(1)} ms`,
      },
      {
        name: "proxy requests per second",
        value: proxyMs.length / (lifecycleMs / 1000),
        unit: "/s",
        note: `averaged over the run; p50 ${median(proxyMs).toFixed(2)} ms, p99 ${percentile(proxyMs, 99).toFixed(2)} ms`,
      },
      { name: "outbox backlog when the last ticket ended", value: backlogAtEnd, unit: "rows" },
      { name: "outbox backlog drained in", value: drainMs / 1000, unit: "s" },
      {
        name: "requests GitHub refused for a rate limit",
        value: sim.requests().filter((r) => !r.fault && (r.status === 403 || r.status === 429))
          .length,
        unit: "",
        note: `limits per installation: 5,000 requests/h; writes ${writesPerMinute}/min, 500/h`,
      },
      { name: "comments posted", value: checks.comments, unit: "", note: "each exactly once" },
      { name: "deliveries sent twice", value: duplicates, unit: "" },
      { name: "audit events verified", value: checks.auditChecked, unit: "" },
      {
        name: "usage rows / upstream requests",
        value: checks.usageRows / Math.max(1, upstream.seen.length),
        unit: "ratio",
        note: `${checks.usageRows} / ${upstream.seen.length}`,
      },
      ...replicas.map((r) => ({
        name: `replica ${r.name}: deliveries sent to it`,
        value: r.webhooks,
        unit: "",
        note: `exchanges ${r.exchanges}, proxy requests ${r.proxied}`,
      })),
      { name: "errors", value: errors.length, unit: "", note: errors[0] ?? "" },
    ];
    if (errors.length > 0) process.exitCode = 1;
    return rows;
  } finally {
    balancer?.close();
    for (const r of replicas) {
      r.child.kill("SIGTERM");
      await r.exited;
    }
    await Promise.all([sim.close(), issuer.close(), upstream.close()]);
    await db.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** `org<i>/payments` with the test policy and owners, its resource `pay<i>-api`. */
function seedOrg(sim: GitHubSimulator, i: number): SimRepo & { resource: string } {
  const login = `org${i}`;
  const resource = `pay${i}-api`;
  const org = sim.addOrg(login, { members: ["alice", "bob", "carol"] });
  sim.addTeam(login, "payments-owners", { members: ["carol"] });
  const repo = sim.addRepo(`${login}/payments`, {
    files: {
      ".github/hallpass.yml": POLICY.replaceAll("payments-api", resource).replaceAll(
        "@acme/",
        `@${login}/`,
      ),
      CODEOWNERS: CODEOWNERS.replaceAll("@acme/", `@${login}/`),
      "services/payments/api.ts": "export {};\n",
    },
  });
  for (const user of ["alice", "bob", "carol"]) sim.setPermission(repo.id, user, "write");
  const installation = sim.addInstallation(login);
  return {
    id: repo.id,
    ownerId: org.user.id,
    fullName: `${login}/payments`,
    installationId: installation.id,
    resource,
  };
}

function operatorConfig(repos: readonly (SimRepo & { resource: string })[], upstream: string) {
  const lines = ["resources:"];
  for (const r of repos) {
    lines.push(
      `  ${r.resource}:`,
      `    repository: { id: ${r.id}, owner_id: ${r.ownerId}, name: ${r.fullName} }`,
      "    max_ttl: 8h",
      `    scopes: ["GET /v1/**", "POST /v1/refunds", "GET /v1/charges/*"]`,
      `    upstream: ${upstream}`,
      `    credential: { header: authorization, value: env:UPSTREAM_TOKEN, prefix: "Bearer " }`,
    );
  }
  return `${lines.join("\n")}\n`;
}

async function startReplica(
  name: string,
  env: NodeJS.ProcessEnv,
  port: number,
  proxyPort: number,
): Promise<Replica> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
    env: {
      ...env,
      PORT: String(port),
      PROXY_PORT: String(proxyPort),
      HALLPASS_PROXY_URL: `http://127.0.0.1:${proxyPort}`,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while ((await fetch(`${url}/readyz`).catch(() => null))?.status !== 200) {
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`replica ${name} did not become ready`);
    await sleep(200);
  }
  return {
    name,
    url,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    child,
    exited,
    webhooks: 0,
    exchanges: 0,
    proxied: 0,
  };
}

/**
 * Round robin over the replicas, by delivery: a delivery sent again (same
 * `X-GitHub-Delivery`) goes to the other replica than the first time.
 */
async function startBalancer(port: number, replicas: readonly Replica[]): Promise<Server> {
  const seen = new Map<string, number>();
  let turn = 0;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", async () => {
      const id = String(request.headers["x-github-delivery"] ?? "");
      const first = seen.get(id);
      const index = first === undefined ? turn++ : first + 1;
      if (first === undefined) seen.set(id, index);
      const replica = replicas[index % replicas.length] as Replica;
      replica.webhooks += 1;
      const headers = new Headers();
      for (const [k, v] of Object.entries(request.headers))
        if (typeof v === "string" && k !== "host" && k !== "connection") headers.set(k, v);
      try {
        const answer = await fetch(`${replica.url}${request.url}`, {
          method: request.method ?? "POST",
          headers,
          body: Buffer.concat(chunks),
        });
        response.writeHead(answer.status, { "content-type": "application/json" });
        response.end(Buffer.from(await answer.arrayBuffer()));
      } catch {
        response.writeHead(502).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return server;
}

/** Every ticket's newest grant state, read in one query a few times a second. */
class GrantWatcher {
  readonly #states = new Map<string, string>();
  #timer: NodeJS.Timeout | null = null;
  constructor(private readonly db: ReturnType<typeof openPostgres>) {}

  start(): void {
    const tick = async () => {
      const { rows } = await this.db.query<{ key: string; state: string }>(
        `SELECT t.repo_id || '#' || t.number AS key, g.state
           FROM tickets t
           JOIN LATERAL (SELECT state FROM grants WHERE ticket_id = t.id
                          ORDER BY created_at DESC LIMIT 1) g ON true`,
      );
      for (const r of rows) this.#states.set(r.key, r.state);
      this.#timer = setTimeout(() => void tick().catch(() => undefined), 100);
    };
    void tick();
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
  }

  async until(key: string, state: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#states.get(key) !== state) {
      if (Date.now() > deadline)
        throw new Error(
          `${key} stayed ${this.#states.get(key) ?? "without a grant"}, not ${state}`,
        );
      await sleep(50);
    }
  }
}

async function pendingOutbox(db: ReturnType<typeof openPostgres>): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM outbox WHERE state = 'pending'",
  );
  return rows[0]?.n ?? 0;
}

async function check(
  db: ReturnType<typeof openPostgres>,
  sim: GitHubSimulator,
  upstreamRequests: number,
  results: readonly { key: string; ending: Ending }[],
) {
  const errors: string[] = [];
  const { rows: grants } = await db.query<{ key: string; state: string; n: number }>(
    `SELECT t.repo_id || '#' || t.number AS key, min(g.state) AS state, count(*)::int AS n
       FROM tickets t JOIN grants g ON g.ticket_id = t.id GROUP BY 1`,
  );
  const byKey = new Map(grants.map((g) => [g.key, g]));
  for (const r of results) {
    const g = byKey.get(r.key);
    if (g?.n !== 1 || g.state !== FINAL[r.ending])
      errors.push(`${r.key} (${r.ending}): ${g?.n ?? 0} grants, ${g?.state ?? "none"}`);
  }
  const { rows: outbox } = await db.query<{ key: string; state: string; n: number }>(
    `SELECT t.repo_id || '#' || t.number AS key, o.state, count(*)::int AS n
       FROM outbox o JOIN tickets t ON t.id = o.ticket_id
      WHERE o.kind = 'comment' GROUP BY 1, 2`,
  );
  let done = 0;
  const doneByKey = new Map<string, number>();
  for (const o of outbox) {
    if (o.state !== "done") errors.push(`${o.key}: ${o.n} comments ${o.state}`);
    else {
      done += o.n;
      doneByKey.set(o.key, o.n);
    }
  }
  // On GitHub: as many of the App's comments on each ticket as the outbox posted.
  for (const r of results) {
    const [repoId, n] = r.key.split("#").map(Number) as [number, number];
    const onGitHub = sim.commentsOn(repoId, n).filter((c) => c.author === sim.app.bot).length;
    if (onGitHub !== (doneByKey.get(r.key) ?? 0))
      errors.push(`${r.key}: ${onGitHub} comments on GitHub, ${doneByKey.get(r.key) ?? 0} posted`);
  }
  const audit = await verifyAudit(db);
  if (!audit.ok) errors.push(`audit chain broken: ${JSON.stringify(audit.break)}`);
  const { rows: usage } = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM proxy_requests WHERE outcome = 'forwarded'",
  );
  const usageRows = usage[0]?.n ?? 0;
  if (usageRows !== upstreamRequests)
    errors.push(`${upstreamRequests} requests reached the upstream, ${usageRows} usage rows`);
  return { errors, comments: done, auditChecked: audit.checked, usageRows };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
