import { z } from "zod";
import { type ErrorCode, HallpassError } from "#src/errors.js";
import type { Logger } from "#src/log.js";
import { checkActive, checkScopes, isBound } from "#src/rules/grant-use.js";
import type { OperatorConfig } from "#src/rules/operator.js";
import { RESOURCE_NAME, SCOPE_NAME } from "#src/rules/policy.js";
import type { Db } from "#src/store/db.js";
import { type TicketGrant, ticketGrantsByName } from "#src/store/grants.js";
import type { GitHubUser, GitHubUsers } from "#src/tokens/github-users.js";
import {
  type MintedToken,
  type MintInput,
  type TokenResponse,
  tokenResponse,
} from "#src/tokens/mint.js";
import { auditRefusal } from "#src/tokens/refusal.js";

/** `owner/repo#N`, as people write a ticket. */
export const TICKET_REF =
  /^([A-Za-z0-9][A-Za-z0-9-]{0,38})\/([A-Za-z0-9._-]{1,100})#([1-9][0-9]{0,9})$/;

/** The body of `POST /v1/token`. */
export const personTokenRequest = z.strictObject({
  ticket: z
    .string()
    .regex(TICKET_REF, "must be owner/repo#N")
    .refine((t) => Number(t.slice(t.indexOf("#") + 1)) <= 2_147_483_647, "ticket number too large"),
  /** Some of the grant's scopes; absent: all of them. */
  scopes: z.array(z.string().regex(SCOPE_NAME, "must be a scope name")).min(1).max(64).optional(),
  /** The resource the person expects; refused when the grant is for another. */
  resource: z.string().regex(RESOURCE_NAME, "must be a resource name").optional(),
});
export type PersonTokenRequest = z.infer<typeof personTokenRequest>;

export interface PeopleDeps {
  readonly db: Db;
  readonly log: Logger;
  readonly operator: OperatorConfig;
  readonly users: GitHubUsers;
  readonly mint: (input: MintInput) => Promise<MintedToken>;
  readonly now: () => Date;
}

export interface PersonTokenOptions {
  /** Charged once the person is known (GitHub said who); throws RATE_LIMITED. */
  readonly limit?: (userId: number) => void;
}

/**
 * Mints a token for a person's own grant (SPEC §4, the CLI's path):
 *
 * 1. Ask GitHub whose token it is (`GET /user`, cached briefly by the
 *    token's hash); charge that person's rate limit.
 * 2. Find the ticket by `owner/repo` and number among those whose grant
 *    that person (by id) requested. Another person's grant, a ticket without
 *    one, and no ticket at all are one answer: GRANT_NOT_FOUND.
 * 3. The operator still binds the grant's resource to the ticket's
 *    repository (by id: a reused name gets nothing), and it is the resource
 *    asked for, if one was.
 * 4. The grant is active now; the scopes asked for narrow it.
 * 5. Mint with `sub` = `github:<login>`, channel `cli`.
 *
 * Every refusal is audited (`token.refused`), with the person when known.
 */
export async function personToken(
  deps: PeopleDeps,
  githubToken: string,
  request: PersonTokenRequest,
  options: PersonTokenOptions = {},
): Promise<TokenResponse> {
  let user: GitHubUser | null = null;
  const seen: { chosen?: TicketGrant } = {};
  let input: MintInput;
  try {
    user = await deps.users.whoIs(githubToken);
    options.limit?.(user.id);
    input = await checkPerson(deps, user, request, seen);
  } catch (error) {
    const chosen = seen.chosen;
    await auditRefusal(
      deps.db,
      deps.log,
      error,
      {
        channel: "cli",
        actor: user ? `github:${user.login}` : null,
        ticketId: chosen?.ticket.id ?? null,
        grantId: chosen?.grant?.id ?? null,
        data: {
          ticket: request.ticket,
          resource: request.resource ?? null,
          user_id: user?.id ?? null,
          repository_id: chosen?.ticket.repoId ?? null,
        },
      },
      deps.now(),
    );
    throw error;
  }
  return tokenResponse(await deps.mint(input));
}

/** Steps 2 to 4; `seen` keeps the ticket chosen, for the audit of a refusal. */
async function checkPerson(
  deps: PeopleDeps,
  user: GitHubUser,
  request: PersonTokenRequest,
  seen: { chosen?: TicketGrant },
): Promise<MintInput> {
  const [, owner, name, number] = TICKET_REF.exec(request.ticket) ?? [];
  const ref = request.ticket;
  const mine = (await ticketGrantsByName(deps.db, `${owner}/${name}`, Number(number))).filter(
    (found) => found.grant?.requesterId === user.id,
  );
  if (mine.length === 0) {
    throw refuse(
      "GRANT_NOT_FOUND",
      `${user.login} has no grant on ${ref}: open a request there (the hallpass label and its fields) and have it approved`,
    );
  }
  const bound = mine.filter((found) =>
    isBound(deps.operator, found.grant?.resource ?? "", {
      id: found.ticket.repoId,
      ownerId: found.ticket.repoOwnerId,
    }),
  );
  const chosen = bound.find((found) => found.grant?.state === "active") ?? bound[0];
  const grant = chosen?.grant;
  if (chosen) seen.chosen = chosen;
  if (!chosen || !grant) {
    const resource = mine[0]?.grant?.resource ?? "";
    throw refuse(
      "RESOURCE_NOT_BOUND",
      `resource ${resource} is not bound to the repository of ${ref} (id ${mine[0]?.ticket.repoId}) in the server's configuration`,
    );
  }
  if (request.resource !== undefined && request.resource !== grant.resource) {
    throw refuse(
      "RESOURCE_MISMATCH",
      `the grant on ${ref} is for resource ${grant.resource}, not ${request.resource}`,
    );
  }
  const inactive = checkActive(grant, ref, deps.now());
  if (inactive) throw refuse(inactive.code, inactive.message);
  const wider = checkScopes(grant.scopes, request.scopes);
  if (wider) throw refuse(wider.code, wider.message);
  return {
    grantId: grant.id,
    subject: `github:${user.login}`,
    channel: "cli",
    ...(request.scopes ? { scopes: request.scopes } : {}),
  };
}

function refuse(code: ErrorCode, message: string): HallpassError {
  return new HallpassError(code, message);
}
