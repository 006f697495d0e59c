import { createHash } from "node:crypto";
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from "jose";
import { z } from "zod";
import type { Config } from "#src/config.js";
import { type ErrorCode, HallpassError } from "#src/errors.js";
import type { Sql } from "#src/store/db.js";
import { recordOidcTokenUse } from "#src/store/oidc-uses.js";
import type { IdTokenUse } from "#src/store/tokens.js";

/** Where GitHub serves the issuer's keys (token.actions.githubusercontent.com/.well-known/jwks). */
export const GITHUB_JWKS_PATH = "/.well-known/jwks";

/** GitHub signs Actions ID tokens with RS256, and only that is accepted. */
const ALGORITHMS = ["RS256"];
const MAX_TOKEN_LENGTH = 16_384;
/** GitHub's ID tokens live minutes; an older `iat` is refused whatever `exp` says. */
const MAX_TOKEN_AGE_S = 60 * 60;

/** GitHub sends numeric ids as decimal strings; anything else is refused, never coerced. */
const numericId = z
  .string()
  .regex(/^[1-9][0-9]{0,15}$/, "must be a positive decimal id")
  .transform(Number)
  .refine(Number.isSafeInteger, "must be a safe integer");
const sha = z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, "must be a commit SHA");
/** Claims land in tokens and audit events: no control characters, bounded. */
const text = (max = 1024) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, "must not contain control characters");
/** `head_ref`/`base_ref`/`environment` are "" or absent when they do not apply. */
const optionalText = z
  .string()
  .max(1024)
  .optional()
  .transform((v) => (v === "" ? undefined : v));

/** The claims of a GitHub Actions OIDC ID token that hallpass relies on, parsed. */
export const actionsClaims = z.object({
  iss: z.string(),
  aud: z.union([z.string(), z.array(z.string())]),
  exp: z.number().int(),
  iat: z.number().int(),
  nbf: z.number().int().optional(),
  jti: z.string().min(1).max(256),
  sub: text(),
  repository: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/, "must be owner/name"),
  repository_id: numericId,
  repository_owner: text(100),
  repository_owner_id: numericId,
  repository_visibility: z.string().optional(),
  ref: text(),
  ref_type: z.string().max(32),
  ref_protected: z
    .enum(["true", "false"])
    .optional()
    .transform((v) => (v === undefined ? undefined : v === "true")),
  sha,
  event_name: text(),
  actor: text(255),
  actor_id: numericId,
  workflow: z.string().max(1024).optional(),
  workflow_ref: text(),
  workflow_sha: sha.optional(),
  job_workflow_ref: text(),
  job_workflow_sha: sha.optional(),
  run_id: numericId,
  run_number: numericId.optional(),
  run_attempt: numericId.refine((n) => n <= 2_147_483_647, "must fit a run attempt"),
  runner_environment: text(),
  environment: optionalText,
  head_ref: optionalText,
  base_ref: optionalText,
  enterprise: z.string().optional(),
  enterprise_id: numericId.optional(),
});
export type ActionsClaims = z.infer<typeof actionsClaims>;

export interface OidcVerifierOptions {
  /** The pinned issuer; its keys are fetched from `<issuer>/.well-known/jwks` and nowhere else. */
  readonly issuer: string;
  /** The only audience accepted: hallpass's own, never GitHub's default. */
  readonly audience: string;
  /** Leeway for `exp`, `nbf` and `iat`, in seconds. */
  readonly clockToleranceS?: number;
  /** Least time between two JWKS fetches caused by an unknown `kid`. */
  readonly cooldownMs?: number;
  /** JWKS refetched after this long even when every `kid` is known. */
  readonly cacheMaxAgeMs?: number;
  readonly timeoutMs?: number;
  readonly now?: () => Date;
}

export interface OidcVerifier {
  readonly issuer: string;
  readonly jwksUrl: URL;
  readonly clockToleranceS: number;
  /**
   * Verifies a GitHub Actions ID token: RS256 only, signed by a key of the
   * pinned issuer's JWKS, `iss` and `aud` exact, `exp`/`iat` present and
   * current (within the leeway), claims of the expected shapes.
   * Headers that name other keys (`jku`, `x5u`, `x5c`, `jwk`) are ignored.
   * Does not record the use: see `consumeIdToken`.
   *
   * @throws OIDC_* (401; OIDC_JWKS_UNAVAILABLE 503) saying which check failed, never echoing the token
   */
  verify(token: string): Promise<ActionsClaims>;
}

/** The verifier of `config.oidc`. */
export function oidcVerifierFor(
  config: Pick<Config, "oidc">,
  options: Omit<OidcVerifierOptions, "issuer" | "audience"> = {},
): OidcVerifier {
  return createOidcVerifier({ ...options, ...config.oidc });
}

/**
 * Builds a verifier. The JWKS is jose's `createRemoteJWKSet`: fetched on first
 * use, cached for `cacheMaxAgeMs`, refetched on an unknown `kid` only when the
 * last fetch is older than `cooldownMs` (concurrent misses share one fetch),
 * without following redirects.
 */
