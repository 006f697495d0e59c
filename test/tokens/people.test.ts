import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "#src/config.js";
import { parsePolicyYaml } from "#src/rules/policy.js";
import { parseConstraints } from "#src/rules/workflow-run.js";
import { backends, primaryBackend } from "../support/db.js";
import { cleanEnv } from "../support/env.js";
import {
  type ExchangeWorld,
  OTHER_RESOURCE,
  RESOURCE,
  startExchangeWorld,
  VAULT_RESOURCE,
} from "../support/exchange.js";
import { endGrant, insertGrant } from "../support/grants.js";
import { startHallpass } from "../support/hallpass.js";
import {
  grantsOf,
  openPrTicket,
  operatorYaml,
  POLICY,
  reviewPr,
  seedAcme,
  syncClock,
} from "../tickets/fixtures.js";

async function refusal(response: Response) {
  const body = (await response.json()) as { error: string; message: string };
  return { status: response.status, code: body.error, message: body.message };
}

describe.each(backends)("POST /v1/token on %s", (backend) => {
  let w: ExchangeWorld;
  beforeAll(async () => {
    w = await startExchangeWorld(backend);
  });
  afterAll(() => w.close());
  beforeEach(() => {
    w.sim.clearRequests();
  });

  const userReads = () => w.sim.requests({ method: "GET", path: "/user" });
  const tokenChecks = () =>
    w.sim.requests({ method: "POST", path: `/applications/${w.sim.oauth.clientId}/token` });
  const pullReads = () => w.sim.requests({ method: "GET", path: /\/pulls\/\d+$/ });
  const lastRefusal = async () => {
    const { rows } = await w.h.db.query<{ body: string; actor: string | null }>(
      "SELECT body, actor FROM audit_events WHERE kind = 'token.refused' ORDER BY seq DESC LIMIT 1",
    );
    const row = rows[0];
    return row ? { ...JSON.parse(row.body).data, actor: row.actor } : null;
  };

  it("mints for the person's own active grant; GitHub checks the App's token once", async () => {
    const issue = await w.issueGrant("alice");
    const token = w.sim.userToken("alice");
    const request = { ticket: `${w.repo.fullName}#${issue.number}` };
    const response = await w.personToken(request, token);
    expect(response.status).toBe(200);
    const answer = (await response.json()) as { token: string; grant: string; scopes: string[] };
    expect(answer).toMatchObject({ grant: issue.grantId, scopes: ["read", "refund"] });
    const jwks = createRemoteJWKSet(new URL(`${w.h.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(answer.token, jwks, {
      issuer: w.h.url,
      audience: `${w.repo.fullName}/${RESOURCE}`,
    });
    expect(payload).toMatchObject({
      sub: "github:alice",
      client_id: "hallpass-cli",
      hallpass: { channel: "cli", grant: issue.grantId },
    });
    expect(payload).not.toHaveProperty("act");
    expect((await w.personToken(request, token)).status).toBe(200);
    // "Check a token" as the App's client, with the token in the body, never GET /user.
    expect(tokenChecks()).toHaveLength(1);
    expect(tokenChecks()[0]).toMatchObject({ auth: "client", body: { access_token: token } });
    expect(userReads()).toHaveLength(0);
    // The GitHub token is nowhere in the audit log.
    const { rows } = await w.h.db.query<{ body: string }>("SELECT body FROM audit_events");
    for (const row of rows) expect(row.body).not.toContain(token);
  });

  it("finds the ticket whatever the case of its name, and narrows scopes", async () => {
    const issue = await w.issueGrant("alice", {
      scopePermissions: { read: ["GET /v1/**"], refund: ["POST /v1/refunds"] },
    });
    const response = await w.personToken(
      { ticket: `ACME/App#${issue.number}`, scopes: ["read"], resource: RESOURCE },
      w.sim.userToken("alice"),
    );
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ scopes: ["read"] });
    const wide = await refusal(
      await w.personToken(
        { ticket: `${w.repo.fullName}#${issue.number}`, scopes: ["admin"] },
        w.sim.userToken("alice"),
      ),
    );
    expect(wide).toMatchObject({ status: 403, code: "SCOPE_NOT_GRANTED" });
  });

  it("gives another person nothing, saying nothing of the grant", async () => {
    const issue = await w.issueGrant("alice");
    const ref = `${w.repo.fullName}#${issue.number}`;
    const bob = await refusal(await w.personToken({ ticket: ref }, w.sim.userToken("bob")));
    expect(bob).toMatchObject({ status: 404, code: "GRANT_NOT_FOUND" });
    expect(await lastRefusal()).toMatchObject({
      check: "grant",
      code: "GRANT_NOT_FOUND",
      actor: "github:bob",
      user_id: w.sim.user("bob").id,
    });
    // The same answer as for a ticket that does not exist.
    const missing = await refusal(
      await w.personToken({ ticket: `${w.repo.fullName}#99999` }, w.sim.userToken("bob")),
    );
    expect(missing.code).toBe(bob.code);
    expect(missing.message.replace("#99999", "#N")).toBe(
      bob.message.replace(`#${issue.number}`, "#N"),
    );
  });

  it("refuses a token GitHub does not accept", async () => {
    const refused = await refusal(
      await w.personToken({ ticket: `${w.repo.fullName}#1` }, "gho_notarealtoken"),
    );
    expect(refused).toMatchObject({ status: 401, code: "GITHUB_TOKEN_INVALID" });
    expect(await lastRefusal()).toMatchObject({ check: "github_token", actor: null });
    const none = await refusal(await w.personToken({ ticket: `${w.repo.fullName}#1` }, null));
    expect(none).toMatchObject({ status: 401, code: "GITHUB_TOKEN_INVALID" });
  });

  it("names a ticket by its repository: another repository's number gets nothing", async () => {
    const issue = await w.issueGrant("alice");
    const refused = await refusal(
      await w.personToken(
        { ticket: `${w.other.fullName}#${issue.number}` },
        w.sim.userToken("alice"),
      ),
    );
    expect(refused).toMatchObject({ status: 404, code: "GRANT_NOT_FOUND" });
  });

  it("refuses a grant whose resource the operator binds elsewhere", async () => {
    const issue = await w.issueGrant("alice", { resource: OTHER_RESOURCE });
    const refused = await refusal(
      await w.personToken(
        { ticket: `${w.repo.fullName}#${issue.number}` },
        w.sim.userToken("alice"),
      ),
    );
    expect(refused).toMatchObject({ status: 403, code: "RESOURCE_NOT_BOUND" });
    const mine = await w.issueGrant("alice");
    const mismatch = await refusal(
      await w.personToken(
        { ticket: `${w.repo.fullName}#${mine.number}`, resource: OTHER_RESOURCE },
        w.sim.userToken("alice"),
      ),
    );
    expect(mismatch).toMatchObject({ status: 403, code: "RESOURCE_MISMATCH" });
  });

  it("refuses a reused name's ticket: the binding is by repository id", async () => {
    const issue = await w.issueGrant("alice", { repo: w.vault });
    w.sim.renameRepo(w.vault.id, "acme/vault-renamed");
    // As the lifecycle records it on the next event of the renamed repository.
    await w.h.db.query("UPDATE tickets SET repo_full_name = 'acme/vault-renamed' WHERE id = $1", [
      issue.ticketId,
    ]);
    const reused = w.sim.addRepo("acme/vault");
    await insertGrant(w.h.db, {
      repoId: reused.id,
      repoOwnerId: w.vault.ownerId,
      installationId: w.vault.installationId,
      repoFullName: "acme/vault",
      number: issue.number,
      kind: "issue",
      resource: VAULT_RESOURCE,
      requester: { id: w.sim.user("alice").id, login: "alice" },
      startsAt: new Date(w.h.clock.now().getTime() - 60_000),
    });
    const refused = await refusal(
      await w.personToken({ ticket: `acme/vault#${issue.number}` }, w.sim.userToken("alice")),
    );
    expect(refused).toMatchObject({ status: 403, code: "RESOURCE_NOT_BOUND" });
    const renamed = await w.personToken(
      { ticket: `acme/vault-renamed#${issue.number}` },
      w.sim.userToken("alice"),
    );
    expect(renamed.status).toBe(200);
  });

  it("says why a grant of one's own gives nothing", async () => {
    const revoked = await w.issueGrant("alice");
    await endGrant(w.h.db, revoked.grantId, "revoked");
    const pending = await w.issueGrant("alice", { state: "pending" });
    const expired = await w.issueGrant("alice", {
      startsAt: new Date(w.h.clock.now().getTime() - 7_200_000),
      endsAt: new Date(w.h.clock.now().getTime() - 1_000),
    });
    for (const [number, message] of [
      [revoked.number, /has been revoked/],
      [pending.number, /pending: it needs approval/],
      [expired.number, /ended at/],
    ] as const) {
      const refused = await refusal(
        await w.personToken({ ticket: `${w.repo.fullName}#${number}` }, w.sim.userToken("alice")),
      );
      expect(refused).toMatchObject({ status: 403, code: "GRANT_NOT_ACTIVE" });
      expect(refused.message).toMatch(message);
    }
  });

  it("refuses any GitHub token not issued to hallpass's own App, before looking for grants", async () => {
    const issue = await w.issueGrant("alice");
    // A personal access token: GET /user would name alice.
    const other = w.sim.otherUserToken("alice");
    const refused = await refusal(
      await w.personToken({ ticket: `${w.repo.fullName}#${issue.number}` }, other),
    );
    expect(refused).toMatchObject({ status: 401, code: "GITHUB_TOKEN_INVALID" });
    expect(refused.message).toMatch(/not .*of this server's GitHub App.*run hallpass login/);
    expect(await lastRefusal()).toMatchObject({
      check: "github_token",
      code: "GITHUB_TOKEN_INVALID",
      actor: null,
    });
    expect(tokenChecks()).toHaveLength(1);
    expect(userReads()).toHaveLength(0);
  });

  it("remembers no failed check: GitHub down answers 503, and the next request asks again", async () => {
    const issue = await w.issueGrant("alice");
    const token = w.sim.userToken("alice");
    const request = { ticket: `${w.repo.fullName}#${issue.number}` };
    w.sim.failNext({ method: "POST", path: /^\/applications\//, status: 502 });
    const down = await refusal(await w.personToken(request, token));
    expect(down).toMatchObject({ status: 503, code: "GITHUB_UNAVAILABLE" });
    expect(down.message).not.toContain(token);
    expect((await w.personToken(request, token)).status).toBe(200);
    expect((await w.personToken(request, token)).status).toBe(200);
    expect(tokenChecks()).toHaveLength(2);
  });

  it("refuses a pull request's grant unless its policy sets people: true", async () => {
    const pr = await w.prGrant({ author: "alice" });
    const refused = await refusal(
      await w.personToken({ ticket: `${w.repo.fullName}#${pr.number}` }, w.sim.userToken("alice")),
    );
    expect(refused).toMatchObject({ status: 403, code: "PEOPLE_NOT_ALLOWED" });
    expect(refused.message).toMatch(/is a pull request: .*people: true/);
    expect(await lastRefusal()).toMatchObject({
      check: "people",
      code: "PEOPLE_NOT_ALLOWED",
      actor: "github:alice",
      ticket_kind: "pull_request",
    });
    // Refused on what the grant recorded: GitHub was not asked about the pull request.
    expect(pullReads()).toHaveLength(0);
  });

  it("refuses a grant whose policy has actions rules unless it sets people: true", async () => {
    for (const [constraints, rule] of [
      [{ environments: ["production"] }, "actions.environments"],
      [
        { jobWorkflowRefs: ["acme/app/.github/workflows/ops.yml@refs/heads/main"] },
        "actions.job_workflow_refs",
      ],
      [{ runnerEnvironment: "github-hosted" }, "actions.runner_environment"],
    ] as const) {
      const issue = await w.issueGrant("alice", { constraints });
      const refused = await refusal(
        await w.personToken(
          { ticket: `${w.repo.fullName}#${issue.number}` },
          w.sim.userToken("alice"),
        ),
      );
      expect(refused).toMatchObject({ status: 403, code: "PEOPLE_NOT_ALLOWED" });
      expect(refused.message).toContain(rule);
      expect(await lastRefusal()).toMatchObject({ check: "people", ticket_kind: "issue" });
    }
    // Settings that are not rules for runs do not count; people: true opts in.
    for (const constraints of [
      { allowForks: true, allowPullRequestTarget: true },
      { environments: ["production"], runnerEnvironment: "github-hosted", people: true },
    ]) {
      const issue = await w.issueGrant("alice", { constraints });
      const response = await w.personToken(
        { ticket: `${w.repo.fullName}#${issue.number}` },
        w.sim.userToken("alice"),
      );
      expect(response.status).toBe(200);
    }
  });

  it("people: true on a pull request mints only while its head is the approved commit", async () => {
    const pr = await w.prGrant({ author: "alice", constraints: { people: true } });
    const request = { ticket: `${w.repo.fullName}#${pr.number}` };
    expect((await w.personToken(request, w.sim.userToken("alice"))).status).toBe(200);
    expect(pullReads()).toHaveLength(1);
    // A push after approval: the grant's revocation (a webhook) may not have come yet.
    w.sim.commit(w.repo.id, {
      branch: pr.headBranch,
      files: { "services/after-approval.txt": "unreviewed\n" },
      author: "alice",
    });
    const refused = await refusal(await w.personToken(request, w.sim.userToken("alice")));
    expect(refused).toMatchObject({ status: 403, code: "PULL_REQUEST_COMMIT" });
    expect(refused.message).toContain(`${pr.headSha.slice(0, 12)} was approved`);
    expect(await lastRefusal()).toMatchObject({ check: "commit", code: "PULL_REQUEST_COMMIT" });
  });

  it("people: true on a fork's pull request gives nothing unless the policy allows forks", async () => {
    const fork = await w.prGrant({ author: "mallory", fork: true, constraints: { people: true } });
    const refused = await refusal(
      await w.personToken(
        { ticket: `${w.repo.fullName}#${fork.number}` },
        w.sim.userToken("mallory"),
      ),
    );
    expect(refused).toMatchObject({ status: 403, code: "PULL_REQUEST_FORK" });
    expect(await lastRefusal()).toMatchObject({ check: "fork", actor: "github:mallory" });
    const allowed = await w.prGrant({
      author: "mallory",
      fork: true,
      constraints: { people: true, allowForks: true },
    });
    const response = await w.personToken(
      { ticket: `${w.repo.fullName}#${allowed.number}` },
      w.sim.userToken("mallory"),
    );
    expect(response.status).toBe(200);
  });

  it("validates the request body", async () => {
    for (const bad of [
      {},
      { ticket: "acme/app" },
      { ticket: "acme#1" },
      { ticket: "acme/app#0" },
    ]) {
      expect((await w.personToken(bad, w.sim.userToken("alice"))).status).toBe(400);
    }
  });
});

describe("POST /v1/token limits", () => {
  it("answers 429 with retry-after past a person's budget, per person", async () => {
    const w = await startExchangeWorld(primaryBackend, {
      rateLimits: { perRepository: 2, perUser: 2 },
    });
    try {
      const issue = await w.issueGrant("alice");
      const request = { ticket: `${w.repo.fullName}#${issue.number}` };
      for (let i = 0; i < 2; i++) {
        expect((await w.personToken(request, w.sim.userToken("alice"))).status).toBe(200);
      }
      const limited = await w.personToken(request, w.sim.userToken("alice"));
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      const bobs = await w.issueGrant("bob");
      const bob = await w.personToken(
        { ticket: `${w.repo.fullName}#${bobs.number}` },
        w.sim.userToken("bob"),
      );
      expect(bob.status).toBe(200);
    } finally {
      await w.close();
    }
  });
});

describe("POST /v1/token and the server's configuration", () => {
  it("without the App's client, and no other tokens accepted, refuses before GitHub is asked", async () => {
    const w = await startExchangeWorld(primaryBackend, {
      env: { GITHUB_CLIENT_ID: "", GITHUB_CLIENT_SECRET: "" },
    });
    try {
      const issue = await w.issueGrant("alice");
      const refused = await refusal(
        await w.personToken(
          { ticket: `${w.repo.fullName}#${issue.number}` },
          w.sim.userToken("alice"),
        ),
      );
      expect(refused).toMatchObject({ status: 401, code: "PEOPLE_NOT_CONFIGURED" });
      expect(refused.message).toMatch(/GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET/);
      expect(refused.message).toMatch(/accept_other_github_tokens/);
      expect(w.sim.requests()).toEqual([]);
      // hallpass login has nothing to log in to.
      const login = await fetch(`${w.h.url}/v1/login`);
      expect(login.status).toBe(404);
      expect(await login.json()).toMatchObject({ error: "NOT_FOUND" });
    } finally {
      await w.close();
    }
  });

  it("takes other tokens, through GET /user, when the operator accepts them", async () => {
    const envs: Record<string, string>[] = [{}, { GITHUB_CLIENT_ID: "", GITHUB_CLIENT_SECRET: "" }];
    for (const env of envs) {
      const w = await startExchangeWorld(primaryBackend, {
        operator: { accept_other_github_tokens: true },
        env,
      });
      try {
        const issue = await w.issueGrant("alice");
        const request = { ticket: `${w.repo.fullName}#${issue.number}` };
        const response = await w.personToken(request, w.sim.otherUserToken("alice"));
        expect(response.status).toBe(200);
        expect(w.sim.requests({ method: "GET", path: "/user" })).toHaveLength(1);
        // The App's own tokens still work, and a token GitHub knows nowhere still gets nothing.
        expect((await w.personToken(request, w.sim.userToken("alice"))).status).toBe(200);
        const refused = await refusal(await w.personToken(request, "ghp_notarealtoken"));
        expect(refused).toMatchObject({ status: 401, code: "GITHUB_TOKEN_INVALID" });
      } finally {
        await w.close();
      }
    }
  });

  it("reads the App's client from GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET, set together", () => {
    const secret = "0123456789abcdef0123456789abcdef01234567";
    expect(
      loadConfig(cleanEnv({ GITHUB_CLIENT_ID: "Iv23liAbc", GITHUB_CLIENT_SECRET: secret })).github
        .client,
    ).toEqual({ id: "Iv23liAbc", secret });
    expect(loadConfig(cleanEnv()).github.client).toBeNull();
    const half = () => loadConfig(cleanEnv({ GITHUB_CLIENT_SECRET: secret }));
    expect(half).toThrow(ConfigError);
    expect(half).toThrow(/^GITHUB_CLIENT_ID: missing; GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET/);
    const bad = () =>
      loadConfig(cleanEnv({ GITHUB_CLIENT_ID: "x/y", GITHUB_CLIENT_SECRET: "a b" }));
    expect(bad).toThrow(/GITHUB_CLIENT_ID: must be the GitHub App's client id/);
    // The secret is never echoed, even when it is refused.
    expect(bad).not.toThrow(/a b/);
  });

  it("tells hallpass login the App's client id and GitHub's URLs", async () => {
    const w = await startExchangeWorld(primaryBackend);
    try {
      const response = await fetch(`${w.h.url}/v1/login`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        client_id: w.sim.oauth.clientId,
        github_url: w.sim.url,
        github_api_url: w.sim.apiUrl,
      });
    } finally {
      await w.close();
    }
  });
});

describe("people: true in the policy", () => {
  it("is recorded in the grant's constraints, and absent when false", () => {
    const policy = (people: string) =>
      parsePolicyYaml(
        `resources:\n  payments-api:\n    path: services/\n    scopes: { read: ["GET /v1/**"] }\n${people}`,
      );
    const on = policy("    people: true\n");
    const off = policy("    people: false\n");
    const unset = policy("");
    if (!on.ok || !off.ok || !unset.ok) throw new Error("policy does not parse");
    const actions = (p: typeof on) =>
      p.ok ? p.policy.resources.get("payments-api")?.actions : null;
    // As the lifecycle stores them (grants.constraints, JSON) and the token paths read them.
    const stored = (p: typeof on) => parseConstraints(JSON.parse(JSON.stringify(actions(p))));
    expect(actions(on)).toMatchObject({ people: true });
    expect(stored(on)?.people).toBe(true);
    // Without it, the record (and so every approval's hash) is what it was before the key existed.
    expect(actions(off)).toEqual(actions(unset));
    expect(actions(unset)).not.toHaveProperty("people");
    expect(stored(unset)?.people).toBeUndefined();
    const typo = policy("    people: yes\n");
    expect(typo.ok).toBe(false);
  });
});

describe("people: true through the ticket lifecycle", () => {
  it("is recorded in the grant of a pull request approved under it", async () => {
    const h = await startHallpass({
      seed: (sim) => {
        const ids = seedAcme(sim);
        sim.commit("acme/payments", {
          files: { ".github/hallpass.yml": `${POLICY}    people: true\n` },
          author: "bob",
        });
        return ids;
      },
      operatorYaml,
    });
    try {
      syncClock(h);
      const pr = await openPrTicket(h, "alice", "people-on");
      await reviewPr(h, pr, "bob");
      const [grant] = await grantsOf(h, pr);
      expect(grant).toMatchObject({ state: "active", approved_commit: pr.pull.head.sha });
      expect(parseConstraints(grant?.constraints)).toMatchObject({
        people: true,
        allowForks: false,
      });
    } finally {
      await h.stop();
    }
  });
});
