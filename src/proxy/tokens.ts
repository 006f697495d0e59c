import { LRUCache } from "lru-cache";
import { compileScope, type ScopePattern } from "#src/rules/scopes.js";
import type { AccessTokenVerifier } from "#src/tokens/verify.js";

/** What the proxy needs of a verified hallpass token. */
export interface VerifiedToken {
  readonly jti: string;
  readonly grantId: string;
  readonly audience: string;
  readonly resource: string;
  readonly subject: string;
  readonly ticket: string;
  /** Epoch ms. */
  readonly expiresAt: number;
  /** The token's permissions, compiled once. */
  readonly permissions: readonly ScopePattern[];
}

export interface VerifiedTokensOptions {
  /** Tokens remembered at once; the least recently used go first. Default 10 000. */
  readonly max?: number;
  readonly now?: () => Date;
}

/**
 * Verified tokens, remembered until they expire: a client sending the same
 * token again costs a map look-up, not a signature check. Keyed by the
 * whole token (not its `jti`): a forged token reusing a real `jti` is a
 * different key and is verified. Forgotten as a whole when the key set
 * changes (a key withdrawn must stop verifying at once).
 */
export class VerifiedTokens {
  readonly #verifier: AccessTokenVerifier;
  readonly #now: () => Date;
  readonly #cache: LRUCache<string, VerifiedToken>;
  readonly #inFlight = new Map<string, Promise<VerifiedToken>>();
  /** Per connection (or any holder), the last token it sent. */
  readonly #last = new WeakMap<
    object,
    { token: string; verified: VerifiedToken; generation: number }
  >();
  /** Bumped whenever the cache is cleared: a holder's last token is good for its generation only. */
  #generation = 0;
  #keyChanges: number;
  /** Signature verifications done (the benchmark counts them). */
  verifications = 0;

  constructor(verifier: AccessTokenVerifier, options: VerifiedTokensOptions = {}) {
    this.#verifier = verifier;
    this.#now = options.now ?? (() => new Date());
    this.#cache = new LRUCache({ max: options.max ?? 10_000 });
    this.#keyChanges = verifier.changes;
  }

  /**
   * The token, verified (signature, `typ`, issuer, times, claims), or a
   * rejection with INVALID_TOKEN saying which check failed.
   */
  get(token: string, holder?: object): VerifiedToken | Promise<VerifiedToken> {
    if (this.#verifier.changes !== this.#keyChanges) {
      this.#keyChanges = this.#verifier.changes;
      this.#cache.clear();
      this.#generation++;
    }
    // A kept-alive connection usually sends one token again and again.
    const last = holder === undefined ? undefined : this.#last.get(holder);
    if (
      last !== undefined &&
      last.generation === this.#generation &&
      last.token === token &&
      last.verified.expiresAt > this.#now().getTime()
    ) {
      return last.verified;
    }
    const hit = this.#cache.get(token);
    if (hit && holder !== undefined) {
      this.#last.set(holder, { token, verified: hit, generation: this.#generation });
    }
    if (hit && hit.expiresAt > this.#now().getTime()) return hit;
    if (hit) this.#cache.delete(token);
    let pending = this.#inFlight.get(token);
    if (!pending) {
      pending = this.#verify(token).finally(() => this.#inFlight.delete(token));
      this.#inFlight.set(token, pending);
    }
    return pending;
  }

  async #verify(token: string): Promise<VerifiedToken> {
    const changes = this.#verifier.changes;
    this.verifications++;
    const { claims } = await this.#verifier.verify(token);
    const permissions: ScopePattern[] = [];
    for (const text of claims.hallpass.permissions) {
      const compiled = compileScope(text);
      // Our own tokens carry compiled policy patterns; anything else matches nothing.
      if (compiled.ok) permissions.push(compiled.pattern);
    }
    const verified: VerifiedToken = {
      jti: claims.jti,
      grantId: claims.hallpass.grant,
      audience: claims.aud,
      resource: claims.hallpass.resource,
      subject: claims.sub,
      ticket: claims.hallpass.ticket,
      expiresAt: claims.exp * 1000,
      permissions,
    };
    // Not kept when the key set changed while it was being verified.
    if (changes === this.#verifier.changes) this.#cache.set(token, verified);
    return verified;
  }
}
