import { HallpassError } from "#src/errors.js";
import { Secret } from "#src/secret.js";
import type { Db } from "#src/store/db.js";
import { tokenStanding } from "#src/store/tokens.js";
import type { HallpassClaim } from "#src/tokens/claims.js";
import type { AccessTokenVerifier } from "#src/tokens/verify.js";

/** The introspection secret of a resource, or null when it has none (or does not exist). */
export type IntrospectionSecrets = (resource: string) => Secret | null;

export type IntrospectionResponse =
  | { readonly active: false }
  | {
      readonly active: true;
      readonly scope: string;
      readonly client_id: string;
      readonly sub: string;
      readonly aud: string;
      readonly iss: string;
      readonly exp: number;
      readonly iat: number;
      readonly nbf: number;
      readonly jti: string;
      readonly token_type: "Bearer";
      readonly act?: { readonly sub: string };
      readonly hallpass: HallpassClaim;
    };

export const INACTIVE: IntrospectionResponse = Object.freeze({ active: false });

/** Compared against when the resource is unknown, so that takes as long as a wrong secret. */
const NO_SECRET = new Secret(crypto.randomUUID());

/**
 * Authenticates an introspection caller by HTTP Basic (RFC 7662 §2.1, RFC
 * 6749 §2.3.1): user = resource name, password = its introspection secret,
 * both form-urlencoded. The secret is compared in constant time.
 *
 * @returns the resource the caller is
 * @throws INVALID_CLIENT (401)
 */
export function authenticateResource(
  authorization: string | undefined,
  secrets: IntrospectionSecrets,
): string {
  const match = /^Basic ([A-Za-z0-9+/]+={0,2})$/i.exec(authorization?.trim() ?? "");
  if (!match?.[1]) {
    throw new HallpassError(
      "INVALID_CLIENT",
      "authenticate with HTTP Basic: resource name and its introspection secret",
    );
  }
  const decoded = Buffer.from(match[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  let resource: string;
  let secret: string;
  try {
    if (colon < 1) throw new URIError("no resource name");
    resource = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " "));
    secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, " "));
  } catch {
    throw new HallpassError("INVALID_CLIENT", "malformed HTTP Basic credentials");
  }
  const expected = secrets(resource);
  const matches = (expected ?? NO_SECRET).equals(secret);
  if (!expected || !matches) {
    throw new HallpassError("INVALID_CLIENT", "unknown resource or wrong introspection secret");
  }
  return resource;
}

export interface IntrospectDeps {
  readonly db: Db;
  readonly verifier: AccessTokenVerifier;
  readonly now?: () => Date;
}

/**
 * RFC 7662 introspection for a resource: active only when the token verifies
 * (signature, issuer, time), was issued for this resource, has not been
 * released, its grant is still active and inside its window, and its key is
 * still published. Grant state is read from the database on every call: a
 * revocation shows on the very next request. Anything else is exactly
 * `{"active": false}`, saying nothing about why.
 */
export async function introspect(
  deps: IntrospectDeps,
  resource: string,
  token: string,
): Promise<IntrospectionResponse> {
  const now = (deps.now ?? (() => new Date()))();
  let claims: Awaited<ReturnType<AccessTokenVerifier["verify"]>>["claims"];
  try {
    ({ claims } = await deps.verifier.verify(token));
  } catch (error) {
    if (error instanceof HallpassError && error.code === "INVALID_TOKEN") return INACTIVE;
    throw error;
  }
  const standing = await tokenStanding(deps.db, claims.jti, now);
  if (
    !standing ||
    standing.releasedAt !== null ||
    standing.grantState !== "active" ||
    !standing.grantEndsAt ||
    standing.grantEndsAt <= now ||
    standing.expiresAt <= now ||
    !standing.keyPublished ||
    standing.resource !== resource ||
    standing.audience !== claims.aud ||
    claims.hallpass.resource !== resource
  ) {
    return INACTIVE;
  }
  return {
    active: true,
    scope: claims.scope,
    client_id: claims.client_id,
    sub: claims.sub,
    aud: claims.aud,
    iss: claims.iss,
    exp: claims.exp,
    iat: claims.iat,
    nbf: claims.nbf,
    jti: claims.jti,
    token_type: "Bearer",
    ...(claims.act ? { act: claims.act } : {}),
    hallpass: claims.hallpass,
  };
}
