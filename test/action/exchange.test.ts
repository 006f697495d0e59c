/**
 * The committed bundle against a real hallpass server (token service, test
 * database, GitHub simulator, test OIDC issuer), run as the runner runs it:
 * main step, then post step with the state the main step saved.
 */
import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Secret } from "#src/secret.js";
import {
  type IdTokenEndpoint,
  runPost,
  runStep,
  type StepResult,
  startIdTokenEndpoint,
} from "../support/action.js";
import { primaryBackend } from "../support/db.js";
import {
  type ExchangeWorld,
  OTHER_RESOURCE,
  RESOURCE,
  startExchangeWorld,
} from "../support/exchange.js";
import { OIDC_AUDIENCE } from "../support/token-service.js";

const INTROSPECTION_SECRET = "payments-introspection-secret";

/** Every place `secret` shows in a step's output, but in the command that masks it. */
function leaks(step: StepResult, secret: string): string[] {
  const mask = `::add-mask::${secret}`;
  const found: string[] = [];
  for (const [stream, text] of [
    ["stdout", step.stdout],
    ["stderr", step.stderr],
  ] as const) {
    for (const line of text.split("\n")) {
      if (line.includes(secret) && line !== mask) found.push(`${stream}: ${line}`);
    }
  }
  return found;
}

