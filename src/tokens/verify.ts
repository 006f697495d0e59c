import { createPublicKey, type KeyObject } from "node:crypto";
import { errors, jwtVerify } from "jose";
import { HallpassError } from "#src/errors.js";
import type { Db } from "#src/store/db.js";
import { type PublicJwk, verificationKeys } from "#src/store/keys.js";
import {
  ACCESS_TOKEN_TYPE,
  type AccessTokenClaims,
  accessTokenClaims,
} from "#src/tokens/claims.js";

export interface AccessTokenVerifierOptions {
  /** The `iss` of hallpass tokens (config.publicUrl). */
  readonly issuer: string;
  /** How long the key set is used without reading the table again. */
  readonly ttlMs?: number;
  /** At most one reload per this interval because of an unknown `kid`. */
  readonly cooldownMs?: number;
  readonly now?: () => Date;
}

export interface VerifiedAccessToken {
  readonly claims: AccessTokenClaims;
  /** Only with `allowExpired`: the signature and issuer hold, but `exp` has passed. */
  readonly expired: boolean;
}

/** Longest hallpass token accepted, in characters; real ones are about 1 KB. */
const MAX_TOKEN_LENGTH = 16_384;
/**
 * A compact JWS and nothing else. jose decodes base64url skipping
 * whitespace, so `token` with a space or line break inside its signature
 * would verify too: one token, many strings (each a miss of any cache keyed
 * by the string).
 */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/**
 * How far in the future a token's `nbf` (its `iat`) may be: another replica,
 * whose clock is ahead of this one's, may have minted it a moment ago. `exp`
 * gets no leeway.
 */
export const NBF_LEEWAY_S = 30;

interface KeySet {
  readonly jwks: PublicJwk[];
  readonly byKid: Map<string, { key: KeyObject; verifyUntil: Date | null }>;
  readonly loadedAt: number;
}

/**
 * Verifies hallpass access tokens against the keys in the database (the
 * JWKS), and serves that key set to the JWKS route. The set is cached for
 * `ttlMs` (well under the JWKS max-age, which the rotation delay is tied to),
 * and reloaded on an unknown `kid` at most once per `cooldownMs`.
 */
export class AccessTokenVerifier {
  readonly #db: Db;
  readonly #issuer: string;
  readonly #ttlMs: number;
  readonly #cooldownMs: number;
  readonly #now: () => Date;
  #set: KeySet | null = null;
  #loading: Promise<KeySet> | null = null;
  #generation = 0;
  #changes = 0;
  /** The last set loaded, kept across invalidations to see what a reload withdrew. */
  #last: KeySet | null = null;

  constructor(db: Db, options: AccessTokenVerifierOptions) {
    this.#db = db;
    this.#issuer = options.issuer;
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#cooldownMs = options.cooldownMs ?? 5_000;
    this.#now = options.now ?? (() => new Date());
  }

  /** The public keys that may verify a live token now, for `/.well-known/jwks.json`. */
  async jwks(): Promise<PublicJwk[]> {
    const set = await this.#fresh();
    const now = this.#now();
    return set.jwks.filter((jwk) => {
      const until = set.byKid.get(jwk.kid)?.verifyUntil;
      return !until || until > now;
    });
  }

  /** The key set changed (a rotation, a revoked key): reload it, and tell `changes` watchers. */
  invalidate(): void {
    this.#changes++;
    this.#drop();
  }

  /**
   * Counts key set changes: a cache of verified tokens (the proxy's) holds
   * only while this stays the same, since a change may have withdrawn a key.
   */
  get changes(): number {
    return this.#changes;
  }

