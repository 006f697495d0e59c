import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { notify } from "#src/store/db.js";
import { GRANTS_CHANNEL, parseGrantChange } from "#src/store/grant-changes.js";
import { LiveGrants, type Standing } from "#src/tokens/live-grants.js";
import { adminQuery, backends, createTestDb, type TestDb } from "../support/db.js";
import { endGrant, insertGrant } from "../support/grants.js";
import { captureLogger } from "../support/log.js";

const JTI = "00000000-0000-4000-8000-000000000001";

async function standing(view: LiveGrants, grantId: string, jti = JTI): Promise<Standing["kind"]> {
  return (await view.standing(grantId, jti)).kind;
}

describe("parseGrantChange", () => {
  it("reads the three kinds of change and refuses anything else", () => {
    const id = "5f1f8a1e-2b55-4a86-9a26-1b3d0f6b7c11";
    expect(parseGrantChange(JSON.stringify({ grant: id, state: "revoked", version: 3 }))).toEqual({
      kind: "grant",
      grantId: id,
      state: "revoked",
      version: 3,
    });
    expect(
      parseGrantChange(
        JSON.stringify({ jti: JTI, grant: id, expires_at: "2026-01-01T00:00:00+00:00" }),
      ),
    ).toEqual({
      kind: "release",
      jti: JTI,
      grantId: id,
      expiresAt: new Date("2026-01-01T00:00:00Z"),
    });
    expect(parseGrantChange('{"heartbeat":"me","seq":4}')).toEqual({
      kind: "heartbeat",
      from: "me",
      seq: 4,
    });
    for (const bad of [
      "",
      "x:active",
      "{}",
      '{"grant":"x","state":"active","version":1}',
      `{"grant":"${id}","state":"gone","version":1}`,
      `{"grant":"${id}","state":"active","version":1,"extra":1}`,
    ]) {
      expect(parseGrantChange(bad), bad).toBeNull();
    }
  });
});