describe("the Action against a hallpass server", () => {
  let w: ExchangeWorld;
  let idTokens: IdTokenEndpoint;
  beforeAll(async () => {
    w = await startExchangeWorld(primaryBackend, {
      secrets: { [RESOURCE]: new Secret(INTROSPECTION_SECRET) },
    });
    idTokens = await startIdTokenEndpoint(w.issuer);
  });
  afterAll(async () => {
    await idTokens.close();
    await w.close();
  });

  const inputs = (overrides: Record<string, string> = {}) => ({
    url: w.h.url,
    resource: RESOURCE,
    audience: OIDC_AUDIENCE,
    ...overrides,
  });
  /** The main step of a pull_request run of pull request `number`. */
  const prRun = (number: number, overrides: Record<string, string> = {}) => {
    idTokens.claims = w.pullRequestRun(number);
    return runStep({ inputs: inputs(overrides), env: idTokens.env });
  };
  const introspect = async (token: string) => {
    const response = await fetch(`${w.h.url}/introspect`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`${RESOURCE}:${INTROSPECTION_SECRET}`).toString("base64")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ token }),
    });
    expect(response.status).toBe(200);
    return (await response.json()) as { active: boolean; jti?: string };
  };
  const refused = (main: StepResult) => {
    expect(main.code).toBe(1);
    expect(main.outputs).toEqual({});
    expect(main.env).toEqual({});
    expect(main.state).toEqual({ isPost: "true" });
    expect(main.errors).toHaveLength(1);
    return main.errors[0];
  };

  it("gives a pull request run its ticket's token, masked, and takes it back in the post step", async () => {
    const pr = await w.prGrant();
    const served = idTokens.served.length;
    const main = await prRun(pr.number);
    expect(main.errors).toEqual([]);
    expect(main.code).toBe(0);

    const token = main.outputs.token ?? "";
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    // Masked before anything else could print it, and printed nowhere else.
    expect(main.masks).toContain(token);
    expect(leaks(main, token)).toEqual([]);
    const idToken = idTokens.served[served] ?? "";
    expect(idTokens.served).toHaveLength(served + 1);
    expect(main.masks).toContain(idToken);
    expect(leaks(main, idToken)).toEqual([]);

    expect(main.outputs).toEqual({
      token,
      "expires-at": expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/),
      grant: pr.grantId,
      scopes: "read refund",
    });
    expect(main.env).toEqual({ HALLPASS_TOKEN: token });
    expect(main.state).toEqual({ isPost: "true", url: w.h.url, token });
    expect(main.stdout).toContain(
      `hallpass: a token for ${RESOURCE} (grant ${pr.grantId}, scopes read refund), valid until ${main.outputs["expires-at"]}, in $HALLPASS_TOKEN; it is released when the job ends`,
    );

    const jwks = createRemoteJWKSet(new URL(`${w.h.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(token, jwks, {
      issuer: w.h.url,
      audience: `${w.repo.fullName}/${RESOURCE}`,
    });
    expect(payload).toMatchObject({ scope: "read refund", hallpass: { grant: pr.grantId } });
    expect(new Date((payload.exp as number) * 1000).toISOString()).toBe(main.outputs["expires-at"]);
    expect(await introspect(token)).toMatchObject({ active: true, jti: payload.jti });

    const post = await runPost(main, { inputs: inputs(), env: idTokens.env });
    expect(post.code).toBe(0);
    expect(post.warnings).toEqual([]);
    expect(post.errors).toEqual([]);
    expect(post.masks).toEqual([token]);
    expect(leaks(post, token)).toEqual([]);
    expect(post.stdout).toContain(`hallpass: released the token (jti ${payload.jti})`);
    expect(await introspect(token)).toEqual({ active: false });
    const released = await w.h.db.query<{ released: boolean }>(
      "SELECT released_at IS NOT NULL AS released FROM tokens WHERE jti = $1::uuid",
      [payload.jti],
    );
    expect(released.rows).toEqual([{ released: true }]);
  });

  it("narrows to the scopes asked for, and exports to the variable named", async () => {
    const pr = await w.prGrant({
      scopePermissions: { read: ["GET /v1/**"], refund: ["POST /v1/refunds"] },
    });
    const main = await prRun(pr.number, { scopes: "read\n", "export-env": "PAYMENTS_TOKEN" });
    expect(main.errors).toEqual([]);
    expect(main.outputs.scopes).toBe("read");
    expect(main.env).toEqual({ PAYMENTS_TOKEN: main.outputs.token });
  });

  it("exports nothing when export-env is empty", async () => {
    const pr = await w.prGrant();
    const main = await prRun(pr.number, { "export-env": "" });
    expect(main.code).toBe(0);
    expect(main.env).toEqual({});
    expect(main.outputs.token).toBeTruthy();
    expect(main.stdout).toContain("it is released when the job ends");
  });

  it("gives a workflow_dispatch run of the requester the issue's token, with the ticket input", async () => {
    const issue = await w.issueGrant("bob");
    idTokens.claims = w.dispatchRun("bob");
    const main = await runStep({
      inputs: inputs({ ticket: String(issue.number) }),
      env: idTokens.env,
    });
    expect(main.errors).toEqual([]);
    expect(main.outputs.grant).toBe(issue.grantId);
    expect(leaks(main, main.outputs.token ?? "?")).toEqual([]);
  });

  describe("what a job sees when it gets no token", () => {
    it("a ticket whose grant is not approved yet", async () => {
      const pr = await w.prGrant({ state: "pending" });
      expect(refused(await prRun(pr.number))).toBe(
        `hallpass refused a token for payments-api: the grant on #${pr.number} is pending: it needs approval by the resource's code owners (/approve on an issue, an approving review on a pull request) (GRANT_NOT_ACTIVE)
The ticket has no approved grant for payments-api yet: a code owner of the resource must approve it (an approving review of the pull request's latest commit, or /approve on the issue); then re-run this job.`,
      );
    });

    it("a ticket whose grant has expired", async () => {
      const pr = await w.prGrant({ state: "expired" });
      expect(refused(await prRun(pr.number))).toBe(
        `hallpass refused a token for payments-api: the grant on #${pr.number} has expired: request access again (GRANT_NOT_ACTIVE)
The ticket's grant for payments-api has ended: ask for access again (/extend <duration> on the ticket, or a new request) and re-run this job once it is granted.`,
      );
    });

    it("a resource that is not the ticket's", async () => {
      const pr = await w.prGrant();
      expect(refused(await prRun(pr.number, { resource: OTHER_RESOURCE }))).toBe(
        `hallpass refused a token for ledger-api: the grant on #${pr.number} is for resource payments-api, not ledger-api (RESOURCE_MISMATCH)
Set the resource input to the resource the ticket asks for.`,
      );
    });

    it("an ID token asked for another audience than the server's", async () => {
      const pr = await w.prGrant();
      const main = await prRun(pr.number, { audience: "" });
      expect(idTokens.audiences.at(-1)).toBe(w.h.url);
      expect(refused(main)).toBe(
        `hallpass refused a token for payments-api: ID token refused: audience is not this hallpass server's (OIDC_AUDIENCE)
The ID token was asked for audience ${w.h.url}; set the audience input to the server's (its HALLPASS_OIDC_AUDIENCE, by default its URL).`,
      );
    });

    it("scopes the grant does not have", async () => {
      const pr = await w.prGrant();
      expect(refused(await prRun(pr.number, { scopes: "read, admin" }))).toBe(
        `hallpass refused a token for payments-api: scopes not in the grant: admin (granted: read, refund) (SCOPE_NOT_GRANTED)
Ask only for scopes the grant has (the scopes input), or leave scopes empty to get all of them.`,
      );
    });

    it("a workflow_dispatch run that names no ticket", async () => {
      await w.issueGrant("bob");
      idTokens.claims = w.dispatchRun("bob");
      const main = await runStep({ inputs: inputs(), env: idTokens.env });
      expect(refused(main)).toBe(
        `hallpass refused a token for payments-api: a workflow_dispatch run must name its ticket: send {"ticket": <issue number>} (RUN_TICKET)
On workflow_dispatch runs, set the ticket input to the issue's number; on pull_request runs, leave it empty: the pull request is the ticket.`,
      );
    });
  });

  it("tells a repository past its rate limit to re-run later, rather than wait a minute", async () => {
    const limited = await startExchangeWorld(primaryBackend, { rateLimits: { perRepository: 1 } });
    const endpoint = await startIdTokenEndpoint(limited.issuer);
    try {
      const pr = await limited.prGrant();
      endpoint.claims = limited.pullRequestRun(pr.number);
      const step = () =>
        runStep({
          inputs: { url: limited.h.url, resource: RESOURCE, audience: OIDC_AUDIENCE },
          env: endpoint.env,
        });
      expect((await step()).code).toBe(0);
      const main = await step();
      expect(endpoint.served).toHaveLength(2);
      expect(refused(main)).toMatch(
        /^hallpass answered 429 \(1 attempt\): too many token requests for repository \d+: at most 1 a minute; retry in \d+ s \(RATE_LIMITED\)\nToo many token requests from this repository: re-run this job later\.$/,
      );
    } finally {
      await endpoint.close();
      await limited.close();
    }
  });
});