  #drop(): void {
    this.#generation++;
    this.#set = null;
  }

  /**
   * Checks signature (EdDSA, a published key), `typ` at+jwt, `iss`, the
   * required claims, `exp` and `nbf` (within {@link NBF_LEEWAY_S}). It does
   * not check revocation: that is introspection's job.
   *
   * @throws INVALID_TOKEN naming the check that failed
   */
  async verify(
    token: string,
    options: { readonly allowExpired?: boolean } = {},
  ): Promise<VerifiedAccessToken> {
    if (token.length > MAX_TOKEN_LENGTH) throw invalid("token too long");
    if (!COMPACT_JWS.test(token)) throw invalid("malformed");
    const now = this.#now();
    try {
      const { payload } = await jwtVerify(token, (header) => this.#key(header.kid, now), {
        algorithms: ["EdDSA"],
        issuer: this.#issuer,
        typ: ACCESS_TOKEN_TYPE,
        requiredClaims: ["exp", "iat", "nbf", "jti", "sub", "aud"],
        currentDate: now,
        clockTolerance: NBF_LEEWAY_S,
      });
      // The tolerance is for `nbf` only: `exp` holds to the second.
      if (typeof payload.exp === "number" && payload.exp <= Math.floor(now.getTime() / 1000)) {
        throw new errors.JWTExpired('"exp" claim timestamp check failed', payload, "exp");
      }
      return { claims: parseClaims(payload), expired: false };
    } catch (error) {
      if (error instanceof errors.JWTExpired && options.allowExpired && error.claim === "exp") {
        // jwtVerify checks the signature, typ and iss before exp: the payload is authentic.
        return { claims: parseClaims(error.payload), expired: true };
      }
      if (error instanceof HallpassError) throw error;
      throw invalid(describe(error), error);
    }
  }

  async #key(kid: string | undefined, now: Date): Promise<KeyObject> {
    if (!kid) throw invalid("no kid in the token header");
    let set = await this.#fresh();
    let entry = set.byKid.get(kid);
    if (!entry && Date.now() - set.loadedAt >= this.#cooldownMs) {
      this.#drop();
      set = await this.#fresh();
      entry = set.byKid.get(kid);
    }
    if (!entry || (entry.verifyUntil && entry.verifyUntil <= now)) {
      throw invalid("signed by a key that is not published");
    }
    return entry.key;
  }

  async #fresh(): Promise<KeySet> {
    const set = this.#set;
    if (set && Date.now() - set.loadedAt < this.#ttlMs) return set;
    if (!this.#loading) {
      const generation = this.#generation;
      const previous = this.#last;
      this.#loading = this.#load()
        .then((loaded) => {
          // A key gone or cut short since the last load (its notification lost): a change.
          if (previous && withdrew(previous, loaded)) this.#changes++;
          this.#last = loaded;
          if (generation === this.#generation) this.#set = loaded;
          return loaded;
        })
        .finally(() => {
          this.#loading = null;
        });
    }
    return this.#loading;
  }

  async #load(): Promise<KeySet> {
    // Keys retired until a time still ahead are loaded; `jwks()` and `#key`
    // compare with the clock at use, so a cached set never outlives them.
    const rows = await verificationKeys(this.#db, this.#now());
    const byKid = new Map<string, { key: KeyObject; verifyUntil: Date | null }>();
    for (const row of rows) {
      byKid.set(row.publicJwk.kid, {
        key: createPublicKey({ key: { ...row.publicJwk }, format: "jwk" }),
        verifyUntil: row.verifyUntil,
      });
    }
    return { jwks: rows.map((r) => r.publicJwk), byKid, loadedAt: Date.now() };
  }
}

function withdrew(before: KeySet, after: KeySet): boolean {
  for (const [kid, entry] of before.byKid) {
    const now = after.byKid.get(kid);
    if (!now) return true;
    const was = entry.verifyUntil?.getTime() ?? Number.POSITIVE_INFINITY;
    if ((now.verifyUntil?.getTime() ?? Number.POSITIVE_INFINITY) < was) return true;
  }
  return false;
}

function parseClaims(payload: unknown): AccessTokenClaims {
  const parsed = accessTokenClaims.safeParse(payload);
  if (!parsed.success) throw invalid("claims are not those of a hallpass token");
  return parsed.data;
}

function invalid(reason: string, cause?: unknown): HallpassError {
  return new HallpassError("INVALID_TOKEN", `invalid token: ${reason}`, { cause });
}

function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "expired";
  if (error instanceof errors.JWTClaimValidationFailed) {
    return error.claim === "typ"
      ? "not a hallpass access token (typ)"
      : `${error.claim} check failed`;
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return "algorithm not allowed";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "signature does not verify";
  return "malformed";
}
