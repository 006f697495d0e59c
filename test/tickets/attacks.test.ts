import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GitHubSimulator } from "../support/github/simulator.js";
import {
  issueCommentEvent,
  issuesEvent,
  pullRequestEvent,
  pullRequestReviewEvent,
} from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import {
  approvalsOf,
  auditKindsOf,
  auditOf,
  CODEOWNERS,
  commentOn,
  deliverAs,
  effectsOf,
  grantsOf,
  issueFormBody,
  lastNotice,
  noticesOf,
  openIssueTicket,
  openPrTicket,
  POLICY,
  requestBody,
  reviewPr,
  seedAcme,
  stateOf,
  syncClock,
  type TicketRef,
} from "./fixtures.js";

const LEDGER_POLICY = `label: hallpass
resources:
  ledger-api:
    path: /
    scopes:
      read: ["GET /v1/**"]
    default_ttl: 1h
    max_ttl: 4h
`;

/** Repositories besides acme/payments: acme/ledger (home of ledger-api) and acme/tools (home of nothing). */
const extra = { ledgerId: 0 };
function seed(sim: GitHubSimulator) {
  const ids = seedAcme(sim);
  // rita owns the payments path through her team but may only read the repository.
  sim.addTeamMember("acme", "payments-owners", "rita");
  sim.setPermission("acme/payments", "rita", "read");
  sim.addUser("dependabot[bot]");
  sim.setPermission("acme/payments", "dependabot[bot]", "write");
  const ledger = sim.addRepo("acme/ledger", {
    files: { ".github/hallpass.yml": LEDGER_POLICY, CODEOWNERS: "* @bob\n" },
  });
  sim.setPermission("acme/ledger", "bob", "write");
  extra.ledgerId = ledger.id;
  // acme/tools claims payments-api in its own policy, with itself as owner.
  sim.addRepo("acme/tools", {
    files: { ".github/hallpass.yml": POLICY, CODEOWNERS: "* @mallory\n" },
  });
  sim.setPermission("acme/tools", "mallory", "write");
  return ids;
}

const operatorYaml = ({ repoId, ownerId }: { repoId: number; ownerId: number }) => `resources:
  payments-api:
    repository: { id: ${repoId}, owner_id: ${ownerId}, name: acme/payments }
    max_ttl: 8h
    scopes: ["GET /v1/**", "POST /v1/refunds", "GET /v1/charges/*"]
  ledger-api:
    repository: { id: ${extra.ledgerId}, owner_id: ${ownerId}, name: acme/ledger }
    max_ttl: 8h
    scopes: ["GET /v1/**"]
`;

