import { decodeProtectedHeader } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "#src/log.js";
import { listSigningKeys } from "#src/store/keys.js";
import { rotateKeys } from "#src/tokens/keys.js";
import { loadMasterKey } from "#src/tokens/master-key.js";
import { consumeIdToken } from "#src/tokens/oidc.js";
import { startTokenService, type TokenService } from "#src/tokens/service.js";
import { backends, createTestDb, TEST_DATABASE_URL, type TestDb } from "../support/db.js";
import { insertGrant } from "../support/grants.js";
import { type Clock, testClock, testConfig } from "../support/token-service.js";

const log = createLogger("silent");

describe.each(backends)("token service on %s", (backend) => {
  let db: TestDb;
  let clock: Clock;
  let service: TokenService;
  const config = testConfig();

  beforeEach(async () => {
    db = await createTestDb(backend);
    clock = testClock();
    service = await startTokenService(db, config, log, {
      now: clock.now,
      housekeepingMs: 3_600_000,
    });
  });
  afterEach(async () => {
    await service.stop();
    await db.close();
  });

  it("activates a due key in housekeeping, with no mint needed", async () => {
    const rotation = await rotateKeys(db, await loadMasterKey(config), { now: clock.now() });
    expect(await service.housekeeping()).toBe(false);
    expect((await listSigningKeys(db)).find((k) => k.kid === rotation.kid)?.state).toBe(
      "published",
    );
    clock.advance(600_000);
    await service.housekeeping();
    expect((await listSigningKeys(db)).find((k) => k.kid === rotation.kid)?.state).toBe("active");
    const { grantId } = await insertGrant(db, {
      startsAt: clock.now(),
      endsAt: new Date(clock.now().getTime() + 3_600_000),
    });
    const minted = await service.mint({ grantId, subject: "github:octocat", channel: "cli" });
    expect(decodeProtectedHeader(minted.token).kid).toBe(rotation.kid);
  });

  it("deletes records of spent ID tokens once they expired", async () => {
    const exp = Math.floor(clock.now().getTime() / 1000) + 60;
    await consumeIdToken(db, { iss: "https://issuer", jti: "a", exp }, { clockToleranceS: 30 });
    await service.housekeeping();
    expect((await db.query("SELECT 1 FROM oidc_token_uses")).rows).toHaveLength(1);
    clock.advance(92_000);
    await service.housekeeping();
    expect((await db.query("SELECT 1 FROM oidc_token_uses")).rows).toHaveLength(0);
  });
});

describe.runIf(TEST_DATABASE_URL)("token service replicas (postgres)", () => {
  let db: TestDb;
  const replicas: TokenService[] = [];
  beforeEach(async () => {
    db = await createTestDb("postgres");
  });
  afterEach(async () => {
    for (const r of replicas.splice(0)) await r.stop();
    await db.close();
  });

  it("hear of another replica's emergency rotation at once", async () => {
    const config = testConfig();
    const options = { housekeepingMs: 3_600_000, keyCacheTtlMs: 3_600_000 };
    replicas.push(await startTokenService(db, config, log, options));
    replicas.push(await startTokenService(db.another({ max: 4 }), config, log, options));
    const [a, b] = replicas as [TokenService, TokenService];
    const { grantId } = await insertGrant(db);
    const before = await b.mint({ grantId, subject: "x", channel: "cli" });
    await b.verifier.jwks();

    const rotation = await rotateKeys(a.db, await loadMasterKey(config), { immediate: true });
    // B's caches would hold the old key for an hour; the notification drops them.
    await expect
      .poll(async () => (await b.verifier.jwks()).map((k) => k.kid))
      .toContain(rotation.kid);
    const after = await b.mint({ grantId, subject: "x", channel: "cli" });
    expect(decodeProtectedHeader(after.token).kid).toBe(rotation.kid);
    expect(decodeProtectedHeader(before.token).kid).not.toBe(rotation.kid);
    // Both replicas still verify the old key's token until it expires.
    await expect(b.verifier.verify(before.token)).resolves.toMatchObject({ expired: false });
    await expect(a.verifier.verify(before.token)).resolves.toMatchObject({ expired: false });
  });
});
