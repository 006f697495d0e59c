import { createRemoteJWKSet, jwtVerify } from "jose";
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
  const lastRefusal = async () => {
    const { rows } = await w.h.db.query<{ body: string; actor: string | null }>(
      "SELECT body, actor FROM audit_events WHERE kind = 'token.refused' ORDER BY seq DESC LIMIT 1",
    );
    const row = rows[0];
    return row ? { ...JSON.parse(row.body).data, actor: row.actor } : null;
  };

  it("mints for the person's own active grant; GitHub is asked once", async () => {
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
    expect(userReads()).toHaveLength(1);
    expect(userReads()[0]?.auth).toBe("user");
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
