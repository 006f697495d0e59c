import { z } from "zod";
import { type ErrorCode, HallpassError } from "#src/errors.js";
import type { Logger } from "#src/log.js";
import { checkActive, checkScopes, isBound, type UseRefusal } from "#src/rules/grant-use.js";
import type { OperatorConfig } from "#src/rules/operator.js";
import { type ActionsConstraints, RESOURCE_NAME, SCOPE_NAME } from "#src/rules/policy.js";
import { parseConstraints } from "#src/rules/workflow-run.js";
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
import type { RepoFacts } from "#src/tokens/repo-facts.js";

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
  /** GitHub reads through the App (a pull request's head now); null without the App. */
  readonly facts: RepoFacts | null;
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
 * 1. Ask GitHub whose token it is: a user token of hallpass's own App
 *    (`GitHubUsers`, cached briefly by the token's hash); charge that
 *    person's rate limit.
 * 2. Find the ticket by `owner/repo` and number among those whose grant
 *    that person (by id) requested. Another person's grant, a ticket without
 *    one, and no ticket at all are one answer: GRANT_NOT_FOUND.
 * 3. The operator still binds the grant's resource to the ticket's
 *    repository (by id: a reused name gets nothing), and it is the resource
 *    asked for, if one was.
 * 4. The grant is active now and gives people tokens: a pull request's
 *    grant (bound to its reviewed commit and to CI) and a grant whose policy
 *    has `actions` rules only when the policy sets `people: true`
 *    (`PEOPLE_NOT_ALLOWED`). The scopes asked for narrow it.
 * 5. A pull request's grant: the pull request, as GitHub has it now, is not
 *    from a fork unless `actions.allow_forks` (`PULL_REQUEST_FORK`), and its
 *    head is the approved commit (`PULL_REQUEST_COMMIT`).
 * 6. Mint with `sub` = `github:<login>`, channel `cli`.
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
          ticket_kind: chosen?.ticket.kind ?? null,
        },
      },
      deps.now(),
    );
    throw error;
  }
  return tokenResponse(await deps.mint(input));
}

/** Steps 2 to 5; `seen` keeps the ticket chosen, for the audit of a refusal. */
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
  const constraints = parseConstraints(grant.constraints);
  if (!constraints) {
    throw new HallpassError("INTERNAL", `grant ${grant.id}: constraints do not parse`);
  }
  const notForPeople = checkPeople(chosen.ticket.kind, constraints, ref);
  if (notForPeople) throw refuse(notForPeople.code, notForPeople.message);
  const wider = checkScopes(grant.scopes, request.scopes);
  if (wider) throw refuse(wider.code, wider.message);
  if (chosen.ticket.kind === "pull_request") {
    await checkPullHead(deps.facts, chosen.ticket, grant.approvedCommit, constraints, ref);
  }
  return {
    grantId: grant.id,
    subject: `github:${user.login}`,
    channel: "cli",
    ...(request.scopes ? { scopes: request.scopes } : {}),
  };
}

/**
 * Whether a grant gives people tokens at all. A pull request's approval is
 * of its reviewed commit, for its CI runs; a policy's `actions` rules say
 * which runs may use a grant. A person's token escapes both, so either
 * needs the policy's `people: true`.
 */
export function checkPeople(
  kind: TicketGrant["ticket"]["kind"],
  constraints: ActionsConstraints,
  ref: string,
): UseRefusal | null {
  if (constraints.people) return null;
  const optIn = "people get its tokens only when the resource's policy sets people: true";
  if (kind === "pull_request") {
    return {
      code: "PEOPLE_NOT_ALLOWED",
      message: `${ref} is a pull request: its grant is for its CI runs at the approved commit (the hallpass Action); ${optIn}`,
    };
  }
  const rules = [
    constraints.environments ? "environments" : null,
    constraints.jobWorkflowRefs ? "job_workflow_refs" : null,
    constraints.runnerEnvironment ? "runner_environment" : null,
  ].filter((rule) => rule !== null);
  if (rules.length === 0) return null;
  return {
    code: "PEOPLE_NOT_ALLOWED",
    message: `the grant on ${ref} is for the CI runs its policy's actions rules allow (${rules.map((r) => `actions.${r}`).join(", ")}); ${optIn}`,
  };
}

/**
 * A pull request's grant, for a person: the pull request as GitHub has it
 * now (never cached) is not from a fork, unless the policy allows forks (the
 * ticket's recorded head repository counts too), and its head is the commit
 * that was approved.
 */
async function checkPullHead(
  facts: RepoFacts | null,
  ticket: TicketGrant["ticket"],
  approved: string | null,
  constraints: ActionsConstraints,
  ref: string,
): Promise<void> {
  if (!approved)
    throw refuse("PULL_REQUEST_COMMIT", `the grant on ${ref} recorded no approved commit`);
  if (!facts) {
    throw new HallpassError(
      "NOT_READY",
      "people's tokens for pull requests need the GitHub App: set APP_ID, PRIVATE_KEY and WEBHOOK_SECRET",
    );
  }
  const pull = await facts.pullHead(ticket.installationId, ticket.repoId, ticket.number);
  if (!pull) throw refuse("TICKET_NOT_FOUND", `GitHub has no pull request ${ref}`);
  const fork = ticket.headRepoId !== ticket.repoId || pull.headRepoId !== ticket.repoId;
  if (fork && !constraints.allowForks) {
    throw refuse(
      "PULL_REQUEST_FORK",
      `${ref} comes from a fork: its grant gives no token unless the policy sets actions.allow_forks`,
    );
  }
  if (pull.headSha !== approved) {
    throw refuse(
      "PULL_REQUEST_COMMIT",
      `${ref} is at ${pull.headSha.slice(0, 12)}, but ${approved.slice(0, 12)} was approved: commits pushed after approval need a new approval`,
    );
  }
}

function refuse(code: ErrorCode, message: string): HallpassError {
  return new HallpassError(code, message);
}
