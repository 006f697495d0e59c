/**
 * The access proxy, `npm run bench -- proxy` (needs Postgres in
 * BENCH_DATABASE_URL or TEST_DATABASE_URL, and wrk: `apt-get install wrk`).
 *
 * Every process is real and pinned: the proxies under test on core 0; the
 * upstream and the load generators (wrk, and this process for revocations)
 * on core 1; Postgres where the system runs it. Figures, all from one run:
 *
 * 1. req/s and p50/p99 at concurrency 1 and 50 of (a) the upstream direct,
 *    (b) a pass-through proxy on the same HTTP client with no checks
 *    (`bench/proxy/passthrough.ts`), (c) hallpass, GET with a valid token,
 *    usage batched to Postgres, (d) hallpass, POST (usage row written
 *    before forwarding). Median of `REPEATS` runs each.
 * 2. c/b and d/b in throughput at concurrency 50, measured side by side:
 *    both proxies loaded at once, pinned to the same core, so that they
 *    share whatever the machine does meanwhile (alternating runs swing by
 *    ±25 % here). A/A check: two pass-through proxies measured the same way.
 * 3. Per GET in steady state: signature verifications and database round
 *    trips on the request path (from hallpass's /metrics), and every
 *    database transaction of the run (pg_stat_database), batches included.
 * 4. The usage writer alone: rows per second into Postgres, against (c).
 * 5. Revocation propagation: from the revoke's commit to the first refused
 *    request on a second hallpass instance, p50/p99 over 200 revocations;
 *    then with that instance's listener dropped (resyncs every 1 s only).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { build } from "esbuild";
import pg from "pg";
import { Registry } from "prom-client";
import { Pool } from "undici";
import type { Config } from "#src/config.js";
import { createLogger } from "#src/log.js";
import { loadOperator } from "#src/operator.js";
import { createProxyServer } from "#src/proxy/server.js";
import { UsageWriter } from "#src/proxy/usage-writer.js";
import type { Db } from "#src/store/db.js";
import { endGrant } from "#src/store/grant-lifecycle.js";
import { migrate } from "#src/store/migrate.js";
import { openPostgres } from "#src/store/postgres.js";
import type { ProxyRequestRow } from "#src/store/usage.js";
import { startTokenService, type TokenService } from "#src/tokens/service.js";
import { withSearchPath } from "../test/support/db.js";
import { insertGrant } from "../test/support/grants.js";
import { freePort } from "../test/support/net.js";
import { benchDatabaseUrl, median, percentile, type Row } from "./support.js";

/** `BENCH_QUICK=1`: one short run of each, to try the benchmark itself. */
const QUICK = process.env.BENCH_QUICK === "1";
const REPEATS = QUICK ? 1 : 3;
const RUN_S = QUICK ? 2 : 5;
const SIDE_BY_SIDE_S = QUICK ? 3 : 10;
const WARM_S = QUICK ? 3 : 10;
const PAIR_REPEATS = QUICK ? 1 : 5;
const REVOCATIONS = QUICK ? 20 : 200;
const LOST_REVOCATIONS = QUICK ? 5 : 40;
const AUDIENCE = "acme/bench/bench-api";
const CREDENTIAL = "bench-upstream-credential";
const ISSUER = "http://hallpass.bench.test";
const log = createLogger("warn");

interface WrkResult {
  readonly rps: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly errors: number;
}

