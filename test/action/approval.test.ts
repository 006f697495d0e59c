/**
 * The committed bundle with `wait-for-approval`, run as the runner runs it,
 * against the whole server: the ticket lifecycle on the GitHub simulator
 * (webhooks, CODEOWNERS, reviews) and the token service's exchange on the
 * same database. A code owner approves the pull request while its job waits.
 */
import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { installationClient } from "#src/components.js";
import { createGitHubApp } from "#src/github/app.js";
import { createLogger } from "#src/log.js";
import {
  type IdTokenEndpoint,
  runStep,
  type StepResult,
  startIdTokenEndpoint,
} from "../support/action.js";
import { primaryBackend } from "../support/db.js";
import type { PullRequest } from "../support/github/model.js";
import { type Hallpass, SECRET, startHallpass } from "../support/hallpass.js";
import { TestOctokit } from "../support/octokit.js";
import { type OidcIssuer, startOidcIssuer } from "../support/oidc-issuer.js";
import {
  OIDC_AUDIENCE,
  startTokenHarness,
  type TokenHarness,
  testConfig,
} from "../support/token-service.js";
import {
  commentOn,
  openPrTicket,
  operatorYaml,
  reviewPr,
  seedAcme,
  stateOf,
  syncClock,
} from "../tickets/fixtures.js";

const PENDING =
  "is pending: it needs approval by the resource's code owners (/approve on an issue, an approving review on a pull request)";

