import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "#src/cli/run.js";
import { isHallpassError } from "#src/errors.js";
import { listSigningKeys } from "#src/store/keys.js";
import { ActiveKeyCache } from "#src/tokens/active-key.js";
import { bootstrapKeys, promoteDueKey, ROTATION_DELAY_S, rotateKeys } from "#src/tokens/keys.js";
import type { MasterKey } from "#src/tokens/master-key.js";
import { mint } from "#src/tokens/mint.js";
import { backends, createTestDb, TEST_DATABASE_URL, type TestDb } from "../support/db.js";
import { tempDirs } from "../support/dirs.js";
import { cleanEnv } from "../support/env.js";
import { insertGrant } from "../support/grants.js";

const config = { publicUrl: "https://hallpass.example", github: { webUrl: "https://github.com" } };
const tempDir = tempDirs("hallpass-cli-");
const at = (base: Date, seconds: number) => new Date(base.getTime() + seconds * 1000);

async function keyStates(db: TestDb) {
  return (await listSigningKeys(db)).map((k) => ({ kid: k.kid, state: k.state }));
}

describe.each(backends)("key lifecycle on %s", (backend) => {
  let db: TestDb;
  let master: MasterKey;
  const t0 = new Date("2030-01-01T00:00:00Z");

  beforeEach(async () => {
    db = await createTestDb(backend);
    master = { key: randomBytes(32), file: null };
  });
  afterEach(() => db.close());

  it("publishes a rotated key for twice the JWKS max-age before it signs", async () => {
    const { activeKid } = await bootstrapKeys(db, master, t0);
    const rotation = await rotateKeys(db, master, { now: t0 });
    expect(ROTATION_DELAY_S).toBe(600);
    expect(rotation).toMatchObject({ state: "published", activeFrom: at(t0, 600), retired: [] });
    expect(await keyStates(db)).toEqual(
      expect.arrayContaining([
        { kid: activeKid, state: "active" },
        { kid: rotation.kid, state: "published" },
      ]),
    );

    expect(await promoteDueKey(db, at(t0, 599))).toBeNull();
    const promotion = await promoteDueKey(db, at(t0, 600));
    expect(promotion).toEqual({
      kid: rotation.kid,
      // No token was signed by the old key: nothing keeps it published.
      retired: { kid: activeKid, verifyUntil: at(t0, 600) },
    });
    expect(await promoteDueKey(db, at(t0, 601))).toBeNull();
    const old = (await listSigningKeys(db)).find((k) => k.kid === activeKid);
    expect(old).toMatchObject({ state: "retired", privateSealed: "", retiredAt: at(t0, 600) });
  });

  it("keeps the old key published until the last token it signed expires", async () => {
    const { activeKid } = await bootstrapKeys(db, master, t0);
    const { grantId } = await insertGrant(db, {
      startsAt: t0,
      endsAt: at(t0, 7200),
      tokenTtlS: 900,
    });
    let now = at(t0, 10);
    const keys = new ActiveKeyCache(db, master, { now: () => now });
    const before = await mint(
      { db, keys, config, now: () => now },
      {
        grantId,
        subject: "github:octocat",
        channel: "cli",
      },
    );
    expect(before.expiresAt).toEqual(at(t0, 910));
    const rotation = await rotateKeys(db, master, { now: at(t0, 20) });

    // Before activation the old key still signs.
    now = at(t0, 300);
    keys.invalidate();
    const stillOld = await mint(
      { db, keys, config, now: () => now },
      {
        grantId,
        subject: "github:octocat",
        channel: "cli",
      },
    );
    expect(stillOld.expiresAt).toEqual(at(t0, 1200));
    expect(header(stillOld.token).kid).toBe(activeKid);

    // The cache ends at the activation time: the next mint promotes and signs with the new key.
    now = at(t0, 620);
    const after = await mint(
      { db, keys, config, now: () => now },
      {
        grantId,
        subject: "github:octocat",
        channel: "cli",
      },
    );
    expect(header(after.token).kid).toBe(rotation.kid);
    const old = (await listSigningKeys(db)).find((k) => k.kid === activeKid);
    expect(old).toMatchObject({ state: "retired", verifyUntil: at(t0, 1200) });
  });

  it("refuses a second rotation while one is pending", async () => {
    await bootstrapKeys(db, master, t0);
    await rotateKeys(db, master, { now: t0 });
    const error = await rotateKeys(db, master, { now: at(t0, 1) }).catch((e: unknown) => e);
    expect(isHallpassError(error, "KEY_ROTATION_PENDING")).toBe(true);
    expect((await listSigningKeys(db)).filter((k) => k.state === "published")).toHaveLength(1);
  });

  it("activates at once with --now, keeping the old key until its tokens expire", async () => {
    const { activeKid } = await bootstrapKeys(db, master, t0);
    const waiting = await rotateKeys(db, master, { now: t0 });
    const { grantId } = await insertGrant(db, { startsAt: t0, endsAt: at(t0, 7200) });
    const keys = new ActiveKeyCache(db, master, { now: () => at(t0, 5) });
    await mint(
      { db, keys, config, now: () => at(t0, 5) },
      {
        grantId,
        subject: "github:octocat",
        channel: "cli",
      },
    );

    const now = await rotateKeys(db, master, { immediate: true, now: at(t0, 60) });
    expect(now.state).toBe("active");
    expect(now.activeFrom).toEqual(at(t0, 60));
    expect(now.retired).toEqual(
      expect.arrayContaining([
        { kid: waiting.kid, verifyUntil: at(t0, 60) },
        { kid: activeKid, verifyUntil: at(t0, 905) },
      ]),
    );
    const states = await keyStates(db);
    expect(states.filter((k) => k.state === "active")).toEqual([{ kid: now.kid, state: "active" }]);
    expect(states.filter((k) => k.state === "published")).toEqual([]);
  });

  it("drops the old key from verification at once with --now --revoke-old", async () => {
    const { activeKid } = await bootstrapKeys(db, master, t0);
    const { grantId } = await insertGrant(db, { startsAt: t0, endsAt: at(t0, 7200) });
    const keys = new ActiveKeyCache(db, master, { now: () => at(t0, 5) });
    await mint(
      { db, keys, config, now: () => at(t0, 5) },
      {
        grantId,
        subject: "github:octocat",
        channel: "cli",
      },
    );
    const rotation = await rotateKeys(db, master, {
      immediate: true,
      revokeOld: true,
      now: at(t0, 60),
    });
    expect(rotation.retired).toEqual([{ kid: activeKid, verifyUntil: at(t0, 60) }]);
    await expect(rotateKeys(db, master, { revokeOld: true })).rejects.toThrow(/--now/);
  });

  it("records every lifecycle step in the audit log", async () => {
    await bootstrapKeys(db, master, t0);
    await rotateKeys(db, master, { now: t0 });
    await promoteDueKey(db, at(t0, 600));
    await rotateKeys(db, master, { immediate: true, now: at(t0, 700) });
    const { rows } = await db.query<{ kind: string; actor: string }>(
      "SELECT kind, actor FROM audit_events ORDER BY seq",
    );
    expect(rows).toEqual([
      { kind: "key.activated", actor: "system" },
      { kind: "key.published", actor: "operator" },
      { kind: "key.activated", actor: "system" },
      { kind: "key.rotated", actor: "operator" },
    ]);
  });
});

