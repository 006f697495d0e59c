import type { Config } from "#src/config.js";
import type { Logger } from "#src/log.js";
import { type Loop, startLoop } from "#src/loop.js";
import type { OperatorConfig } from "#src/rules/operator.js";
import type { Component } from "#src/runtime.js";
import type { Db, Unlisten } from "#src/store/db.js";
import { SIGNING_KEYS_CHANNEL } from "#src/store/keys.js";
import { deleteExpiredOidcTokenUses } from "#src/store/oidc-uses.js";
import { ActiveGrants, type ActiveGrantsOptions } from "#src/tokens/active-grants.js";
import { ActiveKeyCache } from "#src/tokens/active-key.js";
import { type ExchangeOptions, type ExchangeRequest, exchange } from "#src/tokens/exchange.js";
import { GitHubUsers, type GitHubUsersOptions } from "#src/tokens/github-users.js";
import { type IntrospectionResponse, introspect } from "#src/tokens/introspect.js";
import { bootstrapKeys, promoteDueKey } from "#src/tokens/keys.js";
import { loadMasterKey } from "#src/tokens/master-key.js";
import {
  createMinter,
  type MintedToken,
  type MintInput,
  type TokenResponse,
} from "#src/tokens/mint.js";
import {
  createOidcVerifier,
  type OidcVerifier,
  type OidcVerifierOptions,
} from "#src/tokens/oidc.js";
import {
  type PersonTokenOptions,
  type PersonTokenRequest,
  personToken,
} from "#src/tokens/people.js";
import { RecentRefusals } from "#src/tokens/refusal.js";
import { type ReleaseOutcome, release } from "#src/tokens/release.js";
import {
  type InstallationClient,
  RepoFacts,
  type RepoFactsOptions,
} from "#src/tokens/repo-facts.js";
import { AccessTokenVerifier } from "#src/tokens/verify.js";

export type TokenConfig = Pick<Config, "publicUrl" | "masterKey" | "dataDir" | "oidc" | "github">;

export interface TokenServiceOptions {
  /** The clock of everything the service decides (tests pin it). */
  readonly now?: () => Date;
  /** Pause between housekeeping passes (key promotion, spent ID tokens). */
  readonly housekeepingMs?: number;
  readonly keyCacheTtlMs?: number;
  readonly oidc?: Omit<OidcVerifierOptions, "issuer" | "audience" | "now">;
  /** The resources' bindings; without it, no resource is bound and nothing is exchanged. */
  readonly operator?: OperatorConfig;
  /** The App's installation clients; without them `/v1/exchange` answers NOT_READY. */
  readonly github?: InstallationClient | null;
  readonly repoFacts?: Omit<RepoFactsOptions, "now">;
  readonly users?: Omit<GitHubUsersOptions, "apiUrl" | "client" | "acceptOtherTokens" | "now">;
  readonly activeGrants?: ActiveGrantsOptions;
}

/** The running token service: what the routes and the exchange use. */
export interface TokenService extends Component {
  readonly db: Db;
  readonly config: TokenConfig;
  readonly now: () => Date;
  readonly keys: ActiveKeyCache;
  readonly verifier: AccessTokenVerifier;
  readonly oidc: OidcVerifier;
  /** GitHub reads of the exchange (cached); null without the App. */
  readonly facts: RepoFacts | null;
  readonly users: GitHubUsers;
  mint(input: MintInput): Promise<MintedToken>;
  /** `POST /v1/exchange`: a workflow run's ID token for an access token (see `exchange`). */
  exchange(
    idToken: string,
    request: ExchangeRequest,
    options?: ExchangeOptions,
  ): Promise<TokenResponse>;
  /** `POST /v1/token`: a person's GitHub token for an access token (see `personToken`). */
  personToken(
    githubToken: string,
    request: PersonTokenRequest,
    options?: PersonTokenOptions,
  ): Promise<TokenResponse>;
  introspect(resource: string, token: string): Promise<IntrospectionResponse>;
  release(token: string): Promise<ReleaseOutcome>;
  /** One housekeeping pass; true when there is more to do at once. */
  housekeeping(): Promise<boolean>;
}

