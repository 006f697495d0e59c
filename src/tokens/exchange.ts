import { z } from "zod";
import { type ErrorCode, HallpassError, isHallpassError } from "#src/errors.js";
import type { Logger } from "#src/log.js";
import { checkActive, checkScopes, isBound } from "#src/rules/grant-use.js";
import type { OperatorConfig } from "#src/rules/operator.js";
import { RESOURCE_NAME, SCOPE_NAME } from "#src/rules/policy.js";
import {
  checkConstraints,
  parseConstraints,
  type RunRoute,
  routeOfRun,
} from "#src/rules/workflow-run.js";
import type { Db } from "#src/store/db.js";
import { type TicketGrant, ticketGrant } from "#src/store/grants.js";
import type { ActiveGrants } from "#src/tokens/active-grants.js";
import type { MintedToken, MintInput, TokenResponse } from "#src/tokens/mint.js";
import { tokenResponse } from "#src/tokens/mint.js";
import { type ActionsClaims, idTokenUse, type OidcVerifier } from "#src/tokens/oidc.js";
import { checkPullRequestRun } from "#src/tokens/pull-request-run.js";
import { auditRefusal, isRefusal, type RecentRefusals } from "#src/tokens/refusal.js";
import type { RepoFacts } from "#src/tokens/repo-facts.js";

/** The body of `POST /v1/exchange`. */
export const exchangeRequest = z.strictObject({
  /** The resource the token is for: the grant's. */
  resource: z.string().regex(RESOURCE_NAME, "must be a resource name"),
  /** Some of the grant's scopes; absent: all of them. */
  scopes: z.array(z.string().regex(SCOPE_NAME, "must be a scope name")).min(1).max(64).optional(),
  /** The ticket's number: required for workflow_dispatch runs (the issue). */
  ticket: z.number().int().positive().max(2_147_483_647).optional(),
});
export type ExchangeRequest = z.infer<typeof exchangeRequest>;

export interface ExchangeDeps {
  readonly db: Db;
  readonly log: Logger;
  readonly oidc: OidcVerifier;
  readonly operator: OperatorConfig;
  /** GitHub reads through the App; null when no App is configured (the exchange is then unavailable). */
  readonly facts: RepoFacts | null;
  readonly mint: (input: MintInput) => Promise<MintedToken>;
  readonly now: () => Date;
  /** Tickets with an active grant, remembered briefly; absent: every exchange reads its ticket. */
  readonly activeGrants?: ActiveGrants;
  /** Refusals audited lately; absent: every refusal is audited, a replayed ID token's too. */
  readonly refusals?: RecentRefusals;
}

export interface ExchangeOptions {
  /** Charged once the run's repository is known (verified); throws RATE_LIMITED. */
  readonly limit?: (repositoryId: number) => void;
}

/**
 * The subject of a workflow run's token: repository and owner by name and
 * id, as GitHub's immutable `sub` names them, then the run and its attempt.
 * `repo:acme@1001/app@2002:run:3003:1`.
 */
export function runSubject(claims: ActionsClaims): string {
  const name = claims.repository.slice(claims.repository.indexOf("/") + 1);
  return `repo:${claims.repository_owner}@${claims.repository_owner_id}/${name}@${claims.repository_id}:run:${claims.run_id}:${claims.run_attempt}`;
}

/**
 * Exchanges a GitHub Actions ID token for an access token (SPEC §4). Each
 * check that fails refuses with its own code; every refusal is audited
 * once (`token.refused`, with the check, repository id and run id): by the
 * mint when the mint refuses, and once per ID token and code when the same
 * ID token is refused again (`refusals`).
 *
 * a. The ID token verifies (`OIDC_*`); the run's repository is charged its rate limit.
 * b. Its event and ref lead to one ticket of this repository (by id and
 *    owner id): a `pull_request` run to its pull request; a `workflow_dispatch`
 *    run on the default branch to the issue it names, and only when the
 *    actor is the grant's requester; `pull_request_target` to the pull
 *    request it names, only when the grant's policy allows it. Others are
 *    refused (`RUN_EVENT`, `RUN_REF`, `RUN_TICKET`, `TICKET_NOT_FOUND`, `RUN_ACTOR`).
 * c. The ticket's grant is for this resource, the operator still binds the
 *    resource to this repository, and it is active now (`GRANT_NOT_FOUND`,
 *    `RESOURCE_MISMATCH`, `RESOURCE_NOT_BOUND`, `GRANT_NOT_ACTIVE`).
 * d. Pull requests: not from a fork unless allowed (`RUN_FORK`); the run's
 *    merge commit has the approved commit as its head parent (`RUN_COMMIT`).
 * e. The policy's environment, workflow and runner rules (`RUN_ENVIRONMENT`,
 *    `RUN_WORKFLOW`, `RUN_RUNNER`).
 * f. The scopes asked for narrow the grant's (`SCOPE_NOT_GRANTED`).
 * g. Mint, spending the ID token in the mint's own statement: a refused mint
 *    (the grant revoked meanwhile) leaves it unspent; a second use is `OIDC_REPLAY`.
 *
 * Messages never say whether a ticket the caller cannot use has a grant:
 * a dispatch by anyone but the requester hears the same whether the issue
 * has a grant or not, and so does a `pull_request_target` run whose
 * ticket's grant does not allow it.
 */
