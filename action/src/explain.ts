import { GaveUp, Refusal, Unreachable } from "./errors.js";
import type { Inputs } from "./inputs.js";

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

/** What to do about a refusal, by the server's code; the server's message says which check failed. */
function advice(code: string, inputs: Pick<Inputs, "resource" | "url" | "audience">): string {
  const r = inputs.resource;
  switch (code) {
    case "GRANT_NOT_FOUND":
      return `The ticket has no approved grant for ${r} yet: a code owner must approve it (approve the pull request's latest commit in a review, or comment /approve on the issue); then re-run this job. On workflow_dispatch, set the ticket input to the issue number and dispatch as its requester.`;
    case "GRANT_NOT_ACTIVE":
      return `The ticket's grant for ${r} is not active: it is still pending approval, or it has ended (expired, revoked, or the ticket was closed). Ask again on the ticket (/extend <duration>, or a new request) and re-run this job once it is granted.`;
    case "SCOPE_NOT_GRANTED":
      return "The scopes input asks for scopes the grant does not have: ask only for approved scopes, or leave scopes empty to get all of them.";
    case "OIDC_AUDIENCE":
      return `The ID token was requested for audience ${JSON.stringify(inputs.audience)}; the server accepts only its own (HALLPASS_OIDC_AUDIENCE, by default its URL). Set the audience input to that value.`;
    case "OIDC_ISSUER":
      return "The server trusts another OIDC issuer than this runner's (GitHub Enterprise Server?): the operator sets HALLPASS_OIDC_ISSUER.";
    case "RATE_LIMITED":
      return "Too many requests: re-run this job in a moment.";
    default:
      if (code.startsWith("OIDC_"))
        return "The server refused the job's ID token; the message says which check failed.";
      if (code.startsWith("HTTP_"))
        return `Check the url input: ${inputs.url} does not look like a hallpass server.`;
      return "";
  }
}

/**
 * The sentence a job sees when it gets no token: what went wrong, from the
 * server's own words where there are some, and what to change.
 */
export function explain(
  error: unknown,
  inputs: Pick<Inputs, "resource" | "url" | "audience"> | null,
): string {
  if (error instanceof GaveUp) {
    if (error.last instanceof Unreachable) {
      return `hallpass is unreachable: ${error.last.message} (${error.attempts} attempts). Check the url input and that the server is reachable from this runner.`;
    }
    return `hallpass did not answer with a token after ${error.attempts} attempts: ${error.last.serverMessage} (${error.last.code}).${
      error.last.status === 429 ? " Too many requests: re-run this job in a moment." : ""
    }`;
  }
  if (error instanceof Refusal && inputs) {
    const what = advice(error.code, inputs);
    return `hallpass refused a token for ${inputs.resource}: ${error.message}${what ? `\n${what}` : ""}`;
  }
  return error instanceof Error ? error.message : String(error);
}
