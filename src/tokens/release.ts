import { appendAudit } from "#src/audit/append.js";
import { HallpassError } from "#src/errors.js";
import type { Db } from "#src/store/db.js";
import { releaseToken, tokenExists } from "#src/store/tokens.js";
import type { AccessTokenVerifier } from "#src/tokens/verify.js";

export interface ReleaseDeps {
  readonly db: Db;
  readonly verifier: AccessTokenVerifier;
  readonly now?: () => Date;
}

export interface ReleaseOutcome {
  readonly jti: string;
  /** `released` now or before (idempotent); `expired`: nothing left to give back. */
  readonly status: "released" | "expired";
}

/**
 * The holder gives a token back before it expires (the Action's post step):
 * from then on introspection says inactive. The grant lives on. Releasing
 * twice, or releasing an expired token, succeeds and changes nothing more.
 *
 * @throws INVALID_TOKEN when the token is not a hallpass token (bad signature, issuer, type)
 */
export async function release(deps: ReleaseDeps, token: string): Promise<ReleaseOutcome> {
  const { claims, expired } = await deps.verifier.verify(token, { allowExpired: true });
  if (expired) return { jti: claims.jti, status: "expired" };
  const at = (deps.now ?? (() => new Date()))();
  const known = await deps.db.transaction(async (tx) => {
    const released = await releaseToken(tx, claims.jti, at);
    if (!released) return tokenExists(tx, claims.jti);
    await appendAudit(
      tx,
      {
        kind: "token.released",
        actor: claims.sub,
        ticketId: released.ticketId,
        grantId: released.grantId,
        data: { jti: claims.jti, subject: released.subject },
      },
      at,
    );
    return true;
  });
  if (!known) throw new HallpassError("INVALID_TOKEN", "invalid token: unknown jti");
  return { jti: claims.jti, status: "released" };
}
