import { createHash, generateKeyPairSync } from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type ErrorCode, isHallpassError } from "#src/errors.js";
import { deleteExpiredOidcTokenUses } from "#src/store/oidc-uses.js";
import {
  consumeIdToken,
  createOidcVerifier,
  idTokenKey,
  type OidcVerifier,
  oidcVerifierFor,
} from "#src/tokens/oidc.js";
import { backends, createTestDb, type TestDb } from "../support/db.js";
import { newSigningPair, type OidcIssuer, startOidcIssuer } from "../support/oidc-issuer.js";

const AUDIENCE = "https://hallpass.example";

async function refusedWith(
  promise: Promise<unknown>,
): Promise<{ code: ErrorCode; message: string; status: number }> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (!isHallpassError(error)) throw new Error(`expected a refusal, got ${String(error)}`);
  return { code: error.code, message: error.message, status: error.status };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("GitHub Actions ID token verification", () => {
  let issuer: OidcIssuer;
  let attacker: OidcIssuer;
  let verifier: OidcVerifier;

  beforeAll(async () => {
    [issuer, attacker] = await Promise.all([startOidcIssuer(), startOidcIssuer()]);
  });
  afterAll(async () => {
    await Promise.all([issuer.close(), attacker.close()]);
  });
  beforeEach(() => {
    verifier = createOidcVerifier({ issuer: issuer.url, audience: AUDIENCE });
    issuer.requests.length = 0;
    attacker.requests.length = 0;
  });
  afterEach(() => {
    // Nothing, ever, is fetched from a URL an attacker controls.
    expect(attacker.requests).toEqual([]);
  });

  it("accepts GitHub's token and parses its claims, ids as numbers", async () => {
    const claims = await verifier.verify(
      await issuer.idToken(AUDIENCE, { claims: { environment: "" } }),
    );
    expect(claims).toMatchObject({
      iss: issuer.url,
      sub: "repo:acme/app:pull_request",
      repository: "acme/app",
      repository_id: 2002,
      repository_owner: "acme",
      repository_owner_id: 1001,
      actor: "octocat",
      actor_id: 4004,
      run_id: 3003,
      run_attempt: 1,
      run_number: 17,
      event_name: "pull_request",
      ref: "refs/pull/7/merge",
      ref_type: "branch",
      ref_protected: false,
      sha: "a".repeat(40),
      workflow_ref: "acme/app/.github/workflows/deploy.yml@refs/pull/7/merge",
      job_workflow_ref: "acme/app/.github/workflows/deploy.yml@refs/pull/7/merge",
      runner_environment: "github-hosted",
      head_ref: "feature",
      base_ref: "main",
    });
    expect(claims.environment).toBeUndefined();
    // Keys come from the pinned issuer's GitHub path, and nowhere else.
    expect(verifier.jwksUrl.href).toBe(`${issuer.url}/.well-known/jwks`);
    expect(issuer.requests).toEqual(["/.well-known/jwks"]);
  });

  it("is built from config.oidc", async () => {
    const fromConfig = oidcVerifierFor({ oidc: { issuer: `${issuer.url}/`, audience: AUDIENCE } });
    expect(fromConfig.issuer).toBe(issuer.url);
    await expect(fromConfig.verify(await issuer.idToken(AUDIENCE))).resolves.toMatchObject({
      repository_id: 2002,
    });
  });

  it("refuses another issuer without fetching anything from it", async () => {
    const token = await attacker.idToken(AUDIENCE);
    const refused = await refusedWith(verifier.verify(token));
    expect(refused).toMatchObject({ code: "OIDC_ISSUER", status: 401 });
    expect(refused.message).toContain("issuer");
    expect(issuer.requests).toEqual([]);
  });

  it("ignores a jku header pointing at the attacker's keys", async () => {
    const key = attacker.current();
    const token = await attacker.idToken(AUDIENCE, {
      claims: { iss: issuer.url },
      header: { jku: `${attacker.url}/.well-known/jwks`, x5u: `${attacker.url}/cert.pem` },
      key,
    });
    expect(await refusedWith(verifier.verify(token))).toMatchObject({ code: "OIDC_UNKNOWN_KEY" });
  });

  it("ignores a jwk header embedding the attacker's key under the issuer's kid", async () => {
    const key = attacker.current();
    const token = await new SignJWT(issuer.claims(AUDIENCE))
      .setProtectedHeader({
        alg: "RS256",
        typ: "JWT",
        kid: issuer.current().kid,
        jwk: key.publicJwk as never,
      })
      .sign(key.privateKey);
    expect(await refusedWith(verifier.verify(token))).toMatchObject({ code: "OIDC_SIGNATURE" });
  });

  it("refuses GitHub's default audience", async () => {
    const token = await issuer.idToken("https://github.com/acme");
    const refused = await refusedWith(verifier.verify(token));
    expect(refused).toMatchObject({ code: "OIDC_AUDIENCE" });
    expect(refused.message).toContain("audience");
  });

  it("refuses an expired token, allowing a small clock skew", async () => {
    expect(
      await refusedWith(verifier.verify(await issuer.idToken(AUDIENCE, { expiresIn: -31 }))),
    ).toMatchObject({
      code: "OIDC_EXPIRED",
    });
    await expect(
      verifier.verify(await issuer.idToken(AUDIENCE, { expiresIn: -10 })),
    ).resolves.toBeDefined();
  });

  it("refuses tokens without exp, iat or jti", async () => {
    for (const claim of ["exp", "iat", "jti"]) {
      const token = await issuer.idToken(AUDIENCE, { claims: { [claim]: undefined } });
      const refused = await refusedWith(verifier.verify(token));
      expect(refused.code).toBe("OIDC_CLAIMS");
      expect(refused.message).toContain(`"${claim}"`);
    }
  });

  it("refuses a token issued in the future or too long ago", async () => {
    const future = await issuer.idToken(AUDIENCE, { issuedAt: new Date(Date.now() + 120_000) });
    expect(await refusedWith(verifier.verify(future))).toMatchObject({
      code: "OIDC_NOT_YET_VALID",
    });
    const early = await issuer.idToken(AUDIENCE, {
      claims: { nbf: Math.floor(Date.now() / 1000) + 120 },
    });
    expect(await refusedWith(verifier.verify(early))).toMatchObject({ code: "OIDC_NOT_YET_VALID" });
    const old = await issuer.idToken(AUDIENCE, { issuedAt: new Date(Date.now() - 2 * 3600_000) });
    expect(await refusedWith(verifier.verify(old))).toMatchObject({ code: "OIDC_EXPIRED" });
  });

  it('refuses alg "none" without fetching keys', async () => {
    const token = `${b64({ alg: "none", typ: "JWT" })}.${b64(issuer.claims(AUDIENCE))}.`;
    expect(await refusedWith(verifier.verify(token))).toMatchObject({ code: "OIDC_ALGORITHM" });
    expect(issuer.requests).toEqual([]);
  });

  it("refuses HS256 signed with the issuer's public key as the HMAC secret", async () => {
    const { publicKey, kid, publicJwk } = issuer.current();
    const secrets = [
      Buffer.from(publicKey.export({ format: "pem", type: "spki" })),
      publicKey.export({ format: "der", type: "spki" }),
      Buffer.from(JSON.stringify(publicJwk)),
    ];
    for (const secret of secrets) {
      const token = await new SignJWT(issuer.claims(AUDIENCE))
        .setProtectedHeader({ alg: "HS256", typ: "JWT", kid })
        .sign(new Uint8Array(secret));
      expect(await refusedWith(verifier.verify(token))).toMatchObject({ code: "OIDC_ALGORITHM" });
    }
    expect(issuer.requests).toEqual([]);
  });

  it("accepts RS256 only, even from the issuer's own key", async () => {
    const { kid, privateKey } = issuer.current();
    const token = await new SignJWT(issuer.claims(AUDIENCE))
      .setProtectedHeader({ alg: "PS256", typ: "JWT", kid })
      .sign(privateKey);
    expect(await refusedWith(verifier.verify(token))).toMatchObject({ code: "OIDC_ALGORITHM" });
  });

  it("refuses a hallpass access token presented as an ID token", async () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const token = await new SignJWT({ ...issuer.claims(AUDIENCE) })
      .setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: "hallpass" })
      .sign(privateKey);
    expect(await refusedWith(verifier.verify(token))).toMatchObject({ code: "OIDC_ALGORITHM" });
    const typed = await issuer.idToken(AUDIENCE, { header: { typ: "at+jwt" } });
    expect(await refusedWith(verifier.verify(typed))).toMatchObject({ code: "OIDC_TYPE" });
    const odd = await issuer.idToken(AUDIENCE, { header: { typ: 123 } });
    expect(await refusedWith(verifier.verify(odd))).toMatchObject({ code: "OIDC_TYPE" });
  });

  it("refuses a token whose claims were changed after signing", async () => {
    const [header, , signature] = (await issuer.idToken(AUDIENCE)).split(".");
    const forged = `${header}.${b64(issuer.claims(AUDIENCE, { repository_id: "1" }))}.${signature}`;
    expect(await refusedWith(verifier.verify(forged))).toMatchObject({ code: "OIDC_SIGNATURE" });
  });

  it("refuses malformed tokens and claims of the wrong shape", async () => {
    for (const token of ["", "abc", "a.b", "a.b.c.d", `${"a".repeat(20_000)}.b.c`]) {
      expect(await refusedWith(verifier.verify(token))).toMatchObject({ code: "OIDC_MALFORMED" });
    }
    for (const claims of [
      { repository_id: 2002 }, // a number where GitHub sends a string
      { repository_id: "2002abc" },
      { repository_id: "0x7d2" },
      { run_attempt: "1.5" },
      { actor_id: "99999999999999999" },
      { sha: "main" },
      { job_workflow_ref: undefined },
      { repository: "acme" },
    ]) {
      const refused = await refusedWith(
        verifier.verify(await issuer.idToken(AUDIENCE, { claims })),
      );
      expect(refused.code).toBe("OIDC_CLAIMS");
      expect(refused.message).toContain(Object.keys(claims)[0]);
    }
  });

  it("fetches the JWKS at most once per cooldown however many unknown kids arrive", async () => {
    const strangers = await Promise.all(Array.from({ length: 5 }, () => newSigningPair()));
    const tokens = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        issuer.idToken(AUDIENCE, { key: strangers[i % strangers.length] }),
      ),
    );
    const flood = createOidcVerifier({ issuer: issuer.url, audience: AUDIENCE, cooldownMs: 1_000 });
    await flood.verify(await issuer.idToken(AUDIENCE));
    expect(issuer.jwksFetches()).toBe(1);
    const burst = async () => {
      const results = await Promise.all(tokens.map((t) => refusedWith(flood.verify(t))));
      for (const r of results) expect(r.code).toBe("OIDC_UNKNOWN_KEY");
    };
    await burst(); // within the cooldown of the first fetch
    expect(issuer.jwksFetches()).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await burst(); // one refetch for the whole burst
    expect(issuer.jwksFetches()).toBe(2);
    await burst();
    await burst();
    expect(issuer.jwksFetches()).toBe(2);
  });

  it("picks up the issuer's new key by refetching on its unknown kid", async () => {
    const rotating = createOidcVerifier({
      issuer: issuer.url,
      audience: AUDIENCE,
      cooldownMs: 100,
    });
    await rotating.verify(await issuer.idToken(AUDIENCE));
    await new Promise((resolve) => setTimeout(resolve, 150));
    await issuer.rotate();
    await expect(rotating.verify(await issuer.idToken(AUDIENCE))).resolves.toBeDefined();
    expect(issuer.jwksFetches()).toBe(2);
  });

  it("says the keys are unavailable (503) when the issuer does not answer", async () => {
    const gone = await startOidcIssuer();
    const token = await gone.idToken(AUDIENCE);
    await gone.close();
    const refused = await refusedWith(
      createOidcVerifier({ issuer: gone.url, audience: AUDIENCE, timeoutMs: 1_000 }).verify(token),
    );
    expect(refused).toMatchObject({ code: "OIDC_JWKS_UNAVAILABLE", status: 503 });
  });

  it("never echoes the token in its errors", async () => {
    const token = await issuer.idToken("https://github.com/acme");
    const error = await verifier.verify(token).catch((e: Error) => e);
    const text = JSON.stringify({
      message: (error as Error).message,
      stack: (error as Error).stack,
    });
    for (const part of token.split(".")) expect(text).not.toContain(part);
  });
});

