import type { AddressInfo } from "node:net";
import { connect, createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rotateKeys } from "#src/tokens/keys.js";
import { loadMasterKey } from "#src/tokens/master-key.js";
import { backends } from "../support/db.js";
import { endGrant } from "../support/grants.js";
import { REFUSED_PORT } from "../support/net.js";
import {
  type ProxyHarness,
  startProxyHarness,
  TEST_CA,
  TLS,
  UPSTREAM_CREDENTIAL,
} from "../support/proxy.js";
import { rawRequest } from "../support/raw-http.js";
import { startUpstream, type Upstream } from "../support/upstream.js";

/** A TCP server that accepts connections and never says a word (a TLS handshake that never ends). */
async function silentServer(): Promise<Server> {
  const server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

describe.each(backends)("the access proxy on %s", (backend) => {
  let p: ProxyHarness;
  let tls: Upstream;
  let silent: Server;
  let big: Upstream;
  beforeAll(async () => {
    [tls, silent] = await Promise.all([startUpstream({ tls: TLS }), silentServer()]);
    const silentPort = (silent.address() as AddressInfo).port;
    // big-api's upstream: the harness's own is not started yet.
    big = await startUpstream();
    const p0 = big.url;
    p = await startProxyHarness(backend, {
      resourceYaml: [
        "max_request_body: 1kb",
        "strip_cookies: [session]",
        "timeouts: { connect: 1s, headers: 1s, body: 1s }",
      ].join("\n"),
      extraResources: [
        "secure-api:",
        "  repository: { id: 1, owner_id: 1, name: acme/payments }",
        "  max_ttl: 1h",
        '  scopes: ["* /**"]',
        `  upstream: ${tls.url}`,
        `  upstream_ca: file:${TEST_CA}`,
        "untrusted-api:",
        "  repository: { id: 1, owner_id: 1, name: acme/payments }",
        "  max_ttl: 1h",
        '  scopes: ["* /**"]',
        `  upstream: ${tls.url}`,
        "stuck-api:",
        "  repository: { id: 1, owner_id: 1, name: acme/payments }",
        "  max_ttl: 1h",
        '  scopes: ["* /**"]',
        `  upstream: https://127.0.0.1:${silentPort}`,
        "  timeouts: { connect: 1s }",
        "big-api:",
        "  repository: { id: 1, owner_id: 1, name: acme/payments }",
        "  max_ttl: 1h",
        '  scopes: ["* /**"]',
        `  upstream: ${p0}`,
        "  max_request_body: 2mb",
        "down-api:",
        "  repository: { id: 1, owner_id: 1, name: acme/payments }",
        "  max_ttl: 1h",
        '  scopes: ["* /**"]',
        `  upstream: http://127.0.0.1:${REFUSED_PORT}`,
      ].join("\n"),
    });
  });
  afterAll(async () => {
    await p.close();
    await tls.close();
    await big.close();
    silent.close();
  });

  const seenSince = (before: number) => p.upstream.seen.slice(before);
  /** Requests whose headers reached the upstream, body ended or not. */
  const arrivedSince = (before: number) => p.upstream.arrived.slice(before);
  /** A body of `n` chunks of `size` bytes, sent chunked (no Content-Length). */
  const chunked = (n: number, size: number) =>
    new ReadableStream({
      start(controller) {
        for (let i = 0; i < n; i++) controller.enqueue(new TextEncoder().encode("y".repeat(size)));
        controller.close();
      },
    });
  /** A GET sent as bytes: fetch would resolve `..` and `%2e%2e` itself. */
  const rawGet = (path: string, token: string) =>
    rawRequest(
      p.url,
      `GET ${path} HTTP/1.1\r\nHost: ${new URL(p.url).host}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
    );
  const tokenFor = async (options: Parameters<ProxyHarness["grant"]>[0] = {}) => {
    const { grantId } = await p.grant(options);
    return { grantId, token: await p.token(grantId) };
  };
  const expectError = async (response: Response, status: number, error: string) => {
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toBe("application/json");
    const body = (await response.json()) as { error: string; message: string; request_id: string };
    expect(body.error).toBe(error);
    expect(body.request_id).toBe(response.headers.get("x-request-id"));
    const text = JSON.stringify(body);
    expect(text).not.toContain(UPSTREAM_CREDENTIAL);
    expect(text).not.toContain("127.0.0.1");
    return body;
  };

  describe("a request that passes every check", () => {
    it("reaches the upstream with the injected credential and nothing of the caller's", async () => {
      const { token } = await tokenFor();
      const before = p.upstream.seen.length;
      const response = await p.call("/payments-api/echo/v1/charges?limit=3", token, {
        headers: {
          cookie: "session=caller-session; theme=dark",
          "proxy-authorization": "Basic c2VjcmV0",
          "x-request-id": "trace-123",
          "x-custom": "kept",
        },
      });
      expect(response.status).toBe(200);
      expect(response.headers.get("x-request-id")).toBe("trace-123");
      const [seen] = seenSince(before);
      expect(seen?.url).toBe("/echo/v1/charges?limit=3");
      expect(seen?.headers).toMatchObject({
        authorization: `Bearer ${UPSTREAM_CREDENTIAL}`,
        cookie: "theme=dark",
        "x-request-id": "trace-123",
        "x-custom": "kept",
        host: new URL(p.upstream.url).host,
      });
      expect(seen?.headers["proxy-authorization"]).toBeUndefined();
      expect(JSON.stringify(seen?.rawHeaders)).not.toContain(token);
    });

    it("gives a request without a well-formed x-request-id a fresh one, returned to the caller", async () => {
      const { token } = await tokenFor();
      const before = p.upstream.seen.length;
      const response = await p.call("/payments-api/echo", token, {
        headers: { "x-request-id": "bad id\twith spaces" },
      });
      const id = response.headers.get("x-request-id");
      expect(id).toMatch(/^[0-9a-f]{18}\.[0-9a-z]+$/);
      expect(seenSince(before)[0]?.headers["x-request-id"]).toBe(id);
    });

    it("streams request and response bodies, and keeps the upstream's status", async () => {
      const { token } = await tokenFor();
      const upload = await p.call("/payments-api/upload", token, {
        method: "PUT",
        body: "x".repeat(1000),
      });
      expect(await upload.json()).toEqual({ bytes: 1000 });
      const bytes = await p.call("/payments-api/bytes/300000", token);
      expect((await bytes.arrayBuffer()).byteLength).toBe(300_000);
      expect((await p.call("/payments-api/status/418", token)).status).toBe(418);
      expect((await p.call("/payments-api/status/503", token)).status).toBe(503);
    });

    it("keeps the upstream's hop-by-hop headers and an echoed credential from the caller", async () => {
      const { token } = await tokenFor();
      const hop = await p.call("/payments-api/hop", token);
      expect(hop.headers.get("x-public")).toBe("for the caller");
      expect(hop.headers.get("x-private")).toBeNull();
      const reflect = await p.call("/payments-api/reflect", token);
      expect(reflect.status).toBe(200);
      expect(reflect.headers.get("x-seen-authorization")).toBeNull();
      expect(JSON.stringify([...reflect.headers])).not.toContain(UPSTREAM_CREDENTIAL);
    });

    it("verifies an internal TLS upstream against the operator's CA", async () => {
      const { grantId } = await p.grant({
        resource: "secure-api",
        audience: "acme/payments/secure-api",
      });
      const token = await p.token(grantId);
      const response = await p.call("/secure-api/echo", token);
      expect(response.status).toBe(200);
      expect(tls.seen.at(-1)?.headers.authorization).toBeUndefined();
    });
  });

  describe("what it records", () => {
    it("writes every request of a grant's token: reads in batches, refusals with their reason", async () => {
      const { grantId, token } = await tokenFor({ permissions: ["GET /echo/**"] });
      await p.call("/payments-api/echo/a?x=1", token, { headers: { "x-request-id": "r-1" } });
      await p.call("/payments-api/admin", token);
      expect((await rawGet("/payments-api/echo/../admin", token))?.status).toBe(400);
      const rows = await p.rows(grantId);
      expect(rows.map((r) => [r.method, r.path, r.scope, r.outcome, r.status, r.reason])).toEqual([
        ["GET", "/echo/a", "GET /echo/**", "forwarded", 200, null],
        ["GET", "/admin", null, "denied", 403, "SCOPE_NOT_GRANTED"],
        ["GET", "/echo/../admin", null, "denied", 400, "PROXY_PATH"],
      ]);
      expect(rows[0]).toMatchObject({ request_id: "r-1", bytes_in: 0, resource: "payments-api" });
      expect(Number(rows[0]?.bytes_out)).toBeGreaterThan(0);
      expect(Number(rows[0]?.latency_us)).toBeGreaterThan(0);
    });

    it("writes a mutating request's row before forwarding it, and completes it after", async () => {
      const { grantId, token } = await tokenFor();
      const pending = p.call("/payments-api/slow/700", token, { method: "POST", body: "{}" });
      await expect
        .poll(
          async () =>
            (
              await p.db.query("SELECT outcome FROM proxy_requests WHERE grant_id = $1::uuid", [
                grantId,
              ])
            ).rows,
        )
        .toEqual([{ outcome: "forwarding" }]);
      expect((await pending).status).toBe(200);
      const rows = await p.rows(grantId);
      expect(rows).toMatchObject([
        { method: "POST", outcome: "forwarded", status: 200, bytes_in: 2 },
      ]);
    });

    it("refuses a mutating request whose row cannot be written, and forwards nothing", async () => {
      const { token } = await tokenFor();
      await p.db.exec(`
        CREATE FUNCTION refuse_usage() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'usage table unavailable'; END $$;
        CREATE TRIGGER refuse_usage BEFORE INSERT ON proxy_requests
          FOR EACH ROW WHEN (NEW.method = 'DELETE') EXECUTE FUNCTION refuse_usage();`);
      try {
        const before = p.upstream.seen.length;
        const response = await p.call("/payments-api/echo/v1/refunds/1", token, {
          method: "DELETE",
        });
        await expectError(response, 503, "USAGE_UNAVAILABLE");
        expect(response.headers.get("retry-after")).toBe("1");
        expect(seenSince(before)).toEqual([]);
      } finally {
        await p.db.exec(
          "DROP TRIGGER refuse_usage ON proxy_requests; DROP FUNCTION refuse_usage()",
        );
      }
    });
  });

  describe("refusals", () => {
    it("keeps the connection of a refused request without a body, and closes one whose body it did not read", async () => {
      const { token } = await tokenFor({ permissions: ["GET /echo/**"] });
      const host = new URL(p.url).host;
      // Two requests on one connection: the first refused, the second still answered.
      const both = await rawRequest(
        p.url,
        `DELETE /payments-api/echo/x HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\n\r\n` +
          `GET /payments-api/echo/y HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
      );
      expect(both?.status).toBe(403);
      expect(both?.headers.connection).not.toBe("close");
      expect(both?.text.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 403", "HTTP/1.1 200"]);
      const withBody = await rawRequest(
        p.url,
        `PUT /payments-api/echo/x HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\nContent-Length: 100000\r\n\r\nabc`,
      );
      expect(withBody?.status).toBe(403);
      expect(withBody?.headers.connection).toBe("close");
    });

    it("takes the token from Authorization: Bearer only", async () => {
      const { token } = await tokenFor();
      const before = p.upstream.seen.length;
      await expectError(await p.call("/payments-api/echo", null), 401, "TOKEN_MISSING");
      await expectError(
        await p.call(`/payments-api/echo?access_token=${token}`, null),
        401,
        "TOKEN_MISSING",
      );
      await expectError(
        await p.call("/payments-api/echo", null, { headers: { cookie: `token=${token}` } }),
        401,
        "TOKEN_MISSING",
      );
      await expectError(
        await p.call("/payments-api/echo", null, { headers: { authorization: `Basic ${token}` } }),
        401,
        "TOKEN_MISSING",
      );
      const missing = await p.call("/payments-api/echo", null);
      expect(missing.headers.get("www-authenticate")).toBe(
        'Bearer realm="hallpass", error="invalid_token"',
      );
      expect(seenSince(before)).toEqual([]);
    });

    it("refuses tokens that do not verify: garbage, forged, for another resource, expired", async () => {
      const { token } = await tokenFor();
      const [header, payload] = token.split(".");
      const forged = `${header}.${payload}.${"A".repeat(86)}`;
      const before = p.upstream.seen.length;
      await expectError(await p.call("/payments-api/echo", "not-a-jwt"), 401, "INVALID_TOKEN");
      await expectError(await p.call("/payments-api/echo", forged), 401, "INVALID_TOKEN");
      const other = await p.grant({ resource: "ledger-api", audience: "acme/payments#ledger-api" });
      const body = await expectError(
        await p.call("/payments-api/echo", await p.token(other.grantId)),
        401,
        "INVALID_TOKEN",
      );
      expect(body.message).toMatch(/another resource/);
      // Its grant's token on its own resource's path would not help either: no such resource here.
      await expectError(
        await p.call("/ledger-api/echo", await p.token(other.grantId)),
        404,
        "NOT_FOUND",
      );
      const short = await tokenFor({ tokenTtlS: 60 });
      p.tokens.clock.advance(61_000);
      try {
        await expectError(await p.call("/payments-api/echo", short.token), 401, "INVALID_TOKEN");
      } finally {
        p.tokens.clock.advance(-61_000);
      }
      expect(seenSince(before)).toEqual([]);
    });

    it("refuses at once the tokens of a grant revoked or ended, and a token given back", async () => {
      const revoked = await tokenFor();
      expect((await p.call("/payments-api/echo", revoked.token)).status).toBe(200);
      await endGrant(p.db, revoked.grantId, "revoked");
      await expect
        .poll(async () => (await p.call("/payments-api/echo", revoked.token)).status, {
          interval: 5,
        })
        .toBe(401);
      const given = await tokenFor();
      const release = await fetch(`${p.tokens.url}/v1/release`, {
        method: "POST",
        headers: { authorization: `Bearer ${given.token}` },
      });
      expect(release.status).toBe(200);
      await expect
        .poll(async () => (await p.call("/payments-api/echo", given.token)).status, { interval: 5 })
        .toBe(401);
      const before = p.upstream.seen.length;
      const body = await expectError(
        await p.call("/payments-api/echo", given.token),
        401,
        "TOKEN_REVOKED",
      );
      expect(body.message).toBe("this token was given back");
      expect(seenSince(before)).toEqual([]);
    });

    it("stops accepting the tokens of a signing key revoked by an emergency rotation", async () => {
      const { grantId, token } = await tokenFor();
      expect((await p.call("/payments-api/echo", token)).status).toBe(200);
      await rotateKeys(p.db, await loadMasterKey(p.tokens.config), {
        immediate: true,
        revokeOld: true,
        now: p.tokens.clock.now(),
      });
      await expect
        .poll(async () => (await p.call("/payments-api/echo", token)).status, { interval: 10 })
        .toBe(401);
      // Tokens of the new key are accepted.
      expect((await p.call("/payments-api/echo", await p.token(grantId))).status).toBe(200);
    });

    it("refuses a grant whose window has not started or has ended", async () => {
      const { grantId, token } = await tokenFor({ tokenTtlS: 3_600 });
      await p.db.query(
        "UPDATE grants SET starts_at = now() + interval '1 hour', ends_at = now() + interval '2 hours', version = version + 1 WHERE id = $1::uuid",
        [grantId],
      );
      await expect
        .poll(async () => (await p.call("/payments-api/echo", token)).status, { interval: 5 })
        .toBe(403);
      await expectError(await p.call("/payments-api/echo", token), 403, "GRANT_NOT_ACTIVE");
      const ending = await tokenFor({ endsAt: new Date(p.tokens.clock.now().getTime() + 30_000) });
      p.tokens.clock.advance(31_000);
      try {
        await expectError(await p.call("/payments-api/echo", ending.token), 401, "INVALID_TOKEN");
      } finally {
        p.tokens.clock.advance(-31_000);
      }
    });

    it("matches method and normalised path against the token's permissions, narrowed tokens included", async () => {
      const { grantId } = await p.grant({
        scopes: ["read", "refund"],
        permissions: ["GET /echo/v1/**", "POST /echo/v1/refunds"],
        scopePermissions: { read: ["GET /echo/v1/**"], refund: ["POST /echo/v1/refunds"] },
      });
      const all = await p.token(grantId);
      const read = await p.token(grantId, ["read"]);
      const before = p.upstream.seen.length;
      expect((await p.call("/payments-api/echo/v1/charges/ch_1", all)).status).toBe(200);
      expect((await p.call("/payments-api/echo/v1/refunds", all, { method: "POST" })).status).toBe(
        200,
      );
      expect((await p.call("/payments-api/echo/v1/refunds", read, { method: "POST" })).status).toBe(
        403,
      );
      expect((await p.call("/payments-api/echo/v1/refunds", all, { method: "PUT" })).status).toBe(
        403,
      );
      expect((await p.call("/payments-api/echo/v2/x", all)).status).toBe(403);
      expect((await p.call("/payments-api/echo/v1/refunds", all, { method: "HEAD" })).status).toBe(
        403,
      );
      await expectError(
        await p.call("/payments-api/echo/v1/refunds", read, { method: "POST" }),
        403,
        "SCOPE_NOT_GRANTED",
      );
      expect(seenSince(before).map((s) => `${s.method} ${s.url}`)).toEqual([
        "GET /echo/v1/charges/ch_1",
        "POST /echo/v1/refunds",
      ]);
    });

    it("refuses paths an upstream could read differently, and records the attempt", async () => {
      const { grantId } = await p.grant({ permissions: ["GET /echo/v1/**"] });
      const token = await p.token(grantId);
      const before = p.upstream.seen.length;
      const tricks = [
        "/echo/v1/%2e%2e/admin",
        "/echo/v1/..%2fadmin",
        "/echo/v1/..;/admin",
        "/echo/v1//admin",
        "/echo/v1%5cadmin",
        "/echo/v1/%252e%252e/admin",
        "/echo/v1/%c0%ae%c0%ae/admin",
        "/echo/v1/../../admin",
      ];
      for (const trick of tricks) {
        const response = await rawGet(`/payments-api${trick}`, token);
        expect(response?.status, trick).toBe(400);
        expect(JSON.parse(response?.body ?? "{}")).toMatchObject({ error: "PROXY_PATH" });
      }
      expect(seenSince(before)).toEqual([]);
      const reasons = (await p.rows(grantId)).map((r) => r.reason);
      expect(reasons).toEqual(Array(8).fill("PROXY_PATH"));
    });

    it("refuses absolute-form and * targets, another host, and unknown resources", async () => {
      const { token } = await tokenFor();
      const host = new URL(p.url).host;
      const send = (line: string, hostHeader = host) =>
        rawRequest(
          p.url,
          `${line}\r\nHost: ${hostHeader}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
        );
      const before = p.upstream.seen.length;
      expect((await send(`GET http://${host}/payments-api/echo HTTP/1.1`))?.status).toBe(400);
      expect((await send("OPTIONS * HTTP/1.1"))?.status).toBe(400);
      const other = await send("GET /payments-api/echo HTTP/1.1", "internal.example");
      expect(other?.status).toBe(421);
      expect(JSON.parse(other?.body ?? "{}")).toMatchObject({ error: "PROXY_HOST" });
      await expectError(await p.call("/billing-api/echo", token), 404, "NOT_FOUND");
      expect(seenSince(before)).toEqual([]);
    });

    it("limits a grant's rate, all its tokens sharing one bucket, with Retry-After", async () => {
      const { grantId } = await p.grant();
      await p.db.query(
        "UPDATE grants SET rate_limit_count = 3, rate_limit_seconds = 60, version = version + 1 WHERE id = $1::uuid",
        [grantId],
      );
      const [one, two] = [await p.token(grantId), await p.token(grantId)];
      // The view learns the new limit from the change's notification.
      await expect
        .poll(async () => {
          const grant = await p.proxy.state?.live.standing(
            grantId,
            "00000000-0000-4000-8000-000000000000",
          );
          return grant?.kind === "live" ? grant.grant.rateLimit : null;
        })
        .toEqual({ count: 3, perSeconds: 60 });
      const statuses = [];
      for (const token of [one, two, one, two]) {
        statuses.push((await p.call("/payments-api/echo", token)).status);
      }
      expect(statuses).toEqual([200, 200, 200, 429]);
      const limited = await p.call("/payments-api/echo", one);
      await expectError(limited, 429, "RATE_LIMITED");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      const other = await tokenFor();
      expect((await p.call("/payments-api/echo", other.token)).status).toBe(200);
    });

    it("refuses bodies over the resource's limit before anything reaches the upstream, announced or chunked", async () => {
      const { grantId, token } = await tokenFor();
      const before = p.upstream.arrived.length;
      await expectError(
        await p.call("/payments-api/upload", token, { method: "POST", body: "x".repeat(1025) }),
        413,
        "PAYLOAD_TOO_LARGE",
      );
      const streamed = await p.call("/payments-api/upload", token, {
        method: "POST",
        body: chunked(10, 200),
        duplex: "half",
      } as RequestInit);
      await expectError(streamed, 413, "PAYLOAD_TOO_LARGE");
      // Not even the headers: the chunked body was held back until it passed the limit.
      expect(arrivedSince(before)).toEqual([]);
      expect((await p.rows(grantId)).map((r) => [r.method, r.outcome, r.status, r.reason])).toEqual(
        [
          ["POST", "denied", 413, "PAYLOAD_TOO_LARGE"],
          ["POST", "denied", 413, "PAYLOAD_TOO_LARGE"],
        ],
      );
    });

    it("forwards a chunked body within the limit whole, with its length", async () => {
      const { token } = await tokenFor();
      const before = p.upstream.arrived.length;
      const response = await p.call("/payments-api/echo/upload", token, {
        method: "PUT",
        body: chunked(5, 200),
        duplex: "half",
      } as RequestInit);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ bodyBytes: 1000 });
      const [arrival] = arrivedSince(before);
      expect(arrival?.headers["content-length"]).toBe("1000");
      expect(arrival?.headers["transfer-encoding"]).toBeUndefined();
    });

    it("refuses a chunked body (411) where the limit is above what it holds back, forwarding nothing", async () => {
      const { grantId } = await p.grant({ resource: "big-api", audience: "acme/payments/big-api" });
      const token = await p.token(grantId);
      const before = big.arrived.length;
      const response = await p.call("/big-api/upload", token, {
        method: "POST",
        body: chunked(2, 100),
        duplex: "half",
      } as RequestInit);
      const body = await expectError(response, 411, "LENGTH_REQUIRED");
      expect(body.message).toMatch(/Content-Length/);
      expect(big.arrived.slice(before)).toEqual([]);
      // The same body with its length announced goes through.
      const announced = await p.call("/big-api/upload", token, {
        method: "POST",
        body: "y".repeat(200),
      });
      expect(await announced.json()).toEqual({ bytes: 200 });
    });

    it("records client_closed, forwarding nothing, when the caller goes away while its chunked body is held back", async () => {
      const { grantId, token } = await tokenFor();
      const before = p.upstream.arrived.length;
      const { hostname, port } = new URL(p.url);
      const socket = connect(Number(port), hostname);
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write(
        `POST /payments-api/upload HTTP/1.1\r\nHost: ${new URL(p.url).host}\r\nAuthorization: Bearer ${token}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`,
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      socket.destroy();
      await expect
        .poll(async () => (await p.rows(grantId)).map((r) => [r.outcome, r.status, r.reason]))
        .toEqual([["failed", null, "client_closed"]]);
      expect(arrivedSince(before)).toEqual([]);
    });

    it("does not retry a POST whose upstream connection was reset: the upstream sees it once, the caller gets 502", async () => {
      const { grantId, token } = await tokenFor();
      // A kept-alive connection first: a reset on a reused connection is when a client retries.
      expect((await p.call("/payments-api/echo", token)).status).toBe(200);
      const before = p.upstream.arrived.length;
      const response = await p.call("/payments-api/reset/v1/refunds", token, {
        method: "POST",
        body: "{}",
      });
      await expectError(response, 502, "UPSTREAM_UNAVAILABLE");
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(arrivedSince(before).map((a) => `${a.method} ${a.url}`)).toEqual([
        "POST /reset/v1/refunds",
      ]);
      expect((await p.rows(grantId)).find((r) => r.method === "POST")).toMatchObject({
        outcome: "failed",
        status: 502,
        reason: "UPSTREAM_UNAVAILABLE",
      });
    });

    it("aborts the upstream request when the caller goes away mid-answer, and records client_closed", async () => {
      const { grantId, token } = await tokenFor();
      const abort = new AbortController();
      const response = await p.call("/payments-api/stall/closed", token, { signal: abort.signal });
      expect(response.status).toBe(200);
      abort.abort();
      await expect
        .poll(async () => (await p.rows(grantId)).map((r) => [r.outcome, r.status, r.reason]))
        .toEqual([["failed", 200, "client_closed"]]);
      await expect.poll(() => p.upstream.cutShort).toContain("GET /stall/closed");
    });

    it("maps upstream timeouts and failures to 504 and 502, naming no host and no credential", async () => {
      const { token } = await tokenFor();
      const headers = await p.call("/payments-api/hang", token);
      const body = await expectError(headers, 504, "UPSTREAM_TIMEOUT");
      expect(body.message).toBe("timed out waiting for the answer of the upstream");
      const other = async (resource: string) => {
        const { grantId } = await p.grant({ resource, audience: `acme/payments/${resource}` });
        return p.call(`/${resource}/echo`, await p.token(grantId));
      };
      await expectError(await other("stuck-api"), 504, "UPSTREAM_TIMEOUT");
      await expectError(await other("down-api"), 502, "UPSTREAM_UNAVAILABLE");
      await expectError(await other("untrusted-api"), 502, "UPSTREAM_UNAVAILABLE");
      // A body that stops mid-way: the caller has the status, the answer is cut short.
      const stalled = await p.call("/payments-api/stall", token);
      expect(stalled.status).toBe(200);
      await expect(stalled.text()).rejects.toThrow();
      await expect
        .poll(async () => {
          await p.proxy.state?.usage.flush();
          const { rows } = await p.db.query(
            "SELECT outcome, reason, status FROM proxy_requests WHERE path = '/stall'",
          );
          return rows;
        })
        .toEqual([{ outcome: "failed", reason: "upstream_interrupted", status: 200 }]);
    });

    it("never shows the upstream credential or a token in a log line", async () => {
      const { token } = await tokenFor();
      await p.call("/payments-api/hang", token);
      await p.call("/payments-api/reflect", token);
      const logs = p.log.text();
      expect(logs).not.toContain(UPSTREAM_CREDENTIAL);
      expect(logs).not.toContain(token);
      expect(logs).not.toContain(token.split(".")[2]);
    });
  });

  it("refuses before its database side has started (NOT_READY), and serves once it has", async () => {
    const starting = await startProxyHarness(backend, {
      tokens: p.tokens,
      upstream: p.upstream,
      deferStart: true,
    });
    try {
      const { grantId } = await starting.grant();
      const token = await starting.token(grantId);
      const before = starting.upstream.arrived.length;
      const refused = await starting.call("/payments-api/echo", token);
      await expectError(refused, 503, "NOT_READY");
      expect(refused.headers.get("retry-after")).toBe("1");
      expect(starting.upstream.arrived.length).toBe(before);
      await starting.start();
      expect((await starting.call("/payments-api/echo", token)).status).toBe(200);
    } finally {
      await starting.close();
    }
  });

  it("sheds reads when the usage backlog is full (USAGE_UNAVAILABLE), counting refusals by reason in /metrics", async () => {
    const full = await startProxyHarness(backend, {
      tokens: p.tokens,
      upstream: p.upstream,
      // Room for two rows, and no flush on its own: the backlog fills.
      start: { usage: { capacity: 2, flushMs: 3_600_000 } },
    });
    try {
      const { grantId } = await full.grant({ permissions: ["GET /echo/**"] });
      const token = await full.token(grantId);
      await expectError(await full.call("/payments-api/echo", null), 401, "TOKEN_MISSING");
      await expectError(await full.call("/payments-api/admin", token), 403, "SCOPE_NOT_GRANTED");
      expect((await full.call("/payments-api/echo/a", token)).status).toBe(200);
      const before = full.upstream.arrived.length;
      const shed = await full.call("/payments-api/echo/b", token);
      await expectError(shed, 503, "USAGE_UNAVAILABLE");
      expect(shed.headers.get("retry-after")).toBe("1");
      expect(full.upstream.arrived.length).toBe(before);

      const metrics = await full.scrape();
      const value = (line: string) =>
        Number(new RegExp(`^${line.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(metrics)?.[1]);
      expect(
        value('hallpass_proxy_refusals_total{resource="payments-api",reason="TOKEN_MISSING"}'),
      ).toBe(1);
      expect(
        value('hallpass_proxy_refusals_total{resource="payments-api",reason="SCOPE_NOT_GRANTED"}'),
      ).toBe(1);
      expect(
        value('hallpass_proxy_refusals_total{resource="payments-api",reason="USAGE_UNAVAILABLE"}'),
      ).toBe(1);
      expect(value("hallpass_proxy_usage_backlog")).toBe(2);
      expect(value('hallpass_proxy_usage_total{event="shed"}')).toBe(1);

      // Once the backlog is written, reads are served again.
      expect((await full.rows(grantId)).map((r) => r.reason)).toEqual(["SCOPE_NOT_GRANTED", null]);
      expect(Number(/^hallpass_proxy_usage_backlog (\S+)$/m.exec(await full.scrape())?.[1])).toBe(
        0,
      );
      expect((await full.call("/payments-api/echo/c", token)).status).toBe(200);
    } finally {
      await full.close();
    }
  });

  it("refuses while it cannot be sure of grants, and serves again once it is", async () => {
    const unsure = await startProxyHarness(backend, {
      tokens: p.tokens,
      upstream: p.upstream,
      start: { live: { listen: false, resyncMs: 3_600_000, maxStalenessMs: 300 } },
    });
    try {
      const { grantId } = await unsure.grant();
      const token = await unsure.token(grantId);
      await new Promise((resolve) => setTimeout(resolve, 400));
      const before = unsure.upstream.seen.length;
      const refused = await unsure.call("/payments-api/echo", token);
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ error: "GRANT_STATUS_UNKNOWN" });
      expect(unsure.upstream.seen.length).toBe(before);
      await unsure.proxy.state?.live.resync();
      expect((await unsure.call("/payments-api/echo", token)).status).toBe(200);
    } finally {
      await unsure.close();
    }
  });
});
