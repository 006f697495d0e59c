import { randomBytes } from "node:crypto";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ErrorCode, isHallpassError } from "#src/errors.js";
import { verificationKeys } from "#src/store/keys.js";
import { ActiveKeyCache } from "#src/tokens/active-key.js";
import { bootstrapKeys } from "#src/tokens/keys.js";
import type { MasterKey } from "#src/tokens/master-key.js";
import { createMinter, type MintDeps, type MintInput, mint } from "#src/tokens/mint.js";
import { backends, createTestDb, TEST_DATABASE_URL, type TestDb } from "../support/db.js";
import { endGrant, insertGrant, POLICY_SHA } from "../support/grants.js";

const config = { publicUrl: "https://hallpass.example", github: { webUrl: "https://github.com" } };
const t0 = new Date("2030-06-01T12:00:00.250Z");
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
const RUN = {
  id: 9001,
  attempt: 2,
  workflowRef: "acme/app/.github/workflows/d.yml@refs/heads/main",
  sha: "b".repeat(40),
};

async function refusal(
  promise: Promise<unknown>,
): Promise<{ code: ErrorCode | undefined; message: string }> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (!isHallpassError(error)) throw new Error(`expected a refusal, got ${String(error)}`);
  return { code: error.code, message: error.message };
}

describe.each(backends)("mint on %s", (backend) => {
  let db: TestDb;
  let master: MasterKey;
  let now: Date;
  let deps: MintDeps;

  beforeEach(async () => {
    db = await createTestDb(backend);
    master = { key: randomBytes(32), file: null };
    await bootstrapKeys(db, master, at(-3600));
    now = t0;
    deps = { db, keys: new ActiveKeyCache(db, master, { now: () => now }), config, now: () => now };
  });
  afterEach(() => db.close());

  const verify = async (token: string) => {
    const keys = await verificationKeys(db, now);
    return jwtVerify(token, createLocalJWKSet({ keys: keys.map((k) => ({ ...k.publicJwk })) }), {
      issuer: config.publicUrl,
      audience: "acme/payments#payments-api",
      currentDate: now,
    });
  };

  it("signs an at+jwt with the claims of SPEC §4, for a workflow run", async () => {
    const { grantId } = await insertGrant(db, {
      startsAt: at(-60),
      endsAt: at(3600),
      approvers: ["alice", "bob"],
      breakGlass: true,
    });
    const input: MintInput = {
      grantId,
      subject: "run:acme/app/9001",
      actor: "octocat",
      channel: "actions",
      run: RUN,
    };
    const minted = await mint(deps, input);
    const { payload, protectedHeader } = await verify(minted.token);
    const kid = (await verificationKeys(db, now))[0]?.publicJwk.kid;
    expect(protectedHeader).toEqual({ alg: "EdDSA", kid, typ: "at+jwt" });
    const iat = Math.floor(t0.getTime() / 1000);
    expect(payload).toEqual({
      iss: "https://hallpass.example",
      aud: "acme/payments#payments-api",
      sub: "run:acme/app/9001",
      act: { sub: "octocat" },
      client_id: "hallpass-action",
      scope: "read refund",
      jti: minted.jti,
      iat,
      nbf: iat,
      exp: iat + 900,
      hallpass: {
        grant: grantId,
        ticket: "https://github.com/acme/payments/pull/12",
        resource: "payments-api",
        permissions: ["GET /v1/**", "POST /v1/refunds"],
        approvers: ["alice", "bob"],
        policy_commit: POLICY_SHA,
        break_glass: true,
        channel: "actions",
        run: { id: 9001, attempt: 2, workflow_ref: RUN.workflowRef, sha: RUN.sha },
      },
    });
    expect(minted).toMatchObject({
      grantId,
      scopes: ["read", "refund"],
      expiresAt: new Date((iat + 900) * 1000),
    });
  });

  it("links an issue ticket, and leaves act out without an actor", async () => {
    const { grantId } = await insertGrant(db, {
      kind: "issue",
      number: 7,
      repoFullName: "acme/ops",
      startsAt: at(-60),
      endsAt: at(3600),
    });
    const { token } = await mint(deps, { grantId, subject: "github:octocat", channel: "cli" });
    const { payload } = await verify(token);
    expect(payload.act).toBeUndefined();
    expect(payload.client_id).toBe("hallpass-cli");
    expect(payload.hallpass).toMatchObject({ ticket: "https://github.com/acme/ops/issues/7" });
    expect(payload.hallpass).not.toHaveProperty("run");
  });

  it("stores the jti and the facts of the token, never the token", async () => {
    const { grantId } = await insertGrant(db, { startsAt: at(-60), endsAt: at(3600) });
    const minted = await mint(deps, {
      grantId,
      subject: "run:acme/app/9001",
      actor: "octocat",
      channel: "actions",
      scopes: ["read", "refund"],
      run: RUN,
    });
    const { rows } = await db.query("SELECT * FROM tokens");
    expect(rows).toEqual([
      expect.objectContaining({
        jti: minted.jti,
        grant_id: grantId,
        channel: "actions",
        subject: "run:acme/app/9001",
        actor: "octocat",
        scopes: ["read", "refund"],
        run_id: 9001,
        run_attempt: 2,
        workflow_ref: RUN.workflowRef,
        sha: RUN.sha,
        issued_at: new Date(Math.floor(t0.getTime() / 1000) * 1000),
        expires_at: minted.expiresAt,
        released_at: null,
      }),
    ]);
    const signature = minted.token.split(".")[2] as string;
    const everything = JSON.stringify([
      rows,
      (await db.query("SELECT * FROM audit_events")).rows,
      (await db.query("SELECT * FROM server_meta")).rows,
    ]);
    expect(everything).not.toContain(signature);
    expect(everything).not.toContain(minted.token.split(".")[1] as string);
  });

  it("appends token.minted to the audit log in the same transaction", async () => {
    const { grantId, ticketId } = await insertGrant(db, { startsAt: at(-60), endsAt: at(3600) });
    const minted = await mint(deps, { grantId, subject: "github:octocat", channel: "cli" });
    const { rows } = await db.query<{
      kind: string;
      actor: string;
      ticket_id: string;
      grant_id: string;
      body: string;
    }>("SELECT kind, actor, ticket_id, grant_id, body FROM audit_events WHERE kind LIKE 'token.%'");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      kind: "token.minted",
      actor: "github:octocat",
      ticket_id: ticketId,
      grant_id: grantId,
    });
    expect(JSON.parse(rows[0]?.body ?? "{}").data).toMatchObject({
      jti: minted.jti,
      channel: "cli",
      scopes: ["read", "refund"],
      expires_at: minted.expiresAt.toISOString(),
    });
  });

  it("caps exp at the grant's end", async () => {
    const { grantId } = await insertGrant(db, {
      startsAt: at(-3000),
      endsAt: new Date(t0.getTime() + 120_700),
      tokenTtlS: 900,
    });
    const minted = await mint(deps, { grantId, subject: "github:octocat", channel: "cli" });
    // Whole seconds, never past the end.
    expect(minted.expiresAt).toEqual(new Date(Math.floor((t0.getTime() + 120_700) / 1000) * 1000));
    const { payload } = await verify(minted.token);
    expect(payload.exp).toBe(Math.floor((t0.getTime() + 120_700) / 1000));
  });

  it("lives token_ttl_s when the grant lasts longer", async () => {
    const { grantId } = await insertGrant(db, {
      startsAt: at(-60),
      endsAt: at(86_400),
      tokenTtlS: 60,
    });
    const minted = await mint(deps, { grantId, subject: "github:octocat", channel: "cli" });
    expect(minted.expiresAt).toEqual(new Date((Math.floor(t0.getTime() / 1000) + 60) * 1000));
  });

  it("narrows scopes, carrying only the narrowed scopes' permissions", async () => {
    const { grantId } = await insertGrant(db, {
      startsAt: at(-60),
      endsAt: at(3600),
      scopes: ["read", "refund"],
      permissions: ["GET /v1/**", "POST /v1/refunds", "GET /v1/charges/*"],
      scopePermissions: { read: ["GET /v1/**"], refund: ["POST /v1/refunds", "GET /v1/charges/*"] },
    });
    const minted = await mint(deps, {
      grantId,
      subject: "github:octocat",
      channel: "cli",
      scopes: ["refund", "refund"],
    });
    expect(minted.scopes).toEqual(["refund"]);
    const { payload } = await verify(minted.token);
    expect(payload.scope).toBe("refund");
    expect(payload.hallpass).toMatchObject({
      permissions: ["POST /v1/refunds", "GET /v1/charges/*"],
    });
  });

  it("refuses to narrow a grant that did not record each scope's permissions", async () => {
    const { grantId } = await insertGrant(db, { startsAt: at(-60), endsAt: at(3600) });
    expect(
      await refusal(
        mint(deps, { grantId, subject: "github:octocat", channel: "cli", scopes: ["read"] }),
      ),
    ).toMatchObject({ code: "SCOPE_NOT_GRANTED" });
    // All of them, in any order, is not narrowing.
    await expect(
      mint(deps, {
        grantId,
        subject: "github:octocat",
        channel: "cli",
        scopes: ["refund", "read"],
      }),
    ).resolves.toMatchObject({ scopes: ["refund", "read"] });
  });

  it("refuses to widen the grant's scopes, and records the refusal", async () => {
    const { grantId } = await insertGrant(db, {
      startsAt: at(-60),
      endsAt: at(3600),
      scopes: ["read"],
      permissions: ["GET /v1/**"],
    });
    const refused = await refusal(
      mint(deps, { grantId, subject: "github:octocat", channel: "cli", scopes: ["read", "admin"] }),
    );
    expect(refused.code).toBe("SCOPE_NOT_GRANTED");
    expect(refused.message).toContain("admin");
    const { rows } = await db.query<{ kind: string; body: string }>(
      "SELECT kind, body FROM audit_events WHERE kind LIKE 'token.%'",
    );
    expect(rows.map((r) => r.kind)).toEqual(["token.refused"]);
    expect(JSON.parse(rows[0]?.body ?? "{}").data).toMatchObject({ reason: "scope_not_granted" });
    expect((await db.query("SELECT * FROM tokens")).rows).toEqual([]);
  });

  it.each([
    ["pending", "GRANT_NOT_ACTIVE", /pending, not active/],
    ["revoked", "GRANT_NOT_ACTIVE", /revoked, not active/],
    ["expired", "GRANT_NOT_ACTIVE", /expired, not active/],
    ["denied", "GRANT_NOT_ACTIVE", /denied, not active/],
  ] as const)("refuses a %s grant", async (state, code, message) => {
    const { grantId } = await insertGrant(db, { state, startsAt: at(-60), endsAt: at(3600) });
    const refused = await refusal(
      mint(deps, { grantId, subject: "github:octocat", channel: "cli" }),
    );
    expect(refused.code).toBe(code);
    expect(refused.message).toMatch(message);
    expect((await db.query("SELECT * FROM tokens")).rows).toEqual([]);
  });

  it("refuses a grant whose window has not started or has ended", async () => {
    const later = await insertGrant(db, { startsAt: at(60), endsAt: at(3600) });
    expect(
      await refusal(mint(deps, { grantId: later.grantId, subject: "x", channel: "cli" })),
    ).toMatchObject({
      code: "GRANT_NOT_ACTIVE",
      message: expect.stringContaining("starts at"),
    });
    // Still 'active' in the table (the sweeper has not run yet), but past its end.
    const over = await insertGrant(db, { startsAt: at(-3600), endsAt: at(-1) });
    expect(
      await refusal(mint(deps, { grantId: over.grantId, subject: "x", channel: "cli" })),
    ).toMatchObject({
      code: "GRANT_NOT_ACTIVE",
      message: expect.stringContaining("ended"),
    });
    // Ends within the current second: a token would live zero seconds.
    const ending = await insertGrant(db, {
      startsAt: at(-3600),
      endsAt: new Date(t0.getTime() + 500),
    });
    expect(
      await refusal(mint(deps, { grantId: ending.grantId, subject: "x", channel: "cli" })),
    ).toMatchObject({
      code: "GRANT_NOT_ACTIVE",
    });
  });

  it("refuses an unknown grant and malformed input", async () => {
    expect(
      await refusal(
        mint(deps, {
          grantId: "7d0c2b1e-4a4b-4c8e-9a57-2d1f3b9e6c11",
          subject: "x",
          channel: "cli",
        }),
      ),
    ).toMatchObject({ code: "GRANT_NOT_FOUND" });
    expect(
      await refusal(mint(deps, { grantId: "nope", subject: "x", channel: "cli" })),
    ).toMatchObject({
      code: "BAD_REQUEST",
    });
    const { grantId } = await insertGrant(db, { startsAt: at(-60), endsAt: at(3600) });
    for (const input of [
      { grantId, subject: "", channel: "cli" },
      { grantId, subject: "a\nb", channel: "cli" },
      { grantId, subject: "x", channel: "cli", scopes: [] },
      { grantId, subject: "x", channel: "cli", scopes: ["read write"] },
      { grantId, subject: "x", channel: "web" },
      { grantId, subject: "x", channel: "actions", run: { ...RUN, sha: "main" } },
    ]) {
      expect(await refusal(mint(deps, input as MintInput))).toMatchObject({ code: "BAD_REQUEST" });
    }
  });

  it("shares transactions between concurrent mints, refusing only the refused", async () => {
    const open = await insertGrant(db, { startsAt: at(-60), endsAt: at(3600) });
    const revoked = await insertGrant(db, {
      state: "revoked",
      startsAt: at(-60),
      endsAt: at(3600),
    });
    const minter = createMinter(deps, { maxBatch: 8, maxInFlight: 1 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        minter({
          grantId: i % 5 === 4 ? revoked.grantId : open.grantId,
          subject: `github:user${i}`,
          channel: "cli",
          ...(i % 3 === 0 ? { scopes: ["read", "write"] } : {}),
        }),
      ),
    );
    const codes = outcomes.map((o) =>
      o.status === "fulfilled"
        ? "ok"
        : isHallpassError(o.reason)
          ? o.reason.code
          : String(o.reason),
    );
    expect(codes).toEqual(
      Array.from({ length: 20 }, (_, i) =>
        i % 5 === 4 ? "GRANT_NOT_ACTIVE" : i % 3 === 0 ? "SCOPE_NOT_GRANTED" : "ok",
      ),
    );
    const minted = outcomes.flatMap((o) => (o.status === "fulfilled" ? [o.value] : []));
    for (const m of minted) {
      const { payload } = await verify(m.token);
      expect(payload.jti).toBe(m.jti);
    }
    expect(new Set(minted.map((m) => m.jti)).size).toBe(minted.length);
    const { rows } = await db.query<{ kind: string; actor: string }>(
      "SELECT kind, actor FROM audit_events WHERE kind LIKE 'token.%' ORDER BY seq",
    );
    expect(rows.filter((r) => r.kind === "token.minted")).toHaveLength(minted.length);
    expect(rows.filter((r) => r.kind === "token.refused")).toHaveLength(20 - minted.length);
    // Several mints per transaction: the first alone, then the 19 queued meanwhile in
    // batches of at most 8. Rows written by one transaction share their xmin.
    const { rows: transactions } = await db.query<{ n: number }>(
      "SELECT count(DISTINCT xmin::text)::int AS n FROM tokens",
    );
    expect(transactions[0]?.n).toBeLessThanOrEqual(4);
    expect(await minter({ grantId: open.grantId, subject: "x", channel: "cli" })).toMatchObject({
      grantId: open.grantId,
    });
    await expect(minter({ grantId: "nope", subject: "x", channel: "cli" })).rejects.toThrow(
      /grantId/,
    );
  });

  it("spends the ID token it is exchanged for only when it mints, once", async () => {
    const open = await insertGrant(db, { startsAt: at(-60), endsAt: at(3600) });
    const revoked = await insertGrant(db, {
      state: "revoked",
      startsAt: at(-60),
      endsAt: at(3600),
    });
    const use = (n: number) => ({
      key: n.toString(16).padStart(64, "0"),
      keepUntil: at(600),
    });
    const spent = async () =>
      (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM oidc_token_uses")).rows[0]?.n;
    const input = (grantId: string, n: number): MintInput => ({
      grantId,
      subject: "repo:acme@1/app@2:run:9001:2",
      channel: "actions",
      run: RUN,
      idToken: use(n),
    });

    // A refused mint leaves the ID token unspent: it can still be exchanged.
    expect(await refusal(mint(deps, input(revoked.grantId, 1)))).toMatchObject({
      code: "GRANT_NOT_ACTIVE",
    });
    expect(
      await refusal(mint(deps, { ...input(open.grantId, 1), scopes: ["admin"] })),
    ).toMatchObject({ code: "SCOPE_NOT_GRANTED" });
    expect(await spent()).toBe(0);
    await mint(deps, input(open.grantId, 1));
    expect(await spent()).toBe(1);
    expect(await refusal(mint(deps, input(open.grantId, 1)))).toMatchObject({
      code: "OIDC_REPLAY",
    });

    // Concurrent uses of one ID token, in one batch and across batches: one token.
    const minter = createMinter(deps, { maxBatch: 4, maxInFlight: 2 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, () => minter(input(open.grantId, 2))),
    );
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    for (const o of outcomes) {
      if (o.status === "rejected") expect(o.reason).toMatchObject({ code: "OIDC_REPLAY" });
    }
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM tokens WHERE grant_id = $1::uuid",
      [open.grantId],
    );
    expect(rows[0]?.n).toBe(2);
    const audit = await db.query<{ body: string }>(
      "SELECT body FROM audit_events WHERE kind = 'token.refused' ORDER BY seq DESC LIMIT 1",
    );
    expect(JSON.parse(audit.rows[0]?.body ?? "{}").data).toMatchObject({
      reason: "id_token_replay",
      run: { id: RUN.id, attempt: RUN.attempt },
    });
  });

  it("signs with the same cached key without reading it again", async () => {
    const { grantId } = await insertGrant(db, { startsAt: at(-60), endsAt: at(3600) });
    const a = await mint(deps, { grantId, subject: "x", channel: "cli" });
    // Break the stored private part: a cached key does not need it.
    await db.query("UPDATE signing_keys SET private_sealed = 'v1.broken' WHERE state = 'active'");
    const b = await mint(deps, { grantId, subject: "x", channel: "cli" });
    expect(decodeProtectedHeader(b.token).kid).toBe(decodeProtectedHeader(a.token).kid);
  });
});

describe.runIf(TEST_DATABASE_URL)("mint racing a revocation (postgres)", () => {
  let db: TestDb;
  beforeEach(async () => {
    db = await createTestDb("postgres");
  });
  afterEach(() => db.close());

  it("waits for a revocation in progress and then refuses", async () => {
    const master = { key: randomBytes(32), file: null };
    await bootstrapKeys(db, master);
    const { grantId } = await insertGrant(db);
    const deps = { db, keys: new ActiveKeyCache(db, master), config };
    await deps.keys.current();
    const revoker = db.another({ max: 1 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const revocation = revoker.transaction(async (tx) => {
      await endGrant(tx, grantId, "revoked");
      locked();
      await held;
    });
    await isLocked;
    const minting = mint(deps, { grantId, subject: "x", channel: "cli" }).then(
      () => "minted",
      (e: unknown) => (isHallpassError(e) ? e.code : String(e)),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    release();
    await revocation;
    expect(await minting).toBe("GRANT_NOT_ACTIVE");
  });
});
