/**
 * The token service with everything its exchanges talk to: the real server
 * on a test database, its GitHub App (Probot) pointed at the GitHub
 * simulator, a local OIDC issuer standing in for GitHub Actions, and an
 * operator config binding resources to simulated repositories. Tickets and
 * grants are written with SQL as the lifecycle leaves them.
 */

import { installationClient } from "#src/components.js";
import { createGitHubApp } from "#src/github/app.js";
import { createLogger } from "#src/log.js";
import { parseOperatorObject } from "#src/rules/operator.js";
import type { Secret } from "#src/secret.js";
import type { RateLimits } from "#src/tokens/routes.js";
import type { Backend } from "./db.js";
import { GitHubSimulator } from "./github/simulator.js";
import { type GrantOptions, insertGrant } from "./grants.js";
import { TestOctokit } from "./octokit.js";
import { type IdTokenOptions, type OidcIssuer, startOidcIssuer } from "./oidc-issuer.js";
import {
  OIDC_AUDIENCE,
  startTokenHarness,
  type TokenHarness,
  testConfig,
} from "./token-service.js";

export const RESOURCE = "payments-api";
export const OTHER_RESOURCE = "ledger-api";
export const VAULT_RESOURCE = "vault-api";
const SECRET = "exchange-webhook-secret";

export interface SimRepo {
  readonly id: number;
  readonly ownerId: number;
  readonly fullName: string;
  readonly installationId: number;
}

/** What an ID token's claims say of a repository. */
export type ClaimedRepo = Pick<SimRepo, "id" | "ownerId" | "fullName">;

/** The repository claims of a GitHub Actions ID token of a run in `r`. */
export function repoClaims(r: ClaimedRepo): Record<string, string> {
  return {
    repository: r.fullName,
    repository_id: String(r.id),
    repository_owner: r.fullName.split("/")[0] ?? "",
    repository_owner_id: String(r.ownerId),
  };
}

/** The claims of a `pull_request` run of pull request `number` at its current merge commit. */
export function pullRequestRunClaims(
  sim: GitHubSimulator,
  r: ClaimedRepo,
  number: number,
): Record<string, unknown> {
  const pull = sim.pull(r.id, number).pull;
  const workflow = `${r.fullName}/.github/workflows/deploy.yml@refs/pull/${number}/merge`;
  return {
    ...repoClaims(r),
    event_name: "pull_request",
    ref: `refs/pull/${number}/merge`,
    sha: pull.mergeCommitSha,
    head_ref: pull.head.ref,
    base_ref: pull.base.ref,
    workflow_ref: workflow,
    job_workflow_ref: workflow,
    sub: `repo:${r.fullName}:pull_request`,
  };
}

/** The claims of a `workflow_dispatch` run by `actor` on `branch` (default: the default branch). */
export function dispatchRunClaims(
  sim: GitHubSimulator,
  r: ClaimedRepo,
  actor: string,
  branch?: string,
): Record<string, unknown> {
  const ref = `refs/heads/${branch ?? sim.repo(r.id).defaultBranch}`;
  const workflow = `${r.fullName}/.github/workflows/ops.yml@${ref}`;
  return {
    ...repoClaims(r),
    event_name: "workflow_dispatch",
    ref,
    sha: sim.branchHead(r.id, branch),
    head_ref: "",
    base_ref: "",
    actor,
    actor_id: String(sim.user(actor).id),
    workflow_ref: workflow,
    job_workflow_ref: workflow,
    sub: `repo:${r.fullName}:ref:${ref}`,
  };
}