export async function benchProxy(): Promise<Row[]> {
  const baseUrl = benchDatabaseUrl();
  if (!baseUrl) throw new Error("the proxy benchmark needs Postgres: set BENCH_DATABASE_URL");
  requireCommand("wrk", "install wrk (Debian: apt-get install wrk)");
  requireCommand("taskset", "install util-linux");
  const schema = `hallpass_bench_${Date.now()}`;
  await admin(baseUrl, `CREATE SCHEMA ${schema}`);
  const dir = await mkdtemp(path.join(tmpdir(), "hallpass-bench-proxy-"));
  const children: ChildProcess[] = [];
  const db = openPostgres(baseUrl, { searchPath: schema });
  const closers: Array<() => Promise<unknown>> = [];
  // Core 1 is the load's: this process (it revokes and probes), the
  // upstream and wrk. Core 0 is the proxies'. Postgres runs where the system
  // puts it (pinned to core 1 too, it starves the upstream and wrk).
  pin(String(process.pid), "1");
  closers.push(async () => pin(String(process.pid), "0,1"));
  try {
    await migrate(db);
    const masterKey = randomBytes(32).toString("base64");
    const ports = {
      upstream: await freePort(),
      passthrough: await freePort(),
      passthrough2: await freePort(),
    };
    const upstreamUrl = `http://127.0.0.1:${ports.upstream}`;
    const operatorFile = path.join(dir, "operator.yml");
    await writeFile(
      operatorFile,
      [
        "resources:",
        "  bench-api:",
        "    repository: { id: 1, owner_id: 1, name: acme/bench }",
        `    audience: ${AUDIENCE}`,
        "    max_ttl: 8h",
        '    scopes: ["* /**"]',
        `    upstream: ${upstreamUrl}`,
        '    credential: { header: authorization, value: env:BENCH_UPSTREAM_TOKEN, prefix: "Bearer " }',
      ].join("\n"),
    );

    // What runs is what ships: hallpass from its bundle (npm run build), the
    // pass-through and the upstream bundled the same way.
    execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "inherit" });
    const upstreamJs = await bundle("bench/proxy/upstream.ts");
    const passthroughJs = await bundle("bench/proxy/passthrough.ts");
    children.push(await node([upstreamJs, String(ports.upstream)], "1"));
    children.push(await node([passthroughJs, String(ports.passthrough), upstreamUrl], "0"));
    children.push(await node([passthroughJs, String(ports.passthrough2), upstreamUrl], "0"));
    const databaseUrl = withSearchPath(baseUrl, schema);
    const a = await hallpass(databaseUrl, masterKey, operatorFile, "0");
    children.push(a.child);
    const b = await hallpass(databaseUrl, masterKey, operatorFile, "0");
    children.push(b.child);

    // Tokens signed with the servers' key: a token service on the same database and master key.
    const service = await startTokenService(db, tokenConfig(ISSUER, masterKey), log);
    closers.push(() => service.stop());
    const { grantId } = await insertGrant(db, {
      resource: "bench-api",
      audience: AUDIENCE,
      permissions: ["GET /**", "POST /**"],
      endsAt: new Date(Date.now() + 4 * 3_600_000),
    });
    const token = (await mint(service, grantId)).token;
    const auth = `Authorization: Bearer ${token}`;
    const post = path.join(dir, "post.lua");
    await writeFile(
      post,
      `wrk.method = "POST"\nwrk.body = '{"amount":100,"currency":"eur"}'\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer ${token}"\n`,
    );
    // Every target gets the same request, token included (the pass-through forwards it).
    const targets = {
      a: { url: `${upstreamUrl}/v1/charges`, args: ["-H", auth] },
      b: { url: `http://127.0.0.1:${ports.passthrough}/bench-api/v1/charges`, args: ["-H", auth] },
      c: { url: `${a.proxyUrl}/bench-api/v1/charges`, args: ["-H", auth] },
      d: { url: `${a.proxyUrl}/bench-api/v1/charges`, args: ["-s", post] },
    };
    const b2 = {
      url: `http://127.0.0.1:${ports.passthrough2}/bench-api/v1/charges`,
      args: ["-H", auth],
    };
    // Warm every path: connections, the JIT (a cold Node process is 2× slower
    // for its first seconds), the token and grant caches.
    for (const t of [...Object.values(targets), b2]) await wrk(t.url, t.args, 50, WARM_S);

    // Side by side first, the ratio that decides: taken on a fresh database,
    // A/A and c/b runs alternating so that both see the same machine.
    const pair = async (
      x: { url: string; args: string[] },
      y: { url: string; args: string[] },
      times: number,
    ) => {
      const ratios: number[] = [];
      for (let i = 0; i < times; i++) {
        const [rx, ry] = await Promise.all([
          wrk(x.url, x.args, 50, SIDE_BY_SIDE_S),
          wrk(y.url, y.args, 50, SIDE_BY_SIDE_S),
        ]);
        ratios.push(rx.rps / ry.rps);
        progress(`side by side: ${Math.round(rx.rps)} / ${Math.round(ry.rps)} req/s`);
      }
      return ratios;
    };
    const aa: number[] = [];
    const cb: number[] = [];
    for (let i = 0; i < PAIR_REPEATS; i++) {
      aa.push(...(await pair(b2, targets.b, 1)));
      cb.push(...(await pair(targets.c, targets.b, 1)));
    }
    const db_ = await pair(targets.d, targets.b, PAIR_REPEATS);

    const rows: Row[] = [];
    const results: Record<string, Record<number, WrkResult>> = {};
    for (const [name, t] of Object.entries(targets)) {
      results[name] = {};
      for (const concurrency of [1, 50]) {
        const runs: WrkResult[] = [];
        for (let i = 0; i < REPEATS; i++) runs.push(await wrk(t.url, t.args, concurrency, RUN_S));
        const m = {
          rps: median(runs.map((r) => r.rps)),
          p50Us: median(runs.map((r) => r.p50Us)),
          p99Us: median(runs.map((r) => r.p99Us)),
          errors: runs.reduce((n, r) => n + r.errors, 0),
        };
        (results[name] as Record<number, WrkResult>)[concurrency] = m;
        progress(`${name} c=${concurrency}: ${Math.round(m.rps)} req/s, p50 ${m.p50Us} µs`);
        const label = { a: "direct", b: "pass-through", c: "hallpass GET", d: "hallpass POST" }[
          name
        ];
        rows.push({
          name: `(${name}) ${label}, c=${concurrency}`,
          value: m.rps,
          unit: "req/s",
          note: `p50 ${m.p50Us} µs, p99 ${m.p99Us} µs${m.errors ? `, ${m.errors} errors` : ""}`,
        });
      }
    }
    const c1 = results.c?.[1];
    const b1 = results.b?.[1];
    if (c1 && b1) {
      rows.push({
        name: "c − b at c=1 (p50 added)",
        value: c1.p50Us - b1.p50Us,
        unit: "µs",
        note: "target ≤ 200 µs",
      });
    }

    rows.push({
      name: "A/A: pass-through / pass-through, side by side, c=50",
      value: median(aa),
      unit: "×",
      note: runsNote(aa),
    });
    rows.push({
      name: "c/b throughput, side by side, c=50",
      value: median(cb),
      unit: "×",
      note: `target ≥ 0.85; ${runsNote(cb)}`,
    });
    rows.push({
      name: "d/b throughput, side by side, c=50",
      value: median(db_),
      unit: "×",
      note: runsNote(db_),
    });

    // Steady state, per GET.
    const before = await scrape(a.url);
    const xactBefore = await transactions(baseUrl);
    const steady = await wrk(targets.c.url, targets.c.args, 50, RUN_S);
    const after = await scrape(a.url);
    const xactAfter = await transactions(baseUrl);
    const gets = delta(
      before,
      after,
      'hallpass_proxy_requests_total{resource="bench-api",outcome="forwarded",status_class="2xx"}',
    );
    const perGet = (metric: string) => delta(before, after, metric) / Math.max(1, gets);
    rows.push({
      name: "signature verifications per GET, steady",
      value: perGet("hallpass_proxy_token_verifications_total"),
      unit: "",
      note: `${gets} GETs, ${Math.round(steady.rps)} req/s`,
    });
    rows.push({
      name: "database round trips on the request path per GET",
      value:
        perGet('hallpass_live_grants_reads_total{kind="lookup"}') +
        perGet('hallpass_proxy_usage_total{event="durable_write"}'),
      unit: "",
      note: "grant look-ups + rows written before forwarding",
    });
    rows.push({
      name: "usage batches per 1000 GETs",
      value: perGet('hallpass_proxy_usage_total{event="flush"}') * 1000,
      unit: "",
      note: "off the request path",
    });
    rows.push({
      name: "database transactions per GET, all",
      value: (xactAfter - xactBefore) / Math.max(1, gets),
      unit: "",
      note: "every client of the database: batches, heartbeats, housekeeping",
    });

    // The usage writer alone.
    const writer = await usageWriterRate(db, grantId);
    const cRps = results.c?.[50]?.rps ?? 1;
    rows.push({
      name: "usage writer, rows/s into Postgres",
      value: writer,
      unit: "rows/s",
      note: `${(writer / cRps).toFixed(1)}× hallpass GET at c=50 (target ≥ 5×)`,
    });

    // Revocation propagation to the second instance.
    const rtt = await probeRoundTrips(db, service, b.proxyUrl);
    rows.push({
      name: "baseline: a refused probe's round trip to instance B, p50",
      value: percentile(rtt, 50),
      unit: "ms",
      note: `p90 ${percentile(rtt, 90).toFixed(2)}, p99 ${percentile(rtt, 99).toFixed(2)} (2000 probes, no revocation): in every figure below`,
    });
    const live = await propagation(db, service, b.proxyUrl, REVOCATIONS);
    rows.push({
      name: `revocation → refused on instance B, p50 (${REVOCATIONS})`,
      value: percentile(live, 50),
      unit: "ms",
    });
    rows.push({
      name: `revocation → refused on instance B, p99 (${REVOCATIONS})`,
      value: percentile(live, 99),
      unit: "ms",
      note: `target < 5 ms; p90 ${percentile(live, 90).toFixed(2)}, max ${Math.max(...live).toFixed(2)}`,
    });

    // The same with the listener dropped: only resyncs (every 1 s) tell the instance.
    const lost = await lostNotifications(db, service, operatorFile, LOST_REVOCATIONS);
    rows.push({
      name: `listener dropped, resync 1 s: p50 (${LOST_REVOCATIONS})`,
      value: percentile(lost, 50),
      unit: "ms",
    });
    rows.push({
      name: `listener dropped, resync 1 s: max (${LOST_REVOCATIONS})`,
      value: Math.max(...lost),
      unit: "ms",
      note: "bounded by the resync interval",
    });
    return rows;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
    for (const child of children) child.kill("SIGTERM");
    await Promise.all(
      children.map(
        (c) =>
          new Promise((resolve) => (c.exitCode !== null ? resolve(null) : c.once("exit", resolve))),
      ),
    );
    await db.close();
    await admin(baseUrl, `DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await rm(dir, { recursive: true, force: true });
  }
}

function progress(line: string): void {
  process.stderr.write(`  proxy bench: ${line}\n`);
}

function runsNote(values: number[]): string {
  return `runs ${values.map((v) => v.toFixed(2)).join(", ")}`;
}

function tokenConfig(publicUrl: string, masterKey: string): Config {
  return {
    publicUrl,
    masterKey: Buffer.from(masterKey, "base64"),
    dataDir: tmpdir(),
    oidc: { issuer: "https://token.actions.githubusercontent.com", audience: publicUrl },
    github: {
      apiUrl: "https://api.github.com",
      webUrl: "https://github.com",
      enterpriseHost: null,
    },
  } as unknown as Config;
}

function mint(service: TokenService, grantId: string) {
  return service.mint({ grantId, subject: "github:bench", channel: "cli" });
}

/** Sets the CPU affinity of a process and all its threads (best effort: it may be gone). */
function pin(pid: string, cores: string): void {
  try {
    execFileSync("taskset", ["-a", "-p", "-c", cores, pid], { stdio: "ignore" });
  } catch {
    // not ours to pin, or it ended
  }
}

function requireCommand(name: string, hint: string): void {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
  } catch {
    throw new Error(`${name} is not installed: ${hint}`);
  }
}

/** Bundles a script as `npm run build` bundles the server, next to it in dist/; returns the file. */
async function bundle(entry: string): Promise<string> {
  const outfile = path.join("dist", "bench", `${path.basename(entry, ".ts")}.mjs`);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    logLevel: "warning",
  });
  return outfile;
}

/** A bundled Node script, pinned to `core`; resolves once it printed "ready". */
function node(
  args: string[],
  core: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ChildProcess> {
  const child = spawn("taskset", ["-c", core, process.execPath, ...args], {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${args[0]} exited with ${code}`)));
    child.stdout?.on("data", (chunk: Buffer) => {
      if (String(chunk).includes("ready")) resolve(child);
    });
  });
}

