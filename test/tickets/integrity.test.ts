import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { bumpRulesGeneration, rulesGeneration } from "#src/store/rules-generations.js";
import { getTicketById } from "#src/store/tickets.js";
import { activate } from "#src/tickets/transitions.js";
import type { PullRequest } from "../support/github/model.js";
import type { GitHubSimulator } from "../support/github/simulator.js";
import {
  issueCommentEvent,
  issuesEvent,
  pullRequestEvent,
  pushEvent,
  repositoryEvent,
} from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import {
  approvalsOf,
  auditKindsOf,
  commentOn,
  grantsOf,
  lastNotice,
  noticesOf,
  openIssueTicket,
  openPrTicket,
  operatorYaml as paymentsOperatorYaml,
  requestBody,
  reviewPr,
  seedAcme,
  stateOf,
  syncClock,
  type TicketRef,
} from "./fixtures.js";

/** acme/vault needs two approvals; acme/forced is the repository force-pushed here. */
const VAULT_POLICY = `label: hallpass
resources:
  vault-api:
    path: /
    scopes:
      read: ["GET /v1/**"]
    default_ttl: 1h
    max_ttl: 4h
    approvals: 2
`;
const FORCED_POLICY = VAULT_POLICY.replaceAll("vault-api", "forced-api").replace(
  "approvals: 2",
  "approvals: 1",
);

/**
 * acme's organization policy (acme/.github), which acme/inherits has no
 * policy of its own to override; acme/layered extends a file of its own.
 */
const ORG_POLICY = VAULT_POLICY.replaceAll("vault-api", "shared-api")
  .replace("approvals: 2", "approvals: 1")
  .replace('read: ["GET /v1/**"]', 'read: ["GET /v1/**"]\n      refund: ["POST /v1/refunds"]');
const LAYERED_BASE = ORG_POLICY.replace("label: hallpass\n", "").replaceAll(
  "shared-api",
  "layered-api",
);

const extra = { vaultId: 0, forcedId: 0, orgId: 0, inheritsId: 0, layeredId: 0 };
function seed(sim: GitHubSimulator) {
  const ids = seedAcme(sim);
  sim.addUser("stranger");
  sim.addUser("renovate[bot]", { type: "Bot" });
  sim.setPermission("acme/payments", "renovate[bot]", "write");
  for (const [name, policy, key] of [
    ["acme/vault", VAULT_POLICY, "vaultId"],
    ["acme/forced", FORCED_POLICY, "forcedId"],
  ] as const) {
    const repo = sim.addRepo(name, {
      files: { ".github/hallpass.yml": policy, CODEOWNERS: "* @bob @carol\n" },
    });
    for (const login of ["alice", "bob", "carol", "mallory"])
      sim.setPermission(name, login, "write");
    extra[key] = repo.id;
  }
  for (const [name, files, key] of [
    ["acme/.github", { ".github/hallpass.yml": ORG_POLICY }, "orgId"],
    ["acme/inherits", { CODEOWNERS: "* @bob @carol\n" }, "inheritsId"],
    [
      "acme/layered",
      {
        ".github/hallpass.yml": "_extends: layered:policies/base.yml\nlabel: hallpass\n",
        "policies/base.yml": LAYERED_BASE,
        CODEOWNERS: "* @bob @carol\n",
      },
      "layeredId",
    ],
  ] as const) {
    const repo = sim.addRepo(name, { files });
    for (const login of ["alice", "bob", "carol", "mallory"])
      sim.setPermission(name, login, "write");
    extra[key] = repo.id;
  }
  return ids;
}

/** The shared payments-api binding, and the two repositories of these tests. */
const operatorYaml = (ids: {
  repoId: number;
  ownerId: number;
}) => `${paymentsOperatorYaml(ids)}  vault-api:
    repository: { id: ${extra.vaultId}, owner_id: ${ids.ownerId}, name: acme/vault }
    max_ttl: 8h
    scopes: ["GET /v1/**", "POST /v1/refunds"]
  forced-api:
    repository: { id: ${extra.forcedId}, owner_id: ${ids.ownerId}, name: acme/forced }
    max_ttl: 8h
    scopes: ["GET /v1/**"]
  shared-api:
    repository: { id: ${extra.inheritsId}, owner_id: ${ids.ownerId}, name: acme/inherits }
    max_ttl: 8h
    scopes: ["GET /v1/**", "POST /v1/refunds"]
  layered-api:
    repository: { id: ${extra.layeredId}, owner_id: ${ids.ownerId}, name: acme/layered }
    max_ttl: 8h
    scopes: ["GET /v1/**", "POST /v1/refunds"]
`;

