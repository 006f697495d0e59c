/**
 * A local stand-in for GitHub's Actions OIDC issuer: an HTTP server on an
 * ephemeral port with its own RSA key pair, serving its JWKS where GitHub
 * does (`/.well-known/jwks`) and a discovery document, counting every request,
 * and minting ID tokens with GitHub's claim set.
 */
import { generateKeyPairSync, type KeyObject, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { calculateJwkThumbprint, SignJWT } from "jose";

export interface SigningPair {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicJwk: Record<string, unknown>;
}

export interface IdTokenOptions {
  /** Claims replacing (or, when undefined, removing) the defaults. */
  readonly claims?: Record<string, unknown>;
  /** Header fields added to `{ alg: RS256, typ: JWT, kid }`. */
  readonly header?: Record<string, unknown>;
  /** Sign with this key instead of the issuer's current one. */
  readonly key?: SigningPair;
  /** Seconds from now. */
  readonly expiresIn?: number;
  readonly issuedAt?: Date;
}

export interface OidcIssuer {
  /** The issuer URL, as GitHub's `https://token.actions.githubusercontent.com`. */
  readonly url: string;
  /** Paths of every request received, in order. */
  readonly requests: string[];
  jwksFetches(): number;
  /** The key pair tokens are signed with now. */
  current(): SigningPair;
  /** A new key pair; the JWKS serves it (and keeps the old one unless `dropOld`). */
  rotate(options?: { dropOld?: boolean }): Promise<SigningPair>;
  /** GitHub's claims for a workflow run of `acme/app`, audience `audience`. */
  claims(audience: string, overrides?: Record<string, unknown>): Record<string, unknown>;
  idToken(audience: string, options?: IdTokenOptions): Promise<string>;
  close(): Promise<void>;
}

export async function newSigningPair(): Promise<SigningPair> {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = publicKey.export({ format: "jwk" }) as { n: string; e: string };
  const kid = await calculateJwkThumbprint({ kty: "RSA", n: jwk.n, e: jwk.e });
  return {
    kid,
    privateKey,
    publicKey,
    publicJwk: { kty: "RSA", n: jwk.n, e: jwk.e, kid, alg: "RS256", use: "sig" },
  };
}

export async function startOidcIssuer(): Promise<OidcIssuer> {
  let keys: SigningPair[] = [await newSigningPair()];
  const requests: string[] = [];
  const server: Server = createServer((request, response) => {
    requests.push(request.url ?? "");
    if (request.url === "/.well-known/jwks") {
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ keys: keys.map((k) => k.publicJwk) }));
      return;
    }
    if (request.url === "/.well-known/openid-configuration") {
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ issuer: url, jwks_uri: `${url}/.well-known/jwks` }));
      return;
    }
    response.statusCode = 404;
    response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const claims = (audience: string, overrides: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const base: Record<string, unknown> = {
      jti: randomUUID(),
      sub: "repo:acme/app:pull_request",
      aud: audience,
      ref: "refs/pull/7/merge",
      sha: "a".repeat(40),
      repository: "acme/app",
      repository_owner: "acme",
      repository_owner_id: "1001",
      repository_visibility: "private",
      repository_id: "2002",
      run_id: "3003",
      run_number: "17",
      run_attempt: "1",
      runner_environment: "github-hosted",
      actor_id: "4004",
      actor: "octocat",
      workflow: "deploy",
      head_ref: "feature",
      base_ref: "main",
      event_name: "pull_request",
      ref_protected: "false",
      ref_type: "branch",
      workflow_ref: "acme/app/.github/workflows/deploy.yml@refs/pull/7/merge",
      workflow_sha: "a".repeat(40),
      job_workflow_ref: "acme/app/.github/workflows/deploy.yml@refs/pull/7/merge",
      job_workflow_sha: "a".repeat(40),
      iss: url,
      nbf: now - 5,
      iat: now,
      exp: now + 300,
    };
    for (const [key, value] of Object.entries(overrides)) {
      if (value === undefined) delete base[key];
      else base[key] = value;
    }
    return base;
  };

  return {
    url,
    requests,
    jwksFetches: () => requests.filter((r) => r === "/.well-known/jwks").length,
    current: () => keys[keys.length - 1] as SigningPair,
    async rotate(options = {}) {
      const next = await newSigningPair();
      keys = options.dropOld ? [next] : [...keys, next];
      return next;
    },
    claims,
    async idToken(audience, options = {}) {
      const key = options.key ?? (keys[keys.length - 1] as SigningPair);
      const overrides = { ...options.claims };
      if (options.expiresIn !== undefined) {
        overrides.exp = Math.floor(Date.now() / 1000) + options.expiresIn;
      }
      if (options.issuedAt) overrides.iat = Math.floor(options.issuedAt.getTime() / 1000);
      return new SignJWT(claims(audience, overrides))
        .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: key.kid, ...options.header })
        .sign(key.privateKey);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
