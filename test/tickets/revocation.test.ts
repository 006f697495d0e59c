import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GitHubSimulator } from "../support/github/simulator.js";
import {
  installationEvent,
  issuesEvent,
  membershipEvent,
  organizationEvent,
  pullRequestEvent,
  pullRequestReviewEvent,
  pushEvent,
} from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import {
  approvalsOf,
  auditKindsOf,
  auditOf,
  CODEOWNERS,
  commentOn,
  effectsOf,
  grantsOf,
  lastNotice,
  openIssueTicket,
  POLICY,
  requestBody,
  seedAcme,
  stateOf,
  syncClock,
} from "./fixtures.js";

const REPORTS = `  reports-api:
    path: services/reports/
    scopes:
      read: ["GET /v1/reports/**"]
    default_ttl: 1h
    max_ttl: 4h
`;
const POLICY_WITH_REPORTS = POLICY + REPORTS;
const CODEOWNERS_WITH_REPORTS = `${CODEOWNERS}/services/reports/ @bob\n`;

const VAULT_POLICY = `label: hallpass
resources:
  vault-api:
    path: services/
    scopes:
      read: ["GET /v1/**"]
    default_ttl: 1h
    max_ttl: 4h
`;

/** acme/payments with two resources, and beta/vault under an installation of its own. */
const beta = { repoId: 0, ownerId: 0, installationId: 0 };
function seed(sim: GitHubSimulator) {
  const ids = seedAcme(sim);
  sim.addOrgMember("acme", "erin");
  sim.addOrgMember("acme", "frank");
  sim.addTeam("acme", "readers", { members: ["frank"] });
  for (const login of ["erin", "frank"]) sim.setPermission("acme/payments", login, "write");
  sim.commit("acme/payments", {
    files: { ".github/hallpass.yml": POLICY_WITH_REPORTS, CODEOWNERS: CODEOWNERS_WITH_REPORTS },
    author: "bob",
  });
  const org = sim.addOrg("beta", { members: ["alice", "vic"] });
  const repo = sim.addRepo("beta/vault", {
    files: { ".github/hallpass.yml": VAULT_POLICY, CODEOWNERS: "/services/ @vic\n" },
  });
  sim.setPermission("beta/vault", "vic", "write");
  beta.repoId = repo.id;
  beta.ownerId = org.user.id;
  beta.installationId = sim.addInstallation("beta").id;
  return ids;
}

const operatorYaml = ({ repoId, ownerId }: { repoId: number; ownerId: number }) => `resources:
  payments-api:
    repository: { id: ${repoId}, owner_id: ${ownerId}, name: acme/payments }
    max_ttl: 8h
    scopes: ["GET /v1/**", "POST /v1/refunds", "GET /v1/charges/*"]
  reports-api:
    repository: { id: ${repoId}, owner_id: ${ownerId}, name: acme/payments }
    max_ttl: 8h
    scopes: ["GET /v1/reports/**"]
  vault-api:
    repository: { id: ${beta.repoId}, owner_id: ${beta.ownerId}, name: beta/vault }
    max_ttl: 8h
    scopes: ["GET /v1/**"]
`;

const ACTIVE = ["grant.requested", "approval.recorded", "grant.activated"];

