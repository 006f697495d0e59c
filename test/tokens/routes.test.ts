import { createRemoteJWKSet, customFetch, decodeProtectedHeader, jwtVerify } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Secret } from "#src/secret.js";
import { rotateKeys } from "#src/tokens/keys.js";
import { loadMasterKey } from "#src/tokens/master-key.js";
import { backends, createTestDb } from "../support/db.js";
import { endGrant, insertGrant } from "../support/grants.js";
import { startOidcIssuer } from "../support/oidc-issuer.js";
import { startTokenHarness, type TokenHarness } from "../support/token-service.js";

const AUDIENCE = "acme/payments#payments-api";
const SECRETS = {
  "payments-api": new Secret("payments-secret"),
  "ledger-api": new Secret("ledger-secret"),
};
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe.each(backends)("token routes on %s", (backend) => {
  let h: TokenHarness;
  beforeEach(async () => {
    h = await startTokenHarness(backend, { secrets: SECRETS });
  });
  afterEach(() => h.close());

  const grant = (options: Parameters<typeof insertGrant>[1] = {}) =>
    insertGrant(h.db, {
      startsAt: new Date(h.clock.now().getTime() - 60_000),
      endsAt: new Date(h.clock.now().getTime() + 3_600_000),
      ...options,
    });
  const mintFor = (grantId: string) =>
    h.service().mint({ grantId, subject: "run:acme/app/1", actor: "octocat", channel: "actions" });
  const jwksUrl = () => new URL(`${h.url}/.well-known/jwks.json`);
  const jwks = async () =>
    (await fetch(jwksUrl())).json() as Promise<{ keys: Array<{ kid: string }> }>;
  const introspect = (token: string, auth = basic("payments-api", "payments-secret")) =>
    fetch(`${h.url}/introspect`, {
      method: "POST",
      headers: { authorization: auth, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token }),
    });
  const releaseToken = (token: string) =>
    fetch(`${h.url}/v1/release`, { method: "POST", headers: { authorization: `Bearer ${token}` } });

  describe("JWKS and metadata", () => {
    it("publishes the keys with kid, alg and use, cacheable for 300 s", async () => {
      const response = await fetch(jwksUrl());
      expect(response.status).toBe(200);
      expect(response.headers.get("cache-control")).toBe("public, max-age=300");
      const body = (await response.json()) as { keys: Record<string, unknown>[] };
      expect(body.keys).toHaveLength(1);
      expect(body.keys[0]).toEqual({
        kty: "OKP",
        crv: "Ed25519",
        x: expect.any(String),
        kid: expect.any(String),
        alg: "EdDSA",
        use: "sig",
      });
      expect(body.keys[0]).not.toHaveProperty("d");
    });

    it("describes the issuer for standard middleware", async () => {
      const response = await fetch(`${h.url}/.well-known/openid-configuration`);
      expect(await response.json()).toEqual({
        issuer: h.url,
        jwks_uri: `${h.url}/.well-known/jwks.json`,
        introspection_endpoint: `${h.url}/introspect`,
        introspection_endpoint_auth_methods_supported: ["client_secret_basic"],
        id_token_signing_alg_values_supported: ["EdDSA"],
      });
    });

    it("lets plain jose verify tokens with the remote JWKS", async () => {
      const { grantId } = await grant();
      const { token } = await mintFor(grantId);
      const { payload } = await jwtVerify(token, createRemoteJWKSet(jwksUrl()), {
        issuer: h.url,
        audience: AUDIENCE,
      });
      expect(payload).toMatchObject({ sub: "run:acme/app/1", aud: AUDIENCE, iss: h.url });
      await expect(
        jwtVerify(token, createRemoteJWKSet(jwksUrl()), { issuer: h.url, audience: "other" }),
      ).rejects.toThrow(/aud/);
    });

    it("verifies across a rotation: old tokens until they expire, new key only after activation", async () => {
      const { grantId } = await grant({ tokenTtlS: 900 });
      let fetches = 0;
      // A verifier as an API runs it: jose's remote key set, counting its fetches.
      const remote = createRemoteJWKSet(jwksUrl(), {
        [customFetch]: (url: string, init: RequestInit) => {
          fetches++;
          return fetch(url, init);
        },
      });
      const verify = (token: string) =>
        jwtVerify(token, remote, { issuer: h.url, audience: AUDIENCE, currentDate: h.clock.now() });

      const old = await mintFor(grantId);
      const oldKid = decodeProtectedHeader(old.token).kid;
      await verify(old.token);
      expect(fetches).toBe(1);

      const rotation = await rotateKeys(h.db, await loadMasterKey(h.config), {
        now: h.clock.now(),
      });
      // Published at once (every replica's key cache hears of it), but not signing yet.
      await expect
        .poll(async () => (await jwks()).keys.map((k) => k.kid).sort())
        .toEqual([oldKid, rotation.kid].sort());
      const beforeActivation = await mintFor(grantId);
      expect(decodeProtectedHeader(beforeActivation.token).kid).toBe(oldKid);

      // Within the max-age, the verifier refreshes its key set: it now holds both keys.
      await remote.reload();
      expect(fetches).toBe(2);

      h.clock.advance(601_000);
      const after = await mintFor(grantId);
      expect(decodeProtectedHeader(after.token).kid).toBe(rotation.kid);
      // The new key's first token verifies without another fetch: it was published first.
      await verify(after.token);
      // The old key's tokens still verify until they expire.
      await verify(beforeActivation.token);
      expect(fetches).toBe(2);
      expect((await jwks()).keys.map((k) => k.kid)).toContain(oldKid);

      // Once the last of them has expired, the old key leaves the JWKS.
      h.clock.advance(beforeActivation.expiresAt.getTime() - h.clock.now().getTime() + 1_000);
      expect((await jwks()).keys.map((k) => k.kid)).toEqual([rotation.kid]);
      await expect(verify(old.token)).rejects.toThrow(/exp/);
    });
  });

  describe("introspection", () => {
    it("describes an active token to its own resource", async () => {
      const { grantId } = await grant();
      const minted = await mintFor(grantId);
      const response = await introspect(minted.token);
      expect(response.status).toBe(200);
      expect(response.headers.get("cache-control")).toBe("no-store");
      const iat = Math.floor(h.clock.now().getTime() / 1000);
      const body = (await response.json()) as { iat: number; nbf: number };
      // Minted a moment ago: within a second of now, whichever side of a second boundary.
      expect(iat - body.iat).toBeGreaterThanOrEqual(0);
      expect(iat - body.iat).toBeLessThanOrEqual(1);
      expect(body.nbf).toBe(body.iat);
      expect(body).toEqual({
        active: true,
        scope: "read refund",
        client_id: "hallpass-action",
        sub: "run:acme/app/1",
        act: { sub: "octocat" },
        aud: AUDIENCE,
        iss: h.url,
        exp: Math.floor(minted.expiresAt.getTime() / 1000),
        iat: body.iat,
        nbf: body.iat,
        jti: minted.jti,
        token_type: "Bearer",
        hallpass: expect.objectContaining({ grant: grantId, resource: "payments-api" }),
      });
    });

    it("answers 401 to a wrong secret or an unknown resource, in any form", async () => {
      const { grantId } = await grant();
      const { token } = await mintFor(grantId);
      for (const auth of [
        basic("payments-api", "wrong"),
        basic("payments-api", "payments-secre"),
        basic("payments-api", "payments-secrett"),
        basic("unknown-api", "payments-secret"),
        basic("", "payments-secret"),
        "Basic !!!",
        `Bearer ${token}`,
        "",
      ]) {
        const response = await introspect(token, auth);
        expect(response.status).toBe(401);
        expect(response.headers.get("www-authenticate")).toBe('Basic realm="hallpass"');
        const body = (await response.json()) as { error: string; message: string };
        expect(body.error).toBe("INVALID_CLIENT");
        expect(JSON.stringify(body)).not.toContain("payments-secret");
      }
    });

    it("answers 429 with retry-after to an address past its wrong secrets, even with the right one", async () => {
      const limited = await startTokenHarness(backend, {
        secrets: SECRETS,
        rateLimits: { refusedPerAddress: 3 },
      });
      try {
        const ask = (auth: string) =>
          fetch(`${limited.url}/introspect`, {
            method: "POST",
            headers: { authorization: auth, "content-type": "application/x-www-form-urlencoded" },
            body: new URLSearchParams({ token: "garbage" }),
          });
        // The right secret spends nothing, whatever the token.
        for (let i = 0; i < 5; i++) {
          const answer = await ask(basic("payments-api", "payments-secret"));
          expect(await answer.json()).toEqual({ active: false });
        }
        for (let i = 0; i < 3; i++) {
          expect((await ask(basic("payments-api", `guess-${i}`))).status).toBe(401);
        }
        for (const auth of [
          basic("payments-api", "guess-3"),
          basic("payments-api", "payments-secret"),
        ]) {
          const answer = await ask(auth);
          expect(answer.status).toBe(429);
          expect(Number(answer.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
          expect(await answer.json()).toMatchObject({ error: "RATE_LIMITED" });
        }
      } finally {
        await limited.close();
      }
    });

    it("says inactive to another resource's secret", async () => {
      const { grantId } = await grant();
      const { token } = await mintFor(grantId);
      const response = await introspect(token, basic("ledger-api", "ledger-secret"));
      expect(await response.json()).toEqual({ active: false });
    });

    it("flips to inactive on the very next request after a revocation", async () => {
      const { grantId } = await grant();
      const { token } = await mintFor(grantId);
      expect(await (await introspect(token)).json()).toMatchObject({ active: true });
      await endGrant(h.db, grantId, "revoked");
      expect(await (await introspect(token)).json()).toEqual({ active: false });
    });

    it("says inactive once the grant or the token expired", async () => {
      const expiring = await grant();
      const a = await mintFor(expiring.grantId);
      await endGrant(h.db, expiring.grantId, "expired");
      expect(await (await introspect(a.token)).json()).toEqual({ active: false });

      const short = await grant({ tokenTtlS: 60 });
      const b = await mintFor(short.grantId);
      h.clock.advance(61_000);
      expect(await (await introspect(b.token)).json()).toEqual({ active: false });
    });

    it("says inactive to garbage, forged and foreign tokens", async () => {
      const { grantId } = await grant();
      const { token } = await mintFor(grantId);
      const [header, payload] = token.split(".");
      const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString());
      const widened = Buffer.from(JSON.stringify({ ...claims, scope: "admin" })).toString(
        "base64url",
      );
      const issuer = await startOidcIssuer();
      try {
        const idToken = await issuer.idToken("https://hallpass.example");
        for (const bad of ["garbage", `${header}.${widened}.${token.split(".")[2]}`, idToken]) {
          const response = await introspect(bad);
          expect(response.status).toBe(200);
          expect(await response.json()).toEqual({ active: false });
        }
      } finally {
        await issuer.close();
      }
    });

    it("wants exactly one token, form-encoded", async () => {
      const auth = basic("payments-api", "payments-secret");
      const send = (body: string, type: string) =>
        fetch(`${h.url}/introspect`, {
          method: "POST",
          headers: { authorization: auth, "content-type": type },
          body,
        });
      expect((await send("token=a&token=b", "application/x-www-form-urlencoded")).status).toBe(400);
      expect((await send("", "application/x-www-form-urlencoded")).status).toBe(400);
      expect((await send('{"token":"a"}', "application/json")).status).toBe(400);
    });
  });

  describe("release", () => {
    it("makes introspection say inactive, keeps the grant, and is idempotent", async () => {
      const { grantId } = await grant();
      const first = await mintFor(grantId);
      const second = await mintFor(grantId);
      const released = await releaseToken(first.token);
      expect(released.status).toBe(200);
      expect(await released.json()).toEqual({ jti: first.jti, status: "released" });
      expect(await (await introspect(first.token)).json()).toEqual({ active: false });
      // The grant lives on: other tokens stay active, new ones can be minted.
      expect(await (await introspect(second.token)).json()).toMatchObject({ active: true });
      await expect(mintFor(grantId)).resolves.toBeDefined();

      const again = await releaseToken(first.token);
      expect(again.status).toBe(200);
      expect(await again.json()).toEqual({ jti: first.jti, status: "released" });
      const { rows } = await h.db.query<{ kind: string; body: string }>(
        "SELECT kind, body FROM audit_events WHERE kind = 'token.released'",
      );
      expect(rows).toHaveLength(1);
      expect(JSON.parse(rows[0]?.body ?? "{}")).toMatchObject({
        grant_id: grantId,
        data: { jti: first.jti },
      });
      expect(rows[0]?.body).not.toContain(first.token.split(".")[2]);
    });

    it("answers 200 for an expired token, changing nothing", async () => {
      const { grantId } = await grant({ tokenTtlS: 60 });
      const minted = await mintFor(grantId);
      h.clock.advance(120_000);
      const response = await releaseToken(minted.token);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ jti: minted.jti, status: "expired" });
      const { rows } = await h.db.query("SELECT released_at FROM tokens WHERE jti = $1::uuid", [
        minted.jti,
      ]);
      expect(rows).toEqual([{ released_at: null }]);
    });

    it("refuses an ID token, a forged token and a missing one with 401", async () => {
      const issuer = await startOidcIssuer();
      try {
        const { grantId } = await grant();
        const { token } = await mintFor(grantId);
        const [header, payload, signature] = token.split(".");
        const other = Buffer.from(JSON.stringify({ jti: crypto.randomUUID() })).toString(
          "base64url",
        );
        for (const bad of [
          await issuer.idToken("https://hallpass.example"),
          `${header}.${other}.${signature}`,
          `${header}.${payload}.${"A".repeat(signature?.length ?? 86)}`,
        ]) {
          const response = await releaseToken(bad);
          expect(response.status).toBe(401);
          expect(response.headers.get("www-authenticate")).toContain("Bearer");
          expect(await response.json()).toMatchObject({ error: "INVALID_TOKEN" });
        }
        const missing = await fetch(`${h.url}/v1/release`, { method: "POST" });
        expect(missing.status).toBe(401);
        expect(
          (await h.db.query("SELECT 1 FROM tokens WHERE released_at IS NOT NULL")).rows,
        ).toEqual([]);
      } finally {
        await issuer.close();
      }
    });
  });
});

describe("before the database is ready", () => {
  it("answers 503 on the routes that need it, and serves the metadata", async () => {
    const db = await createTestDb(backends[0] ?? "pglite");
    const h = await startTokenHarness("pglite", { db, start: false });
    try {
      expect((await fetch(`${h.url}/.well-known/jwks.json`)).status).toBe(503);
      expect((await fetch(`${h.url}/introspect`, { method: "POST" })).status).toBe(503);
      expect((await fetch(`${h.url}/v1/release`, { method: "POST" })).status).toBe(503);
      expect((await fetch(`${h.url}/.well-known/openid-configuration`)).status).toBe(200);
    } finally {
      await h.close();
    }
  });
});
