import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { z } from "zod";
import { appendAudit } from "#src/audit/append.js";
import type { Config } from "#src/config.js";
import { HallpassError } from "#src/errors.js";
import type { Db } from "#src/store/db.js";
import type { GrantForToken } from "#src/store/grants.js";
import { insertTokenForGrant, type MintRefusal, type TokenInsert } from "#src/store/tokens.js";
import type { ActiveKeyCache } from "#src/tokens/active-key.js";
import { ACCESS_TOKEN_TYPE, buildClaims } from "#src/tokens/claims.js";

export interface MintDeps {
  readonly db: Db;
  readonly keys: ActiveKeyCache;
  readonly config: Pick<Config, "publicUrl"> & {
    readonly github: Pick<Config["github"], "webUrl">;
  };
  readonly now?: () => Date;
}

const scopeName = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, "must be a scope name");
const printable = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, "must not contain control characters");

const mintInput = z.object({
  grantId: z.uuid(),
  /** Who holds the token: `github:<login>` for a person, the workflow run for CI. */
  subject: printable(255),
  /** The workflow's actor (`act.sub`). */
  actor: printable(255).optional(),
  channel: z.enum(["actions", "cli"]),
  /** Some of the grant's scopes; absent: all of them. */
  scopes: z
    .array(scopeName)
    .min(1, "must name at least one scope")
    .max(64)
    .transform((scopes) => [...new Set(scopes)])
    .optional(),
  run: z
    .object({
      id: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
      attempt: z.number().int().positive().max(2_147_483_647),
      workflowRef: printable(1024),
      sha: z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, "must be a commit SHA"),
    })
    .optional(),
});
export type MintInput = z.input<typeof mintInput>;

export interface MintedToken {
  /** The JWT. Never stored, never logged. */
  readonly token: string;
  readonly jti: string;
  readonly expiresAt: Date;
  readonly scopes: string[];
  readonly grantId: string;
}

/**
 * Mints an access token for an active grant.
 *
 * 1. Take the active signing key (cached; a due published key is promoted here).
 * 2. In one transaction: read the grant `FOR SHARE` and insert the token's row
 *    in one statement (the grant must be active, inside its window, and give
 *    the scopes asked for), then append `token.minted` to the audit log. A
 *    refusal appends `token.refused` instead, and is thrown after commit.
 * 3. Sign the claims (`buildClaims`) with EdDSA; only the jti was stored.
 *
 * @throws GRANT_NOT_FOUND, GRANT_NOT_ACTIVE, SCOPE_NOT_GRANTED (4xx); BAD_REQUEST on malformed input
 *
 * @example
 * const { token, expiresAt } = await mint(deps, {
 *   grantId, subject: "github:octocat", channel: "cli", scopes: ["read"],
 * });
 */
export async function mint(deps: MintDeps, input: MintInput): Promise<MintedToken> {
  const parsed = mintInput.safeParse(input);
  if (!parsed.success) {
    throw new HallpassError(
      "BAD_REQUEST",
      parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    );
  }
  const request = parsed.data;
  const clock = deps.now ?? (() => new Date());

  // A key retired by another replica since it was cached: reload it once.
  for (let attempt = 0; ; attempt++) {
    const key = await deps.keys.current();
    const now = clock();
    const issuedAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const jti = randomUUID();
    const token = {
      jti,
      grantId: request.grantId,
      kid: key.kid,
      channel: request.channel,
      subject: request.subject,
      actor: request.actor ?? null,
      scopes: request.scopes ?? null,
      run: request.run ?? null,
      issuedAt,
      now,
    };
    const outcome = await deps.db.transaction(async (tx): Promise<TokenInsert> => {
      const result = await insertTokenForGrant(tx, token);
      if (result.inserted) {
        await appendAudit(
          tx,
          {
            kind: "token.minted",
            actor: request.subject,
            ticketId: result.grant.ticketId,
            grantId: result.grant.id,
            data: {
              jti,
              kid: key.kid,
              channel: request.channel,
              subject: request.subject,
              actor: request.actor ?? null,
              scopes: result.scopes,
              expires_at: result.expiresAt.toISOString(),
              run: request.run
                ? {
                    id: request.run.id,
                    attempt: request.run.attempt,
                    workflow_ref: request.run.workflowRef,
                    sha: request.run.sha,
                  }
                : null,
            },
          },
          now,
        );
      } else if (result.refusal !== "key_retired") {
        await appendAudit(
          tx,
          {
            kind: "token.refused",
            actor: request.subject,
            ticketId: result.grant?.ticketId ?? null,
            grantId: request.grantId,
            data: {
              reason: result.refusal,
              channel: request.channel,
              scopes: request.scopes ?? null,
              grant_state: result.grant?.state ?? null,
            },
          },
          now,
        );
      }
      return result;
    });

    if (outcome.inserted) {
      const claims = buildClaims({
        issuer: deps.config.publicUrl,
        githubWebUrl: deps.config.github.webUrl,
        grant: outcome.grant,
        jti,
        subject: request.subject,
        actor: request.actor ?? null,
        channel: request.channel,
        scopes: outcome.scopes,
        run: request.run ?? null,
        issuedAt,
        expiresAt: outcome.expiresAt,
      });
      const signed = await new SignJWT(claims)
        .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: ACCESS_TOKEN_TYPE })
        .sign(key.privateKey);
      return {
        token: signed,
        jti,
        expiresAt: outcome.expiresAt,
        scopes: outcome.scopes,
        grantId: outcome.grant.id,
      };
    }
    if (outcome.refusal === "key_retired" && attempt === 0) {
      deps.keys.invalidate();
      continue;
    }
    throw refusalError(outcome.refusal, outcome.grant, request.scopes, now);
  }
}

function refusalError(
  refusal: MintRefusal,
  grant: GrantForToken | null,
  scopes: readonly string[] | undefined,
  now: Date,
): HallpassError {
  switch (refusal) {
    case "not_found":
      return new HallpassError("GRANT_NOT_FOUND", "no such grant");
    case "not_active":
      return new HallpassError("GRANT_NOT_ACTIVE", `the grant is ${grant?.state}, not active`);
    case "not_started":
      return new HallpassError(
        "GRANT_NOT_ACTIVE",
        `the grant's window starts at ${grant?.startsAt?.toISOString()}`,
      );
    case "ended":
      return new HallpassError(
        "GRANT_NOT_ACTIVE",
        `the grant's window ended at ${grant?.endsAt?.toISOString()} (now ${now.toISOString()})`,
      );
    case "scope_not_granted": {
      const extra = (scopes ?? []).filter((s) => !grant?.scopes.includes(s));
      return new HallpassError(
        "SCOPE_NOT_GRANTED",
        `scopes not in the grant: ${extra.join(", ")} (granted: ${grant?.scopes.join(", ")})`,
      );
    }
    case "scope_unmapped":
      return new HallpassError(
        "SCOPE_NOT_GRANTED",
        "this grant did not record the permissions of each scope, so its tokens carry all its scopes; ask without scopes",
      );
    case "key_retired":
      return new HallpassError(
        "SIGNING_KEY_UNAVAILABLE",
        "the signing key was retired twice while minting",
      );
  }
}
