/**
 * The proxy with the ticket lifecycle: a grant approved on GitHub is served
 * by two proxy instances sharing one database; revoked on the App side, its
 * token is refused on the very next request of each; the closing comment
 * and the ticket's evidence bundle show what went through. A policy's
 * `rate_limit` reaches the grant and the proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ticketEvidence } from "#src/audit/evidence.js";
import { primaryBackend } from "../support/db.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import { type ProxyHarness, startProxyHarness } from "../support/proxy.js";
import { startTokenHarness, type TokenHarness } from "../support/token-service.js";
import { startUpstream, type Upstream } from "../support/upstream.js";
import {
  commentOn,
  openIssueTicket,
  operatorYaml,
  POLICY,
  requestBody,
  seedAcme,
  stateOf,
  syncClock,
} from "../tickets/fixtures.js";

const AUDIENCE = "acme/payments/payments-api";

describe("the proxy with the ticket lifecycle", () => {
  let h: Hallpass;
  let tokens: TokenHarness;
  let upstream: Upstream;
  let first: ProxyHarness;
  let second: ProxyHarness;
  beforeAll(async () => {
    h = await startHallpass({ seed: seedAcme, operatorYaml, usageSettleMs: 1_000 });
    syncClock(h);
    // The token service on the same database (its runtime must not close it).
    tokens = await startTokenHarness(primaryBackend, { db: { ...h.db, close: async () => {} } });
    upstream = await startUpstream();
    first = await startProxyHarness(primaryBackend, { tokens, upstream, audience: AUDIENCE });
    // A second replica: its own pool (and so its own listening connection on Postgres).
    second = await startProxyHarness(primaryBackend, {
      tokens,
      upstream,
      audience: AUDIENCE,
      db: h.db.another(),
    });
  });
  afterAll(async () => {
    await second?.close();
    await first?.close();
    await upstream?.close();
    await tokens?.close();
    await h?.stop();
  });

  it("serves an approved grant on both replicas, refuses it on each right after /revoke, and reports its use", async () => {
    const issue = await openIssueTicket(h, "alice", requestBody({ scopes: "read" }));
    const ref = { repoId: issue.repoId, number: issue.number };
    await commentOn(h, ref, "bob", "/approve");
    const grant = await stateOf(h, ref);
    expect(grant).toMatchObject({ state: "active", audience: AUDIENCE });
    const grantId = grant?.id as string;
    // The lifecycle's clock runs ahead of the wall clock (see syncClock): so do the token service's and proxies'.
    tokens.clock.advance(h.clock.now().getTime() - tokens.clock.now().getTime() + 1_000);
    const { token } = await tokens
      .service()
      .mint({ grantId, subject: "github:alice", channel: "cli" });

    expect((await first.call("/payments-api/v1/charges", token)).status).toBe(200);
    expect((await second.call("/payments-api/v1/charges/ch_1", token)).status).toBe(200);
    expect((await second.call("/payments-api/v1/charges/ch_2", token)).status).toBe(200);
    expect((await first.call("/payments-api/v1/refunds", token, { method: "POST" })).status).toBe(
      403,
    );

    await commentOn(h, ref, "alice", "/revoke");
    // The very next request, on each replica.
    expect((await first.call("/payments-api/v1/charges", token)).status).toBe(401);
    expect((await second.call("/payments-api/v1/charges", token)).status).toBe(401);
    expect(upstream.seen.map((s) => s.url)).toEqual([
      "/v1/charges",
      "/v1/charges/ch_1",
      "/v1/charges/ch_2",
    ]);

    // The closing comment, posted once the replicas' last batches are in.
    await h.settle();
    const closing = h.sim
      .commentsOn("acme/payments", issue.number)
      .filter((c) => c.author.endsWith("[bot]"))
      .at(-1);
    expect(closing?.body).toMatch(/Access revoked/);
    expect(closing?.body).toContain("| `GET /v1/**` | 3 | 3 | 0 | 0 | 0 | 0 |");
    expect(closing?.body).toContain(
      "| `POST` not let through: `SCOPE_NOT_GRANTED` | 1 | 0 | 0 | 1 | 0 | 1 |",
    );
    expect(closing?.body).toContain(
      "| `GET` not let through: `TOKEN_REVOKED` | 2 | 0 | 0 | 2 | 0 | 2 |",
    );

    // The evidence bundle has the same.
    const lines = [];
    for await (const line of ticketEvidence(h.db, grant?.ticket_id as string)) lines.push(line);
    const usage = lines.filter((l) => l.type === "usage");
    expect(usage).toEqual([
      expect.objectContaining({
        method: "GET",
        scope: "GET /v1/**",
        outcome: "forwarded",
        status_class: "2xx",
        requests: 3,
      }),
      expect.objectContaining({
        method: "POST",
        scope: null,
        reason: "SCOPE_NOT_GRANTED",
        outcome: "denied",
        status_class: "4xx",
        requests: 1,
      }),
      expect.objectContaining({
        method: "GET",
        scope: null,
        reason: "TOKEN_REVOKED",
        outcome: "denied",
        status_class: "4xx",
        requests: 2,
      }),
    ]);
  });

  it("holds a grant to its policy's rate_limit: approved under 2/m, the proxy answers the third call 429", async () => {
    h.sim.commit("acme/payments", {
      files: {
        ".github/hallpass.yml": POLICY.replace(
          "    request_ttl: 24h\n",
          "    request_ttl: 24h\n    rate_limit: 2/m\n",
        ),
      },
    });
    const issue = await openIssueTicket(h, "alice", requestBody({ scopes: "read" }));
    const ref = { repoId: issue.repoId, number: issue.number };
    await commentOn(h, ref, "bob", "/approve");
    const grant = await stateOf(h, ref);
    expect(grant).toMatchObject({
      state: "active",
      audience: AUDIENCE,
      rate_limit_count: 2,
      rate_limit_seconds: 60,
    });
    tokens.clock.advance(h.clock.now().getTime() - tokens.clock.now().getTime() + 1_000);
    const { token } = await tokens
      .service()
      .mint({ grantId: grant?.id as string, subject: "github:alice", channel: "cli" });

    const statuses = [];
    for (const path of ["/v1/charges", "/v1/charges/ch_1", "/v1/charges/ch_2"]) {
      statuses.push((await first.call(`/payments-api${path}`, token)).status);
    }
    expect(statuses).toEqual([200, 200, 429]);
    const limited = await first.call("/payments-api/v1/charges", token);
    expect(limited.status).toBe(429);
    expect(await limited.json()).toMatchObject({ error: "RATE_LIMITED" });
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });
});