describe("attacks on the ticket lifecycle", () => {
  let h: Hallpass;
  beforeAll(async () => {
    h = await startHallpass({ seed, operatorYaml });
  });
  afterAll(() => h.stop());
  beforeEach(() => syncClock(h));

  const activeGrants = async (ref: TicketRef) =>
    (await grantsOf(h, ref)).filter((g) => g.state === "active");

  /** The decision's trace, as /status gives it. */
  async function trace(ref: TicketRef): Promise<string[]> {
    await commentOn(h, ref, "dave", "/status");
    return (await lastNotice(h, ref))?.trace as string[];
  }

  describe("self-approval", () => {
    it("a code owner cannot /approve their own issue", async () => {
      const issue = await openIssueTicket(h, "bob");
      await commentOn(h, issue, "bob", "/approve");
      expect((await stateOf(h, issue))?.state).toBe("pending");
      expect(await lastNotice(h, issue)).toMatchObject({
        kind: "command_refused",
        why: "you cannot approve your own request",
      });
      expect(await approvalsOf(h, issue)).toEqual([]);
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested", "command.refused"]);
    });

    it("a code owner's approving review of their own PR does not count", async () => {
      const pr = await openPrTicket(h, "bob", "self-review");
      await reviewPr(h, pr, "bob");
      expect((await stateOf(h, pr))?.state).toBe("pending");
      expect(await trace(pr)).toContain(
        "@bob approved: does not count, the requester never approves their own request",
      );
      expect(await auditKindsOf(h, pr)).toEqual([
        "grant.requested",
        "approval.recorded",
        "status.requested",
      ]);
    });
  });

  it("an author of one of the PR's commits does not count", async () => {
    const pr = await openPrTicket(h, "alice", "co-authored");
    const before = pr.pull.head.sha;
    h.sim.commit("acme/payments", {
      branch: "co-authored",
      files: { "services/payments/carol.ts": "export const carol = 1;\n" },
      author: "carol",
    });
    await h.deliver(pullRequestEvent(h.sim, "synchronize", pr, { before }));
    await reviewPr(h, pr, "carol");
    expect((await stateOf(h, pr))?.state).toBe("pending");
    expect(await trace(pr)).toContain(
      "@carol approved: does not count, they authored commits on this pull request",
    );
    await reviewPr(h, pr, "bob");
    expect(await stateOf(h, pr)).toMatchObject({ state: "active", approvers: ["bob"] });
  });

  it("an author of a commit past the 250 GitHub lists does not count either", async () => {
    const pr = await openPrTicket(h, "alice", "long-history");
    const before = pr.pull.head.sha;
    for (let i = 0; i < 250; i++) {
      h.sim.commit("acme/payments", {
        branch: "long-history",
        files: { "services/payments/counter.ts": `export const n = ${i};\n` },
        author: "alice",
      });
    }
    h.sim.commit("acme/payments", {
      branch: "long-history",
      files: { "services/payments/carol.ts": "export const carol = 1;\n" },
      author: "carol",
    });
    await h.deliver(pullRequestEvent(h.sim, "synchronize", pr, { before }));
    await reviewPr(h, pr, "carol");
    expect((await stateOf(h, pr))?.state).toBe("pending");
    expect(await activeGrants(pr)).toEqual([]);
    expect(await trace(pr)).toContain(
      "no approval can count: the pull request has more commits than GitHub lists (252, 250 listed)",
    );
  });

  describe("a request edited after it was approved", () => {
    it("an approval given to the read request does not count for refund", async () => {
      const issue = await openIssueTicket(h, "alice");
      // carol approves what she reads; alice widens the request before hallpass sees the approval.
      const approval = h.sim.comment("acme/payments", issue.number, {
        author: "carol",
        body: "/approve",
      });
      const approvalEvent = issueCommentEvent(h.sim, "created", approval);
      const before = h.sim.editIssue("acme/payments", issue.number, {
        body: requestBody({ scopes: "read, refund" }),
      });
      await h.deliver(approvalEvent);
      await h.deliver(
        issuesEvent(h.sim, "edited", issue, { changes: { body: { from: before.body ?? "" } } }),
      );
      const [grant, ...older] = await grantsOf(h, issue);
      expect(older).toEqual([]);
      expect(grant).toMatchObject({ state: "pending", scopes: ["read", "refund"] });
      expect(await trace(issue)).toContain(
        "@carol approved: does not count, it was given to an earlier version of the request",
      );
      expect(await auditKindsOf(h, issue)).toEqual([
        "grant.requested",
        "approval.recorded",
        "grant.request_edited",
        "status.requested",
      ]);
      expect((await noticesOf(h, issue)).map((n) => n.kind)).toEqual([
        "request_received",
        "request_received",
        "status",
      ]);
    });

    it("a review given to the read request does not count for refund", async () => {
      const pr = await openPrTicket(h, "alice", "widened");
      const review = h.sim.review("acme/payments", pr.number, { user: "bob", state: "APPROVED" });
      const reviewEvent = pullRequestReviewEvent(h.sim, "submitted", review);
      const before = h.sim.editIssue("acme/payments", pr.number, {
        body: requestBody({ scopes: "refund" }),
      });
      await h.deliver(reviewEvent);
      await h.deliver(
        pullRequestEvent(h.sim, "edited", pr, { changes: { body: { from: before.body ?? "" } } }),
      );
      expect(await stateOf(h, pr)).toMatchObject({ state: "pending", scopes: ["refund"] });
      expect(await auditKindsOf(h, pr)).toEqual([
        "grant.requested",
        "approval.recorded",
        "grant.request_edited",
      ]);
    });

    it("an active grant keeps its approved terms when the body is edited", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "carol", "/approve");
      const granted = await stateOf(h, issue);
      const before = h.sim.editIssue("acme/payments", issue.number, {
        body: requestBody({ scopes: "read, refund", duration: "4h" }),
      });
      await h.deliver(
        issuesEvent(h.sim, "edited", issue, { changes: { body: { from: before.body ?? "" } } }),
      );
      const [grant, ...older] = await grantsOf(h, issue);
      expect(older).toEqual([]);
      expect(grant).toMatchObject({
        state: "active",
        scopes: ["read"],
        permissions: ["GET /v1/**"],
        ends_at: granted?.ends_at,
        request_hash: granted?.request_hash,
      });
      expect(await lastNotice(h, issue)).toEqual({
        kind: "terms_kept",
        terms: {
          resource: "payments-api",
          scopes: ["read"],
          permissions: ["GET /v1/**"],
          durationSeconds: 7200,
          start: null,
          reason: "Investigate refund failures for INC-42",
        },
      });
      expect(await auditKindsOf(h, issue)).toEqual([
        "grant.requested",
        "approval.recorded",
        "grant.activated",
        "grant.edit_ignored",
      ]);
    });
  });

  describe("approvers who do not count", () => {
    it("a non-owner's /approve is refused and their review does not count", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "mallory", "/approve");
      expect((await stateOf(h, issue))?.state).toBe("pending");
      expect((await lastNotice(h, issue))?.why).toBe(
        "only code owners of services/payments/ can approve (@bob, @acme/payments-owners)",
      );
      const pr = await openPrTicket(h, "alice", "non-owner");
      await reviewPr(h, pr, "mallory");
      expect((await stateOf(h, pr))?.state).toBe("pending");
      expect(await trace(pr)).toContain(
        "@mallory approved: does not count, they are not a code owner of the path",
      );
    });

    it("a code owner without write access is refused, in both channels", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "rita", "/approve");
      expect((await stateOf(h, issue))?.state).toBe("pending");
      expect((await lastNotice(h, issue))?.why).toBe(
        "approvers need write access to this repository",
      );
      const pr = await openPrTicket(h, "alice", "read-only-owner");
      await reviewPr(h, pr, "rita");
      expect((await stateOf(h, pr))?.state).toBe("pending");
      expect(await trace(pr)).toContain(
        "@rita approved: does not count, they have no write access to the repository",
      );
    });

    it("a bot's /approve and approving review are ignored", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "dependabot[bot]", "/approve");
      expect((await stateOf(h, issue))?.state).toBe("pending");
      expect(await approvalsOf(h, issue)).toEqual([]);
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested"]);

      const pr = await openPrTicket(h, "alice", "bot-review");
      await reviewPr(h, pr, "dependabot[bot]");
      expect((await stateOf(h, pr))?.state).toBe("pending");
      expect(await approvalsOf(h, pr)).toEqual([]);
    });
  });

  it("a non-owner's approving review is not the post-hoc review of a break-glass grant", async () => {
    const pr = await openPrTicket(h, "olga", "glass-pr");
    await commentOn(h, pr, "olga", "/break-glass checkout is down, INC-77");
    expect(await stateOf(h, pr)).toMatchObject({ state: "active", break_glass: true });
    await reviewPr(h, pr, "mallory");
    await reviewPr(h, pr, "rita");
    expect((await stateOf(h, pr))?.reviewed_at).toBeNull();
    expect(await auditKindsOf(h, pr)).toEqual([
      "grant.requested",
      "grant.activated",
      "approval.recorded",
      "approval.recorded",
    ]);
    h.clock.advance(24 * 3_600_000);
    await h.sweep();
    expect((await noticesOf(h, pr)).map((n) => n.kind)).toContain("review_overdue");

    // A code owner's approving review is the review.
    const reviewed = await openPrTicket(h, "olga", "glass-pr-reviewed");
    await commentOn(h, reviewed, "olga", "/break-glass checkout is down, INC-78");
    await reviewPr(h, reviewed, "carol");
    expect((await stateOf(h, reviewed))?.reviewed_at).not.toBeNull();
    expect((await auditKindsOf(h, reviewed)).at(-1)).toBe("grant.reviewed");
  });

  describe("a PR that edits its own rules", () => {
    it("cannot make the author's friend an owner through CODEOWNERS in its diff", async () => {
      const pr = await openPrTicket(h, "alice", "own-owners", {
        files: {
          CODEOWNERS: `${CODEOWNERS}/services/payments/ @mallory\n`,
          "services/payments/x.ts": "export {};\n",
        },
      });
      await reviewPr(h, pr, "mallory");
      expect((await stateOf(h, pr))?.state).toBe("pending");
      expect(await trace(pr)).toContain(
        "@mallory approved: does not count, they are not a code owner of the path",
      );
      expect((await noticesOf(h, pr))[0]).toMatchObject({
        kind: "request_received",
        approvers: ["@bob", "@acme/payments-owners"],
      });
    });

    it("cannot auto-approve its author or add scopes through .github/hallpass.yml in its diff", async () => {
      const widened = POLICY.replace('requesters: ["@acme/sre"]', 'requesters: ["@alice"]')
        .replace("max_ttl: 30m\n        requesters", "max_ttl: 4h\n        requesters")
        .replace(
          'refund: ["POST /v1/refunds", "GET /v1/charges/*"]',
          'refund: ["POST /v1/refunds", "GET /v1/charges/*"]\n      charges: ["GET /v1/charges/*"]',
        );
      expect(widened).toContain('requesters: ["@alice"]');
      const pr = await openPrTicket(h, "alice", "own-policy", {
        files: { ".github/hallpass.yml": widened },
      });
      expect((await stateOf(h, pr))?.state).toBe("pending");

      const other = await openPrTicket(h, "alice", "own-scope", {
        files: { ".github/hallpass.yml": widened },
        body: requestBody({ scopes: "charges" }),
      });
      expect(await grantsOf(h, other)).toEqual([]);
      expect(await lastNotice(h, other)).toEqual({
        kind: "request_invalid",
        problems: ['scope "charges" is not defined for payments-api; allowed: read, refund'],
      });
    });
  });

  it("an approval followed by a push does not carry over to the new commit", async () => {
    const pr = await openPrTicket(h, "alice", "push-after");
    await reviewPr(h, pr, "bob");
    const approved = await stateOf(h, pr);
    expect(approved?.state).toBe("active");
    const before = pr.pull.head.sha;
    h.sim.commit("acme/payments", {
      branch: "push-after",
      files: { "services/payments/evil.ts": "export const evil = 1;\n" },
      author: "alice",
    });
    await h.deliver(pullRequestEvent(h.sim, "synchronize", pr, { before }));
    // Relabeling asks again: bob's review of the old commit does not count.
    h.sim.removeLabel("acme/payments", pr.number, "hallpass");
    await h.deliver(pullRequestEvent(h.sim, "unlabeled", pr, { label: "hallpass" }));
    h.sim.addLabel("acme/payments", pr.number, "hallpass");
    await h.deliver(pullRequestEvent(h.sim, "labeled", pr, { label: "hallpass" }));
    expect((await grantsOf(h, pr)).map((g) => g.state)).toEqual(["pending", "revoked"]);
  });

  it("an /approve written by editing a comment never acts", async () => {
    const issue = await openIssueTicket(h, "alice");
    const comment = await commentOn(h, issue, "carol", "Looking at this now.");
    h.sim.editComment(comment.id, "/approve");
    await h.deliver(issueCommentEvent(h.sim, "edited", comment));
    expect((await stateOf(h, issue))?.state).toBe("pending");
    expect(await approvalsOf(h, issue)).toEqual([]);
    expect(await auditKindsOf(h, issue)).toEqual(["grant.requested"]);
    expect((await noticesOf(h, issue)).map((n) => n.kind)).toEqual(["request_received"]);
  });

  describe("replayed deliveries", () => {
    it("the same X-GitHub-Delivery twice is processed once", async () => {
      const issue = h.sim.openIssue("acme/payments", {
        author: "alice",
        body: requestBody(),
        labels: ["hallpass"],
      });
      const opened = issuesEvent(h.sim, "opened", issue);
      const openedId = randomUUID();
      await deliverAs(h, opened, openedId);
      await deliverAs(h, opened, openedId);
      const approval = h.sim.comment("acme/payments", issue.number, {
        author: "carol",
        body: "/approve",
      });
      const approvalEvent = issueCommentEvent(h.sim, "created", approval);
      const approvalId = randomUUID();
      await deliverAs(h, approvalEvent, approvalId);
      await deliverAs(h, approvalEvent, approvalId);
      const { rows } = await h.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM webhook_deliveries WHERE id = ANY($1::text[])",
        [[openedId, approvalId]],
      );
      expect(rows[0]?.n).toBe(2);
      expect((await grantsOf(h, issue)).map((g) => g.state)).toEqual(["active"]);
      expect((await noticesOf(h, issue)).map((n) => n.kind)).toEqual([
        "request_received",
        "granted",
      ]);
      expect(await auditKindsOf(h, issue)).toEqual([
        "grant.requested",
        "approval.recorded",
        "grant.activated",
      ]);
    });

    it("an old /approve replayed after a revocation does not grant again", async () => {
      const issue = await openIssueTicket(h, "alice");
      const approval = await commentOn(h, issue, "carol", "/approve");
      await commentOn(h, issue, "bob", "/revoke");
      await h.deliver(issueCommentEvent(h.sim, "created", approval));
      h.sim.addLabel("acme/payments", issue.number, "hallpass");
      await h.deliver(issuesEvent(h.sim, "labeled", issue, { label: "hallpass" }));
      expect((await grantsOf(h, issue)).map((g) => g.state)).toEqual(["pending", "revoked"]);
    });
  });

  it("a review before the label counts only for the request it saw", async () => {
    // A review of a PR with no request yet is not an approval of anything.
    const blank = await openPrTicket(h, "alice", "blank-then-label", {
      labels: [],
      body: "Refactoring the payments client.",
    });
    await reviewPr(h, blank, "bob");
    expect(await approvalsOf(h, blank)).toEqual([]);
    const blankBefore = h.sim.editIssue("acme/payments", blank.number, { body: requestBody() });
    await h.deliver(
      pullRequestEvent(h.sim, "edited", blank, {
        changes: { body: { from: blankBefore.body ?? "" } },
      }),
    );
    h.sim.addLabel("acme/payments", blank.number, "hallpass");
    await h.deliver(pullRequestEvent(h.sim, "labeled", blank, { label: "hallpass" }));
    expect((await stateOf(h, blank))?.state).toBe("pending");

    // A review of the read request does not approve the refund request labeled later.
    const pr = await openPrTicket(h, "alice", "read-then-refund", { labels: [] });
    await reviewPr(h, pr, "bob");
    const before = h.sim.editIssue("acme/payments", pr.number, {
      body: requestBody({ scopes: "refund" }),
    });
    await h.deliver(
      pullRequestEvent(h.sim, "edited", pr, { changes: { body: { from: before.body ?? "" } } }),
    );
    h.sim.addLabel("acme/payments", pr.number, "hallpass");
    await h.deliver(pullRequestEvent(h.sim, "labeled", pr, { label: "hallpass" }));
    expect(await stateOf(h, pr)).toMatchObject({ state: "pending", scopes: ["refund"] });
    expect(await activeGrants(pr)).toEqual([]);
  });

  describe("resources not bound to the repository", () => {
    it("a repository claiming another repository's resource gets request_invalid", async () => {
      const tools = h.sim.repo("acme/tools");
      const issue = await openIssueTicket(h, "mallory", requestBody(), "acme/tools");
      const ref = { repoId: tools.id, number: issue.number };
      expect(await grantsOf(h, ref)).toEqual([]);
      const notice = (await noticesOf(h, ref))[0];
      expect(notice?.kind).toBe("request_invalid");
      expect(notice?.problems).toEqual([
        `.github/hallpass.yml: resources.payments-api: resource payments-api is not bound to this repository (id ${tools.id})`,
        'unknown resource "payments-api"; this repository has no resources bound on this hallpass server',
      ]);
      await commentOn(h, ref, "mallory", "/approve");
      expect(await grantsOf(h, ref)).toEqual([]);
      expect(await auditKindsOf(h, ref)).toEqual(["request.invalid", "command.refused"]);
    });

    it("a repository re-created under a bound name does not inherit the binding", async () => {
      h.sim.renameRepo("acme/ledger", "acme/ledger-old");
      const impostor = h.sim.addRepo("acme/ledger", {
        files: { ".github/hallpass.yml": LEDGER_POLICY, CODEOWNERS: "* @mallory\n" },
      });
      h.sim.setPermission("acme/ledger", "mallory", "write");
      const body = requestBody({ resource: "ledger-api" });
      const issue = await openIssueTicket(h, "alice", body, impostor.id);
      const ref = { repoId: impostor.id, number: issue.number };
      expect(await grantsOf(h, ref)).toEqual([]);
      expect((await noticesOf(h, ref))[0]?.problems).toContain(
        `.github/hallpass.yml: resources.ledger-api: resource ledger-api is not bound to this repository (id ${impostor.id}): it is bound to a repository with the same name, acme/ledger, but id ${extra.ledgerId}; a renamed or re-created repository does not inherit bindings, the operator must bind it again`,
      );

      // The renamed original keeps its binding: it is bound by id.
      const original = await openIssueTicket(h, "alice", body, extra.ledgerId);
      const originalRef = { repoId: extra.ledgerId, number: original.number };
      expect((await grantsOf(h, originalRef))[0]?.state).toBe("pending");
    });
  });

  it("mentions and HTML in a reason are carried as data", async () => {
    const reason = "@acme/admins <img src=x onerror=alert(1)> | ](";
    const issue = await openIssueTicket(h, "alice", issueFormBody({ reason }));
    const [grant] = await grantsOf(h, issue);
    expect(grant).toMatchObject({ state: "pending", reason });
    expect((await noticesOf(h, issue))[0]).toMatchObject({
      kind: "request_received",
      terms: { reason },
    });
    expect((await auditOf(h, issue))[0]?.data.reason).toBe(reason);

    await commentOn(h, issue, "bob", `/deny ${reason}`);
    expect(await lastNotice(h, issue)).toEqual({ kind: "denied", by: "bob", reason });
    expect((await stateOf(h, issue))?.end_reason).toBe(reason);

    const glass = await openIssueTicket(h, "olga");
    await commentOn(h, glass, "olga", `/break-glass ${reason}`);
    expect((await auditOf(h, glass)).at(-1)?.data.break_glass_reason).toBe(reason);
    expect(
      (await effectsOf(h, glass)).every((e) => e.kind === "comment" || e.kind === "check_run"),
    ).toBe(true);
  });
});
