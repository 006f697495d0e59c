import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { z } from "zod";
import { appendAudit } from "#src/audit/append.js";
import type { AuditEventInput } from "#src/audit/event.js";
import type { Config } from "#src/config.js";
import { type ErrorCode, HallpassError } from "#src/errors.js";
import type { Db } from "#src/store/db.js";
import type { GrantForToken } from "#src/store/grants.js";
import { insertTokensForGrants, type MintRefusal, type TokenInsert } from "#src/store/tokens.js";
import type { ActiveKey, ActiveKeyCache } from "#src/tokens/active-key.js";
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
  subject: printable(512),
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
  /**
   * The GitHub Actions ID token this token is exchanged for (`idTokenUse`):
   * spent in the mint's own statement, and only when the mint succeeds.
   */
  idToken: z
    .object({ key: z.string().regex(/^[0-9a-f]{64}$/, "must be a sha256"), keepUntil: z.date() })
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
 * The service mints through `createMinter`, which shares transactions
 * between concurrent mints; this is a batch of one.
 *
 * @throws GRANT_NOT_FOUND, GRANT_NOT_ACTIVE, SCOPE_NOT_GRANTED, OIDC_REPLAY (4xx); BAD_REQUEST on malformed input
 *
 * @example
 * const { token, expiresAt } = await mint(deps, {
 *   grantId, subject: "github:octocat", channel: "cli", scopes: ["read"],
 * });
 */
export async function mint(deps: MintDeps, input: MintInput): Promise<MintedToken> {
  const [outcome] = await mintBatch(deps, [parseMintInput(input)]);
  if (!outcome) throw new Error("mint batch returned nothing");
  if (outcome instanceof HallpassError) throw outcome;
  return outcome;
}

export interface MinterOptions {
  /** Most mints sharing one transaction. */
  readonly maxBatch?: number;
  /** Transactions in flight at once: one reads grants while another appends to the audit log. */
  readonly maxInFlight?: number;
}

/**
 * Mints with group commit. Every mint appends to the audit chain, whose tip
 * is one row locked until commit, so mints cannot commit faster than one at
 * a time; concurrent mints therefore share transactions. A mint that arrives
 * while `maxInFlight` transactions are busy waits for the next one, which
 * takes everything queued (up to `maxBatch`). Alone, a mint runs at once.
 * A refusal in a batch fails only its own mint; a database error fails the
 * batch's.
 */
export function createMinter(
  deps: MintDeps,
  options: MinterOptions = {},
): (input: MintInput) => Promise<MintedToken> {
  const maxBatch = options.maxBatch ?? 32;
  const maxInFlight = options.maxInFlight ?? 2;
  const queue: Array<{
    request: MintRequest;
    resolve: (token: MintedToken) => void;
    reject: (error: unknown) => void;
  }> = [];
  let inFlight = 0;

  const drain = () => {
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = queue.splice(0, maxBatch);
      inFlight++;
      mintBatch(
        deps,
        batch.map((b) => b.request),
      )
        .then(
          (outcomes) =>
            batch.forEach((b, i) => {
              const outcome = outcomes[i];
              if (outcome && !(outcome instanceof HallpassError)) b.resolve(outcome);
              else b.reject(outcome ?? new Error("mint batch returned nothing"));
            }),
          (error: unknown) => {
            for (const b of batch) b.reject(error);
          },
        )
        .finally(() => {
          inFlight--;
          drain();
        });
    }
  };

  return (input) =>
    new Promise<MintedToken>((resolve, reject) => {
      queue.push({ request: parseMintInput(input), resolve, reject });
      drain();
    });
}

type MintRequest = z.output<typeof mintInput>;

function parseMintInput(input: MintInput): MintRequest {
  const parsed = mintInput.safeParse(input);
  if (!parsed.success) {
    throw new HallpassError(
      "BAD_REQUEST",
      parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    );
  }
  return parsed.data;
}

/**
 * Mints several tokens in one transaction: every grant read and token insert
 * first, then every audit append (taking the chain's lock last, as
 * everywhere), then commit, then the signatures. Mints whose key was retired
 * meanwhile by another replica are retried once with the reloaded key.
 */
