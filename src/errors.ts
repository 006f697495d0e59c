/**
 * One registry of error codes. Each code has the HTTP status an outside caller
 * sees and a generic message. A 4xx error's own message is written for the
 * caller (it says which check failed) and is exposed; a 5xx error's message and
 * cause are for the operator's log only and never reach a response body.
 */
const registry = {
  CONFIG_INVALID: { status: 500, public: "server misconfigured" },
  DB_UNAVAILABLE: { status: 503, public: "database unavailable" },
  DB_LOCKED: { status: 500, public: "data directory in use" },
  MIGRATION_FAILED: { status: 500, public: "database migration failed" },
  MIGRATION_TAMPERED: { status: 500, public: "database migration history does not match" },
  AUDIT_CHAIN_BROKEN: { status: 500, public: "audit chain broken" },
  NOT_READY: { status: 503, public: "not ready" },
  BAD_REQUEST: { status: 400, public: "bad request" },
  UNAUTHORIZED: { status: 401, public: "unauthorized" },
  FORBIDDEN: { status: 403, public: "forbidden" },
  NOT_FOUND: { status: 404, public: "not found" },
  CONFLICT: { status: 409, public: "conflict" },
  RATE_LIMITED: { status: 429, public: "too many requests" },
  WEBHOOK_SIGNATURE_INVALID: { status: 401, public: "signature does not match" },
  WEBHOOK_MALFORMED: { status: 400, public: "malformed webhook delivery" },
  MASTER_KEY_MISMATCH: { status: 500, public: "server misconfigured" },
  MASTER_KEY_FILE: { status: 500, public: "server misconfigured" },
  SIGNING_KEY_UNAVAILABLE: { status: 503, public: "no signing key available" },
  KEY_ROTATION_PENDING: { status: 409, public: "a key rotation is already pending" },
  GRANT_NOT_FOUND: { status: 404, public: "grant not found" },
  GRANT_NOT_ACTIVE: { status: 403, public: "grant not active" },
  SCOPE_NOT_GRANTED: { status: 403, public: "scope not granted" },
  INVALID_TOKEN: { status: 401, public: "invalid token" },
  // The exchange of a workflow run's ID token (POST /v1/exchange), one code per check.
  RUN_EVENT: { status: 403, public: "workflow event not accepted" },
  RUN_REF: { status: 403, public: "workflow ref not accepted" },
  RUN_TICKET: { status: 403, public: "ticket does not fit the run" },
  RUN_ACTOR: { status: 403, public: "actor holds no grant on the ticket" },
  RUN_FORK: { status: 403, public: "runs of forks are not accepted" },
  RUN_COMMIT: { status: 403, public: "run is not of the approved commit" },
  RUN_ENVIRONMENT: { status: 403, public: "environment not allowed" },
  RUN_WORKFLOW: { status: 403, public: "workflow not allowed" },
  RUN_RUNNER: { status: 403, public: "runner environment not allowed" },
  TICKET_NOT_FOUND: { status: 404, public: "ticket not found" },
  RESOURCE_MISMATCH: { status: 403, public: "grant is for another resource" },
  RESOURCE_NOT_BOUND: { status: 403, public: "resource not bound to this repository" },
  // People's tokens (POST /v1/token): the GitHub user token they present.
  GITHUB_TOKEN_INVALID: { status: 401, public: "GitHub token not accepted" },
  // 401: no GitHub token can be accepted until the operator configures how to check them.
  PEOPLE_NOT_CONFIGURED: { status: 401, public: "this server cannot check GitHub tokens" },
  PEOPLE_NOT_ALLOWED: { status: 403, public: "this grant gives people no tokens" },
  PULL_REQUEST_FORK: { status: 403, public: "pull request comes from a fork" },
  PULL_REQUEST_COMMIT: { status: 403, public: "pull request is not at the approved commit" },
  GITHUB_UNAVAILABLE: { status: 503, public: "GitHub unavailable" },
  INVALID_CLIENT: { status: 401, public: "client authentication failed" },
  OIDC_MALFORMED: { status: 401, public: "ID token malformed" },
  OIDC_TYPE: { status: 401, public: "ID token has the wrong type" },
  OIDC_ALGORITHM: { status: 401, public: "ID token algorithm not allowed" },
  OIDC_ISSUER: { status: 401, public: "ID token issuer not trusted" },
  OIDC_UNKNOWN_KEY: { status: 401, public: "ID token signed by an unknown key" },
  OIDC_SIGNATURE: { status: 401, public: "ID token signature invalid" },
  OIDC_AUDIENCE: { status: 401, public: "ID token audience not accepted" },
  OIDC_EXPIRED: { status: 401, public: "ID token expired" },
  OIDC_NOT_YET_VALID: { status: 401, public: "ID token not yet valid" },
  OIDC_CLAIMS: { status: 401, public: "ID token claims invalid" },
  OIDC_REPLAY: { status: 401, public: "ID token already used" },
  OIDC_JWKS_UNAVAILABLE: { status: 503, public: "ID token keys unavailable" },
  // The access proxy, one code per check (see docs/proxy.md).
  PROXY_HOST: { status: 421, public: "this proxy does not answer for that host" },
  PROXY_REQUEST_TARGET: { status: 400, public: "request target not accepted" },
  PROXY_HEADERS: { status: 400, public: "request headers not accepted" },
  PROXY_PATH: { status: 400, public: "request path not accepted" },
  TOKEN_MISSING: { status: 401, public: "no access token" },
  TOKEN_REVOKED: { status: 401, public: "access token revoked" },
  GRANT_STATUS_UNKNOWN: { status: 503, public: "grant status cannot be confirmed" },
  PAYLOAD_TOO_LARGE: { status: 413, public: "request body too large" },
  LENGTH_REQUIRED: { status: 411, public: "request body length required" },
  USAGE_UNAVAILABLE: { status: 503, public: "usage cannot be recorded" },
  UPSTREAM_TIMEOUT: { status: 504, public: "upstream timed out" },
  UPSTREAM_UNAVAILABLE: { status: 502, public: "upstream unavailable" },
  INTERNAL: { status: 500, public: "internal error" },
} as const satisfies Record<string, { status: number; public: string }>;

export type ErrorCode = keyof typeof registry;

/** The HTTP status of a code, as callers outside see it. */
export function statusOf(code: ErrorCode): number {
  return registry[code].status;
}

export class HallpassError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HallpassError";
    this.code = code;
    this.status = options?.status ?? registry[code].status;
  }

  /** Whether `message` may be shown to the caller (client errors only). */
  get expose(): boolean {
    return this.status < 500;
  }

  /** What an outside caller may see. */
  get publicMessage(): string {
    return this.expose ? this.message : registry[this.code].public;
  }
}

export function isHallpassError(error: unknown, code?: ErrorCode): error is HallpassError {
  return error instanceof HallpassError && (code === undefined || error.code === code);
}
