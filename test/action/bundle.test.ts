/**
 * The committed bundle, run as the runner runs it, where no hallpass server
 * answers: the failures a job sees before any token is minted, and post steps
 * with nothing to give back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type IdTokenEndpoint, runPost, runStep, startIdTokenEndpoint } from "../support/action.js";
import { REFUSED_PORT } from "../support/net.js";
import { type OidcIssuer, startOidcIssuer } from "../support/oidc-issuer.js";

describe("the Action's bundle, without a server", () => {
  let issuer: OidcIssuer;
  let idTokens: IdTokenEndpoint;
  let dead: string;
  beforeAll(async () => {
    issuer = await startOidcIssuer();
    idTokens = await startIdTokenEndpoint(issuer);
    dead = `http://127.0.0.1:${REFUSED_PORT}`;
  });
  afterAll(async () => {
    await idTokens.close();
    await issuer.close();
  });

  it("tells a job without id-token: write exactly what to add", async () => {
    const main = await runStep({ inputs: { url: dead, resource: "payments-api" } });
    expect(main.code).toBe(1);
    expect(main.errors).toEqual([
      `GitHub gave this job no OIDC ID token (ACTIONS_ID_TOKEN_REQUEST_URL is not set): the job lacks the id-token: write permission.
Add to the workflow, or to this job:

  permissions:
    id-token: write   # lets the job ask GitHub for an OIDC ID token
    contents: read    # a permissions block replaces the defaults: list what else the job needs

Pull requests from forks never get an ID token.`,
    ]);
    expect(main.outputs).toEqual({});
    expect(main.env).toEqual({});
    expect(main.state).toEqual({ isPost: "true" });
  });

  it("names every wrong input before asking anyone for anything", async () => {
    const main = await runStep({
      inputs: { url: "http://hallpass.acme.dev", resource: "Payments API", ticket: "x" },
      env: idTokens.env,
    });
    expect(main.code).toBe(1);
    expect(main.errors).toEqual([
      [
        "input url: must be an https:// URL (http:// only for localhost): the ID token is sent to it",
        'input resource: "Payments API" is not a resource name: lower case letters, digits and -, starting with a letter (at most 63)',
        'input ticket: "x" is not an issue number (such as 42)',
      ].join("\n"),
    ]);
    expect(idTokens.audiences).toEqual([]);
  });

  it("retries an unreachable server with a fresh ID token each time, then says so", async () => {
    idTokens.audiences.length = 0;
    const started = Date.now();
    const main = await runStep({
      inputs: { url: dead, resource: "payments-api" },
      env: idTokens.env,
    });
    expect(main.code).toBe(1);
    // 1 + 2 + 4 s of backoff, ±20 %.
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_600);
    expect(idTokens.audiences).toEqual([dead, dead, dead, dead]);
    const retries = main.stdout.split("\n").filter((l) => l.includes("retrying in"));
    expect(retries).toHaveLength(3);
    expect(retries[0]).toMatch(
      new RegExp(
        `^hallpass: ${dead}/v1/exchange: connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+; attempt 1 of 4 failed, retrying in (0\\.[89]|1\\.[0-2]) s$`,
      ),
    );
    expect(main.errors).toHaveLength(1);
    expect(main.errors[0]).toMatch(
      new RegExp(
        `^hallpass is unreachable: ${dead}/v1/exchange: connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+ \\(4 attempts\\)\\. Check the url input and that the server is reachable from this runner\\.$`,
      ),
    );
    expect(main.outputs).toEqual({});
    expect(main.state).toEqual({ isPost: "true" });

    const post = await runPost(main, { inputs: { url: dead, resource: "payments-api" } });
    expect(post.code).toBe(0);
    expect(post.stdout).toContain("hallpass: no token was issued, nothing to release");
    expect(post.warnings).toEqual([]);
  }, 20_000);

  it("warns, without failing the job, when the post step cannot release the token", async () => {
    const token = "eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJ4In0.c2lnbmF0dXJl";
    const post = await runStep({
      inputs: { url: dead, resource: "payments-api" },
      state: { isPost: "true", url: dead, token },
    });
    expect(post.code).toBe(0);
    expect(post.masks).toEqual([token]);
    expect(post.warnings).toHaveLength(1);
    expect(post.warnings[0]).toMatch(
      /^hallpass: could not release the token, it stays valid until it expires: hallpass is unreachable: .*\/v1\/release: connect ECONNREFUSED .* \(3 attempts\)/,
    );
    expect(post.stdout.replace(`::add-mask::${token}`, "")).not.toContain(token);
  });
});
