/**
 * docs/examples/verify-tokens, as an API owner runs it: `node server.mjs` in
 * its own process, pointed at a real hallpass token service (test database,
 * keys, JWKS, introspection), called with tokens the service minted.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";
import fc from "fast-check";
import { decodeProtectedHeader, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileScope, matchAnyScope, pathSegments, type ScopePattern } from "#src/rules/scopes.js";
import { Secret } from "#src/secret.js";
import { listSigningKeys } from "#src/store/keys.js";
import { openSigningKey } from "#src/tokens/keys.js";
import { primaryBackend } from "../support/db.js";
import { endGrant, insertGrant } from "../support/grants.js";
import { startTokenHarness, type TokenHarness } from "../support/token-service.js";

const EXAMPLE = path.resolve(import.meta.dirname, "../../docs/examples/verify-tokens");
const RESOURCE = "payments-api";
const AUDIENCE = "acme/payments/payments-api";
const SECRET = "payments-introspection-secret";

interface Permissions {
  requestSegments(path: string): string[] | null;
  allows(permissions: unknown, method: string, segments: string[]): boolean;
}

/** The example API in its own Node.js process; resolves once it listens. */
async function startExample(
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess; stderr: () => string }> {
  const child = spawn(process.execPath, [path.join(EXAMPLE, "server.mjs")], {
    cwd: EXAMPLE,
    env: { PATH: process.env.PATH ?? "", PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on("data", (chunk) => {
      stdout += chunk;
      const listening = /listening on (http:\/\/[\d.]+:\d+)/.exec(stdout)?.[1];
      if (listening) resolve(listening);
    });
    child.on("exit", (code) => reject(new Error(`the example exited (${code}): ${stderr}`)));
  });
  return { url, child, stderr: () => stderr };
}

describe("the verify-tokens example against a hallpass server", () => {
  let h: TokenHarness;
  let api: Awaited<ReturnType<typeof startExample>>;
  beforeAll(async () => {
    h = await startTokenHarness(primaryBackend, { secrets: { [RESOURCE]: new Secret(SECRET) } });
    api = await startExample({
      HALLPASS_URL: h.url,
      HALLPASS_AUDIENCE: AUDIENCE,
      HALLPASS_RESOURCE: RESOURCE,
      HALLPASS_INTROSPECTION_SECRET: SECRET,
    });
  });
  afterAll(async () => {
    if (api) {
      const exited = new Promise((resolve) => api.child.on("exit", resolve));
      api.child.kill("SIGTERM");
      await exited;
    }
    await h?.close();
  });

  const grant = (options: Parameters<typeof insertGrant>[1] = {}) =>
    insertGrant(h.db, {
      audience: AUDIENCE,
      permissions: ["GET /v1/**", "POST /v1/refunds"],
      startsAt: new Date(h.clock.now().getTime() - 3_600_000),
      endsAt: new Date(h.clock.now().getTime() + 3_600_000),
      ...options,
    });
  const mint = async (grantId: string) =>
    (
      await h
        .service()
        .mint({ grantId, subject: "repo:acme@1/payments@2:run:3:1", channel: "actions" })
    ).token;
  /** The target sent as written: fetch, or a URL, would resolve `..` and `%2e%2e` first. */
  const call = (target: string, token: string | null, method = "GET") =>
    new Promise<{ status: number; challenge: string | null; body: Record<string, unknown> | null }>(
      (resolve, reject) => {
        const { hostname, port } = new URL(api.url);
        const headers = token === null ? {} : { authorization: `Bearer ${token}` };
        const request = httpRequest(
          { host: hostname, port, path: target, method, headers },
          (response) => {
            let text = "";
            response.on("data", (chunk) => {
              text += chunk;
            });
            response.on("end", () =>
              resolve({
                status: response.statusCode ?? 0,
                challenge: response.headers["www-authenticate"] ?? null,
                body: text ? (JSON.parse(text) as Record<string, unknown>) : null,
              }),
            );
          },
        );
        request.on("error", reject);
        request.end();
      },
    );

  it("serves a request within the token's permissions", async () => {
    const token = await mint((await grant()).grantId);
    expect(await call("/v1/charges/ch_1?expand=refunds", token)).toMatchObject({
      status: 200,
      body: {
        method: "GET",
        path: "/v1/charges/ch_1",
        sub: "repo:acme@1/payments@2:run:3:1",
        scope: "read refund",
        ticket: expect.stringMatching(/\/acme\/payments\/pull\/12$/),
      },
    });
    expect((await call("/v1", token)).status).toBe(200);
    expect((await call("/v1/charges/", token)).status).toBe(200);
    expect((await call("/v1/refunds", token, "POST")).status).toBe(200);
  });

  it("refuses what the permissions do not cover (403), and paths it cannot read one way (400)", async () => {
    const token = await mint((await grant()).grantId);
    for (const [method, target] of [
      ["DELETE", "/v1/charges/ch_1"],
      ["POST", "/v1/refunds/re_1"],
      ["HEAD", "/v1/charges"],
      ["GET", "/v2/charges"],
      ["GET", "/"],
    ] as const) {
      const answer = await call(target, token, method);
      expect(answer.status, `${method} ${target}`).toBe(403);
      if (method !== "HEAD") expect(answer.body).toMatchObject({ error: "insufficient_scope" });
      expect(answer.challenge).toMatch(/^Bearer realm="payments-api", error="insufficient_scope"/);
    }
    for (const target of ["/v1/../admin", "/v1/%2e%2e/admin", "/v1//charges", "/v1/charges;x"]) {
      expect((await call(target, token)).status, target).toBe(400);
    }
  });

  it("refuses a token for another API, a forged one and an expired one (401)", async () => {
    const reason = async (token: string) => {
      const answer = await call("/v1/charges", token);
      expect(answer.status).toBe(401);
      expect(answer.challenge).toMatch(/^Bearer realm="payments-api", error="invalid_token"/);
      return answer.body?.error_description;
    };
    // Another API's token.
    const ledger = await mint((await grant({ audience: "acme/ledger/ledger-api" })).grantId);
    expect(await reason(ledger)).toBe("token not accepted (ERR_JWT_CLAIM_VALIDATION_FAILED)");

    // A real token with its permissions widened, and the same claims signed by another key.
    const real = await mint((await grant({ permissions: ["GET /v1/charges"] })).grantId);
    const [header, payload, signature] = real.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    const widened = Buffer.from(
      JSON.stringify({ ...claims, hallpass: { ...claims.hallpass, permissions: ["* /**"] } }),
    ).toString("base64url");
    expect(await reason(`${header}.${widened}.${signature}`)).toBe(
      "token not accepted (ERR_JWS_SIGNATURE_VERIFICATION_FAILED)",
    );
    const forged = await new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", kid: decodeProtectedHeader(real).kid, typ: "at+jwt" })
      .sign(generateKeyPairSync("ed25519").privateKey);
    expect(await reason(forged)).toBe("token not accepted (ERR_JWS_SIGNATURE_VERIFICATION_FAILED)");

    // Minted two minutes ago, for one minute.
    const { grantId } = await grant({ tokenTtlS: 60 });
    h.clock.advance(-120_000);
    const expired = await mint(grantId).finally(() => h.clock.advance(120_000));
    expect(await reason(expired)).toBe("token not accepted (ERR_JWT_EXPIRED)");

    expect(await call("/v1/charges", null)).toMatchObject({
      status: 401,
      challenge: 'Bearer realm="payments-api"',
    });
  });

  it("refuses a JWT signed by hallpass's own key that is not an access token (typ) (401)", async () => {
    const real = await mint((await grant()).grantId);
    const { kid } = decodeProtectedHeader(real);
    const active = (await listSigningKeys(h.db)).find((k) => k.kid === kid);
    if (!active || !h.config.masterKey) throw new Error("the token's signing key is not at hand");
    const key = openSigningKey(
      { key: h.config.masterKey, file: null },
      active.kid,
      active.privateSealed,
    );
    const claims = JSON.parse(Buffer.from(real.split(".")[1] ?? "", "base64url").toString());
    // The same claims and key: an ID token's typ, and none at all.
    for (const header of [{ typ: "JWT" }, {}]) {
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: "EdDSA", kid, ...header })
        .sign(key);
      expect(await call("/v1/charges", token), JSON.stringify(header)).toMatchObject({
        status: 401,
        challenge: expect.stringMatching(/^Bearer realm="payments-api", error="invalid_token"/),
        body: { error_description: "token not accepted (ERR_JWT_CLAIM_VALIDATION_FAILED)" },
      });
    }
    expect((await call("/v1/charges", real)).status).toBe(200);
  });

  it("refuses a token at once when its grant is revoked or the token given back", async () => {
    const { grantId } = await grant();
    const token = await mint(grantId);
    expect((await call("/v1/charges", token)).status).toBe(200);
    await endGrant(h.db, grantId, "revoked");
    // The token still verifies offline; introspection says it is over.
    expect(await call("/v1/charges", token)).toMatchObject({
      status: 401,
      body: { error_description: "token no longer active (revoked, released or its grant ended)" },
    });

    const released = await mint((await grant()).grantId);
    expect((await call("/v1/charges", released)).status).toBe(200);
    const release = await fetch(`${h.url}/v1/release`, {
      method: "POST",
      headers: { authorization: `Bearer ${released}` },
    });
    expect(release.status).toBe(200);
    expect((await call("/v1/charges", released)).status).toBe(401);
    expect(api.stderr()).toBe("");
  });
});

