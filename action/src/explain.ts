import { formatDuration } from "../../src/rules/duration.js";
import { GaveUp, NotGrantedInTime, Refusal, Unreachable } from "./errors.js";
import type { Inputs } from "./inputs.js";
import { notYet } from "./wait.js";

/** What a workflow needs so that GitHub gives its jobs an OIDC ID token. */
export const PERMISSION_HELP = `Add to the workflow, or to this job:

  permissions:
    id-token: write   # lets the job ask GitHub for an OIDC ID token
    contents: read    # a permissions block replaces the defaults: list what else the job needs

Pull requests from forks never get an ID token.`;

/** The job has no ID token request URL: `permissions: id-token: write` is missing. */
export class MissingPermission extends Error {
  override readonly name = "MissingPermission";
  constructor() {
    super(
      `GitHub gave this job no OIDC ID token (ACTIONS_ID_TOKEN_REQUEST_URL is not set): the job lacks the id-token: write permission.\n${PERMISSION_HELP}`,
    );
  }
}

type Context = Pick<Inputs, "resource" | "url" | "audience">;

const APPROVAL =
  "a code owner of the resource must approve it (an approving review of the pull request's latest commit, or /approve on the issue); then re-run this job";
const POLICY =
  "the resource's policy (actions: in .github/hallpass.yml on the default branch) does not allow this run";

/**
 * What the job's author can do about a refusal, by the server's code (and,
 * for an inactive grant, by what the server says of it). The server's own
 * message, shown first, says which check failed.
 */
function advice(refusal: Refusal, { resource: r, url, audience }: Context): string {
  switch (refusal.code) {
    case "GRANT_NOT_FOUND":
      return `The ticket has no approved grant for ${r} yet: it must be a hallpass request for ${r}, and ${APPROVAL}.`;
    case "GRANT_NOT_ACTIVE":
      switch (notYet(refusal)?.kind) {
        case "approval":
          return `The ticket has no approved grant for ${r} yet: ${APPROVAL}.`;
        case "start":
          return "The grant's window has not started: re-run this job then.";
        default:
          return `The ticket's grant for ${r} has ended: ask for access again (/extend <duration> on the ticket, or a new request) and re-run this job once it is granted.`;
      }
    case "TICKET_NOT_FOUND":
      return "hallpass has no ticket by that number in this repository: a ticket is an issue or pull request carrying the policy's label with a request for the resource.";
    case "RUN_TICKET":
      return "On workflow_dispatch runs, set the ticket input to the issue's number; on pull_request runs, leave it empty: the pull request is the ticket.";
    case "RUN_ACTOR":
      return "An issue's grant is used only by workflow_dispatch runs that its requester starts.";
    case "RUN_REF":
      return "Run the workflow on the default branch (workflow_dispatch), or on the pull request itself (pull_request).";
    case "RUN_COMMIT":
      return `Commits pushed after the approval are not approved: ${APPROVAL}.`;
    case "RUN_EVENT":
    case "RUN_FORK":
    case "RUN_ENVIRONMENT":
    case "RUN_WORKFLOW":
    case "RUN_RUNNER":
      return `This job cannot use the grant: ${POLICY}.`;
    case "RESOURCE_MISMATCH":
      return "Set the resource input to the resource the ticket asks for.";
    case "RESOURCE_NOT_BOUND":
      return `The server's configuration does not bind ${r} to this repository: ask the hallpass operator.`;
    case "SCOPE_NOT_GRANTED":
      return "Ask only for scopes the grant has (the scopes input), or leave scopes empty to get all of them.";
    case "OIDC_AUDIENCE":
      return `The ID token was asked for audience ${audience}; set the audience input to the server's (its HALLPASS_OIDC_AUDIENCE, by default its URL).`;
    case "OIDC_ISSUER":
      return "The server trusts another OIDC issuer than this runner's (GitHub Enterprise Server?): its operator sets HALLPASS_OIDC_ISSUER.";
    default:
      if (refusal.code.startsWith("HTTP_"))
        return `Check the url input: ${url} does not answer as a hallpass server.`;
      return "";
  }
}

/**
 * The sentence a job sees when it gets no token: what went wrong, from the
 * server's own words where there are some, and what to change.
 */
export function explain(error: unknown, inputs: Context | null): string {
  if (error instanceof GaveUp) {
    if (error.last instanceof Unreachable) {
      return `hallpass is unreachable: ${error.last.message} (${error.attempts} attempts). Check the url input and that the server is reachable from this runner.`;
    }
    const { last, attempts } = error;
    const tries = `${attempts} attempt${attempts === 1 ? "" : "s"}`;
    return `hallpass answered ${last.status} (${tries}): ${last.message}${
      last.status === 429
        ? "\nToo many token requests from this repository: re-run this job later."
        : ""
    }`;
  }
  if (error instanceof NotGrantedInTime && inputs) {
    const what = advice(error.last, inputs);
    return `hallpass: no token for ${inputs.resource} after waiting ${formatDuration(error.waitS)} (wait-for-approval): ${error.message}${what ? `\n${what}` : ""}`;
  }
  if (error instanceof Refusal && inputs) {
    const what = advice(error, inputs);
    return `hallpass refused a token for ${inputs.resource}: ${error.message}${what ? `\n${what}` : ""}`;
  }
  return error instanceof Error ? error.message : String(error);
}