describe.runIf(TEST_DATABASE_URL)("key promotion with several replicas (postgres)", () => {
  let db: TestDb;
  let master: MasterKey;
  const t0 = new Date("2030-01-01T00:00:00Z");
  beforeEach(async () => {
    db = await createTestDb("postgres");
    master = { key: randomBytes(32), file: null };
  });
  afterEach(() => db.close());

  it("promotes once when replicas race, and every token verifies until it expires", async () => {
    const { activeKid } = await bootstrapKeys(db, master, t0);
    const { grantId } = await insertGrant(db, { startsAt: t0, endsAt: at(t0, 86_400) });
    const replicas = Array.from({ length: 4 }, () => db.another({ max: 4 }));
    let now = t0;
    // Each replica has cached the old key for long, before the rotation.
    const caches = replicas.map(
      (r) => new ActiveKeyCache(r, master, { now: () => now, ttlMs: 3_600_000 }),
    );
    await Promise.all(caches.map((c) => c.current()));
    await rotateKeys(db, master, { now: t0 });
    now = at(t0, 600);

    const mintOn = (i: number, n: number) =>
      mint(
        { db: replicas[i]!, keys: caches[i]!, config, now: () => at(t0, 600 + n) },
        {
          grantId,
          subject: "github:octocat",
          channel: "cli",
        },
      );
    // Before any promotion: signed with the old key, cached everywhere.
    const first = await Promise.all(replicas.map((_, i) => mintOn(i, 0)));
    // Mints on every replica while every replica promotes.
    const [racing, promoted] = await Promise.all([
      Promise.all(replicas.flatMap((_, i) => Array.from({ length: 10 }, (_, n) => mintOn(i, n)))),
      Promise.all(replicas.map((replica) => promoteDueKey(replica, now))),
    ]);
    expect(promoted.filter((p) => p !== null)).toHaveLength(1);
    const newKid = promoted.find((p) => p !== null)?.kid;
    // After: replicas whose cache still says old key find it retired and sign with the new one.
    const last = await Promise.all(replicas.map((_, i) => mintOn(i, 20)));
    for (const token of first) expect(header(token.token).kid).toBe(activeKid);
    for (const token of last) expect(header(token.token).kid).toBe(newKid);
    const minted = [...first, ...racing, ...last];

    const keys = await listSigningKeys(db);
    for (const token of minted) {
      const key = keys.find((k) => k.kid === header(token.token).kid);
      // Signed by the active key, or by one that stays published until the token expires.
      if (key?.state !== "active") {
        expect(key?.verifyUntil?.getTime()).toBeGreaterThanOrEqual(token.expiresAt.getTime());
      }
    }
  });
});