const SPENT_ID_TOKENS_BATCH = 1_000;

/**
 * Starts the token service once the database is ready (a `Runtime` component):
 *
 * 1. Load the master key (the embedded set-up creates `<dataDir>/master.key` once).
 * 2. Bootstrap the keys: a master key that does not open the database's keys
 *    stops the start with MASTER_KEY_MISMATCH; a new database gets its first key.
 * 3. Listen for key changes of other replicas (caches reload at once).
 * 4. Run the housekeeping loop: promote a due published key even when nothing
 *    is minted, and delete records of ID tokens past their expiry.
 */
export async function startTokenService(
  db: Db,
  config: TokenConfig,
  log: Logger,
  options: TokenServiceOptions = {},
): Promise<TokenService> {
  const now = options.now ?? (() => new Date());
  const masterKey = await loadMasterKey(config);
  const boot = await bootstrapKeys(db, masterKey, now());
  log.info(
    { kid: boot.activeKid, created: boot.created, masterKeyCheck: boot.masterKeyCheck },
    boot.created ? "created the first signing key" : "signing keys ready",
  );

  const keys = new ActiveKeyCache(db, masterKey, {
    now,
    ...(options.keyCacheTtlMs === undefined ? {} : { ttlMs: options.keyCacheTtlMs }),
  });
  const verifier = new AccessTokenVerifier(db, { issuer: config.publicUrl, now });
  const oidc = createOidcVerifier({ ...options.oidc, ...config.oidc, now });
  const reload = () => {
    keys.invalidate();
    verifier.invalidate();
  };
  const unlisten: Unlisten = await db.listen(SIGNING_KEYS_CHANNEL, reload, { onResync: reload });
  const mint = createMinter({ db, keys, config, now });
  const operator: OperatorConfig = options.operator ?? { resources: new Map() };
  const facts = options.github ? new RepoFacts(options.github, options.repoFacts) : null;
  const users = new GitHubUsers({
    ...options.users,
    apiUrl: config.github.apiUrl,
    client: config.github.client ?? null,
    acceptOtherTokens: operator.acceptOtherGitHubTokens === true,
  });
  if (users.unconfigured) {
    log.warn(`people's tokens (POST /v1/token) are refused: ${users.unconfigured}`);
  }
  const tokenLog = log.child({ component: "tokens" });
  const activeGrants = new ActiveGrants(options.activeGrants);
  const refusals = new RecentRefusals();

  const service: TokenService = {
    db,
    config,
    now,
    keys,
    verifier,
    oidc,
    facts,
    users,
    mint,
    exchange: (idToken, request, exchangeOptions) =>
      exchange(
        { db, log: tokenLog, oidc, operator, facts, mint, now, activeGrants, refusals },
        idToken,
        request,
        exchangeOptions,
      ),
    personToken: (githubToken, request, personOptions) =>
      personToken(
        { db, log: tokenLog, operator, users, facts, mint, now },
        githubToken,
        request,
        personOptions,
      ),
    introspect: (resource, token) => introspect({ db, verifier, now }, resource, token),
    release: (token) => release({ db, verifier, now }, token),
    async housekeeping() {
      const promoted = await promoteDueKey(db, now());
      if (promoted) {
        reload();
        log.info(
          {
            kid: promoted.kid,
            retired: promoted.retired?.kid,
            verifyUntil: promoted.retired?.verifyUntil,
          },
          "signing key activated",
        );
      }
      const deleted = await deleteExpiredOidcTokenUses(db, now(), SPENT_ID_TOKENS_BATCH);
      return deleted === SPENT_ID_TOKENS_BATCH;
    },
    async stop() {
      await loop.stop();
      await unlisten();
    },
  };
  const loop: Loop = startLoop({
    name: "token housekeeping",
    log,
    idleMs: options.housekeepingMs ?? 60_000,
    pass: () => service.housekeeping(),
  });
  return service;
}