describe("the Action waiting for approval", () => {
  let h: Hallpass;
  let tokens: TokenHarness;
  let issuer: OidcIssuer;
  let idTokens: IdTokenEndpoint;
  beforeAll(async () => {
    h = await startHallpass({ seed: seedAcme, operatorYaml });
    issuer = await startOidcIssuer();
    const config = testConfig({ ...h.sim.appEnv(SECRET), HALLPASS_OIDC_ISSUER: issuer.url });
    if (!config.app) throw new Error("the simulator's App credentials are missing");
    const probot = await createGitHubApp(config, config.app, createLogger("silent"), [], {
      octokit: TestOctokit,
    });
    // The token service on the lifecycle's database (its runtime must not close it).
    tokens = await startTokenHarness(primaryBackend, {
      db: { ...h.db, close: async () => {} },
      config,
      service: { operator: h.operator.config, github: installationClient(probot) },
    });
    idTokens = await startIdTokenEndpoint(issuer);
  });
  afterAll(async () => {
    await idTokens?.close();
    await tokens?.close();
    await issuer?.close();
    await h?.stop();
  });
  beforeEach(() => {
    // The lifecycle's clock runs ahead of the wall clock (see syncClock): so does the token service's.
    syncClock(h);
    tokens.clock.advance(h.clock.now().getTime() + 1_000 - tokens.clock.now().getTime());
  });

  let branches = 0;
  /** A pull request ticket of alice's asking for payments-api (read); bob owns the path. */
  const openTicket = async () => {
    const pr = await openPrTicket(h, "alice", `smoke-${++branches}`);
    expect(await stateOf(h, pr)).toMatchObject({ state: "pending" });
    return pr;
  };
  const link = (pr: PullRequest) =>
    `acme/payments#${pr.number} (${h.sim.url}/acme/payments/pull/${pr.number})`;

  /** The main step of a pull_request run of `pr` at its current merge commit. */
  const prRun = (pr: PullRequest, wait: string): Promise<StepResult> => {
    const { pull } = h.sim.pull(pr.repoId, pr.number);
    const ref = `refs/pull/${pr.number}/merge`;
    const workflow = `acme/payments/.github/workflows/smoke.yml@${ref}`;
    idTokens.claims = {
      repository: "acme/payments",
      repository_id: String(pr.repoId),
      repository_owner: "acme",
      repository_owner_id: String(h.sim.user("acme").id),
      event_name: "pull_request",
      ref,
      sha: pull.mergeCommitSha,
      head_ref: pull.head.ref,
      base_ref: pull.base.ref,
      actor: "alice",
      actor_id: String(h.sim.user("alice").id),
      workflow_ref: workflow,
      job_workflow_ref: workflow,
      sub: "repo:acme/payments:pull_request",
    };
    return runStep({
      inputs: {
        url: tokens.url,
        resource: "payments-api",
        audience: OIDC_AUDIENCE,
        "wait-for-approval": wait,
      },
      env: {
        ...idTokens.env,
        GITHUB_REPOSITORY: "acme/payments",
        GITHUB_REF: ref,
        GITHUB_SERVER_URL: h.sim.url,
      },
    });
  };
  const waitingLines = (step: StepResult) =>
    step.stdout
      .split("\n")
      .filter((line) => line.startsWith("hallpass: ") && line.includes("; waiting up to "));

  it("gets the token once a code owner approves the pull request, asking with a fresh ID token each time", async () => {
    const pr = await openTicket();
    const served = idTokens.served.length;
    const started = Date.now();
    const step = prRun(pr, "2m");

    // The first exchange is refused (and audited): the grant is pending.
    await expect
      .poll(() => h.auditKinds(pr.number), { timeout: 10_000, interval: 50 })
      .toContain("token.refused");
    await reviewPr(h, pr, "bob");
    expect(await stateOf(h, pr)).toMatchObject({ state: "active" });

    const main = await step;
    expect(main.errors).toEqual([]);
    expect(main.code).toBe(0);
    // The next exchange, 10 s (±10 %) after the first.
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_000);
    const asked = idTokens.served.slice(served);
    expect(asked).toHaveLength(2);
    expect(new Set(asked).size).toBe(2);
    expect(idTokens.audiences.slice(served)).toEqual([OIDC_AUDIENCE, OIDC_AUDIENCE]);

    expect(waitingLines(main)).toHaveLength(1);
    expect(waitingLines(main)[0]).toMatch(
      new RegExp(
        `^hallpass: ${literal(link(pr))}: the grant on #${pr.number} ${literal(PENDING)}; waiting up to (2m|1m5\\ds) for it \\(wait-for-approval\\)$`,
      ),
    );
    expect(main.stdout).toMatch(
      new RegExp(`^hallpass: the grant on ${literal(link(pr))} is active \\(after \\d+s\\)$`, "m"),
    );
    const token = main.outputs.token ?? "";
    expect(main.masks).toContain(token);
    expect(main.env).toEqual({ HALLPASS_TOKEN: token });
    const { payload } = await jwtVerify(
      token,
      createRemoteJWKSet(new URL(`${tokens.url}/.well-known/jwks.json`)),
      {
        issuer: tokens.url,
        audience: "acme/payments/payments-api",
        currentDate: tokens.clock.now(),
      },
    );
    expect(payload).toMatchObject({
      scope: "read",
      hallpass: {
        ticket: `${h.sim.url}/acme/payments/pull/${pr.number}`,
        approvers: ["bob"],
        permissions: ["GET /v1/**"],
      },
    });
  }, 60_000);

  it("fails naming the ticket and what it still needs when the time is up", async () => {
    const pr = await openTicket();
    const served = idTokens.served.length;
    const started = Date.now();
    const main = await prRun(pr, "3s");
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
    expect(main.code).toBe(1);
    expect(main.outputs).toEqual({});
    expect(main.env).toEqual({});
    expect(main.state).toEqual({ isPost: "true" });
    expect(main.errors).toEqual([
      `hallpass: no token for payments-api after waiting 3s (wait-for-approval): the grant on ${link(pr)} is still not active: the grant on #${pr.number} ${PENDING} (GRANT_NOT_ACTIVE)
The ticket has no approved grant for payments-api yet: a code owner of the resource must approve it (an approving review of the pull request's latest commit, or /approve on the issue); then re-run this job.`,
    ]);
    // Asked at the start and once more when the time was up, each time with a new ID token.
    const asked = idTokens.served.slice(served);
    expect(asked).toHaveLength(2);
    expect(new Set(asked).size).toBe(2);
    expect(waitingLines(main)).toHaveLength(1);
  }, 30_000);

  it("does not wait on a grant that has ended", async () => {
    const pr = await openTicket();
    await reviewPr(h, pr, "bob");
    await commentOn(h, pr, "alice", "/revoke");
    expect(await stateOf(h, pr)).toMatchObject({ state: "revoked" });
    const served = idTokens.served.length;
    const started = Date.now();
    const main = await prRun(pr, "15m");
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(idTokens.served.length - served).toBe(1);
    expect(waitingLines(main)).toEqual([]);
    expect(main.errors).toEqual([
      `hallpass refused a token for payments-api: the grant on #${pr.number} has been revoked: request access again (GRANT_NOT_ACTIVE)
The ticket's grant for payments-api has ended: ask for access again (/extend <duration> on the ticket, or a new request) and re-run this job once it is granted.`,
    ]);
  });
});

function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