export async function exchange(
  deps: ExchangeDeps,
  idToken: string,
  request: ExchangeRequest,
  options: ExchangeOptions = {},
): Promise<TokenResponse> {
  const facts = deps.facts;
  if (!facts) {
    throw new HallpassError(
      "NOT_READY",
      "the exchange needs the GitHub App: set APP_ID, PRIVATE_KEY and WEBHOOK_SECRET",
    );
  }
  let claims: ActionsClaims | null = null;
  const seen: Seen = {};
  const refused = async (error: unknown): Promise<never> => {
    const found = seen.found;
    await auditRefusal(
      deps.db,
      deps.log,
      error,
      {
        channel: "actions",
        actor: claims ? runSubject(claims) : null,
        ticketId: found?.ticket.id ?? null,
        grantId: found?.grant?.id ?? null,
        data: {
          resource: request.resource,
          ticket: request.ticket ?? null,
          repository_id: claims?.repository_id ?? null,
          run: claims
            ? {
                id: claims.run_id,
                attempt: claims.run_attempt,
                workflow_ref: claims.workflow_ref,
                sha: claims.sha,
              }
            : null,
          event_name: claims?.event_name ?? null,
          actor_id: claims?.actor_id ?? null,
        },
      },
      deps.now(),
      deps.refusals ? { recent: deps.refusals, credential: idToken } : undefined,
    );
    throw error;
  };
  let input: MintInput;
  try {
    const verified = await deps.oidc.verify(idToken);
    claims = verified;
    options.limit?.(verified.repository_id);
    input = await checkRun(deps, facts, verified, request, seen, true);
  } catch (error) {
    // Refused on a remembered ticket: decide again on what the database says now.
    if (!claims || !seen.remembered || !isHallpassError(error) || !error.expose) {
      return refused(error);
    }
    input = await checkRun(deps, facts, claims, request, seen, false).catch(refused);
  }
  // The mint audits its own refusals (token.refused, with the run).
  try {
    return tokenResponse(await deps.mint(input));
  } catch (error) {
    if (isRefusal(error) && error.code !== "BAD_REQUEST") deps.refusals?.first(idToken, error.code);
    const found = seen.found;
    const grantChanged =
      isHallpassError(error, "GRANT_NOT_ACTIVE") ||
      isHallpassError(error, "GRANT_NOT_FOUND") ||
      isHallpassError(error, "SCOPE_NOT_GRANTED");
    if (!claims || !found || !grantChanged) throw error;
    // The grant changed since the ticket was read (revoked, replaced): forget it,
    // and when it was remembered, check again on a fresh read. That check
    // refusing too is the same refusal, which the mint has audited.
    deps.activeGrants?.forget(found.ticket.repoId, found.ticket.number);
    if (!seen.remembered) throw error;
    input = await checkRun(deps, facts, claims, request, seen, false);
    return tokenResponse(await deps.mint(input));
  }
}

/** What the checks saw, for the audit of a refusal and the retry on a fresh read. */
interface Seen {
  found?: TicketGrant;
  remembered?: boolean;
}

/**
 * Steps b to f: what to mint. `seen` keeps the ticket found, for the audit
 * of a refusal. With `remember`, the ticket may come from `activeGrants`.
 */
