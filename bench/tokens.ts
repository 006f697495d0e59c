/**
 * Token service figures:
 *
 * - mints per second (grant read + jti insert + audit append + EdDSA
 *   signature), on real Postgres when BENCH_DATABASE_URL or
 *   TEST_DATABASE_URL is set, else on in-memory PGlite;
 * - offline verifications per second by an API holding the JWKS (jose);
 * - the cost of verifying a GitHub Actions ID token (RS256, JWKS cached);
 * - `POST /v1/exchange` over HTTP: server-side latency (Fastify's elapsed
 *   time, request received to response sent) one at a time and under load,
 *   and exchanges per second, against the GitHub simulator and the local
 *   OIDC issuer, with their JWKS and merge commits cached (warmed first).
 *   Postgres when TEST_DATABASE_URL is set, else PGlite.
 *
 * Each figure is the median of several runs. Run alone with
 * `npx tsx bench/tokens.ts [mint|exchange]` (both by default).
 */
import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import { createLocalJWKSet, jwtVerify } from "jose";
import pg from "pg";
import type { Db } from "#src/store/db.js";
import { verificationKeys } from "#src/store/keys.js";
import { migrate } from "#src/store/migrate.js";
import { openPglite } from "#src/store/pglite.js";
import { openPostgres } from "#src/store/postgres.js";
import { ActiveKeyCache } from "#src/tokens/active-key.js";
import { bootstrapKeys } from "#src/tokens/keys.js";
import { createMinter } from "#src/tokens/mint.js";
import { createOidcVerifier } from "#src/tokens/oidc.js";
import { primaryBackend } from "../test/support/db.js";
import { RESOURCE, startExchangeWorld } from "../test/support/exchange.js";
import { insertGrant } from "../test/support/grants.js";
import { startOidcIssuer } from "../test/support/oidc-issuer.js";

export interface Row {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly note?: string;
}

const RUNS = 5;
const MINT_RUN_MS = 1_500;
const MINT_CONCURRENCY = 16;
const GRANTS = 8;
const VERIFY_RUN_MS = 500;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** Runs `op` for `ms` with `concurrency` in flight; returns operations per second and latencies. */
async function throughput(
  op: () => Promise<unknown>,
  ms: number,
  concurrency: number,
): Promise<{ perSecond: number; latencies: number[] }> {
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await op();
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { perSecond: latencies.length / ((performance.now() - start) / 1000), latencies };
}