async function mintBatch(
  deps: MintDeps,
  requests: readonly MintRequest[],
  retry = true,
): Promise<Array<MintedToken | HallpassError>> {
  const key = await deps.keys.current();
  const now = (deps.now ?? (() => new Date()))();
  const issuedAt = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const tokens = requests.map((request) => ({
    jti: randomUUID(),
    grantId: request.grantId,
    channel: request.channel,
    subject: request.subject,
    actor: request.actor ?? null,
    scopes: request.scopes ?? null,
    run: request.run ?? null,
    idToken: request.idToken ?? null,
  }));

  const results = await deps.db.transaction(async (tx) => {
    const inserted = await insertTokensForGrants(tx, tokens, { kid: key.kid, now, issuedAt });
    for (const [i, result] of inserted.entries()) {
      const event = auditEvent(
        requests[i] as MintRequest,
        tokens[i]?.jti as string,
        key.kid,
        result,
      );
      if (event) await appendAudit(tx, event, now);
    }
    return inserted;
  });

  const outcomes: Array<MintedToken | HallpassError> = [];
  const retired: number[] = [];
  for (const [i, result] of results.entries()) {
    const request = requests[i] as MintRequest;
    const jti = tokens[i]?.jti as string;
    if (result.inserted) {
      outcomes.push(await sign(deps, key, request, jti, result, issuedAt));
    } else if (result.refusal === "key_retired" && retry) {
      retired.push(i);
      outcomes.push(new HallpassError("SIGNING_KEY_UNAVAILABLE", "retrying"));
    } else {
      outcomes.push(refusalError(result.refusal, result.grant, request.scopes, now));
    }
  }
  if (retired.length > 0) {
    deps.keys.invalidate();
    const again = await mintBatch(
      deps,
      retired.map((i) => requests[i] as MintRequest),
      false,
    );
    retired.forEach((i, n) => {
      outcomes[i] = again[n] as MintedToken | HallpassError;
    });
  }
  return outcomes;
}

function auditEvent(
  request: MintRequest,
  jti: string,
  kid: string,
  result: TokenInsert,
): AuditEventInput | null {
  if (result.inserted) {
    return {
      kind: "token.minted",
      actor: request.subject,
      ticketId: result.grant.ticketId,
      grantId: result.grant.id,
      data: {
        jti,
        kid,
        channel: request.channel,
        subject: request.subject,
        actor: request.actor ?? null,
        scopes: result.scopes,
        expires_at: result.expiresAt.toISOString(),
        repository_id: result.grant.ticket.repoId,
        run: runData(request),
      },
    };
  }
  // Not a refusal: the mint is retried with the new key.
  if (result.refusal === "key_retired") return null;
  return {
    kind: "token.refused",
    actor: request.subject,
    ticketId: result.grant?.ticketId ?? null,
    grantId: request.grantId,
    data: {
      check: REFUSAL_CHECKS[result.refusal][0],
      code: REFUSAL_CHECKS[result.refusal][1],
      reason: result.refusal,
      channel: request.channel,
      subject: request.subject,
      scopes: request.scopes ?? null,
      grant_state: result.grant?.state ?? null,
      repository_id: result.grant?.ticket.repoId ?? null,
      run: runData(request),
    },
  };
}

/** Each refusal's step of a token request and its code, as the exchange's `token.refused` names them. */
const REFUSAL_CHECKS: Record<MintRefusal, readonly [string, ErrorCode]> = {
  not_found: ["grant", "GRANT_NOT_FOUND"],
  not_active: ["grant", "GRANT_NOT_ACTIVE"],
  not_started: ["grant", "GRANT_NOT_ACTIVE"],
  ended: ["grant", "GRANT_NOT_ACTIVE"],
  scope_not_granted: ["scopes", "SCOPE_NOT_GRANTED"],
  scope_unmapped: ["scopes", "SCOPE_NOT_GRANTED"],
  key_retired: ["signing_key", "SIGNING_KEY_UNAVAILABLE"],
  id_token_replay: ["id_token", "OIDC_REPLAY"],
};

function runData(request: MintRequest) {
  return request.run
    ? {
        id: request.run.id,
        attempt: request.run.attempt,
        workflow_ref: request.run.workflowRef,
        sha: request.run.sha,
      }
    : null;
}

async function sign(
  deps: MintDeps,
  key: ActiveKey,
  request: MintRequest,
  jti: string,
  result: Extract<TokenInsert, { inserted: true }>,
  issuedAt: Date,
): Promise<MintedToken> {
  const claims = buildClaims({
    issuer: deps.config.publicUrl,
    githubWebUrl: deps.config.github.webUrl,
    grant: result.grant,
    jti,
    subject: request.subject,
    actor: request.actor ?? null,
    channel: request.channel,
    scopes: result.scopes,
    run: request.run ?? null,
    issuedAt,
    expiresAt: result.expiresAt,
  });
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: ACCESS_TOKEN_TYPE })
    .sign(key.privateKey);
  return {
    token,
    jti,
    expiresAt: result.expiresAt,
    scopes: result.scopes,
    grantId: result.grant.id,
  };
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
        "the signing key was retired twice while minting; try again",
      );
    case "id_token_replay":
      return new HallpassError(
        "OIDC_REPLAY",
        "ID token refused: this ID token was already used; request a new one",
      );
  }
}

/** What the token endpoints answer (`POST /v1/exchange`, `POST /v1/token`). */
export interface TokenResponse {
  /** The JWT. */
  readonly token: string;
  readonly expires_at: string;
  /** The grant id. */
  readonly grant: string;
  readonly scopes: string[];
}

export function tokenResponse(minted: MintedToken): TokenResponse {
  return {
    token: minted.token,
    expires_at: minted.expiresAt.toISOString(),
    grant: minted.grantId,
    scopes: minted.scopes,
  };
}