describe("approval integrity", () => {
  let h: Hallpass;
  beforeAll(async () => {
    h = await startHallpass({ seed, operatorYaml });
  });
  afterAll(() => h.stop());
  beforeEach(() => syncClock(h));

  const states = async (ref: TicketRef) => (await grantsOf(h, ref)).map((g) => g.state);
  async function trace(ref: TicketRef): Promise<string[]> {
    await commentOn(h, ref, "dave", "/status");
    return (await lastNotice(h, ref))?.trace as string[];
  }
  /** A commit on the PR's branch, delivered as `synchronize` (pushed by its author). */
  async function pushToPr(
    pr: PullRequest,
    change: Parameters<GitHubSimulator["commit"]>[1],
  ): Promise<string> {
    const before = pr.pull.head.sha;
    const sha = h.sim.commit("acme/payments", { branch: pr.pull.head.ref, ...change });
    await h.deliver(
      pullRequestEvent(h.sim, "synchronize", pr, {
        before,
        sender: typeof change.author === "string" ? change.author : "alice",
      }),
    );
    return sha;
  }

  describe("auto-approval and break-glass hold only for the requesters' own code", () => {
    it("a writer outside the group pushes to an auto-approved PR: it is not auto-approved again, whoever edits it", async () => {
      const body = requestBody({ duration: "30m" });
      const pr = await openPrTicket(h, "sam", "sam-fix", { body });
      expect(await stateOf(h, pr)).toMatchObject({ state: "active", decision: "auto" });
      const sha = await pushToPr(pr, {
        files: { "services/payments/mallory.ts": "export const m = 1;\n" },
        author: "mallory",
      });
      expect(await states(pr)).toEqual(["revoked"]);

      // The other writer edits the title: that never asks again for sam.
      const before = h.sim.editIssue("acme/payments", pr.number, { title: "Tweak" });
      await h.deliver(
        pullRequestEvent(h.sim, "edited", pr, {
          sender: "mallory",
          changes: { title: { from: before.title } },
        }),
      );
      expect(await states(pr)).toEqual(["revoked"]);

      // sam asks again: mallory's commit needs a code owner.
      h.sim.editIssue("acme/payments", pr.number, { title: "Tweak again" });
      await h.deliver(
        pullRequestEvent(h.sim, "edited", pr, {
          sender: "sam",
          changes: { title: { from: "Tweak" } },
        }),
      );
      expect(await states(pr)).toEqual(["pending", "revoked"]);
      expect(await trace(pr)).toContain(
        `auto_approve rule 1 does not apply: the pull request has commits by people outside @acme/sre: @mallory (author of ${sha.slice(0, 7)})`,
      );
    });

    it("terms someone else wrote after /done are never asked for, whatever event comes next", async () => {
      const pr = await openPrTicket(h, "sam", "sam-done", {
        body: requestBody({ duration: "30m" }),
      });
      expect(await stateOf(h, pr)).toMatchObject({ state: "active", decision: "auto" });
      await commentOn(h, pr, "sam", "/done");
      expect(await states(pr)).toEqual(["revoked"]);

      // mallory writes other terms into sam's request; sam's push is delivered before her edit.
      const before = h.sim.editIssue("acme/payments", pr.number, {
        body: requestBody({ duration: "20m" }),
      });
      await pushToPr(pr, { files: { "services/payments/sam2.ts": "export {};\n" }, author: "sam" });
      expect(await states(pr)).toEqual(["revoked"]);
      await h.deliver(
        pullRequestEvent(h.sim, "edited", pr, {
          sender: "mallory",
          changes: { body: { from: before.body ?? "" } },
        }),
      );
      expect(await states(pr)).toEqual(["revoked"]);
      // Nor when sam pushes again, nor when mallory relabels.
      await pushToPr(pr, { files: { "services/payments/sam3.ts": "export {};\n" }, author: "sam" });
      expect(await states(pr)).toEqual(["revoked"]);
      h.sim.removeLabel("acme/payments", pr.number, "hallpass");
      await h.deliver(
        pullRequestEvent(h.sim, "unlabeled", pr, { label: "hallpass", sender: "mallory" }),
      );
      h.sim.addLabel("acme/payments", pr.number, "hallpass");
      await h.deliver(
        pullRequestEvent(h.sim, "labeled", pr, { label: "hallpass", sender: "mallory" }),
      );
      expect(await states(pr)).toEqual(["revoked"]);

      // sam's own edit asks, on the terms he wrote.
      const mallorys = h.sim.editIssue("acme/payments", pr.number, {
        body: requestBody({ duration: "20m", reason: "Check the refunds of INC-42 again" }),
      });
      await h.deliver(
        pullRequestEvent(h.sim, "edited", pr, {
          sender: "sam",
          changes: { body: { from: mallorys.body ?? "" } },
        }),
      );
      expect(await grantsOf(h, pr)).toHaveLength(2);
      expect(await stateOf(h, pr)).toMatchObject({
        requester_login: "sam",
        duration_s: 1200,
        reason: "Check the refunds of INC-42 again",
      });
    });

    it("an issue's terms edited by someone else are not asked for when they relabel or reopen it", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "bob", "/approve");
      await commentOn(h, issue, "alice", "/done");
      expect(await states(issue)).toEqual(["revoked"]);
      const before = h.sim.editIssue("acme/payments", issue.number, {
        body: requestBody({ scopes: "read, refund" }),
      });
      await h.deliver(
        issuesEvent(h.sim, "edited", issue, {
          sender: "mallory",
          changes: { body: { from: before.body ?? "" } },
        }),
      );
      h.sim.removeLabel("acme/payments", issue.number, "hallpass");
      await h.deliver(
        issuesEvent(h.sim, "unlabeled", issue, { label: "hallpass", sender: "mallory" }),
      );
      h.sim.addLabel("acme/payments", issue.number, "hallpass");
      await h.deliver(
        issuesEvent(h.sim, "labeled", issue, { label: "hallpass", sender: "mallory" }),
      );
      expect(await states(issue)).toEqual(["revoked"]);
      // Nor when it is closed and reopened.
      h.sim.closeIssue("acme/payments", issue.number, { by: "mallory" });
      await h.deliver(issuesEvent(h.sim, "closed", issue, { sender: "mallory" }));
      h.sim.reopenIssue("acme/payments", issue.number);
      await h.deliver(issuesEvent(h.sim, "reopened", issue, { sender: "mallory" }));
      expect(await states(issue)).toEqual(["revoked"]);
    });

    it("someone else's edit of a pending request's terms ends it instead of changing it", async () => {
      const issue = await openIssueTicket(h, "sam", requestBody({ scopes: "refund" }));
      expect(await states(issue)).toEqual(["pending"]);
      const before = h.sim.editIssue("acme/payments", issue.number, {
        body: requestBody({ duration: "20m" }),
      });
      await h.deliver(
        issuesEvent(h.sim, "edited", issue, {
          sender: "mallory",
          changes: { body: { from: before.body ?? "" } },
        }),
      );
      expect(await stateOf(h, issue)).toMatchObject({
        state: "cancelled",
        scopes: ["refund"],
        end_reason: "the request was edited by mallory, not by its requester sam",
      });
    });

    it("a commit committed by someone outside the group stops auto-approval too", async () => {
      const pr = await openPrTicket(h, "sam", "sam-committed", {
        body: requestBody({ duration: "30m" }),
        labels: [],
      });
      const sha = await pushToPr(pr, {
        files: { "services/payments/c.ts": "export {};\n" },
        author: "sam",
        committer: "mallory",
      });
      h.sim.addLabel("acme/payments", pr.number, "hallpass");
      await h.deliver(
        pullRequestEvent(h.sim, "labeled", pr, {
          label: "hallpass",
          sender: "sam",
        }),
      );
      expect(await states(pr)).toEqual(["pending"]);
      expect(await trace(pr)).toContain(
        `auto_approve rule 1 does not apply: the pull request has commits by people outside @acme/sre: @mallory (committer of ${sha.slice(0, 7)})`,
      );
    });

    it("break-glass on a PR with someone else's commit is refused", async () => {
      const pr = await openPrTicket(h, "olga", "olga-glass");
      await pushToPr(pr, {
        files: { "services/payments/m.ts": "export {};\n" },
        author: "mallory",
      });
      await commentOn(h, pr, "olga", "/break-glass checkout is down, INC-90");
      expect(await states(pr)).toEqual(["pending"]);
      expect((await lastNotice(h, pr))?.why).toMatch(
        /^the pull request has commits by people outside @acme\/oncall: @mallory \(author of [0-9a-f]{7}\); a code owner approves instead$/,
      );
    });
  });

  describe("the people behind a PR's commits", () => {
    it("an author GitHub links to no account makes every approval void", async () => {
      const pr = await openPrTicket(h, "alice", "unlinked");
      const sha = await pushToPr(pr, {
        files: { "services/payments/u.ts": "export {};\n" },
        author: { name: "Bob", email: "bob@corp.example" },
      });
      await reviewPr(h, pr, "bob");
      expect(await states(pr)).toEqual(["pending"]);
      expect(await trace(pr)).toContain(
        `no approval can count: the author of ${sha.slice(0, 7)} (bob@corp.example) is no GitHub account; the committer of ${sha.slice(0, 7)} (bob@corp.example) is no GitHub account`,
      );
    });

    it("a committer or a co-author never approves", async () => {
      const committed = await openPrTicket(h, "alice", "carol-committed");
      await pushToPr(committed, {
        files: { "services/payments/cc.ts": "export {};\n" },
        author: "alice",
        committer: "carol",
      });
      await reviewPr(h, committed, "carol");
      expect(await states(committed)).toEqual(["pending"]);
      expect(await trace(committed)).toContain(
        "@carol approved: does not count, they committed on this pull request",
      );

      const coAuthored = await openPrTicket(h, "alice", "carol-co-authored");
      const carol = h.sim.user("carol");
      await pushToPr(coAuthored, {
        files: { "services/payments/ca.ts": "export {};\n" },
        author: "alice",
        message: `Pair on refunds\n\nCo-authored-by: Carol <${carol.id}+carol@users.noreply.github.com>`,
      });
      await reviewPr(h, coAuthored, "carol");
      expect(await states(coAuthored)).toEqual(["pending"]);
      expect(await trace(coAuthored)).toContain(
        "@carol approved: does not count, they co-authored commits on this pull request",
      );
      await reviewPr(h, coAuthored, "bob");
      expect(await stateOf(h, coAuthored)).toMatchObject({ state: "active", approvers: ["bob"] });
    });

    it("a co-author GitHub cannot name makes every approval void", async () => {
      const pr = await openPrTicket(h, "alice", "unknown-co-author");
      const sha = await pushToPr(pr, {
        files: { "services/payments/x.ts": "export {};\n" },
        author: "alice",
        message: "Refunds\n\nCo-authored-by: Someone <someone@corp.example>",
      });
      await reviewPr(h, pr, "bob");
      expect(await states(pr)).toEqual(["pending"]);
      expect(await trace(pr)).toContain(
        `no approval can count: the co-author someone@corp.example of ${sha.slice(0, 7)} cannot be matched to a GitHub account`,
      );
    });
  });

  describe("an approval counts only for the request it was given to", () => {
    it("/approve on a closed issue is refused, stored nowhere, and reopening needs a new one", async () => {
      const issue = await openIssueTicket(h, "alice");
      h.sim.closeIssue("acme/payments", issue.number, { by: "alice" });
      await h.deliver(issuesEvent(h.sim, "closed", issue));
      await commentOn(h, issue, "carol", "/approve");
      expect(await lastNotice(h, issue)).toMatchObject({
        kind: "command_refused",
        why: "there is no pending request on this ticket to approve",
      });
      expect(await approvalsOf(h, issue)).toEqual([]);
      h.sim.reopenIssue("acme/payments", issue.number);
      await h.deliver(issuesEvent(h.sim, "reopened", issue));
      expect(await states(issue)).toEqual(["pending", "cancelled"]);
    });

    it("an /approve after /deny does not count when the requester asks again", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "bob", "/deny not for this incident");
      await commentOn(h, issue, "carol", "/approve");
      const before = h.sim.editIssue("acme/payments", issue.number, { title: "Please" });
      await h.deliver(
        issuesEvent(h.sim, "edited", issue, { changes: { title: { from: before.title } } }),
      );
      expect(await states(issue)).toEqual(["pending", "denied"]);
    });

    it("an approving review while nothing is pending is answered and never counts later", async () => {
      const pr = await openPrTicket(h, "alice", "closed-then-reviewed");
      h.sim.closeIssue("acme/payments", pr.number, { by: "alice" });
      await h.deliver(pullRequestEvent(h.sim, "closed", pr));
      await reviewPr(h, pr, "bob");
      expect(await lastNotice(h, pr)).toMatchObject({
        kind: "command_refused",
        command: "approving review",
        actor: "bob",
      });
      h.sim.reopenIssue("acme/payments", pr.number);
      await h.deliver(pullRequestEvent(h.sim, "reopened", pr));
      expect(await states(pr)).toEqual(["pending", "cancelled"]);
      expect(await auditKindsOf(h, pr)).toContain("approval.refused");
    });

    it("a review of a new head after new commits ended the grant asks again and approves", async () => {
      const pr = await openPrTicket(h, "alice", "reapproved");
      await reviewPr(h, pr, "bob");
      expect(await states(pr)).toEqual(["active"]);
      await pushToPr(pr, { files: { "services/payments/r.ts": "export {};\n" }, author: "alice" });
      expect(await states(pr)).toEqual(["revoked"]);
      // The requester's own review does not ask again; a code owner's does.
      await reviewPr(h, pr, "alice");
      expect(await states(pr)).toEqual(["revoked"]);
      await reviewPr(h, pr, "bob");
      const head = pr.pull.head.sha;
      expect(await stateOf(h, pr)).toMatchObject({
        state: "active",
        approvers: ["bob"],
        approved_commit: head,
      });
      expect(await states(pr)).toEqual(["active", "revoked"]);
    });

    it("an approval does not count once the policy widens what the request allows", async () => {
      const vault = h.sim.repo("acme/vault");
      const issue = await openIssueTicket(
        h,
        "alice",
        requestBody({ resource: "vault-api" }),
        vault.id,
      );
      const ref = { repoId: vault.id, number: issue.number };
      await commentOn(h, ref, "bob", "/approve");
      expect(await states(ref)).toEqual(["pending"]);

      const before = h.sim.branchHead(vault.id);
      h.sim.commit(vault.id, {
        files: {
          ".github/hallpass.yml": VAULT_POLICY.replace(
            'read: ["GET /v1/**"]',
            'read: ["GET /v1/**", "POST /v1/refunds"]',
          ),
        },
        author: "mallory",
      });
      await h.deliver(pushEvent(h.sim, { repo: vault.id, branch: "main", before }));
      await commentOn(h, ref, "carol", "/approve");
      expect(await states(ref)).toEqual(["pending"]);
      expect(await trace(ref)).toContain(
        "@bob approved: does not count, it was given to an earlier version of the request",
      );
      h.clock.advance(60_000);
      await commentOn(h, ref, "bob", "/approve");
      expect(await stateOf(h, ref)).toMatchObject({
        state: "active",
        permissions: ["GET /v1/**", "POST /v1/refunds"],
      });
    });
  });

  describe("rules changed under a decision", () => {
    it("a decision does not activate on rules a push changed meanwhile", async () => {
      const issue = await openIssueTicket(h, "alice");
      const [grant] = await grantsOf(h, issue);
      const ticket = await getTicketById(h.db, String(grant?.ticket_id));
      if (!ticket || !grant) throw new Error("no ticket");
      const repo = { id: ticket.repoId, owner: "acme", name: "payments" };
      const seen = await rulesGeneration(h.db, repo.id);
      await bumpRulesGeneration(h.db, repo.id);
      const now = h.clock.now();
      const activation = {
        startsAt: now,
        endsAt: new Date(now.getTime() + 3_600_000),
        scopes: ["read"],
        permissions: ["GET /v1/**"],
        scopePermissions: { read: ["GET /v1/**"] },
        approvers: ["bob"],
        decision: "approvals" as const,
        autoRule: null,
        reviewDueAt: null,
        policySha: "0".repeat(40),
        policyFiles: [],
        approvedCommit: null,
        constraints: {},
        tokenTtlS: 900,
        rateLimit: null,
      };
      const notice = { kind: "status" as const, state: "active", trace: [] };
      const scope = { ticket, repo };
      const hash = String(grant.request_hash);
      const id = String(grant.id);
      expect(
        await activate(
          h.db,
          scope,
          id,
          { hash, rulesGeneration: seen },
          activation,
          "github:bob",
          notice,
          {},
        ),
      ).toBeNull();
      expect(await states(issue)).toEqual(["pending"]);
      expect(
        await activate(
          h.db,
          scope,
          id,
          { hash, rulesGeneration: seen + 1 },
          activation,
          "github:bob",
          notice,
          {},
        ),
      ).not.toBeNull();
    });

    it("a force-push that takes back a CODEOWNERS change is seen, though its commits touch no rule", async () => {
      const forced = h.sim.repo("acme/forced");
      const base = h.sim.branchHead(forced.id);
      h.sim.commit(forced.id, { files: { CODEOWNERS: "* @bob @carol @mallory\n" }, author: "bob" });
      await h.deliver(pushEvent(h.sim, { repo: forced.id, branch: "main", before: base }));
      const issue = await openIssueTicket(
        h,
        "alice",
        requestBody({ resource: "forced-api" }),
        forced.id,
      );
      const ref = { repoId: forced.id, number: issue.number };
      await commentOn(h, ref, "mallory", "/approve");
      expect(await stateOf(h, ref)).toMatchObject({ state: "active", approvers: ["mallory"] });

      const owned = h.sim.branchHead(forced.id);
      h.sim.commit(forced.id, {
        parents: [base],
        files: { "README.md": "forced\n" },
        author: "bob",
      });
      const push = pushEvent(h.sim, {
        repo: forced.id,
        branch: "main",
        before: owned,
        forced: true,
      });
      expect(
        push.payload.commits.flatMap((c) => [...c.added, ...c.modified, ...c.removed]),
      ).not.toContain("CODEOWNERS");
      await h.deliver(push);
      expect(await stateOf(h, ref)).toMatchObject({
        state: "revoked",
        end_reason: "mallory is no longer a code owner of /",
      });
    });
  });

  describe("a push whose commits do not say what changed is compared before → after", () => {
    const OWNED = "* @bob @carol @mallory\n";
    const NOT_OWNED = "* @bob @carol\n";
    /** acme/forced with mallory a code owner, and an issue ticket she approved: active. */
    async function approvedByMallory(): Promise<TicketRef> {
      const forced = h.sim.repo("acme/forced");
      const before = h.sim.branchHead(forced.id);
      h.sim.commit(forced.id, { files: { CODEOWNERS: OWNED }, author: "bob" });
      await h.deliver(pushEvent(h.sim, { repo: forced.id, branch: "main", before }));
      const issue = await openIssueTicket(
        h,
        "alice",
        requestBody({ resource: "forced-api" }),
        forced.id,
      );
      const ref = { repoId: forced.id, number: issue.number };
      await commentOn(h, ref, "mallory", "/approve");
      expect(await stateOf(h, ref)).toMatchObject({ state: "active", approvers: ["mallory"] });
      return ref;
    }
    const revokedForMallory = {
      state: "revoked",
      end_reason: "mallory is no longer a code owner of /",
    };

    it("a push listing no commits whose before → after takes mallory out of CODEOWNERS revokes her approval's grant", async () => {
      const ref = await approvedByMallory();
      const forced = h.sim.repo("acme/forced");
      const before = h.sim.branchHead(forced.id);
      h.sim.commit(forced.id, { files: { CODEOWNERS: NOT_OWNED }, author: "bob" });
      const push = pushEvent(h.sim, { repo: forced.id, branch: "main", before, listed: 0 });
      expect(push.payload.commits).toEqual([]);
      expect(push.payload.before).not.toBe(push.payload.after);
      await h.deliver(push);
      expect(await stateOf(h, ref)).toMatchObject(revokedForMallory);
      expect(await auditKindsOf(h, ref)).toContain("grant.revoked");
    });

    it("a push of 21 commits, listed to 20, whose 21st takes mallory out of CODEOWNERS revokes her approval's grant", async () => {
      const ref = await approvedByMallory();
      const forced = h.sim.repo("acme/forced");
      const before = h.sim.branchHead(forced.id);
      for (let i = 0; i < 20; i++)
        h.sim.commit(forced.id, { files: { [`notes/${i}.md`]: `${i}\n` }, author: "bob" });
      h.sim.commit(forced.id, { files: { CODEOWNERS: NOT_OWNED }, author: "bob" });
      const push = pushEvent(h.sim, { repo: forced.id, branch: "main", before, listed: 20 });
      expect(
        push.payload.commits.flatMap((c) => [...c.added, ...c.modified, ...c.removed]),
      ).not.toContain("CODEOWNERS");
      await h.deliver(push);
      expect(await stateOf(h, ref)).toMatchObject(revokedForMallory);
    });

    it("a compare that lists 300 files, the most GitHub lists, none of them a rule file, is taken as a rules change", async () => {
      const ref = await approvedByMallory();
      const forced = h.sim.repo("acme/forced");
      const before = h.sim.branchHead(forced.id);
      const many = Object.fromEntries(
        Array.from({ length: 300 }, (_, i) => [`0/${String(i).padStart(3, "0")}.md`, "x\n"]),
      );
      // Paths sort "0/..." before "CODEOWNERS": the compare leaves the rule change out.
      h.sim.commit(forced.id, { files: { ...many, CODEOWNERS: NOT_OWNED }, author: "bob" });
      await h.deliver(pushEvent(h.sim, { repo: forced.id, branch: "main", before, listed: 0 }));
      expect(await stateOf(h, ref)).toMatchObject(revokedForMallory);
    });

    it("a compare GitHub cannot answer (it no longer has the old head) is taken as a rules change", async () => {
      const ref = await approvedByMallory();
      const forced = h.sim.repo("acme/forced");
      const before = h.sim.branchHead(forced.id);
      h.sim.commit(forced.id, { files: { CODEOWNERS: NOT_OWNED }, author: "bob" });
      const push = pushEvent(h.sim, { repo: forced.id, branch: "main", before, listed: 0 });
      const gone = "ab".repeat(20);
      await h.deliver({ ...push, payload: { ...push.payload, before: gone } });
      expect(h.sim.requests({ method: "GET", path: /\/compare\//, status: 404 })).toHaveLength(1);
      expect(await stateOf(h, ref)).toMatchObject(revokedForMallory);
    });

    it("a push listing no commits whose compare touches no rule file leaves the rules as they were", async () => {
      const forced = h.sim.repo("acme/forced");
      const generation = await rulesGeneration(h.db, forced.id);
      const before = h.sim.branchHead(forced.id);
      h.sim.commit(forced.id, { files: { "README.md": "unrelated\n" }, author: "bob" });
      await h.deliver(pushEvent(h.sim, { repo: forced.id, branch: "main", before, listed: 0 }));
      expect(h.sim.requests({ method: "GET", path: /\/compare\//, status: 200 })).not.toEqual([]);
      expect(await rulesGeneration(h.db, forced.id)).toBe(generation);
    });
  });

  describe("policies read from other files", () => {
    /** An approved issue of `repo` asking for read and refund on `resource`. */
    async function approved(repo: string, resource: string): Promise<TicketRef> {
      const id = h.sim.repo(repo).id;
      const issue = await openIssueTicket(
        h,
        "alice",
        requestBody({ resource, scopes: "read, refund" }),
        id,
      );
      const ref = { repoId: id, number: issue.number };
      await commentOn(h, ref, "bob", "/approve");
      expect(await stateOf(h, ref)).toMatchObject({ state: "active" });
      return ref;
    }
    /** Commits `files` to `repo`'s default branch and delivers the push. */
    async function push(repo: string, files: Record<string, string>): Promise<void> {
      const before = h.sim.branchHead(repo);
      h.sim.commit(repo, { files, author: "bob" });
      await h.deliver(pushEvent(h.sim, { repo, branch: "main", before }));
    }

    it("a push to the organization's policy re-decides the repositories that use it", async () => {
      const orgHead = h.sim.branchHead("acme/.github");
      const ref = await approved("acme/inherits", "shared-api");
      expect(await stateOf(h, ref)).toMatchObject({
        policy_sha: orgHead,
        policy_files: [{ repo: "acme/.github", path: ".github/hallpass.yml", sha: orgHead }],
      });
      const generation = await rulesGeneration(h.db, extra.inheritsId);

      await push("acme/.github", {
        ".github/hallpass.yml": ORG_POLICY.replace('\n      refund: ["POST /v1/refunds"]', ""),
      });
      expect(await stateOf(h, ref)).toMatchObject({
        state: "revoked",
        end_reason: "scope refund of shared-api is no longer in the policy",
      });
      expect(await rulesGeneration(h.db, extra.inheritsId)).toBe(generation + 1);
      const again = await openIssueTicket(
        h,
        "alice",
        requestBody({ resource: "shared-api", scopes: "refund" }),
        extra.inheritsId,
      );
      const retry = { repoId: extra.inheritsId, number: again.number };
      expect(await grantsOf(h, retry)).toEqual([]);
      expect((await lastNotice(h, retry))?.kind).toBe("request_invalid");
    });

    it("a push to a file the policy extends re-decides, though it is no rule file", async () => {
      const ref = await approved("acme/layered", "layered-api");
      const head = h.sim.branchHead("acme/layered");
      expect(await stateOf(h, ref)).toMatchObject({
        policy_files: [
          { repo: "acme/layered", path: ".github/hallpass.yml", sha: head },
          { repo: "acme/layered", path: "policies/base.yml", sha: head },
        ],
      });
      await push("acme/layered", {
        "policies/base.yml": LAYERED_BASE.replace('\n      refund: ["POST /v1/refunds"]', ""),
      });
      expect(await stateOf(h, ref)).toMatchObject({
        state: "revoked",
        end_reason: "scope refund of layered-api is no longer in the policy",
      });
    });
  });

  it("another default branch is other rules: grants its CODEOWNERS do not back are revoked", async () => {
    const forced = h.sim.repo("acme/forced");
    const issue = await openIssueTicket(
      h,
      "alice",
      requestBody({ resource: "forced-api" }),
      forced.id,
    );
    const ref = { repoId: forced.id, number: issue.number };
    await commentOn(h, ref, "carol", "/approve");
    expect(await stateOf(h, ref)).toMatchObject({ state: "active", approvers: ["carol"] });
    h.sim.commit(forced.id, { branch: "trunk", files: { CODEOWNERS: "* @bob\n" }, author: "bob" });
    forced.defaultBranch = "trunk";
    await h.deliver(
      repositoryEvent(h.sim, "edited", {
        repo: forced.id,
        changes: { default_branch: { from: "main" } },
        sender: "bob",
      }),
    );
    expect(await stateOf(h, ref)).toMatchObject({
      state: "revoked",
      end_reason: "carol is no longer a code owner of /",
    });
  });

  it("an /approve and a review each read the ticket and its rules from GitHub once", async () => {
    const issue = await openIssueTicket(h, "alice");
    const pr = await openPrTicket(h, "alice", "read-once");
    for (const [ref, act] of [
      [issue, () => commentOn(h, issue, "carol", "/approve")],
      [pr, () => reviewPr(h, pr, "bob")],
    ] as const) {
      h.sim.clearRequests();
      await act();
      expect(await stateOf(h, ref)).toMatchObject({ state: "active" });
      const reads = (path: string) => h.sim.requests({ method: "GET", path }).length;
      expect(reads(`/repos/acme/payments/issues/${ref.number}`)).toBe(1);
      expect(reads("/repos/acme/payments/branches/main")).toBe(1);
    }
  });

  describe("cheap requests", () => {
    it("commands from someone without access to the repository are not answered", async () => {
      const issue = await openIssueTicket(h, "alice");
      for (const command of ["/status", "/approve", "/revoke", "/deny no"]) {
        await commentOn(h, issue, "stranger", command);
      }
      expect((await noticesOf(h, issue)).map((n) => n.kind)).toEqual(["request_received"]);
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested"]);
    });

    it("a requester who lost access to the repository is not answered either", async () => {
      h.sim.addUser("erin");
      h.sim.setPermission("acme/payments", "erin", "write");
      const issue = await openIssueTicket(h, "erin");
      h.sim.setPermission("acme/payments", "erin", "none");
      await commentOn(h, issue, "erin", "/status");
      await commentOn(h, issue, "erin", "/break-glass it is down");
      expect((await noticesOf(h, issue)).map((n) => n.kind)).toEqual(["request_received"]);
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested"]);
    });

    it("reviews are refused as commands are: not for people without access, once a minute", async () => {
      const pr = await openPrTicket(h, "alice", "reviewed-cheaply");
      h.sim.closeIssue("acme/payments", pr.number, { by: "alice" });
      await h.deliver(pullRequestEvent(h.sim, "closed", pr));
      const refusals = async () =>
        (await noticesOf(h, pr)).filter((n) => n.kind === "command_refused").length;
      for (let i = 0; i < 3; i++) await reviewPr(h, pr, "stranger");
      expect(await refusals()).toBe(0);
      await reviewPr(h, pr, "bob");
      await reviewPr(h, pr, "bob");
      await commentOn(h, pr, "bob", "/approve");
      expect(await refusals()).toBe(1);
      h.clock.advance(60_000);
      await reviewPr(h, pr, "bob");
      expect(await refusals()).toBe(2);
      expect((await auditKindsOf(h, pr)).filter((k) => k === "approval.refused")).toHaveLength(2);
    });

    it("a bot's commands are not answered", async () => {
      const issue = await openIssueTicket(h, "alice");
      const comment = h.sim.comment("acme/payments", issue.number, {
        author: "renovate[bot]",
        body: "/status",
      });
      await h.deliver(issueCommentEvent(h.sim, "created", comment));
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested"]);
    });
  });
});