describe("the example's permission check", () => {
  let example: Permissions;
  beforeAll(async () => {
    example = (await import(
      pathToFileURL(path.join(EXAMPLE, "permissions.mjs")).href
    )) as Permissions;
  });
  const compiled = (permissions: string[]): ScopePattern[] =>
    permissions.flatMap((text) => {
      const result = compileScope(text);
      return result.ok ? [result.pattern] : [];
    });

  it("matches exactly as the server's scopes do", () => {
    const literal = fc.constantFrom("v1", "charges", "ch_1", "refunds");
    const patternSegment = fc.oneof(literal, fc.constantFrom("*", "**"));
    const permission = fc
      .tuple(
        fc.constantFrom("GET", "POST", "HEAD", "DELETE", "*"),
        fc.array(patternSegment, { maxLength: 5 }),
      )
      .map(([method, segments]) => `${method} /${segments.join("/")}`);
    fc.assert(
      fc.property(
        fc.array(permission, { maxLength: 3 }),
        fc.constantFrom("GET", "POST", "HEAD", "DELETE", "PUT"),
        fc.array(literal, { maxLength: 6 }),
        (permissions, method, segments) => {
          const requestPath = `/${segments.join("/")}`;
          const read = example.requestSegments(requestPath);
          expect(read).toEqual(segments);
          expect(example.allows(permissions, method, read ?? [])).toBe(
            matchAnyScope(compiled(permissions), method, requestPath),
          );
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("never reads a path the server's matcher would refuse, nor reads one differently", () => {
    const piece = fc.constantFrom(
      "v1",
      "a",
      "/",
      ".",
      "..",
      "%2e",
      "%2F",
      ";",
      "\\",
      "*",
      "",
      "~x",
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
        const requestPath = `/${pieces.join("")}`;
        const read = example.requestSegments(requestPath);
        if (read === null) return;
        const trimmed =
          requestPath.length > 1 && requestPath.endsWith("/")
            ? requestPath.slice(0, -1)
            : requestPath;
        expect(pathSegments(trimmed)).toEqual(read);
      }),
      { numRuns: 2_000 },
    );
  });

  it("allows nothing with permissions it does not understand", () => {
    for (const permission of ["GET /v1*", "get /v1", "GET v1", "GET /v1//x", "FETCH /v1", 7]) {
      expect(example.allows([permission], "GET", ["v1"]), String(permission)).toBe(false);
    }
    expect(example.allows("GET /v1", "GET", ["v1"])).toBe(false);
    expect(example.allows(["GET /v1"], "get", ["v1"])).toBe(false);
  });
});

describe("the example's package", () => {
  it("makes the documented `npm install` and `npm start` run server.mjs, with jose as its one dependency", async () => {
    const read = async (file: string) => JSON.parse(await readFile(file, "utf8"));
    const example = await read(path.join(EXAMPLE, "package.json"));
    const root = await read(path.resolve(EXAMPLE, "../../../package.json"));
    expect(example).toMatchObject({ type: "module", scripts: { start: "node server.mjs" } });
    expect(example.dependencies).toEqual({ jose: root.dependencies.jose });
    expect(example.devDependencies).toBeUndefined();
  });
});
