import { z } from "zod";
import type { GrantForToken } from "#src/store/grants.js";
import type { RunFields, TokenChannel } from "#src/store/tokens.js";

/** The JOSE header `typ` of hallpass tokens (RFC 9068 access tokens). */
export const ACCESS_TOKEN_TYPE = "at+jwt";

/** RFC 9068 `client_id`: the hallpass client a token was issued to. */
export const CLIENT_IDS: Readonly<Record<TokenChannel, string>> = {
  actions: "hallpass-action",
  cli: "hallpass-cli",
};

const hallpassClaim = z.object({
  grant: z.uuid(),
  ticket: z.string(),
  resource: z.string(),
  permissions: z.array(z.string()),
  approvers: z.array(z.string()),
  policy_commit: z.string().nullable(),
  break_glass: z.boolean(),
  channel: z.enum(["actions", "cli"]),
  run: z
    .object({ id: z.number(), attempt: z.number(), workflow_ref: z.string(), sha: z.string() })
    .optional(),
});

/** What a verified hallpass token says; see `buildClaims` for the meaning of each claim. */
export const accessTokenClaims = z.object({
  iss: z.string(),
  aud: z.string(),
  sub: z.string(),
  act: z.object({ sub: z.string() }).optional(),
  client_id: z.string(),
  scope: z.string(),
  jti: z.uuid(),
  iat: z.number().int(),
  nbf: z.number().int(),
  exp: z.number().int(),
  hallpass: hallpassClaim,
});
export type AccessTokenClaims = z.infer<typeof accessTokenClaims>;
export type HallpassClaim = z.infer<typeof hallpassClaim>;

export interface ClaimsInput {
  readonly issuer: string;
  /** Web URL of GitHub (github.com or GitHub Enterprise Server), for the ticket link. */
  readonly githubWebUrl: string;
  readonly grant: GrantForToken;
  readonly jti: string;
  readonly subject: string;
  readonly actor: string | null;
  readonly channel: TokenChannel;
  readonly scopes: readonly string[];
  readonly run: RunFields | null;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
}

/**
 * The claims of a hallpass access token (SPEC §4):
 *
 * - `iss` the server's public URL; `aud` the grant's audience (the resource,
 *   namespaced by its home repository); `sub` who holds it; `act.sub` the
 *   workflow's actor, when there is one; `client_id` the hallpass client
 *   (RFC 9068); `scope` the scope names, space-separated; `jti`, `iat`, `nbf`
 *   (= iat), `exp` (never past the grant's end).
 * - `hallpass`: the grant id, the ticket's web URL, the resource, the
 *   permissions ("METHOD /pattern") the scopes carry, the approvers, the
 *   policy commit the grant was decided under, the break-glass flag, the
 *   channel and, for a workflow run, the run.
 */
export function buildClaims(input: ClaimsInput): AccessTokenClaims {
  const { grant } = input;
  const iat = Math.floor(input.issuedAt.getTime() / 1000);
  const run = input.run
    ? {
        id: input.run.id,
        attempt: input.run.attempt,
        workflow_ref: input.run.workflowRef,
        sha: input.run.sha,
      }
    : undefined;
  return {
    iss: input.issuer,
    aud: grant.audience,
    sub: input.subject,
    ...(input.actor ? { act: { sub: input.actor } } : {}),
    client_id: CLIENT_IDS[input.channel],
    scope: input.scopes.join(" "),
    jti: input.jti,
    iat,
    nbf: iat,
    exp: Math.floor(input.expiresAt.getTime() / 1000),
    hallpass: {
      grant: grant.id,
      ticket: ticketUrl(input.githubWebUrl, grant.ticket),
      resource: grant.resource,
      permissions: permissionsOf(grant, input.scopes),
      approvers: grant.approvers,
      policy_commit: grant.policySha,
      break_glass: grant.breakGlass,
      channel: input.channel,
      ...(run ? { run } : {}),
    },
  };
}

/** `https://github.com/acme/payments/pull/12` or `.../issues/7`. */
export function ticketUrl(webUrl: string, ticket: GrantForToken["ticket"]): string {
  const kind = ticket.kind === "pull_request" ? "pull" : "issues";
  return `${webUrl}/${ticket.repoFullName}/${kind}/${ticket.number}`;
}

/**
 * The permissions a token with these scopes carries: all the grant's when it
 * has all its scopes, else those recorded for each of its scopes (the store
 * refuses to narrow a grant that recorded none).
 */
export function permissionsOf(grant: GrantForToken, scopes: readonly string[]): string[] {
  if (grant.scopes.every((scope) => scopes.includes(scope))) return grant.permissions;
  const permissions = new Set<string>();
  for (const scope of scopes) {
    for (const permission of grant.scopePermissions[scope] ?? []) permissions.add(permission);
  }
  return [...permissions];
}