async function checkRun(
  deps: ExchangeDeps,
  facts: RepoFacts,
  claims: ActionsClaims,
  request: ExchangeRequest,
  seen: Seen,
  remember: boolean,
): Promise<MintInput> {
  // b. The ticket, from the event and ref.
  const routed = routeOfRun(claims, request.ticket);
  if (!routed.ok) throw refuse(routed.refusal.code, routed.refusal.message);
  const { route } = routed;
  const ref = `#${route.number}`;
  const { found, remembered } =
    remember && deps.activeGrants
      ? await deps.activeGrants.get(deps.db, claims.repository_id, route.number, deps.now())
      : {
          found: await ticketGrant(deps.db, claims.repository_id, route.number),
          remembered: false,
        };
  seen.remembered = remembered;
  if (!found || found.ticket.repoOwnerId !== claims.repository_owner_id) {
    throw refuse(
      "TICKET_NOT_FOUND",
      `no hallpass ticket ${ref} in this repository (id ${claims.repository_id})`,
    );
  }
  seen.found = found;
  const { ticket } = found;
  const wantKind = route.kind === "dispatch" ? "issue" : "pull_request";
  if (ticket.kind !== wantKind) {
    throw refuse(
      "RUN_TICKET",
      ticket.kind === "pull_request"
        ? `ticket ${ref} is a pull request: its grant is used by pull_request runs of it`
        : `ticket ${ref} is an issue: its grant is used by workflow_dispatch runs of its requester naming it`,
    );
  }
  const constraints = found.grant ? parseConstraints(found.grant.constraints) : null;
  if (found.grant && !constraints) {
    throw new HallpassError("INTERNAL", `grant ${found.grant.id}: constraints do not parse`);
  }
  await checkIdentity(facts, claims, found, route, constraints?.allowPullRequestTarget === true);

  // c. The grant: this resource, still bound here, active now.
  const grant = found.grant;
  if (!grant || !constraints) throw refuse("GRANT_NOT_FOUND", `ticket ${ref} has no grant`);
  if (grant.resource !== request.resource) {
    throw refuse(
      "RESOURCE_MISMATCH",
      `the grant on ${ref} is for resource ${grant.resource}, not ${request.resource}`,
    );
  }
  if (
    !isBound(deps.operator, grant.resource, {
      id: claims.repository_id,
      ownerId: claims.repository_owner_id,
    })
  ) {
    throw refuse(
      "RESOURCE_NOT_BOUND",
      `resource ${grant.resource} is not bound to this repository (id ${claims.repository_id}) in the server's configuration`,
    );
  }
  const inactive = checkActive(grant, ref, deps.now());
  if (inactive) throw refuse(inactive.code, inactive.message);

  // d. Pull requests: the code that runs is the code that was approved.
  if (route.kind !== "dispatch") {
    await checkPullRequestRun(facts, claims, ticket, {
      kind: route.kind,
      approvedCommit: grant.approvedCommit,
      allowForks: constraints.allowForks,
    });
  }

  // e. The policy's rules for runs.
  const unmet = checkConstraints(constraints, claims);
  if (unmet) throw refuse(unmet.code, unmet.message);

  // f. Scopes only narrow.
  const wider = checkScopes(grant.scopes, request.scopes);
  if (wider) throw refuse(wider.code, wider.message);

  return {
    grantId: grant.id,
    subject: runSubject(claims),
    actor: claims.actor,
    channel: "actions",
    ...(request.scopes ? { scopes: request.scopes } : {}),
    run: {
      id: claims.run_id,
      attempt: claims.run_attempt,
      workflowRef: claims.workflow_ref,
      sha: claims.sha,
    },
    idToken: idTokenUse(claims, deps.oidc.clockToleranceS),
  };
}

/**
 * Who may use the ticket, before anything about its grant is said:
 * a dispatch must be on the default branch by the grant's requester; a
 * `pull_request_target` run needs a grant that allows it.
 */
async function checkIdentity(
  facts: RepoFacts,
  claims: ActionsClaims,
  found: TicketGrant,
  route: RunRoute,
  allowsTarget: boolean,
): Promise<void> {
  const ref = `#${route.number}`;
  if (route.kind === "dispatch") {
    const branch = await facts.defaultBranch(found.ticket.installationId, found.ticket.repoId);
    if (route.branch !== branch) {
      throw refuse(
        "RUN_REF",
        `a workflow_dispatch run must be on the default branch ${branch}, not ${route.branch}`,
      );
    }
    // By id: a login can be renamed, and taken by someone else.
    if (found.grant?.requesterId !== claims.actor_id) {
      throw refuse(
        "RUN_ACTOR",
        `${claims.actor} holds no grant on ${ref}: only workflow_dispatch runs by the grant's requester use an issue's grant`,
      );
    }
  }
  if (route.kind === "pull_request_target" && !allowsTarget) {
    throw refuse(
      "RUN_EVENT",
      `pull_request_target runs get no token for ${ref}: its grant's policy must set actions.allow_pull_request_target`,
    );
  }
}

function refuse(code: ErrorCode, message: string): HallpassError {
  return new HallpassError(code, message);
}