describe("ending a grant", () => {
  let h: Hallpass;
  beforeAll(async () => {
    h = await startHallpass({ seed, operatorYaml });
  });
  afterAll(() => h.stop());
  beforeEach(() => syncClock(h));

  /** An issue ticket by `requester`, approved by `approver`: active. */
  async function activeIssue(requester = "alice", approver = "carol", body = requestBody()) {
    const issue = await openIssueTicket(h, requester, body);
    await commentOn(h, issue, approver, "/approve");
    expect((await grantsOf(h, issue))[0]?.state).toBe("active");
    return issue;
  }

  describe("pending →", () => {
    it("denied by a code owner's /deny, with the reason", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "bob", "/deny use the read replica instead");
      expect(await stateOf(h, issue)).toMatchObject({
        state: "denied",
        end_reason: "use the read replica instead",
        ended_by: "bob",
      });
      expect(await lastNotice(h, issue)).toEqual({
        kind: "denied",
        by: "bob",
        reason: "use the read replica instead",
      });
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested", "grant.denied"]);
      expect((await auditOf(h, issue)).at(-1)?.actor).toBe("github:bob");
    });

    it("cancelled by the requester's /revoke", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "alice", "/revoke");
      expect(await stateOf(h, issue)).toMatchObject({ state: "cancelled", ended_by: "alice" });
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested", "grant.cancelled"]);
    });

    it("cancelled when the label is removed", async () => {
      const issue = await openIssueTicket(h, "alice");
      h.sim.removeLabel("acme/payments", issue.number, "hallpass");
      await h.deliver(issuesEvent(h.sim, "unlabeled", issue, { label: "hallpass", sender: "bob" }));
      expect(await stateOf(h, issue)).toMatchObject({
        state: "cancelled",
        end_reason: "the hallpass label was removed",
        ended_by: "bob",
      });
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested", "grant.cancelled"]);
    });

    it("cancelled when the ticket is closed", async () => {
      const issue = await openIssueTicket(h, "alice");
      h.sim.closeIssue("acme/payments", issue.number, { by: "alice" });
      await h.deliver(issuesEvent(h.sim, "closed", issue));
      expect(await stateOf(h, issue)).toMatchObject({
        state: "cancelled",
        end_reason: "the issue was closed",
      });
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested", "grant.cancelled"]);
      // Closing the issue again (it is closed) is not queued: only a stale request closes it.
      expect((await effectsOf(h, issue)).map((e) => e.kind)).toEqual(["comment", "comment"]);
    });
  });

  describe("active → revoked", () => {
    it("by a code owner's /revoke", async () => {
      const issue = await activeIssue();
      await commentOn(h, issue, "bob", "/revoke");
      expect(await stateOf(h, issue)).toMatchObject({
        state: "revoked",
        end_reason: "revoked by bob",
        ended_by: "bob",
      });
      expect(await lastNotice(h, issue)).toMatchObject({
        kind: "ended",
        state: "revoked",
        by: "bob",
        usage: { tokens: [], requests: [] },
      });
      expect(await auditKindsOf(h, issue)).toEqual([...ACTIVE, "grant.revoked"]);
    });

    it("by the requester's /done", async () => {
      const issue = await activeIssue();
      await commentOn(h, issue, "alice", "/done");
      expect(await stateOf(h, issue)).toMatchObject({
        state: "revoked",
        end_reason: "the requester gave access back",
        ended_by: "alice",
      });
      expect(await auditKindsOf(h, issue)).toEqual([...ACTIVE, "grant.revoked"]);
    });

    it("when the ticket is closed", async () => {
      const issue = await activeIssue();
      h.sim.closeIssue("acme/payments", issue.number, { by: "bob" });
      await h.deliver(issuesEvent(h.sim, "closed", issue));
      expect(await stateOf(h, issue)).toMatchObject({
        state: "revoked",
        end_reason: "the issue was closed",
        ended_by: "bob",
      });
      expect(await auditKindsOf(h, issue)).toEqual([...ACTIVE, "grant.revoked"]);
    });

    it("when the label is removed", async () => {
      const issue = await activeIssue();
      h.sim.removeLabel("acme/payments", issue.number, "hallpass");
      await h.deliver(
        issuesEvent(h.sim, "unlabeled", issue, { label: "hallpass", sender: "alice" }),
      );
      expect(await stateOf(h, issue)).toMatchObject({
        state: "revoked",
        end_reason: "the hallpass label was removed",
      });
      expect(await auditKindsOf(h, issue)).toEqual([...ACTIVE, "grant.revoked"]);
    });

    it("when the requester leaves the organization (only their grants)", async () => {
      const leaving = await activeIssue("dave");
      const staying = await activeIssue("alice");
      h.sim.removeOrgMember("acme", "dave");
      await h.deliver(organizationEvent(h.sim, "member_removed", { org: "acme", member: "dave" }));
      expect(await stateOf(h, leaving)).toMatchObject({
        state: "revoked",
        end_reason: "dave was removed from acme",
      });
      expect(await auditKindsOf(h, leaving)).toEqual([...ACTIVE, "grant.revoked"]);
      expect((await stateOf(h, staying))?.state).toBe("active");
      expect(await auditKindsOf(h, staying)).toEqual(ACTIVE);
    });

    it("when the requester is removed from a team", async () => {
      const issue = await activeIssue("frank");
      h.sim.removeTeamMember("acme", "readers", "frank");
      await h.deliver(
        membershipEvent(h.sim, "removed", { org: "acme", team: "readers", member: "frank" }),
      );
      expect(await stateOf(h, issue)).toMatchObject({
        state: "revoked",
        end_reason: "frank was removed from the team acme/readers",
      });
      expect(await auditKindsOf(h, issue)).toEqual([...ACTIVE, "grant.revoked"]);
    });

    it("when a push to the default branch removes the resource from the policy", async () => {
      const reports = await activeIssue("alice", "bob", requestBody({ resource: "reports-api" }));
      const payments = await activeIssue("alice", "bob");
      const before = h.sim.branchHead("acme/payments");
      h.sim.commit("acme/payments", {
        files: { ".github/hallpass.yml": POLICY },
        author: "bob",
        message: "Retire reports-api",
      });
      await h.deliver(pushEvent(h.sim, { repo: "acme/payments", branch: "main", before }));
      expect(await stateOf(h, reports)).toMatchObject({ state: "revoked", ended_by: "hallpass" });
      expect((await stateOf(h, reports))?.end_reason).toMatch(
        /^reports-api is no longer in this repository's policy on main/,
      );
      expect(await auditKindsOf(h, reports)).toEqual([...ACTIVE, "grant.revoked"]);
      expect((await stateOf(h, payments))?.state).toBe("active");
      expect(await auditKindsOf(h, payments)).toEqual(ACTIVE);

      const restored = h.sim.branchHead("acme/payments");
      h.sim.commit("acme/payments", { files: { ".github/hallpass.yml": POLICY_WITH_REPORTS } });
      await h.deliver(
        pushEvent(h.sim, { repo: "acme/payments", branch: "main", before: restored }),
      );
    });

    it("when a push to the default branch makes the approver no longer a code owner", async () => {
      const byBob = await activeIssue("alice", "bob");
      const byCarol = await activeIssue("alice", "carol");
      const before = h.sim.branchHead("acme/payments");
      h.sim.commit("acme/payments", {
        files: {
          CODEOWNERS: CODEOWNERS_WITH_REPORTS.replace(
            "/services/payments/ @bob @acme/payments-owners",
            "/services/payments/ @acme/payments-owners",
          ),
        },
        author: "carol",
      });
      await h.deliver(pushEvent(h.sim, { repo: "acme/payments", branch: "main", before }));
      expect(await stateOf(h, byBob)).toMatchObject({
        state: "revoked",
        end_reason: "bob is no longer a code owner of services/payments/",
      });
      expect((await stateOf(h, byCarol))?.state).toBe("active");

      // A push to another branch changes nothing.
      const other = h.sim.commit("acme/payments", {
        branch: "feature",
        files: { CODEOWNERS: "* @mallory\n" },
        author: "mallory",
      });
      await h.deliver(
        pushEvent(h.sim, {
          repo: "acme/payments",
          branch: "feature",
          before: h.sim.branchHead("acme/payments"),
          after: other,
        }),
      );
      expect((await stateOf(h, byCarol))?.state).toBe("active");
      expect(await auditKindsOf(h, byCarol)).toEqual(ACTIVE);

      const restored = h.sim.branchHead("acme/payments");
      h.sim.commit("acme/payments", { files: { CODEOWNERS: CODEOWNERS_WITH_REPORTS } });
      await h.deliver(
        pushEvent(h.sim, { repo: "acme/payments", branch: "main", before: restored }),
      );
    });

    it("when the App is uninstalled, with nothing queued for GitHub", async () => {
      const vault = { repoId: beta.repoId };
      const issue = h.sim.openIssue("beta/vault", {
        author: "alice",
        body: requestBody({ resource: "vault-api" }),
        labels: ["hallpass"],
      });
      await h.deliver(issuesEvent(h.sim, "opened", issue));
      await commentOn(h, issue, "vic", "/approve");
      const ref = { ...vault, number: issue.number };
      expect((await grantsOf(h, ref))[0]?.state).toBe("active");
      const acme = await activeIssue();
      const queued = (await effectsOf(h, ref)).length;

      h.sim.deleteInstallation(beta.installationId);
      await h.deliver(installationEvent(h.sim, "deleted", { installationId: beta.installationId }));
      expect((await grantsOf(h, ref))[0]).toMatchObject({
        state: "revoked",
        end_reason: "the hallpass GitHub App was uninstalled",
      });
      expect(await auditKindsOf(h, ref)).toEqual([...ACTIVE, "grant.revoked"]);
      expect((await effectsOf(h, ref)).length).toBe(queued);
      expect((await stateOf(h, acme))?.state).toBe("active");
    });
  });

  describe("a grant that ended stays ended", () => {
    it("editing, relabeling or reopening the ticket asks again: old approvals do not count", async () => {
      const issue = await activeIssue();
      await commentOn(h, issue, "bob", "/revoke");
      expect((await stateOf(h, issue))?.state).toBe("revoked");

      // The requester edits the title only: the same request, asked again.
      h.sim.editIssue("acme/payments", issue.number, { title: "again please" });
      await h.deliver(issuesEvent(h.sim, "edited", issue, { changes: { title: { from: "x" } } }));
      let grants = await grantsOf(h, issue);
      expect(grants.map((g) => g.state)).toEqual(["pending", "revoked"]);

      // Closing, reopening and relabeling do not revive it either.
      h.sim.closeIssue("acme/payments", issue.number, { by: "alice" });
      await h.deliver(issuesEvent(h.sim, "closed", issue));
      h.sim.reopenIssue("acme/payments", issue.number);
      await h.deliver(issuesEvent(h.sim, "reopened", issue));
      grants = await grantsOf(h, issue);
      expect(grants.map((g) => g.state)).toEqual(["pending", "cancelled", "revoked"]);
      expect(grants.filter((g) => g.state === "active")).toEqual([]);

      // A fresh approval is needed.
      await commentOn(h, issue, "carol", "/approve");
      expect((await stateOf(h, issue))?.state).toBe("active");
      expect(
        (await approvalsOf(h, issue)).map((a) => [a.approver_login, a.voided_at !== null]),
      ).toEqual([
        ["carol", true],
        ["carol", false],
      ]);
    });

    it("an expired grant is not renewed by editing the ticket", async () => {
      const issue = await activeIssue();
      h.clock.advance(2 * 3_600_000);
      await h.sweep();
      expect((await stateOf(h, issue))?.state).toBe("expired");
      h.sim.editIssue("acme/payments", issue.number, { title: "still need it" });
      await h.deliver(issuesEvent(h.sim, "edited", issue, { changes: { title: { from: "x" } } }));
      const grants = await grantsOf(h, issue);
      expect(grants.map((g) => g.state)).toEqual(["pending", "expired"]);
    });

    it("a revoked PR grant is not revived by editing the PR with the old review", async () => {
      const pr = h.sim.openPullRequest("acme/payments", {
        author: "alice",
        head: "revive",
        files: { "services/payments/revive.ts": "export {};\n" },
        body: requestBody(),
        labels: ["hallpass"],
      });
      await h.deliver(pullRequestEvent(h.sim, "opened", pr));
      const review = h.sim.review("acme/payments", pr.number, { user: "bob", state: "APPROVED" });
      await h.deliver(pullRequestReviewEvent(h.sim, "submitted", review));
      expect((await stateOf(h, pr))?.state).toBe("active");
      await commentOn(h, pr, "carol", "/revoke");
      h.sim.editIssue("acme/payments", pr.number, { title: "one more time" });
      await h.deliver(pullRequestEvent(h.sim, "edited", pr, { changes: { title: { from: "x" } } }));
      expect((await grantsOf(h, pr)).map((g) => g.state)).toEqual(["pending", "revoked"]);
    });
  });
});