describe.each(backends)("the live grant view on %s", (backend) => {
  let db: TestDb;
  let view: LiveGrants;
  const log = captureLogger("debug");
  beforeEach(async () => {
    db = await createTestDb(backend);
  });
  afterEach(async () => {
    await view?.stop();
    await db.close();
  });

  it("loads the active grants at start and knows nothing else as live", async () => {
    const active = await insertGrant(db);
    const pending = await insertGrant(db, { state: "pending" });
    const revoked = await insertGrant(db, { state: "revoked" });
    view = await LiveGrants.start(db, log.log);
    expect(view.sure).toBe(true);
    expect(view.size).toBe(1);
    expect(await standing(view, active.grantId)).toBe("live");
    expect(await standing(view, pending.grantId)).toBe("dead");
    expect(await standing(view, revoked.grantId)).toBe("dead");
    expect(await standing(view, "7a1f8a1e-2b55-4a86-9a26-1b3d0f6b7c11")).toBe("dead");
  });

  it("hears activations, extensions, revocations, expiries and releases without reloading", async () => {
    view = await LiveGrants.start(db, log.log, { resyncMs: 3_600_000 });
    const resyncs = view.reads.resyncs;
    const a = await insertGrant(db);
    await expect.poll(() => view.size).toBe(1);
    expect(view.standing(a.grantId, JTI)).toMatchObject({ kind: "live" });
    const later = new Date(Date.now() + 7_200_000);
    await db.query(
      "UPDATE grants SET ends_at = $2::timestamptz, version = version + 1 WHERE id = $1::uuid",
      [a.grantId, later],
    );
    await expect
      .poll(() => {
        const s = view.standing(a.grantId, JTI);
        return "grant" in s ? s.grant.endsAt : null;
      })
      .toBe(later.getTime());
    await endGrant(db, a.grantId, "revoked");
    await expect.poll(() => (view.standing(a.grantId, JTI) as Standing).kind).toBe("dead");
    const b = await insertGrant(db);
    await expect.poll(() => view.size).toBe(1);
    await endGrant(db, b.grantId, "expired");
    await expect.poll(() => view.size).toBe(0);
    const c = await insertGrant(db);
    await db.query(
      `INSERT INTO signing_keys (kid, public_jwk, private_sealed, state, activated_at)
       VALUES ('k', '{}', 'sealed', 'active', now())`,
    );
    await db.query(
      `INSERT INTO tokens (jti, grant_id, kid, channel, subject, scopes, issued_at, expires_at)
       VALUES ($1::uuid, $2::uuid, 'k', 'cli', 'github:alice', '{read}', now(), now() + interval '10 minutes')`,
      [JTI, c.grantId],
    );
    await expect.poll(() => (view.standing(c.grantId, JTI) as Standing).kind).toBe("live");
    await db.query("UPDATE tokens SET released_at = now() WHERE jti = $1::uuid", [JTI]);
    await expect
      .poll(() => view.standing(c.grantId, JTI))
      .toEqual({ kind: "dead", why: "released" });
    expect(view.standing(c.grantId, "00000000-0000-4000-8000-000000000002")).toMatchObject({
      kind: "live",
    });
    expect(view.reads.resyncs).toBe(resyncs);
  });

  it("never lets an older change overwrite a newer one", async () => {
    const a = await insertGrant(db);
    view = await LiveGrants.start(db, log.log, { resyncMs: 3_600_000 });
    await endGrant(db, a.grantId, "revoked");
    await expect.poll(() => (view.standing(a.grantId, JTI) as Standing).kind).toBe("dead");
    // A late copy of the activation (version 0) arrives after the revocation (version 1).
    await notify(
      db,
      GRANTS_CHANNEL,
      JSON.stringify({ grant: a.grantId, state: "active", version: 0 }),
    );
    await view.resync();
    expect(await standing(view, a.grantId)).toBe("dead");
  });

  it("reads a grant it never heard of once, however many requests ask at the same time", async () => {
    view = await LiveGrants.start(db, log.log, {
      listen: false,
      resyncMs: 3_600_000,
      maxStalenessMs: 60_000,
    });
    const a = await insertGrant(db);
    const lookups = view.reads.lookups;
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => view.standing(a.grantId, JTI)),
    );
    expect(answers.every((s) => s.kind === "live")).toBe(true);
    expect(view.reads.lookups - lookups).toBe(1);
    expect(view.standing(a.grantId, JTI)).toMatchObject({ kind: "live" });
  });

  it("ignores notifications that are not grant changes, and says so", async () => {
    view = await LiveGrants.start(db, log.log);
    await notify(db, GRANTS_CHANNEL, "not json");
    await expect
      .poll(() =>
        log
          .lines()
          .some((l) => l.msg === "live grants: ignored a notification that is not a grant change"),
      )
      .toBe(true);
    expect(view.sure).toBe(true);
  });

  it("stays sure through its own heartbeats while nothing changes", async () => {
    view = await LiveGrants.start(db, log.log, { maxStalenessMs: 400, resyncMs: 3_600_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(view.sure).toBe(true);
    expect(view.reads.heartbeats).toBeGreaterThanOrEqual(4);
  });

  it.runIf(backend === "postgres")(
    "reloads when its listening connection was lost, catching up on what it missed",
    async () => {
      view = await LiveGrants.start(db, log.log, { maxStalenessMs: 2_000, resyncMs: 3_600_000 });
      const a = await insertGrant(db);
      await expect.poll(() => view.size).toBe(1);
      const resyncs = view.reads.resyncs;
      // The listening connection of this test's schema only (test files run side by side).
      await adminQuery(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1::text AND query LIKE 'LISTEN %'",
        [db.schema],
      );
      await endGrant(db, a.grantId, "revoked");
      await expect.poll(() => view.reads.resyncs, { timeout: 10_000 }).toBeGreaterThan(resyncs);
      await expect.poll(() => (view.standing(a.grantId, JTI) as Standing).kind).toBe("dead");
      expect(view.sure).toBe(true);
    },
  );
});