export interface ExchangeWorld {
  readonly h: TokenHarness;
  readonly sim: GitHubSimulator;
  readonly issuer: OidcIssuer;
  /** `acme/app`: home of `payments-api`. */
  readonly repo: SimRepo;
  /** `acme/ledger`: home of `ledger-api`. */
  readonly other: SimRepo;
  /** `acme/vault`: home of `vault-api` (for tests that rename it). */
  readonly vault: SimRepo;
  /** An ID token of a run of `repo` (or `claims.repository...`), GitHub's claims overridden by `claims`. */
  idToken(claims?: Record<string, unknown>, options?: IdTokenOptions): Promise<string>;
  /** The claims of a `pull_request` run of pull request `number` at its current merge commit. */
  pullRequestRun(number: number, repo?: SimRepo): Record<string, unknown>;
  /** The claims of a `workflow_dispatch` run by `actor` on `branch` (default: the default branch). */
  dispatchRun(actor: string, branch?: string, repo?: SimRepo): Record<string, unknown>;
  exchange(body: unknown, idToken: string | null): Promise<Response>;
  personToken(body: unknown, githubToken: string | null): Promise<Response>;
  /** Opens a pull request by `author` in `repo` with one new commit; its ticket and grant approved at its head. */
  prGrant(options?: PrGrantOptions): Promise<PrGrant>;
  /** Opens an issue by `requester`; its ticket and (active) grant. */
  issueGrant(requester: string, options?: GrantOptions & { repo?: SimRepo }): Promise<IssueGrant>;
  close(): Promise<void>;
}

export interface PrGrantOptions extends GrantOptions {
  readonly author?: string;
  readonly repo?: SimRepo;
  /** Open the pull request from a fork of the repository owned by `author`. */
  readonly fork?: boolean;
}

export interface PrGrant {
  readonly number: number;
  readonly grantId: string;
  readonly ticketId: string;
  readonly headSha: string;
  readonly headBranch: string;
}

export interface IssueGrant {
  readonly number: number;
  readonly grantId: string;
  readonly ticketId: string;
}

export interface WorldOptions {
  readonly rateLimits?: RateLimits;
  /** Introspection secrets of the resources (none: introspection refuses every caller). */
  readonly secrets?: Record<string, Secret>;
  readonly onResponse?: (route: string, ms: number) => void;
  /** Top-level keys of the operator config besides `resources` (`accept_other_github_tokens`). */
  readonly operator?: Record<string, unknown>;
  /** The server's environment on top of the simulator's (`GITHUB_CLIENT_ID: ""` unsets it). */
  readonly env?: Record<string, string>;
}

