import { appendAudit } from "#src/audit/append.js";
import type { Json } from "#src/audit/event.js";
import { type ErrorCode, isHallpassError } from "#src/errors.js";
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
 * Appends `token.refused` for a refused token request, with the check that
 * failed: caller errors (4xx) only, and not rate limiting, which would let a
 * flood write the log. Server failures (5xx) are logged, not audited: they
 * say nothing about the caller. The audit write failing does not change the
 * answer: it is logged.
 */
export async function auditRefusal(
  db: Db,
  log: Logger,
  error: unknown,
  refusal: Refusal,
  at: Date,
): Promise<void> {
  if (!isHallpassError(error) || !error.expose || error.code === "RATE_LIMITED") return;
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
