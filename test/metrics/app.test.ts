/**
 * The App's and the token service's metrics on `/metrics`, scraped over
 * HTTP from the real server while a ticket is requested and approved
 * through the GitHub simulator, its grant exchanged by a workflow run, and
 * GitHub refuses writes for a while.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dispatchRunClaims } from "../support/exchange.js";
import { issueCommentEvent, issuesEvent } from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import { type OidcIssuer, startOidcIssuer } from "../support/oidc-issuer.js";
import { type Scrape, scrape, scrapeUntil } from "../support/scrape.js";
import { operatorYaml, requestBody, seedAcme } from "../tickets/fixtures.js";

const REPO = "acme/payments";

describe("the App's metrics", () => {
  let h: Hallpass;
  let issuer: OidcIssuer;
  let ids: { repoId: number; ownerId: number };
  beforeAll(async () => {
    issuer = await startOidcIssuer();
    h = await startHallpass({
      seed: (sim) => {
        ids = seedAcme(sim);
        return ids;
      },
      operatorYaml,
      env: { HALLPASS_OIDC_ISSUER: issuer.url },
      tokenService: true,
      metrics: { cacheMs: 50 },
    });
  });
  afterAll(async () => {
    await h?.stop();
    await issuer?.close();
  });

  const url = () => h.server.url;
  const counter = (s: Scrape, name: string, labels: Record<string, string> = {}) =>
    s.value(name, labels) ?? 0;
  const comment = async (number: number, author: string, body: string) =>
    h.deliver(issueCommentEvent(h.sim, "created", h.sim.comment(REPO, number, { author, body })));
  const openIssue = async () => {
    const issue = h.sim.openIssue(REPO, {
      author: "alice",
      body: requestBody(),
      labels: ["hallpass"],
    });
    await h.deliver(issuesEvent(h.sim, "opened", issue));
    return issue.number;
  };

  let approved = 0;

  it("counts approvals recorded and refused by reason, commands by outcome, and open grants by state", async () => {
    const before = await scrape(url());
    expect(before.status).toBe(200);
    expect(before.value("hallpass_state_up")).toBe(1);
    expect(before.value("hallpass_grants", { state: "active" })).toBe(0);

    approved = await openIssue();
    await scrapeUntil(url(), (s) => s.value("hallpass_grants", { state: "pending" }) === 1);
    await comment(approved, "mallory", "/approve");
    await comment(approved, "alice", "/approve");
    await comment(approved, "carol", "/approve");

    const after = await scrapeUntil(
      url(),
      (s) => s.value("hallpass_grants", { state: "active" }) === 1,
    );
    expect(after.value("hallpass_grants", { state: "pending" })).toBe(0);
    const delta = (name: string, labels: Record<string, string>) =>
      counter(after, name, labels) - counter(before, name, labels);
    expect(delta("hallpass_approvals_recorded_total", { channel: "comment" })).toBe(1);
    expect(delta("hallpass_approvals_refused_total", { reason: "not_code_owner" })).toBe(1);
    expect(delta("hallpass_approvals_refused_total", { reason: "own_request" })).toBe(1);
    expect(delta("hallpass_commands_total", { command: "approve", outcome: "refused" })).toBe(2);
    expect(delta("hallpass_commands_total", { command: "approve", outcome: "done" })).toBe(1);
    // The opening and three comments, each processed once.
    expect(delta("hallpass_webhook_deliveries_total", { outcome: "done" })).toBe(4);
    expect(after.value("hallpass_webhook_deliveries_pending")).toBe(0);
    expect(after.value("hallpass_webhook_delivery_lag_seconds")).toBe(0);
    // No label carries a login, a repository or an id.
    expect(after.text).not.toMatch(/carol|mallory|alice|acme/);
  });

  it("counts token exchanges by outcome and refusals by reason, and people's tokens", async () => {
    const before = await scrape(url());
    const exchange = async (actor: string) => {
      const claims = dispatchRunClaims(
        h.sim,
        { id: ids.repoId, ownerId: ids.ownerId, fullName: REPO },
        actor,
      );
      const token = await issuer.idToken("https://hallpass.example.test", {
        claims: { ...issuer.claims("https://hallpass.example.test"), ...claims },
      });
      return fetch(`${url()}/v1/exchange`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ resource: "payments-api", ticket: approved }),
      });
    };
    expect((await exchange("alice")).status).toBe(200);
    const refused = await exchange("bob");
    expect(((await refused.json()) as { error: string }).error).toBe("RUN_ACTOR");
    const person = await fetch(`${url()}/v1/token`, {
      method: "POST",
      headers: { authorization: "Bearer not-a-github-token", "content-type": "application/json" },
      body: JSON.stringify({ ticket: `${REPO}#${approved}` }),
    });
    const personCode = ((await person.json()) as { error: string }).error;
    expect(person.status).toBeGreaterThanOrEqual(400);

    const after = await scrape(url());
    const delta = (name: string, labels: Record<string, string>) =>
      counter(after, name, labels) - counter(before, name, labels);
    expect(delta("hallpass_tokens_total", { channel: "actions", outcome: "minted" })).toBe(1);
    expect(delta("hallpass_tokens_total", { channel: "actions", outcome: "refused" })).toBe(1);
    expect(
      delta("hallpass_token_refusals_total", { channel: "actions", reason: "RUN_ACTOR" }),
    ).toBe(1);
    expect(delta("hallpass_tokens_total", { channel: "cli", outcome: "refused" })).toBe(1);
    expect(delta("hallpass_token_refusals_total", { channel: "cli", reason: personCode })).toBe(1);
  });

  it("shows the outbox's backlog while GitHub refuses writes, and none once they are done", async () => {
    const before = await scrape(url());
    h.sim.failNext({
      method: "POST",
      path: /\/issues\/\d+\/comments$/,
      status: 403,
      retryAfter: 1,
    });
    await openIssue();
    const refusing = await scrapeUntil(
      url(),
      (s) =>
        counter(s, "hallpass_outbox_writes_total", { kind: "comment", result: "rate_limited" }) >
        counter(before, "hallpass_outbox_writes_total", {
          kind: "comment",
          result: "rate_limited",
        }),
    );
    const waiting = await scrapeUntil(url(), (s) => (s.value("hallpass_outbox_backlog") ?? 0) > 0);
    expect(waiting.value("hallpass_outbox_oldest_age_seconds")).toBeGreaterThan(0);
    expect(refusing.status).toBe(200);

    await h.settle();
    const written = (s: Scrape) =>
      counter(s, "hallpass_outbox_writes_total", { kind: "comment", result: "done" }) -
      counter(before, "hallpass_outbox_writes_total", { kind: "comment", result: "done" });
    // The row is done in the database a moment before the counter moves:
    // one scrape can see the first and not yet the second.
    const done = await scrapeUntil(
      url(),
      (s) => s.value("hallpass_outbox_backlog") === 0 && written(s) >= 1,
    );
    expect(done.value("hallpass_outbox_oldest_age_seconds")).toBe(0);
    expect(written(done)).toBe(1);
  });
  it("shows a delivery waiting, and its lag, while GitHub fails the reads it needs", async () => {
    const before = await scrape(url());
    const retried = (s: Scrape) =>
      counter(s, "hallpass_webhook_deliveries_total", { outcome: "retry" }) -
      counter(before, "hallpass_webhook_deliveries_total", { outcome: "retry" });
    h.sim.failNext({ method: "GET", path: /\/branches\//, status: 502 });
    const issue = h.sim.openIssue(REPO, {
      author: "alice",
      body: requestBody(),
      labels: ["hallpass"],
    });
    const { response } = await h.sim.deliver(issuesEvent(h.sim, "opened", issue));
    expect(response?.status).toBe(202);

    // The state is read at most every 50 ms: a scrape may count the retry
    // before the state it serves has seen the delivery.
    const waiting = await scrapeUntil(
      url(),
      (s) => retried(s) === 1 && s.value("hallpass_webhook_deliveries_pending") === 1,
    );
    expect(waiting.value("hallpass_webhook_delivery_lag_seconds")).toBeGreaterThan(0);

    const handled = (s: Scrape) =>
      counter(s, "hallpass_webhook_deliveries_total", { outcome: "done" }) -
      counter(before, "hallpass_webhook_deliveries_total", { outcome: "done" });
    // The delivery is done in the database a moment before the counter
    // moves: one scrape can see the first and not yet the second.
    const done = await scrapeUntil(
      url(),
      (s) => s.value("hallpass_webhook_deliveries_pending") === 0 && handled(s) >= 1,
    );
    expect(done.value("hallpass_webhook_delivery_lag_seconds")).toBe(0);
    expect(handled(done)).toBe(1);
    expect(retried(done)).toBe(1);
  });
});