export async function startExchangeWorld(
  backend: Backend,
  options: WorldOptions = {},
): Promise<ExchangeWorld> {
  const [sim, issuer] = await Promise.all([
    GitHubSimulator.start({ appId: 5100 + Math.floor(Math.random() * 1000) }),
    startOidcIssuer(),
  ]);
  sim.addOrg("acme", { members: ["alice", "bob", "mallory"] });
  const installationId = sim.addInstallation("acme").id;
  const simRepo = (fullName: string): SimRepo => {
    const repo = sim.addRepo(fullName, { files: { "README.md": "# app\n" } });
    return { id: repo.id, ownerId: sim.user("acme").id, fullName, installationId };
  };
  const repo = simRepo("acme/app");
  const other = simRepo("acme/ledger");
  const vault = simRepo("acme/vault");
  const resourceOf = (r: SimRepo) =>
    r.id === repo.id ? RESOURCE : r.id === other.id ? OTHER_RESOURCE : VAULT_RESOURCE;
  const operator = parseOperatorObject({
    ...options.operator,
    resources: {
      [VAULT_RESOURCE]: {
        repository: { id: vault.id, owner_id: vault.ownerId, name: vault.fullName },
        max_ttl: "8h",
        scopes: ["GET /v1/**"],
      },
      [RESOURCE]: {
        repository: { id: repo.id, owner_id: repo.ownerId, name: repo.fullName },
        max_ttl: "8h",
        scopes: ["GET /v1/**", "POST /v1/refunds"],
      },
      [OTHER_RESOURCE]: {
        repository: { id: other.id, owner_id: other.ownerId, name: other.fullName },
        max_ttl: "8h",
        scopes: ["GET /v1/**"],
      },
    },
  });
  if (!operator.ok) throw new Error(JSON.stringify(operator.errors));

  const config = testConfig({
    ...sim.appEnv(SECRET),
    HALLPASS_OIDC_ISSUER: issuer.url,
    ...options.env,
  });
  const app = config.app;
  if (!app) throw new Error("the simulator's App credentials are missing");
  const probot = await createGitHubApp(config, app, createLogger("silent"), [], {
    octokit: TestOctokit,
  });
  const h = await startTokenHarness(backend, {
    config,
    service: { operator: operator.config, github: installationClient(probot) },
    rateLimits: {
      perRepository: 10_000,
      perUser: 10_000,
      refusedPerAddress: 10_000,
      ...options.rateLimits,
    },
    ...(options.onResponse ? { onResponse: options.onResponse } : {}),
    ...(options.secrets ? { secrets: options.secrets } : {}),
  });

  const window = (o: GrantOptions) => ({
    startsAt: new Date(h.clock.now().getTime() - 60_000),
    endsAt: new Date(h.clock.now().getTime() + 3_600_000),
    ...o,
  });
  const post = (path: string, body: unknown, bearer: string | null) =>
    fetch(`${h.url}${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }),
      },
      body: JSON.stringify(body),
    });

  return {
    h,
    sim,
    issuer,
    repo,
    other,
    vault,
    idToken: (claims = {}, tokenOptions = {}) =>
      issuer.idToken(OIDC_AUDIENCE, {
        ...tokenOptions,
        claims: { ...repoClaims(repo), ...claims, ...tokenOptions.claims },
      }),
    pullRequestRun: (number, r = repo) => pullRequestRunClaims(sim, r, number),
    dispatchRun: (actor, branch, r = repo) => dispatchRunClaims(sim, r, actor, branch),
    exchange: (body, idToken) => post("/v1/exchange", body, idToken),
    personToken: (body, githubToken) => post("/v1/token", body, githubToken),
    async prGrant(o = {}) {
      const r = o.repo ?? repo;
      const author = o.author ?? "alice";
      const headBranch = `change-${sim.nextId()}`;
      let headRepoId = r.id;
      let head: string | { repo: number; branch: string } = headBranch;
      if (o.fork) {
        const name = r.fullName.split("/")[1];
        const fork = sim.addRepo(`${author}/${name}-${sim.nextId()}`, { forkOf: r.id });
        headRepoId = fork.id;
        head = { repo: fork.id, branch: headBranch };
      }
      const pr = sim.openPullRequest(r.id, {
        author,
        head,
        files: { [`services/${headBranch}.txt`]: "change\n" },
        labels: ["hallpass"],
      });
      const headSha = pr.pull.head.sha;
      const fixture = await insertGrant(
        h.db,
        window({
          repoId: r.id,
          repoOwnerId: r.ownerId,
          installationId: r.installationId,
          repoFullName: r.fullName,
          number: pr.number,
          kind: "pull_request",
          headRepoId,
          requester: { id: sim.user(author).id, login: author },
          approvedCommit: headSha,
          resource: resourceOf(r),
          audience: `${r.fullName}/${resourceOf(r)}`,
          ...o,
        }),
      );
      return { number: pr.number, headSha, headBranch, ...fixture };
    },
    async issueGrant(requester, o = {}) {
      const r = o.repo ?? repo;
      const issue = sim.openIssue(r.id, { author: requester, labels: ["hallpass"] });
      const fixture = await insertGrant(
        h.db,
        window({
          repoId: r.id,
          repoOwnerId: r.ownerId,
          installationId: r.installationId,
          repoFullName: r.fullName,
          number: issue.number,
          kind: "issue",
          requester: { id: sim.user(requester).id, login: requester },
          approvedCommit: null,
          resource: resourceOf(r),
          audience: `${r.fullName}/${resourceOf(r)}`,
          ...o,
        }),
      );
      return { number: issue.number, ...fixture };
    },
    async close() {
      await h.close();
      await Promise.all([sim.close(), issuer.close()]);
    },
  };
}