describe.each(backends)("ID token replay on %s", (backend) => {
  let db: TestDb;
  let issuer: OidcIssuer;
  beforeEach(async () => {
    db = await createTestDb(backend);
    issuer = await startOidcIssuer();
  });
  afterEach(async () => {
    await Promise.all([db.close(), issuer.close()]);
  });

  it("accepts each ID token once, keeping only a hash of issuer and jti", async () => {
    const verifier = createOidcVerifier({ issuer: issuer.url, audience: AUDIENCE });
    const token = await issuer.idToken(AUDIENCE);
    const claims = await verifier.verify(token);
    await consumeIdToken(db, claims, { clockToleranceS: verifier.clockToleranceS });
    const replay = await verifier.verify(token);
    expect(
      await refusedWith(consumeIdToken(db, replay, { clockToleranceS: verifier.clockToleranceS })),
    ).toMatchObject({ code: "OIDC_REPLAY", status: 401 });

    const { rows } = await db.query<{ token_key: string; expires_at: Date }>(
      "SELECT token_key, expires_at FROM oidc_token_uses",
    );
    expect(rows).toEqual([
      {
        token_key: createHash("sha256").update(`${issuer.url}\n${claims.jti}`).digest("hex"),
        expires_at: new Date((claims.exp + verifier.clockToleranceS + 1) * 1000),
      },
    ]);
    expect(rows[0]?.token_key).toBe(idTokenKey(claims));
    // Another token of the same run is a new use.
    const next = await verifier.verify(await issuer.idToken(AUDIENCE));
    await expect(
      consumeIdToken(db, next, { clockToleranceS: verifier.clockToleranceS }),
    ).resolves.toBeUndefined();
  });

  it("forgets used tokens only once they can no longer be accepted", async () => {
    const verifier = createOidcVerifier({ issuer: issuer.url, audience: AUDIENCE });
    const claims = await verifier.verify(await issuer.idToken(AUDIENCE));
    await consumeIdToken(db, claims, { clockToleranceS: 30 });
    const keptUntil = new Date((claims.exp + 31) * 1000);
    expect(await deleteExpiredOidcTokenUses(db, new Date(keptUntil.getTime() - 1), 100)).toBe(0);
    expect(await deleteExpiredOidcTokenUses(db, new Date(keptUntil.getTime() + 1), 100)).toBe(1);
    const { rows } = await db.query("SELECT * FROM oidc_token_uses");
    expect(rows).toEqual([]);
  });

  it("deletes spent records in batches", async () => {
    for (let i = 0; i < 5; i++) {
      await consumeIdToken(
        db,
        { iss: issuer.url, jti: `j${i}`, exp: 1_000 + i },
        { clockToleranceS: 0 },
      );
    }
    const later = new Date(2_000_000);
    expect(await deleteExpiredOidcTokenUses(db, later, 2)).toBe(2);
    expect(await deleteExpiredOidcTokenUses(db, later, 10)).toBe(3);
  });
});
