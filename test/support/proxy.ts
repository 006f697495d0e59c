/**
 * The access proxy as `hallpass serve` runs it, for tests: the token
 * service on a test database, the proxy's own HTTP server on an ephemeral
 * port with the operator's resources pointed at a local upstream, and a
 * captured log to search for secrets.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { METRICS_PATH, metricsRoute } from "#src/metrics.js";
import type { Operator } from "#src/operator.js";
import { createProxyServer, type ProxyServer, type StartOptions } from "#src/proxy/server.js";
import { parseOperatorYaml } from "#src/rules/operator.js";
import { resolveSecrets } from "#src/rules/secrets.js";
import type { Component } from "#src/runtime.js";
import type { Db } from "#src/store/db.js";
import type { Backend, TestDb } from "./db.js";
import { type GrantOptions, insertGrant } from "./grants.js";
import { captureLogger } from "./log.js";
import { freePort } from "./net.js";
import { startTokenHarness, type TokenHarness } from "./token-service.js";
import { startUpstream, type Upstream } from "./upstream.js";

/** The credential the proxy injects; it must never reach a caller or a log line. */
export const UPSTREAM_CREDENTIAL = "upstream-credential-5f2c9a77d1e04b8a";
export const AUDIENCE = "acme/payments#payments-api";

const TLS_DIR = path.join(import.meta.dirname, "tls");
export const TEST_CA = path.join(TLS_DIR, "ca.pem");
export const TLS = {
  key: readFileSync(path.join(TLS_DIR, "upstream.key"), "utf8"),
  cert: readFileSync(path.join(TLS_DIR, "upstream.pem"), "utf8"),
};

export interface ProxyHarnessOptions {
  /** Extra keys of the `payments-api` resource, as YAML lines (indented by the harness). */
  readonly resourceYaml?: string;
  /** More resources, as YAML under `resources:` (indented by the harness). */
  readonly extraResources?: string;
  readonly tls?: boolean;
  /** Serve from this (already started) token harness instead of a new one. */
  readonly tokens?: TokenHarness;
  /** Another database handle on the same schema (a second replica's pool). */
  readonly db?: Db;
  readonly start?: StartOptions;
  /** Leave the database side unstarted until the test calls `start()`. */
  readonly deferStart?: boolean;
  readonly upstream?: Upstream;
  /** The `aud` of payments-api (default: AUDIENCE). */
  readonly audience?: string;
}

export interface ProxyHarness {
  readonly tokens: TokenHarness;
  readonly db: TestDb;
  readonly proxy: ProxyServer;
  readonly url: string;
  readonly upstream: Upstream;
  readonly log: ReturnType<typeof captureLogger>;
  readonly metrics: Registry;
  /** An active grant of `payments-api` (default permissions: every method and path). */
  grant(options?: GrantOptions): Promise<{ grantId: string; ticketId: string }>;
  token(grantId: string, scopes?: string[]): Promise<string>;
  /** A request to the proxy with the token. */
  call(path: string, token: string | null, init?: RequestInit): Promise<Response>;
  /** Writes what the usage writer holds, then returns the grant's rows. */
  rows(grantId: string): Promise<Array<Record<string, unknown>>>;
  /** Starts the database side (with `deferStart`). */
  start(): Promise<void>;
  /** `GET /metrics` as the main port serves it (the proxy's registry), its text. */
  scrape(): Promise<string>;
  close(): Promise<void>;
}

export const ALL_PERMISSIONS = ["* /**"];

export async function startProxyHarness(
  backend: Backend,
  options: ProxyHarnessOptions = {},
): Promise<ProxyHarness> {
  const tokens = options.tokens ?? (await startTokenHarness(backend));
  const upstream = options.upstream ?? (await startUpstream(options.tls ? { tls: TLS } : {}));
  const yaml = [
    "resources:",
    "  payments-api:",
    "    repository: { id: 1, owner_id: 1, name: acme/payments }",
    `    audience: "${options.audience ?? AUDIENCE}"`,
    "    max_ttl: 8h",
    '    scopes: ["* /**"]',
    `    upstream: ${upstream.url}`,
    '    credential: { header: authorization, value: env:UPSTREAM_TOKEN, prefix: "Bearer " }',
    ...(options.tls ? [`    upstream_ca: file:${TEST_CA}`] : []),
    ...(options.resourceYaml ?? "")
      .split("\n")
      .filter(Boolean)
      .map((line) => `    ${line}`),
    ...(options.extraResources ?? "")
      .split("\n")
      .filter(Boolean)
      .map((line) => `  ${line}`),
  ].join("\n");
  const parsed = parseOperatorYaml(yaml, "operator.yml");
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const secrets = await resolveSecrets(parsed.config, {
    env: { UPSTREAM_TOKEN: UPSTREAM_CREDENTIAL },
    readFile: (file) => readFileSync(file, "utf8"),
  });
  if (!secrets.ok) throw new Error(JSON.stringify(secrets.errors));
  const operator: Operator = { config: parsed.config, secrets: secrets.secrets };
  const log = captureLogger("debug");
  const metrics = new Registry();
  const port = await freePort();
  const proxy = createProxyServer({
    operator,
    publicUrl: `http://127.0.0.1:${port}`,
    log: log.log,
    metrics,
    now: tokens.clock.now,
  });
  const url = await proxy.listen(port, "127.0.0.1");
  let component: Component | null = null;
  const start = async () => {
    component = await proxy.start(
      options.db ?? tokens.db,
      tokens.service().verifier,
      options.start,
    );
  };
  if (!options.deferStart) await start();
  let metricsApp: FastifyInstance | null = null;
  const db = tokens.db;
  return {
    tokens,
    db,
    proxy,
    url,
    upstream,
    log,
    metrics,
    grant: (grantOptions = {}) =>
      insertGrant(db, {
        audience: options.audience ?? AUDIENCE,
        permissions: ALL_PERMISSIONS,
        startsAt: new Date(tokens.clock.now().getTime() - 60_000),
        endsAt: new Date(tokens.clock.now().getTime() + 3_600_000),
        ...grantOptions,
      }),
    async token(grantId, scopes) {
      const minted = await tokens.service().mint({
        grantId,
        subject: "github:alice",
        channel: "cli",
        ...(scopes ? { scopes } : {}),
      });
      return minted.token;
    },
    call(requestPath, token, init = {}) {
      const headers = new Headers(init.headers);
      if (token !== null) headers.set("authorization", `Bearer ${token}`);
      return fetch(`${url}${requestPath}`, { ...init, headers });
    },
    async rows(grantId) {
      await proxy.state?.usage.flush();
      const { rows } = await db.query<Record<string, unknown>>(
        "SELECT * FROM proxy_requests WHERE grant_id = $1::uuid ORDER BY id",
        [grantId],
      );
      return rows;
    },
    start,
    async scrape() {
      if (!metricsApp) {
        metricsApp = Fastify();
        await metricsApp.register(metricsRoute(metrics));
        await metricsApp.listen({ port: 0, host: "127.0.0.1" });
      }
      const address = metricsApp.server.address() as import("node:net").AddressInfo;
      const response = await fetch(`http://127.0.0.1:${address.port}${METRICS_PATH}`);
      if (response.status !== 200) throw new Error(`GET /metrics: ${response.status}`);
      return response.text();
    },
    async close() {
      await proxy.close(1_000);
      await (component as Component | null)?.stop();
      await metricsApp?.close();
      if (!options.upstream) await upstream.close();
      if (!options.tokens) await tokens.close();
    },
  };
}
