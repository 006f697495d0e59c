import type { ErrorCode } from "#src/errors.js";
import type { OperatorConfig } from "#src/rules/operator.js";

/**
 * Whether a grant can give a token now, before anything is spent or written.
 * The mint checks state, window and scopes again, atomically; these say why
 * in words a caller can act on.
 */

export interface GrantTerms {
  readonly state: string;
  readonly resource: string;
  readonly scopes: readonly string[];
  readonly startsAt: Date | null;
  readonly endsAt: Date | null;
}

export interface UseRefusal {
  readonly code: ErrorCode;
  readonly message: string;
}

/** Active, and `startsAt <= now < endsAt`. `ticket` names it in the message (`#12`). */
export function checkActive(grant: GrantTerms, ticket: string, now: Date): UseRefusal | null {
  switch (grant.state) {
    case "active":
      break;
    case "pending":
      return {
        code: "GRANT_NOT_ACTIVE",
        message: `the grant on ${ticket} is pending: it needs approval by the resource's code owners (/approve on an issue, an approving review on a pull request)`,
      };
    case "revoked":
    case "expired":
      return {
        code: "GRANT_NOT_ACTIVE",
        message: `the grant on ${ticket} has ${grant.state === "revoked" ? "been revoked" : "expired"}: request access again`,
      };
    default:
      return {
        code: "GRANT_NOT_ACTIVE",
        message: `the grant on ${ticket} was ${grant.state}: request access again`,
      };
  }
  if (!grant.startsAt || grant.startsAt > now) {
    return {
      code: "GRANT_NOT_ACTIVE",
      message: `the grant on ${ticket} starts at ${grant.startsAt?.toISOString() ?? "(unknown)"}`,
    };
  }
  if (!grant.endsAt || grant.endsAt <= now) {
    return {
      code: "GRANT_NOT_ACTIVE",
      message: `the grant on ${ticket} ended at ${grant.endsAt?.toISOString() ?? "(unknown)"}: request access again`,
    };
  }
  return null;
}

/** Scopes asked for may only narrow the grant's (none asked: all of them). */
export function checkScopes(
  granted: readonly string[],
  asked: readonly string[] | undefined,
): UseRefusal | null {
  const extra = (asked ?? []).filter((scope) => !granted.includes(scope));
  if (extra.length === 0) return null;
  return {
    code: "SCOPE_NOT_GRANTED",
    message: `scopes not in the grant: ${extra.join(", ")} (granted: ${granted.join(", ")})`,
  };
}

/**
 * Whether the operator still binds `resource` to this repository (by id and
 * owner id). A binding can move after approval; tokens follow the binding as
 * it is now.
 */
export function isBound(
  operator: OperatorConfig,
  resource: string,
  repository: { readonly id: number; readonly ownerId: number },
): boolean {
  const bound = operator.resources.get(resource)?.repository;
  return bound !== undefined && bound.id === repository.id && bound.ownerId === repository.ownerId;
}