export function createOidcVerifier(options: OidcVerifierOptions): OidcVerifier {
  const issuer = options.issuer.replace(/\/+$/, "");
  const jwksUrl = new URL(`${issuer}${GITHUB_JWKS_PATH}`);
  const clockToleranceS = options.clockToleranceS ?? 30;
  const now = options.now ?? (() => new Date());
  const jwks = createRemoteJWKSet(jwksUrl, {
    cooldownDuration: options.cooldownMs ?? 30_000,
    cacheMaxAge: options.cacheMaxAgeMs ?? 10 * 60_000,
    timeoutDuration: options.timeoutMs ?? 5_000,
  });

  return {
    issuer,
    jwksUrl,
    clockToleranceS,
    async verify(token: string): Promise<ActionsClaims> {
      precheck(token, issuer);
      let payload: unknown;
      try {
        ({ payload } = await jwtVerify(token, jwks, {
          algorithms: ALGORITHMS,
          issuer,
          audience: options.audience,
          requiredClaims: ["exp", "iat", "jti", "sub"],
          clockTolerance: clockToleranceS,
          maxTokenAge: MAX_TOKEN_AGE_S,
          currentDate: now(),
        }));
      } catch (error) {
        throw fromJose(error);
      }
      const parsed = actionsClaims.safeParse(payload);
      if (!parsed.success) {
        const fields = [...new Set(parsed.error.issues.map((i) => i.path.join(".")))];
        throw oidcError("OIDC_CLAIMS", `claims missing or malformed: ${fields.join(", ")}`);
      }
      return parsed.data;
    },
  };
}

/**
 * Cheap checks before any key is looked up, so that a token that cannot be
 * GitHub's never causes a JWKS fetch: shape, algorithm, type, issuer.
 */
function precheck(token: string, issuer: string): void {
  if (
    typeof token !== "string" ||
    token.length > MAX_TOKEN_LENGTH ||
    !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)
  ) {
    throw oidcError("OIDC_MALFORMED", "not a compact JWT");
  }
  let header: ReturnType<typeof decodeProtectedHeader>;
  let claims: ReturnType<typeof decodeJwt>;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch {
    throw oidcError("OIDC_MALFORMED", "header or claims are not JSON objects");
  }
  if (typeof header.alg !== "string" || !ALGORITHMS.includes(header.alg)) {
    throw oidcError(
      "OIDC_ALGORITHM",
      `algorithm ${JSON.stringify(String(header.alg).slice(0, 16))} not allowed; GitHub signs with RS256`,
    );
  }
  const typ: unknown = header.typ;
  if (typ !== undefined && (typeof typ !== "string" || typ.toUpperCase() !== "JWT")) {
    throw oidcError("OIDC_TYPE", "header typ is not JWT: not an ID token");
  }
  if (claims.iss !== issuer) {
    throw oidcError("OIDC_ISSUER", `issuer is not the trusted one (${issuer})`);
  }
}

function fromJose(error: unknown): HallpassError {
  if (error instanceof errors.JWTExpired) {
    return error.claim === "iat"
      ? oidcError("OIDC_EXPIRED", `issued more than ${MAX_TOKEN_AGE_S} s ago`, error)
      : oidcError("OIDC_EXPIRED", "expired (exp)", error);
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === "missing") {
      return oidcError("OIDC_CLAIMS", `required claim "${error.claim}" missing`, error);
    }
    switch (error.claim) {
      case "aud":
        return oidcError("OIDC_AUDIENCE", "audience is not this hallpass server's", error);
      case "iss":
        return oidcError("OIDC_ISSUER", "issuer is not the trusted one", error);
      case "nbf":
        return oidcError("OIDC_NOT_YET_VALID", "not valid yet (nbf)", error);
      case "iat":
        return oidcError("OIDC_NOT_YET_VALID", "issued in the future (iat)", error);
      default:
        return oidcError("OIDC_CLAIMS", `claim "${error.claim}" invalid`, error);
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return oidcError("OIDC_ALGORITHM", "algorithm not allowed; GitHub signs with RS256", error);
  }
  if (
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSMultipleMatchingKeys
  ) {
    return oidcError("OIDC_UNKNOWN_KEY", "signed by a key the issuer does not publish", error);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return oidcError("OIDC_SIGNATURE", "signature does not verify", error);
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) {
    return oidcError("OIDC_MALFORMED", "not a well-formed signed JWT", error);
  }
  // Fetching or reading the issuer's JWKS failed (network, status, timeout, bad JSON).
  return oidcError(
    "OIDC_JWKS_UNAVAILABLE",
    "the issuer's signing keys could not be fetched",
    error,
  );
}

function oidcError(code: ErrorCode, check: string, cause?: unknown): HallpassError {
  return new HallpassError(code, `ID token refused: ${check}`, { cause });
}

/** sha256 of issuer and jti: the key of an ID token in `oidc_token_uses`. */
export function idTokenKey(claims: Pick<ActionsClaims, "iss" | "jti">): string {
  return createHash("sha256").update(claims.iss).update("\n").update(claims.jti).digest("hex");
}

/**
 * The record of one use of an ID token: its key, kept until the token can no
 * longer be accepted (exp + leeway), after which the housekeeping deletes it.
 * The exchange hands this to the mint, which spends it in its own statement.
 */
export function idTokenUse(
  claims: Pick<ActionsClaims, "iss" | "jti" | "exp">,
  clockToleranceS: number,
): IdTokenUse {
  return {
    key: idTokenKey(claims),
    keepUntil: new Date((claims.exp + clockToleranceS + 1) * 1000),
  };
}

/**
 * Spends an ID token on its own: each one gets one exchange. Call it in a
 * transaction, after `verify`. (The exchange does not: it passes
 * `idTokenUse` to the mint, so that a refused mint leaves the token unspent.)
 *
 * @throws OIDC_REPLAY when the token was used before
 */
export async function consumeIdToken(
  sql: Sql,
  claims: Pick<ActionsClaims, "iss" | "jti" | "exp">,
  options: { readonly clockToleranceS: number; readonly now?: Date },
): Promise<void> {
  const use = idTokenUse(claims, options.clockToleranceS);
  const fresh = await recordOidcTokenUse(sql, use.key, use.keepUntil, options.now ?? new Date());
  if (!fresh) throw oidcError("OIDC_REPLAY", "this ID token was already used; request a new one");
}
