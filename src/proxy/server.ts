import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { HallpassError } from "#src/errors.js";
import type { Logger } from "#src/log.js";
import type { Operator } from "#src/operator.js";
import { ProxyMetrics } from "#src/proxy/metrics.js";
import {
  type ProxyResource,
  type ProxyState,
  proxyHandler,
  UNKNOWN_RESOURCE,
} from "#src/proxy/proxy.js";
import { VerifiedTokens } from "#src/proxy/tokens.js";
import { openUpstream } from "#src/proxy/upstream.js";
import { UsageWriter, type UsageWriterOptions } from "#src/proxy/usage-writer.js";
import type { Component } from "#src/runtime.js";
import type { Db } from "#src/store/db.js";
import { LiveGrants, type LiveGrantsOptions } from "#src/tokens/live-grants.js";
import type { AccessTokenVerifier } from "#src/tokens/verify.js";

export interface ProxyServerOptions {
  readonly operator: Operator;
  /** The public URL callers reach the proxy at: its host is the one `host` answered. */
  readonly publicUrl: string;
  readonly log: Logger;
  readonly metrics: Registry;
  readonly now?: () => Date;
}

export interface StartOptions {
  readonly live?: LiveGrantsOptions;
  readonly usage?: UsageWriterOptions;
}

/** The access proxy: its own HTTP server, serving once `start` gave it the database side. */
export interface ProxyServer {
  readonly server: Server;
  readonly resources: ReadonlyMap<string, ProxyResource>;
  /** The database-backed state, once started. */
  readonly state: ProxyState | null;
  listen(port: number, host: string): Promise<string>;
  /** Starts the live grant view and the usage writer (a Runtime component). */
  start(db: Db, verifier: AccessTokenVerifier, options?: StartOptions): Promise<Component>;
  /** Stops accepting, lets requests in flight finish (at most `graceMs`), closes the upstream pools. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Faults of Node's parser in the request line (method, target, version);
 * every other one is in the headers or the body's framing.
 */
const REQUEST_LINE_FAULTS: ReadonlySet<string> = new Set([
  "HPE_INVALID_METHOD",
  "HPE_INVALID_URL",
  "HPE_INVALID_VERSION",
  "HPE_INVALID_CONSTANT",
]);

/**
 * The resources the proxy serves: those of the operator config with an
 * `upstream`. Each gets its pool, credential and settings.
 */
export function proxyResources(operator: Operator): Map<string, ProxyResource> {
  const resources = new Map<string, ProxyResource>();
  for (const r of operator.config.resources.values()) {
    if (!r.upstream) continue;
    const secrets = operator.secrets.get(r.name);
    const credential = secrets?.credential ?? null;
    resources.set(r.name, {
      name: r.name,
      audience: r.audience,
      settings: r.proxy,
      upstream: openUpstream(r.upstream, r.proxy, secrets?.upstreamCa ?? null),
      credential,
    });
  }
  return resources;
}

/**
 * Checks that `PROXY_PORT` and the operator's upstreams go together: a port
 * with nothing to serve, or upstreams nobody can reach, is a mistake the
 * operator hears about at start.
 *
 * @throws CONFIG_INVALID naming the variable or the resources
 */
export function checkProxyConfig(proxyPort: number | null, operator: Operator): boolean {
  const upstreams = [...operator.config.resources.values()].filter((r) => r.upstream);
  if (proxyPort !== null && upstreams.length === 0) {
    throw new HallpassError(
      "CONFIG_INVALID",
      "PROXY_PORT: set, but no resource of the operator config (HALLPASS_CONFIG) has an upstream for the proxy to serve",
    );
  }
  if (proxyPort === null && upstreams.length > 0) {
    throw new HallpassError(
      "CONFIG_INVALID",
      `PROXY_PORT: not set, but ${upstreams.map((r) => r.name).join(", ")} ${upstreams.length === 1 ? "has an upstream" : "have upstreams"} in the operator config; set PROXY_PORT so the proxy serves them`,
    );
  }
  return proxyPort !== null;
}

/** `host` values the proxy answers for: the public URL's, and loopback aliases of a loopback one. */
export function proxyHosts(publicUrl: string): Set<string> {
  const url = new URL(publicUrl);
  const port = url.port;
  const hosts = new Set([url.host.toLowerCase()]);
  if (["localhost", "127.0.0.1", "[::1]"].includes(url.hostname)) {
    for (const name of ["localhost", "127.0.0.1", "[::1]"])
      hosts.add(port ? `${name}:${port}` : name);
  }
  return hosts;
}

export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  const resources = proxyResources(options.operator);
  let state: ProxyState | null = null;
  const metrics = new ProxyMetrics(options.metrics, () =>
    state
      ? {
          liveAge: () => state?.live.age() ?? Number.POSITIVE_INFINITY,
          liveGrants: () => state?.live.size ?? 0,
          liveReads: () => state?.live.reads ?? { resyncs: 0, lookups: 0, heartbeats: 0 },
          usageBacklog: () => state?.usage.backlog ?? 0,
          usageCounters: () => (state as ProxyState).usage.counters,
          verifications: () => state?.tokens.verifications ?? 0,
        }
      : null,
  );
  const handler = proxyHandler({
    resources,
    hosts: proxyHosts(options.publicUrl),
    state: () => state,
    metrics,
    log: options.log.child({ component: "proxy" }),
    ...(options.now ? { now: options.now } : {}),
  });
  const server = createServer(handler);
  // Uploads may take long (requestTimeout off); a connection idle for 2 minutes may not.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  server.setTimeout(120_000);
  server.on("clientError", (error, socket) => {
    // Unparseable requests (Node's parser refused them): one JSON answer, then close.
    const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!socket.writable || answering?.headersSent) {
      // Gone, or an answer is under way (a malformed chunk of a body): nothing can be said.
      socket.destroy();
      return;
    }
    const parserCode = (error as { code?: string }).code ?? "parse error";
    const code = REQUEST_LINE_FAULTS.has(parserCode) ? "PROXY_REQUEST_TARGET" : "PROXY_HEADERS";
    metrics.refusal(UNKNOWN_RESOURCE, code);
    metrics.request(UNKNOWN_RESOURCE, "denied", 400);
    const body = JSON.stringify({
      error: code,
      message: `malformed request (${parserCode})`,
    });
    socket.end(
      `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });

  return {
    server,
    resources,
    get state() {
      return state;
    },
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const address = server.address() as AddressInfo;
          resolve(
            `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`,
          );
        });
      });
    },
    async start(db, verifier, startOptions = {}) {
      const log = options.log.child({ component: "proxy" });
      const live = await LiveGrants.start(db, log, {
        ...startOptions.live,
        ...(options.now ? { now: options.now } : {}),
      });
      const usage = new UsageWriter(db, log, startOptions.usage);
      const tokens = new VerifiedTokens(verifier, options.now ? { now: options.now } : {});
      state = { live, usage, tokens };
      return {
        async stop() {
          state = null;
          await usage.stop();
          await live.stop();
        },
      };
    },
    async close(graceMs = 10_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
      await Promise.all([...resources.values()].map((r) => r.upstream.pool.close()));
    },
  };
}
