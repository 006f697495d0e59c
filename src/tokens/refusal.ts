import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { appendAudit } from "#src/audit/append.js";
import type { Json } from "#src/audit/event.js";
import { type ErrorCode, type HallpassError, isHallpassError } from "#src/errors.js";
import type { Logger } from "#src/log.js";
import type { Db } from "#src/store/db.js";
import type { TokenChannel } from "#src/store/tokens.js";

/** Which step of a token request a refusal came from, by its code. */
const CHECKS: Partial<Record<ErrorCode, string>> = {
  OIDC_MALFORMED: "id_token",
  OIDC_TYPE: "id_token",
  OIDC_ALGORITHM: "id_token",
  OIDC_ISSUER: "id_token",
  OIDC_UNKNOWN_KEY: "id_token",
  OIDC_SIGNATURE: "id_token",
  OIDC_AUDIENCE: "id_token",
  OIDC_EXPIRED: "id_token",
  OIDC_NOT_YET_VALID: "id_token",
  OIDC_CLAIMS: "id_token",
  OIDC_REPLAY: "id_token",
  GITHUB_TOKEN_INVALID: "github_token",
  PEOPLE_NOT_CONFIGURED: "github_token",
  PEOPLE_NOT_ALLOWED: "people",
  PULL_REQUEST_FORK: "fork",
  PULL_REQUEST_COMMIT: "commit",
  RUN_EVENT: "event",
  RUN_REF: "ref",
  RUN_TICKET: "ticket",
  TICKET_NOT_FOUND: "ticket",
  RUN_ACTOR: "actor",
  GRANT_NOT_FOUND: "grant",
  GRANT_NOT_ACTIVE: "grant",
  RESOURCE_MISMATCH: "resource",
  RESOURCE_NOT_BOUND: "binding",
  RUN_FORK: "fork",
  RUN_COMMIT: "commit",
  RUN_ENVIRONMENT: "constraints",
  RUN_WORKFLOW: "constraints",
  RUN_RUNNER: "constraints",
  SCOPE_NOT_GRANTED: "scopes",
};

export interface Refusal {
  readonly channel: TokenChannel;
  /** Who asked, once known: the run's subject or `github:<login>`. */
  readonly actor: string | null;
  readonly ticketId?: string | null;
  readonly grantId?: string | null;
  /** What the request was about: resource, repository id, run id, user id... */
  readonly data: { readonly [key: string]: Json | undefined };
}

/**
 * Whether an error refuses the caller, as `auditRefusal` audits it: a caller
 * error (4xx), not rate limiting. Each one spends the caller's address's
 * budget of refusals (see `tokenRoutes`).
 */
export function isRefusal(error: unknown): error is HallpassError {
  return isHallpassError(error) && error.expose && error.code !== "RATE_LIMITED";
}

/**
 * The refusals audited lately, by the credential presented (its sha256) and
 * the code: the same ID token refused again, for the same reason, is not
 * audited again (a replayed token would otherwise write one event per
 * request). The 10,000 most recent, each for an hour (longer than an ID
 * token lives), in each replica's memory.
 */
export class RecentRefusals {
  readonly #seen: LRUCache<string, true>;

  constructor(options: { readonly max?: number; readonly ttlMs?: number } = {}) {
    this.#seen = new LRUCache({ max: options.max ?? 10_000, ttl: options.ttlMs ?? 3_600_000 });
  }

  /** Records the refusal; true the first time it is seen (within the TTL). */
  first(credential: string, code: ErrorCode): boolean {
    const key = `${createHash("sha256").update(credential).digest("base64url")}:${code}`;
    if (this.#seen.has(key)) return false;
    this.#seen.set(key, true);
    return true;
  }
}

/**
 * Appends `token.refused` for a refused token request, with the check that
 * failed: refusals (`isRefusal`) only, not rate limiting, which would let a
 * flood write the log. Server failures (5xx) are logged, not audited: they
 * say nothing about the caller. With `once`, a credential refused for the
 * same reason before is not audited again. The audit write failing does not
 * change the answer: it is logged.
 */
export async function auditRefusal(
  db: Db,
  log: Logger,
  error: unknown,
  refusal: Refusal,
  at: Date,
  once?: { readonly recent: RecentRefusals; readonly credential: string },
): Promise<void> {
  if (!isRefusal(error)) return;
  if (once && !once.recent.first(once.credential, error.code)) {
    log.debug({ code: error.code }, "refused again; audited before");
    return;
  }
  try {
    await db.transaction((tx) =>
      appendAudit(
        tx,
        {
          kind: "token.refused",
          actor: refusal.actor,
          ticketId: refusal.ticketId ?? null,
          grantId: refusal.grantId ?? null,
          data: {
            check: CHECKS[error.code] ?? "request",
            code: error.code,
            channel: refusal.channel,
            ...refusal.data,
          },
        },
        at,
      ),
    );
  } catch (auditError) {
    log.error({ err: auditError, code: error.code }, "could not audit a refused token request");
  }
}
