import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GitHubSimulator } from "../support/github/simulator.js";
import {
  installationEvent,
  installationRepositoriesEvent,
  issuesEvent,
  repositoryEndEvent,
} from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import {
  auditKindsOf,
  auditOf,
  commentOn,
  effectsOf,
  grantsOf,
  openIssueTicket,
  operatorYaml as paymentsOperatorYaml,
  requestBody,
  seedAcme,
  stateOf,
  syncClock,
  type TicketRef,
} from "./fixtures.js";

/**
 * One repository per event that ends a whole repository's tickets, each
 * governing a resource of its name; beta/vault under an installation of its own.
 */
const REPOS = ["ledger", "removed", "gone", "moved", "frozen"] as const;
const ids: Record<string, number> = {};
const beta = { installationId: 0, ownerId: 0 };

const policyFor = (resource: string) => `label: hallpass
resources:
  ${resource}:
    path: /
    scopes:
      read: ["GET /v1/**"]
    default_ttl: 1h
    max_ttl: 4h
`;

function seed(sim: GitHubSimulator) {
  const home = seedAcme(sim);
  for (const name of REPOS) {
    const repo = sim.addRepo(`acme/${name}`, {
      files: { ".github/hallpass.yml": policyFor(`${name}-api`), CODEOWNERS: "* @bob\n" },
    });
    for (const login of ["alice", "bob"]) sim.setPermission(repo.id, login, "write");
    ids[name] = repo.id;
  }
  const org = sim.addOrg("beta", { members: ["alice", "vic"] });
  const vault = sim.addRepo("beta/vault", {
    files: { ".github/hallpass.yml": policyFor("vault-api"), CODEOWNERS: "* @vic\n" },
  });
  sim.setPermission(vault.id, "vic", "write");
  ids.vault = vault.id;
  beta.ownerId = org.user.id;
  beta.installationId = sim.addInstallation("beta").id;
  return home;
}

const binding = (resource: string, id: number, ownerId: number, name: string) => `  ${resource}:
    repository: { id: ${id}, owner_id: ${ownerId}, name: ${name} }
    max_ttl: 8h
    scopes: ["GET /v1/**"]
`;

const operatorYaml = (home: { repoId: number; ownerId: number }) =>
  paymentsOperatorYaml(home) +
  REPOS.map((name) =>
    binding(`${name}-api`, ids[name] as number, home.ownerId, `acme/${name}`),
  ).join("") +
  binding("vault-api", ids.vault as number, beta.ownerId, "beta/vault");

const ACTIVE = ["grant.requested", "approval.recorded", "grant.activated"];