async function openBenchDb(): Promise<{ db: Db; kind: string; close(): Promise<void> }> {
  const url = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL;
  if (!url) {
    const db = await openPglite();
    await migrate(db);
    return { db, kind: "PGlite (in memory)", close: () => db.close() };
  }
  const schema = `hallpass_bench_${Date.now()}_${randomBytes(4).toString("hex")}`;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE SCHEMA ${schema}`);
  const db = openPostgres(url, { searchPath: schema, max: 10 });
  await migrate(db);
  return {
    db,
    kind: "PostgreSQL",
    async close() {
      await db.close();
      await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
  };
}

export async function benchTokens(): Promise<Row[]> {
  const rows: Row[] = [];
  const bench = await openBenchDb();
  const issuer = await startOidcIssuer();
  try {
    const { db } = bench;
    const master = { key: randomBytes(32), file: null };
    await bootstrapKeys(db, master);
    // As the service mints: concurrent mints share transactions.
    const mint = createMinter({
      db,
      keys: new ActiveKeyCache(db, master),
      config: { publicUrl: "https://hallpass.example", github: { webUrl: "https://github.com" } },
    });
    const grants = await Promise.all(Array.from({ length: GRANTS }, () => insertGrant(db)));
    let n = 0;
    const mintOne = () =>
      mint({
        grantId: (grants[n++ % GRANTS] as { grantId: string }).grantId,
        subject: "run:acme/app/1",
        actor: "octocat",
        channel: "actions",
        run: {
          id: 1,
          attempt: 1,
          workflowRef: "acme/app/.github/workflows/d.yml@refs/heads/main",
          sha: "a".repeat(40),
        },
      });
    await throughput(mintOne, 300, MINT_CONCURRENCY); // warm-up: key cache, plans, JIT

    const mintRates: number[] = [];
    const mintP50: number[] = [];
    const mintP99: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const { perSecond, latencies } = await throughput(mintOne, MINT_RUN_MS, MINT_CONCURRENCY);
      latencies.sort((a, b) => a - b);
      mintRates.push(perSecond);
      mintP50.push(latencies[Math.floor(latencies.length * 0.5)] ?? 0);
      mintP99.push(latencies[Math.floor(latencies.length * 0.99)] ?? 0);
    }
    const note = `${bench.kind}, ${MINT_CONCURRENCY} in flight, ${GRANTS} grants`;
    rows.push({ name: "mint", value: Math.round(median(mintRates)), unit: "tokens/s", note });
    rows.push({ name: "mint latency p50", value: round(median(mintP50)), unit: "ms", note });
    rows.push({ name: "mint latency p99", value: round(median(mintP99)), unit: "ms", note });

    // An API verifying offline with the JWKS it fetched: one key set, many tokens.
    const tokens = await Promise.all(
      Array.from({ length: 64 }, () => mintOne().then((m) => m.token)),
    );
    const keys = (await verificationKeys(db, new Date())).map((k) => ({ ...k.publicJwk }));
    const jwks = createLocalJWKSet({ keys });
    let i = 0;
    const verifyOne = () =>
      jwtVerify(tokens[i++ % tokens.length] as string, jwks, {
        issuer: "https://hallpass.example",
        audience: "acme/payments#payments-api",
      });
    await throughput(verifyOne, 200, 1);
    const verifyRates: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      verifyRates.push((await throughput(verifyOne, VERIFY_RUN_MS, 1)).perSecond);
    }
    rows.push({
      name: "verify (client with JWKS)",
      value: Math.round(median(verifyRates)),
      unit: "tokens/s",
      note: "jose jwtVerify, EdDSA, one core",
    });

    // GitHub ID tokens: RS256 with the issuer's JWKS cached after the first fetch.
    const verifier = createOidcVerifier({
      issuer: issuer.url,
      audience: "https://hallpass.example",
    });
    const idTokens = await Promise.all(
      Array.from({ length: 64 }, () => issuer.idToken("https://hallpass.example")),
    );
    let j = 0;
    const verifyIdToken = () => verifier.verify(idTokens[j++ % idTokens.length] as string);
    await throughput(verifyIdToken, 200, 1);
    const idCosts: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const { perSecond } = await throughput(verifyIdToken, VERIFY_RUN_MS, 1);
      idCosts.push(1e6 / perSecond);
    }
    rows.push({
      name: "ID token verification",
      value: Math.round(median(idCosts)),
      unit: "µs/token",
      note: `RS256 + claims parsing, JWKS cached (${issuer.jwksFetches()} fetch)`,
    });
    return rows;
  } finally {
    await issuer.close();
    await bench.close();
  }
}

const EXCHANGE_GRANTS = 8;
const EXCHANGE_SEQUENTIAL = 400;
const EXCHANGE_LOADED = 1_500;
const EXCHANGE_CONCURRENCY = 16;

export async function benchExchange(): Promise<Row[]> {
  let serverMs: number[] | null = null;
  const w = await startExchangeWorld(primaryBackend, {
    rateLimits: { perRepository: 1e9, perUser: 1e9 },
    onResponse: (route, ms) => {
      if (route === "/v1/exchange") serverMs?.push(ms);
    },
  });
  try {
    const runs: Record<string, unknown>[] = [];
    for (let i = 0; i < EXCHANGE_GRANTS; i++) {
      runs.push(w.pullRequestRun((await w.prGrant()).number));
    }
    let runId = 10_000;
    // Each exchange spends its ID token: sign them all before the clock starts.
    const idTokens = (n: number) =>
      Promise.all(
        Array.from({ length: n }, (_, i) =>
          w.idToken({ ...runs[i % runs.length], run_id: String(runId++) }),
        ),
      );
    const exchangeOne = async (token: string) => {
      const response = await w.exchange({ resource: RESOURCE }, token);
      if (response.status !== 200) throw new Error(`exchange: ${await response.text()}`);
      await response.arrayBuffer();
    };
    // Warm-up: GitHub's JWKS, every merge commit, the signing key, plans, JIT.
    for (const token of await idTokens(200)) await exchangeOne(token);
    // Default branches are re-read every 60 s; commits are read once.
    const commitReads = () => w.sim.requests({ method: "GET", path: /\/commits\// }).length;
    const githubReads = commitReads();

    const oneP50: number[] = [];
    const oneP99: number[] = [];
    const clientP50: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const tokens = await idTokens(EXCHANGE_SEQUENTIAL);
      serverMs = [];
      const client: number[] = [];
      for (const token of tokens) {
        const t = performance.now();
        await exchangeOne(token);
        client.push(performance.now() - t);
      }
      oneP50.push(percentile(serverMs, 50));
      oneP99.push(percentile(serverMs, 99));
      clientP50.push(percentile(client, 50));
      serverMs = null;
    }

    const rates: number[] = [];
    const loadP50: number[] = [];
    const loadP99: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const tokens = await idTokens(EXCHANGE_LOADED);
      serverMs = [];
      let next = 0;
      const start = performance.now();
      await Promise.all(
        Array.from({ length: EXCHANGE_CONCURRENCY }, async () => {
          while (next < tokens.length) await exchangeOne(tokens[next++] as string);
        }),
      );
      rates.push(tokens.length / ((performance.now() - start) / 1000));
      loadP50.push(percentile(serverMs, 50));
      loadP99.push(percentile(serverMs, 99));
      serverMs = null;
    }
    if (commitReads() !== githubReads) {
      throw new Error("the measured exchanges read GitHub: caches were not warm");
    }

    const kind = w.h.db.backend === "postgres" ? "PostgreSQL" : "PGlite";
    const one = `${kind}, 1 in flight, server-side`;
    const loaded = `${kind}, ${EXCHANGE_CONCURRENCY} in flight, server-side`;
    return [
      { name: "exchange latency p50", value: round(median(oneP50)), unit: "ms", note: one },
      { name: "exchange latency p99", value: round(median(oneP99)), unit: "ms", note: one },
      {
        name: "exchange round trip p50",
        value: round(median(clientP50)),
        unit: "ms",
        note: `${kind}, 1 in flight, as the client sees it (fetch, same process)`,
      },
      {
        name: "exchanges",
        value: Math.round(median(rates)),
        unit: "per s",
        note: `${kind}, ${EXCHANGE_CONCURRENCY} in flight, client in the same process`,
      },
      { name: "exchange latency p50", value: round(median(loadP50)), unit: "ms", note: loaded },
      { name: "exchange latency p99", value: round(median(loadP99)), unit: "ms", note: loaded },
    ];
  } finally {
    await w.close();
  }
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function printTable(rows: readonly Row[]): void {
  const width = Math.max(...rows.map((r) => r.name.length));
  for (const row of rows) {
    const value = `${row.value}`.padStart(10);
    console.log(`${row.name.padEnd(width)}  ${value} ${row.unit.padEnd(9)} ${row.note ?? ""}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const only = process.argv[2];
  const rows = [
    ...(only === undefined || only === "mint" ? await benchTokens() : []),
    ...(only === undefined || only === "exchange" ? await benchExchange() : []),
  ];
  printTable(rows);
}