/** `hallpass serve` with the proxy, pinned to `core`, once /readyz says ready. */
async function hallpass(
  databaseUrl: string,
  masterKey: string,
  operatorFile: string,
  core: string,
) {
  const port = await freePort();
  const proxyPort = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proxyUrl = `http://127.0.0.1:${proxyPort}`;
  const child = spawn("taskset", ["-c", core, process.execPath, "dist/main.js", "serve"], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: databaseUrl,
      HALLPASS_MASTER_KEY: masterKey,
      HALLPASS_CONFIG: operatorFile,
      // One issuer for every replica, as in production.
      HALLPASS_URL: ISSUER,
      HALLPASS_PROXY_URL: proxyUrl,
      HOST: "127.0.0.1",
      PORT: String(port),
      PROXY_PORT: String(proxyPort),
      LOG_LEVEL: "warn",
      BENCH_UPSTREAM_TOKEN: CREDENTIAL,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  for (let i = 0; i < 300; i++) {
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) return { child, url, proxyUrl };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill("SIGKILL");
  throw new Error("hallpass serve did not become ready");
}

/** One wrk run pinned to core 1: req/s and latency percentiles. */
function wrk(
  url: string,
  args: string[],
  concurrency: number,
  seconds: number,
): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "taskset",
      ["-c", "1", "wrk", "-t1", `-c${concurrency}`, `-d${seconds}s`, "--latency", ...args, url],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk;
    });
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`wrk exited with ${code}: ${out}`));
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
      const p = (label: string) =>
        toUs(new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out));
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(
        out,
      );
      const errors = non2xx + (socket ? socket.slice(1).reduce((n, v) => n + Number(v), 0) : 0);
      resolve({ rps, p50Us: p("50"), p99Us: p("99"), errors });
    });
  });
}