describe("grants ended on GitHub's side", () => {
  let h: Hallpass;
  /** An active grant on acme/payments that no event here is about. */
  let bystander: TicketRef;
  beforeAll(async () => {
    h = await startHallpass({ seed, operatorYaml });
    syncClock(h);
    bystander = await active("acme/payments", "carol", "payments-api");
  });
  afterAll(() => h.stop());
  beforeEach(() => syncClock(h));

  /** An issue ticket by alice on `repo`, approved by `approver`: active. */
  async function active(repo: string, approver: string, resource: string): Promise<TicketRef> {
    const issue = await openIssueTicket(h, "alice", requestBody({ resource }), repo);
    const ref = { repoId: issue.repoId, number: issue.number };
    await commentOn(h, ref, approver, "/approve");
    expect((await stateOf(h, ref))?.state).toBe("active");
    return ref;
  }

  /** The ticket's grant ended with `reason`, audited, and nothing queued for GitHub. */
  async function endedQuietly(
    ref: TicketRef,
    state: "revoked" | "cancelled",
    reason: string,
    queued: number,
  ): Promise<void> {
    expect(await stateOf(h, ref)).toMatchObject({ state, end_reason: reason });
    const audit = await auditOf(h, ref);
    expect(audit.at(-1)).toMatchObject({
      kind: `grant.${state}`,
      data: { reason },
    });
    expect((await effectsOf(h, ref)).length).toBe(queued);
  }

  async function bystanderUntouched(): Promise<void> {
    expect((await stateOf(h, bystander))?.state).toBe("active");
    expect(await auditKindsOf(h, bystander)).toEqual(ACTIVE);
  }

  it("issues.transferred ends the moved issue's grant, and only its", async () => {
    const other = await active("acme/payments", "bob", "payments-api");
    const ticket = await active("acme/payments", "carol", "payments-api");
    const queued = (await effectsOf(h, ticket)).length;
    const issue = h.sim.issue(ticket.repoId, ticket.number);
    const moved = h.sim.openIssue("acme/ledger", {
      author: "alice",
      body: issue.body,
      labels: ["hallpass"],
    });
    await h.deliver(issuesEvent(h.sim, "transferred", ticket, { to: moved, sender: "bob" }));
    await endedQuietly(ticket, "revoked", "the issue was transferred to acme/ledger", queued);
    expect((await stateOf(h, other))?.state).toBe("active");
    await bystanderUntouched();
  });

  it("issues.deleted ends the deleted issue's grant, and only its", async () => {
    const ticket = await active("acme/payments", "bob", "payments-api");
    const queued = (await effectsOf(h, ticket)).length;
    await h.deliver(issuesEvent(h.sim, "deleted", ticket, { sender: "bob" }));
    await endedQuietly(ticket, "revoked", "the issue was deleted", queued);
    await bystanderUntouched();
  });

  it("installation_repositories.removed ends the grants of the removed repositories only", async () => {
    const ticket = await active("acme/removed", "bob", "removed-api");
    const queued = (await effectsOf(h, ticket)).length;
    const installationId = h.sim.installationFor(h.sim.repo("acme/removed"))?.id as number;
    await h.deliver(
      installationRepositoriesEvent(h.sim, "removed", {
        installationId,
        repos: ["acme/removed"],
        sender: "bob",
      }),
    );
    await endedQuietly(
      ticket,
      "revoked",
      "the hallpass GitHub App no longer has access to acme/removed",
      queued,
    );
    await bystanderUntouched();
  });

  it("repository.deleted revokes the repository's active grants and cancels its pending requests", async () => {
    const ticket = await active("acme/gone", "bob", "gone-api");
    const pending = await openIssueTicket(
      h,
      "alice",
      requestBody({ resource: "gone-api" }),
      "acme/gone",
    );
    const pendingRef = { repoId: pending.repoId, number: pending.number };
    expect((await stateOf(h, pendingRef))?.state).toBe("pending");
    const queued = [(await effectsOf(h, ticket)).length, (await effectsOf(h, pendingRef)).length];
    h.sim.deleteRepo("acme/gone");
    await h.deliver(
      repositoryEndEvent(h.sim, "deleted", { repo: ids.gone as number, sender: "bob" }),
    );
    const reason = "the repository acme/gone was deleted";
    await endedQuietly(ticket, "revoked", reason, queued[0] as number);
    await endedQuietly(pendingRef, "cancelled", reason, queued[1] as number);
    await bystanderUntouched();
  });

  it("repository.transferred ends the repository's grants", async () => {
    const ticket = await active("acme/moved", "bob", "moved-api");
    const queued = (await effectsOf(h, ticket)).length;
    h.sim.renameRepo("acme/moved", "beta/moved");
    await h.deliver(
      repositoryEndEvent(h.sim, "transferred", {
        repo: ids.moved as number,
        sender: "bob",
        from: "acme",
      }),
    );
    await endedQuietly(
      ticket,
      "revoked",
      "the repository acme/moved was transferred to beta",
      queued,
    );
    await bystanderUntouched();
  });

  it("repository.archived ends the repository's grants", async () => {
    const ticket = await active("acme/frozen", "bob", "frozen-api");
    const queued = (await effectsOf(h, ticket)).length;
    await h.deliver(
      repositoryEndEvent(h.sim, "archived", { repo: ids.frozen as number, sender: "bob" }),
    );
    await endedQuietly(ticket, "revoked", "the repository acme/frozen was archived", queued);
    await bystanderUntouched();
  });

  it("installation.suspend ends every grant of that installation; unsuspend brings none back", async () => {
    const ticket = await active("beta/vault", "vic", "vault-api");
    const queued = (await effectsOf(h, ticket)).length;
    await h.deliver(
      installationEvent(h.sim, "suspend", {
        installationId: beta.installationId,
        sender: "vic",
      }),
    );
    const reason = "the hallpass GitHub App was suspended";
    await endedQuietly(ticket, "revoked", reason, queued);
    await bystanderUntouched();

    await h.deliver(
      installationEvent(h.sim, "unsuspend", {
        installationId: beta.installationId,
        sender: "vic",
      }),
    );
    expect(await grantsOf(h, ticket)).toMatchObject([{ state: "revoked", end_reason: reason }]);
    expect(await auditKindsOf(h, ticket)).toEqual([...ACTIVE, "grant.revoked"]);
    expect((await effectsOf(h, ticket)).length).toBe(queued);
  });
});
