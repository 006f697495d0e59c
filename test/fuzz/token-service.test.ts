/**
 * The token service's doors with bad credentials: ID tokens at the exchange
 * (garbage, JWT-shaped, badly signed, and signed by the trusted issuer with
 * claims a run of the ticket would never have), GitHub tokens at
 * `/v1/token`, hallpass tokens at `/introspect` and `/v1/release`, and odd
 * bodies, content types and raw bytes everywhere. No answer is a 5xx or
 * shows the server's insides, no token is minted from a credential that
 * should not mint, and the server keeps answering.
 */
import { createHmac, generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Secret } from "#src/secret.js";
import { primaryBackend } from "../support/db.js";
import { type ExchangeWorld, RESOURCE, startExchangeWorld } from "../support/exchange.js";
import {
  anyJson,
  anyText,
  expectCleanAnswer,
  headerText,
  mutated,
  runs,
  watchUnhandled,
} from "../support/fuzz.js";
import { rawRequest } from "../support/raw-http.js";
import { OIDC_AUDIENCE } from "../support/token-service.js";

const INTROSPECTION_SECRET = "payments-introspection-secret";
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const b64url = (value: unknown) =>
  Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** What a body can be: JSON of any shape, a near-valid request, or text under any content type. */
const body = fc.oneof(
  fc.record({ json: fc.oneof(anyJson, fc.constant({ resource: RESOURCE })) }),
  fc.record({
    json: fc.record(
      {
        resource: fc.oneof(fc.constant(RESOURCE), anyJson),
        scopes: fc.oneof(fc.constant(["read"]), anyJson),
        ticket: fc.oneof(fc.integer(), fc.constant(2 ** 31), anyJson),
        extra: anyJson,
      },
      { requiredKeys: [] },
    ),
  }),
  fc.record({
    text: anyText(300),
    type: fc.constantFrom(
      "application/json",
      "application/json; charset=utf-16",
      "application/x-www-form-urlencoded",
      "text/plain",
      "multipart/form-data; boundary=x",
      "",
    ),
  }),
);

type Body = { json: unknown } | { text: string; type: string };

/** Mostly `good`, now and then any body: so most requests get as far as the credential. */
const usually = (good: fc.Arbitrary<Body>) =>
  fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: body as fc.Arbitrary<Body> });
const exchangeBody: fc.Arbitrary<Body> = fc.constantFrom(
  { json: { resource: RESOURCE } },
  { json: { resource: RESOURCE, scopes: ["read"] } },
);

/** `{json}` or `{text, type}` as fetch's init. */
function requestInit(b: Body, authorization: string | null): RequestInit {
  const headers: Record<string, string> = {};
  if (authorization !== null) headers.authorization = authorization;
  if ("json" in b) {
    headers["content-type"] = "application/json";
    return { method: "POST", headers, body: JSON.stringify(b.json) ?? "null" };
  }
  if (b.type !== "") headers["content-type"] = b.type;
  return { method: "POST", headers, body: b.text };
}