function toUs(match: RegExpExecArray | null): number {
  if (!match) return Number.NaN;
  const value = Number(match[1]);
  return Math.round(
    match[2] === "us" ? value : match[2] === "ms" ? value * 1000 : value * 1_000_000,
  );
}

async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const space = line.lastIndexOf(" ");
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

function delta(before: Map<string, number>, after: Map<string, number>, key: string): number {
  return (after.get(key) ?? 0) - (before.get(key) ?? 0);
}

async function admin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function transactions(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Statistics are sent by each backend at the end of a transaction; this one flushes its view.
    await client.query("SELECT pg_stat_clear_snapshot()");
    const { rows } = await client.query<{ n: string }>(
      "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()",
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

/** Rows per second the usage writer puts into Postgres, 200 000 rows in batches of 1 000. */
async function usageWriterRate(db: Db, grantId: string): Promise<number> {
  const total = 200_000;
  const writer = new UsageWriter(db, log, { capacity: total, batchSize: 1_000, flushMs: 5 });
  const row: ProxyRequestRow = {
    grantId,
    jti: "00000000-0000-4000-8000-000000000000",
    resource: "bench-api",
    method: "GET",
    path: "/v1/charges",
    scope: "GET /**",
    outcome: "forwarded",
    status: 200,
    bytesIn: 0,
    bytesOut: 64,
    latencyUs: 300,
    requestId: "bench",
    reason: null,
    startedAt: Date.now(),
    finishedAt: Date.now(),
  };
  const start = performance.now();
  for (let i = 0; i < total; i++) writer.add(row, false);
  await writer.flush();
  const seconds = (performance.now() - start) / 1000;
  await writer.stop();
  await db.query("DELETE FROM proxy_requests WHERE request_id = 'bench'");
  return total / seconds;
}

/** The round trip of a probe refused for its scope, alone: the floor of every propagation figure. */
async function probeRoundTrips(db: Db, service: TokenService, proxyUrl: string): Promise<number[]> {
  const pool = new Pool(proxyUrl, { connections: 1, pipelining: 1 });
  const { grantId } = await insertGrant(db, {
    resource: "bench-api",
    audience: AUDIENCE,
    permissions: ["GET /**"],
    endsAt: new Date(Date.now() + 3_600_000),
  });
  const { token } = await mint(service, grantId);
  const times: number[] = [];
  try {
    for (let i = 0; i < 2_200; i++) {
      const start = performance.now();
      const response = await pool.request({
        path: "/bench-api/outside-the-scope",
        method: "DELETE",
        headers: { authorization: `Bearer ${token}` },
      });
      await response.body.dump();
      if (i >= 200) times.push(performance.now() - start);
    }
  } finally {
    await pool.close();
  }
  return times;
}

/** Probe loops running while a grant is revoked. */
const LOOPS = 2;

/**
 * For each of `count` grants: a token, a first request through `proxyUrl`
 * (so the instance holds the grant), then `LOOPS` loops of probes while the
 * grant is revoked in its own transaction; the time from the commit to the
 * first probe refused as revoked (an upper bound: it includes that probe's
 * round trip). A probe asks for a path outside the token's permissions: the
 * proxy checks the grant before the scope, so it answers 403 while the
 * grant lives and 401 once it knows of the revocation, without the upstream.
 */
async function propagation(
  db: Db,
  service: TokenService,
  proxyUrl: string,
  count: number,
): Promise<number[]> {
  const pool = new Pool(proxyUrl, { connections: LOOPS, pipelining: 1 });
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const { grantId } = await insertGrant(db, {
        resource: "bench-api",
        audience: AUDIENCE,
        permissions: ["GET /**"],
        endsAt: new Date(Date.now() + 3_600_000),
      });
      const { token } = await mint(service, grantId);
      let last = "";
      const get = async () => {
        const response = await pool.request({
          path: "/bench-api/v1/charges",
          method: "GET",
          headers: { authorization: `Bearer ${token}` },
        });
        last = await response.body.text();
        return response.statusCode;
      };
      for (let tries = 0; (await get()) !== 200; tries++) {
        if (tries > 5_000)
          throw new Error(`the instance never let the new grant's token through: ${last}`);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const probe = async () => {
        const response = await pool.request({
          path: "/bench-api/outside-the-scope",
          method: "DELETE",
          headers: { authorization: `Bearer ${token}` },
        });
        await response.body.dump();
        return response.statusCode;
      };
      let committedAt = Number.POSITIVE_INFINITY;
      let refusedAt = Number.POSITIVE_INFINITY;
      const loop = async () => {
        while (refusedAt === Number.POSITIVE_INFINITY) {
          const status = await probe();
          if (status === 401) refusedAt = Math.min(refusedAt, performance.now());
          else if (performance.now() - committedAt > 10_000)
            throw new Error("the revocation never reached the instance");
        }
      };
      const loops = Promise.all(Array.from({ length: LOOPS }, loop));
      await new Promise((resolve) => setTimeout(resolve, 2));
      await db.transaction((tx) => endGrant(tx, grantId, "revoked", "benchmark", "operator"));
      committedAt = performance.now();
      await loops;
      times.push(refusedAt - committedAt);
      if ((i + 1) % 20 === 0)
        progress(`${i + 1} revocations, last ${(refusedAt - committedAt).toFixed(2)} ms`);
    }
  } finally {
    await pool.close();
  }
  return times;
}

/** Propagation to an instance whose listener is off: it learns only from resyncs, every second. */
async function lostNotifications(
  db: Db,
  service: TokenService,
  operatorFile: string,
  count: number,
): Promise<number[]> {
  process.env.BENCH_UPSTREAM_TOKEN = CREDENTIAL;
  const operator = await loadOperator({ operatorConfigPath: operatorFile } as Config);
  const port = await freePort();
  const proxy = createProxyServer({
    operator,
    publicUrl: `http://127.0.0.1:${port}`,
    log,
    metrics: new Registry(),
  });
  const url = await proxy.listen(port, "127.0.0.1");
  const component = await proxy.start(db, service.verifier, {
    live: { listen: false, resyncMs: 1_000, maxStalenessMs: 3_000 },
  });
  try {
    return await propagation(db, service, url, count);
  } finally {
    await proxy.close(500);
    await component.stop();
  }
}