describe("hallpass keys rotate", () => {
  const run = async (args: string[], env: Record<string, string>) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = "";
    let err = "";
    stdout.on("data", (c) => {
      out += c;
    });
    stderr.on("data", (c) => {
      err += c;
    });
    const code = await runCli(args, { stdout, stderr }, cleanEnv(env));
    return { code, out, err };
  };

  it("creates the embedded master key and first key, then publishes a new one", async () => {
    const dataDir = tempDir();
    const env = { HALLPASS_DATA_DIR: dataDir };
    // No database yet: nothing is created, not even a master key.
    const none = await run(["keys", "rotate"], env);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/there is no embedded database in .*hallpass migrate first/);
    expect(existsSync(path.join(dataDir, "master.key"))).toBe(false);
    expect((await run(["migrate"], env)).code).toBe(0);
    const first = await run(["keys", "rotate"], env);
    expect(first).toMatchObject({ code: 0, err: "" });
    expect(first.out).toMatch(/^key \S+ is active and signs from now\n$/);
    const second = await run(["keys", "rotate"], env);
    expect(second.code).toBe(0);
    expect(second.out).toMatch(/^published key \S+; it starts signing at \S+Z\n$/);
    const third = await run(["keys", "rotate"], env);
    expect(third.code).toBe(1);
    expect(third.err).toMatch(/already published .* rotate with --now/);
    const now = await run(["keys", "rotate", "--now"], env);
    expect(now.code).toBe(0);
    expect(now.out).toMatch(/is active and signs from now\nretired key .*\nretired key .*\n$/);
  });

  it("refuses a master key that does not open the database's keys", async () => {
    const dataDir = tempDir();
    await run(["migrate"], { HALLPASS_DATA_DIR: dataDir });
    await run(["keys", "rotate"], { HALLPASS_DATA_DIR: dataDir });
    const wrong = await run(["keys", "rotate"], {
      HALLPASS_DATA_DIR: dataDir,
      HALLPASS_MASTER_KEY: randomBytes(32).toString("base64"),
    });
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain("HALLPASS_MASTER_KEY does not open the signing keys");
  });

  it("explains itself", async () => {
    const help = await run(["keys", "--help"], {});
    expect(help.code).toBe(0);
    expect(help.out).toContain("rotate --now");
    expect((await run(["keys", "turn"], {})).code).toBe(2);
  });
});

function header(token: string): { kid: string; alg: string; typ: string } {
  return JSON.parse(Buffer.from(token.split(".")[0] ?? "", "base64url").toString());
}