describe("the token service's doors", () => {
  let w: ExchangeWorld;
  let prNumber: number;
  let grantId: string;
  /** A live hallpass token of the grant: fuzzing must leave it live. */
  let liveToken: string;
  const unhandled = watchUnhandled();
  const foreignKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;

  beforeAll(async () => {
    w = await startExchangeWorld(primaryBackend, {
      secrets: { [RESOURCE]: new Secret(INTROSPECTION_SECRET) },
    });
    const pr = await w.prGrant();
    prNumber = pr.number;
    grantId = pr.grantId;
    liveToken = (await w.h.service().mint({ grantId, subject: "github:alice", channel: "cli" }))
      .token;
  });
  afterAll(async () => {
    unhandled.stop();
    await w?.close();
  });

  const tokenCount = async () =>
    (await w.h.db.query<{ n: number }>("SELECT count(*)::int AS n FROM tokens")).rows[0]?.n ?? 0;

  async function post(path: string, init: RequestInit) {
    const response = await fetch(`${w.h.url}${path}`, init);
    return { status: response.status, text: await response.text() };
  }

  /** The claims of a run of the grant's pull request, which would be exchanged. */
  const goodClaims = () => w.pullRequestRun(prNumber);

  /**
   * ID tokens that must never mint: not JWTs, JWTs with any header and
   * payload unsigned or signed by a stranger, and ones the trusted issuer
   * signed for a run of another repository, commit, event or audience.
   */
  const refusedIdToken = fc.oneof(
    anyText(200),
    fc
      .tuple(anyJson, anyJson, anyText(40))
      .map(([header, payload, sig]) => `${b64url(header)}.${b64url(payload)}.${b64url(sig)}`),
    fc
      .tuple(
        fc.constantFrom("none", "HS256", "RS512", "ES256", "PS256", "RS256"),
        fc.constantFrom(undefined, "JWT", "at+jwt", 1),
        fc.option(fc.constantFrom("missing-kid", "", "../../etc/passwd")),
      )
      .map(([alg, typ, kid]) => ({ alg, typ, kid })),
    fc.record({
      claim: fc.constantFrom(
        "aud",
        "iss",
        "exp",
        "iat",
        "repository_id",
        "repository_owner_id",
        "sha",
        "ref",
        "event_name",
        "jti",
      ),
      value: fc.oneof(
        anyJson,
        fc.constantFrom(
          "https://hallpass.example/x",
          "push",
          "pull_request_target",
          "refs/heads/main",
          "b".repeat(40),
          "1",
          0,
          -1,
          1_000,
        ),
      ),
    }),
  );

  async function idTokenOf(arb: unknown): Promise<string> {
    if (typeof arb === "string") return arb;
    if (arb !== null && typeof arb === "object" && "alg" in arb) {
      // A well-formed JWT of good claims, signed the wrong way (or not at all).
      const { alg, typ, kid } = arb as { alg: string; typ: unknown; kid: string | null };
      const header = { alg, ...(typ === undefined ? {} : { typ }), ...(kid ? { kid } : {}) };
      const payload = b64url(w.issuer.claims(OIDC_AUDIENCE, goodClaims()));
      const signingInput = `${b64url(header)}.${payload}`;
      if (alg === "RS256") {
        return new SignJWT(w.issuer.claims(OIDC_AUDIENCE, goodClaims()))
          .setProtectedHeader({ alg: "RS256", kid: kid ?? w.issuer.current().kid })
          .sign(foreignKey);
      }
      const secret = JSON.stringify(w.issuer.current().publicJwk);
      const sig = alg === "none" ? "" : createHmac("sha256", secret).update(signingInput).digest();
      return `${signingInput}.${Buffer.from(sig).toString("base64url")}`;
    }
    const { claim, value } = arb as { claim: string; value: unknown };
    const claims: Record<string, unknown> = { ...goodClaims() };
    const original = claim in claims ? claims[claim] : w.issuer.claims("x")[claim];
    const now = Math.floor(Date.now() / 1000);
    if (claim === "jti") {
      // The same ID token twice: the second use is a replay.
      const token = await w.idToken({ ...claims, jti: `fuzz-${now}-${Math.random()}` });
      await fetch(
        `${w.h.url}/v1/exchange`,
        requestInit({ json: { resource: RESOURCE } }, `Bearer ${token}`),
      );
      return token;
    }
    // A value that still means the original is not a wrong claim; a past or odd exp is.
    // (Ids are decimal strings: the number 2002 is refused, never read as "2002".)
    const same =
      value === original ||
      (claim === "aud" && Array.isArray(value) && value.includes(original)) ||
      (claim === "exp" && typeof value === "number" && value > now - 60) ||
      (claim === "iat" && typeof value === "number" && value > now - 3_700 && value <= now + 60);
    claims[claim] = same ? `${String(original)}x` : value;
    return w.idToken(claims);
  }

  it("never mints for an ID token that is not a good one of the ticket's run", async () => {
    await fc.assert(
      fc.asyncProperty(
        refusedIdToken,
        usually(exchangeBody),
        headerText(10),
        async (arb, b, scheme) => {
          const token = await idTokenOf(arb);
          const before = await tokenCount();
          const authorization = scheme.startsWith("B") ? `Bearer ${token}` : `${scheme}${token}`;
          if (/[^\t\x20-\x7e\x80-\xff]/.test(authorization)) return;
          const answer = await post("/v1/exchange", requestInit(b, authorization));
          expectCleanAnswer(answer.status, answer.text);
          expect(answer.status, answer.text).not.toBe(200);
          expect(await tokenCount()).toBe(before);
        },
      ),
      { numRuns: runs(60) },
    );
    expect(unhandled.seen).toEqual([]);
  });

  it("answers any claims the trusted issuer signs without a 5xx, minting only for its run", async () => {
    const claimValue = fc.oneof(
      anyJson,
      fc.constantFrom("9999999999999999", "2147483648", "0", "", "x".repeat(2_000)),
    );
    const claimName = fc.constantFrom(
      ...Object.keys(w.issuer.claims("x")),
      "environment",
      "enterprise_id",
    );
    await fc.assert(
      fc.asyncProperty(fc.dictionary(claimName, claimValue, { maxKeys: 3 }), async (changes) => {
        const before = await tokenCount();
        const token = await w.idToken({ ...goodClaims(), ...changes });
        const answer = await post(
          "/v1/exchange",
          requestInit({ json: { resource: RESOURCE } }, `Bearer ${token}`),
        );
        expectCleanAnswer(answer.status, answer.text);
        expect(await tokenCount()).toBe(before + (answer.status === 200 ? 1 : 0));
      }),
      { numRuns: runs(60) },
    );
  });

  // Found while fuzzing the claims: claims the ID token schema accepted but
  // the mint's input refused came back as a 400 BAD_REQUEST, unaudited.
  it("refuses verified claims a token cannot carry as OIDC_CLAIMS", async () => {
    for (const claims of [
      { run_attempt: "2147483648" },
      { actor: "a".repeat(300) },
      { workflow_ref: `${w.repo.fullName}/.github/workflows/x.yml@refs/pull/1/merge\u0007` },
      { repository_owner: "acme\u0000" },
    ]) {
      const token = await w.idToken({ ...goodClaims(), ...claims });
      const answer = await post(
        "/v1/exchange",
        requestInit({ json: { resource: RESOURCE } }, `Bearer ${token}`),
      );
      expect(answer.status, JSON.stringify(claims)).toBe(401);
      expect(JSON.parse(answer.text)).toMatchObject({ error: "OIDC_CLAIMS" });
      const { rows } = await w.h.db.query<{ body: string }>(
        "SELECT body FROM audit_events WHERE kind = 'token.refused' ORDER BY seq DESC LIMIT 1",
      );
      expect(JSON.parse(rows[0]?.body ?? "{}").data?.code, "audited").toBe("OIDC_CLAIMS");
    }
  });

  it("never mints a person's token for a GitHub token that holds no grant", async () => {
    const before = await tokenCount();
    const personBody: fc.Arbitrary<Body> = fc.constant({
      json: { ticket: `${w.repo.fullName}#${prNumber}` },
    });
    const ticket = fc.oneof(
      fc.constant(`${w.repo.fullName}#${prNumber}`),
      fc.constantFrom("acme/app#0", "acme/app#99999999999", "a/b#1", "#1", "acme/app#-1"),
      anyJson,
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          headerText(80),
          anyText(80).map((t) => `Bearer ${t}`),
          mutated(w.sim.userToken("mallory"), 2).map((t) => `Bearer ${t}`),
          fc.constant(`Bearer ${w.sim.userToken("mallory")}`),
        ),
        fc.oneof(
          usually(personBody),
          ticket.map((t) => ({ json: { ticket: t } })),
        ),
        async (authorization, b) => {
          if (/[^\t\x20-\x7e\x80-\xff]/.test(authorization)) return;
          const answer = await post("/v1/token", requestInit(b, authorization));
          expectCleanAnswer(answer.status, answer.text);
          expect(answer.status, answer.text).not.toBe(200);
        },
      ),
      { numRuns: runs(50) },
    );
    expect(await tokenCount()).toBe(before);
  });

  it("says inactive to every token but the live one, and refuses bad callers", async () => {
    const token = fc.oneof(
      anyText(200),
      mutated(liveToken, 3).filter((t) => t !== liveToken),
      fc.constantFrom(`${liveToken} `, `${liveToken}\n`, `${liveToken}=`),
    );
    const authorization = fc.oneof(
      { weight: 4, arbitrary: fc.constant(basic(RESOURCE, INTROSPECTION_SECRET)) },
      fc.constant(basic("ledger-api", INTROSPECTION_SECRET)),
      fc.tuple(anyText(20), anyText(20)).map(([u, p]) => basic(u, p)),
      headerText(60),
      fc.constantFrom("Basic", "Basic ====", `Basic ${"A".repeat(20_000)}`, "basic Og=="),
    );
    const form = fc.oneof(
      {
        weight: 4,
        arbitrary: token.map((t) => ({
          text: new URLSearchParams({ token: t }).toString(),
          type: "application/x-www-form-urlencoded",
        })),
      },
      token.map((t) => ({
        text: `token=${t}&token=${t}`,
        type: "application/x-www-form-urlencoded",
      })),
      body,
    );
    await fc.assert(
      fc.asyncProperty(authorization, form, async (auth, b) => {
        const answer = await post("/introspect", requestInit(b, auth));
        expectCleanAnswer(answer.status, answer.text);
        if (answer.status === 200) expect(JSON.parse(answer.text)).toEqual({ active: false });
      }),
      { numRuns: runs(60) },
    );
  });

  // Found by fuzzing introspection: jose skips whitespace when it decodes the
  // signature, so the live token with a space or line break in it verified too.
  it("says inactive to the live token with whitespace in its signature", async () => {
    const [header, payload, signature] = liveToken.split(".") as [string, string, string];
    for (const variant of [
      `${liveToken} `,
      `${liveToken}\n`,
      `${header}.${payload}.${signature.slice(0, 8)} ${signature.slice(8)}`,
      `${header}.${payload}.${signature.slice(0, 8)}\t${signature.slice(8)}`,
    ]) {
      const answer = await post("/introspect", {
        method: "POST",
        headers: {
          authorization: basic(RESOURCE, INTROSPECTION_SECRET),
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ token: variant }).toString(),
      });
      expect(JSON.parse(answer.text), JSON.stringify(variant)).toEqual({ active: false });
    }
  });

  // Found by fuzzing introspection: the harness looked secrets up on a plain
  // object, so `__proto__:` or `toString:` as the caller answered 500.
  it("refuses callers named after Object.prototype's members", async () => {
    for (const name of ["__proto__", "toString", "constructor", "hasOwnProperty"]) {
      const answer = await post("/introspect", {
        method: "POST",
        headers: {
          authorization: basic(name, ""),
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ token: liveToken }).toString(),
      });
      expect(answer.status, name).toBe(401);
      expect(JSON.parse(answer.text)).toMatchObject({ error: "INVALID_CLIENT" });
    }
  });

  it("releases nothing for a token it did not issue, and the live token stays live", async () => {
    const token = fc.oneof(
      anyText(200),
      mutated(liveToken, 3).filter((t) => t !== liveToken),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          token.map((t) => `Bearer ${t}`),
          headerText(60),
        ),
        async (authorization) => {
          if (
            /[^\t\x20-\x7e\x80-\xff]/.test(authorization) ||
            authorization === `Bearer ${liveToken}`
          )
            return;
          const answer = await post("/v1/release", { method: "POST", headers: { authorization } });
          expectCleanAnswer(answer.status, answer.text);
        },
      ),
      { numRuns: runs(50) },
    );
    const answer = await post("/introspect", {
      method: "POST",
      headers: {
        authorization: basic(RESOURCE, INTROSPECTION_SECRET),
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ token: liveToken }).toString(),
    });
    expect(JSON.parse(answer.text)).toMatchObject({ active: true });
  });

  it("answers raw bytes, odd methods and paths with a clean 4xx, and keeps answering", async () => {
    const target = fc.oneof(
      fc.constantFrom(
        "/v1/exchange",
        "/introspect",
        "/v1/token",
        "/v1/release",
        "/.well-known/jwks.json",
      ),
      anyText(60).map((t) => `/${encodeURIComponent(t.toWellFormed())}`),
      fc.constantFrom("*", "http://x/v1/exchange", "/v1/exchange?x=%zz", "/%", "//"),
    );
    const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW", "");
    const raw = fc.oneof(
      fc
        .tuple(
          method,
          target,
          fc.array(fc.tuple(headerText(20), headerText(40)), { maxLength: 4 }),
          anyText(100),
        )
        .map(
          ([m, t, headers, text]) =>
            `${m} ${t} HTTP/1.1\r\nHost: x\r\n${headers.map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
        ),
      anyText(300),
    );
    await fc.assert(
      fc.asyncProperty(raw, async (request) => {
        const answer = await rawRequest(w.h.url, request, 100);
        if (answer === null) return;
        expectCleanAnswer(answer.status, answer.body);
      }),
      { numRuns: runs(60) },
    );
    expect((await fetch(`${w.h.url}/healthz`)).status).toBe(200);
    expect(unhandled.seen).toEqual([]);
  });
});
