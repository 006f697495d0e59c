import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GitHubSimulator } from "../support/github/simulator.js";
import { issueCommentEvent, pullRequestReviewEvent } from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import {
  auditKindsOf,
  auditOf,
  commentOn,
  grantsOf,
  isoOf,
  lastNotice,
  msOf,
  noticesOf,
  openIssueTicket,
  openPrTicket,
  operatorYaml,
  requestBody,
  reviewPr,
  seedAcme,
  stateOf,
  syncClock,
} from "./fixtures.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** seedAcme, with more SRE (auto-approved reads) and on-call (break-glass) people. */
function seed(sim: GitHubSimulator) {
  const ids = seedAcme(sim);
  sim.addTeamMember("acme", "sre", "sue");
  sim.addTeamMember("acme", "sre", "sid");
  sim.addTeamMember("acme", "oncall", "otto");
  for (const login of ["sue", "sid", "otto"]) sim.setPermission("acme/payments", login, "write");
  return ids;
}

const ACTIVE = ["grant.requested", "approval.recorded", "grant.activated"];

describe("ticket commands", () => {
  let h: Hallpass;
  beforeAll(async () => {
    h = await startHallpass({ seed, operatorYaml });
  });
  afterAll(() => h.stop());
  beforeEach(() => syncClock(h));

  async function activeIssue(requester = "alice", body = requestBody()) {
    const issue = await openIssueTicket(h, requester, body);
    await commentOn(h, issue, "carol", "/approve");
    expect((await stateOf(h, issue))?.state).toBe("active");
    return issue;
  }

  describe("/status", () => {
    it("says what a pending request needs, and from whom", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "mallory", "/status");
      const status = await lastNotice(h, issue);
      expect(status).toMatchObject({ kind: "status", state: "pending" });
      expect(status?.trace).toEqual([
        "needs 1 approval from code owners of services/payments/ (CODEOWNERS line 3: @bob @acme/payments-owners), never the requester, a bot or a commit's author, committer or co-author",
        "auto_approve rule 1 does not apply: duration 2h is over its max 30m",
        "waiting for 1 more approval from @bob, @acme/payments-owners",
      ]);
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested", "status.requested"]);
      expect((await stateOf(h, issue))?.state).toBe("pending");
    });

    it("says until when and by whom access was granted", async () => {
      const issue = await activeIssue();
      await commentOn(h, issue, "alice", "/status");
      const grant = await stateOf(h, issue);
      expect(await lastNotice(h, issue)).toEqual({
        kind: "status",
        state: `active until ${isoOf(grant?.ends_at)}`,
        trace: ["granted read on payments-api (approvals by carol)"],
      });
      expect(await auditKindsOf(h, issue)).toEqual([...ACTIVE, "status.requested"]);
    });
  });

  describe("/extend", () => {
    it("needs a code owner's approval, then moves ends_at", async () => {
      const issue = await activeIssue();
      const before = await stateOf(h, issue);
      const endsAt = msOf(before?.ends_at);
      await commentOn(h, issue, "alice", "/extend 30m");
      expect(isoOf((await stateOf(h, issue))?.ends_at)).toBe(new Date(endsAt).toISOString());
      expect(await lastNotice(h, issue)).toEqual({
        kind: "extension_requested",
        requester: "alice",
        extendBySeconds: 1800,
        approvers: ["@bob", "@acme/payments-owners"],
      });

      // The requester cannot approve it; a non-owner cannot either.
      await commentOn(h, issue, "alice", "/approve");
      await commentOn(h, issue, "mallory", "/approve");
      expect(isoOf((await stateOf(h, issue))?.ends_at)).toBe(new Date(endsAt).toISOString());

      await commentOn(h, issue, "bob", "/approve");
      const after = await stateOf(h, issue);
      expect(after).toMatchObject({ state: "active" });
      expect(isoOf(after?.ends_at)).toBe(new Date(endsAt + 30 * MINUTE).toISOString());
      expect(after?.approvers).toEqual(["bob", "carol"]);
      expect(await lastNotice(h, issue)).toEqual({
        kind: "extended",
        by: ["bob"],
        previousEndsAt: new Date(endsAt).toISOString(),
        endsAt: new Date(endsAt + 30 * MINUTE).toISOString(),
      });
      expect(await auditKindsOf(h, issue)).toEqual([
        ...ACTIVE,
        "grant.extension_requested",
        "grant.extension_pending",
        "command.refused",
        "command.refused",
        "approval.recorded",
        "grant.extended",
      ]);
      const extended = (await auditOf(h, issue)).at(-1);
      expect(extended).toMatchObject({
        actor: "github:bob",
        data: {
          previous_ends_at: new Date(endsAt).toISOString(),
          ends_at: new Date(endsAt + 30 * MINUTE).toISOString(),
        },
      });
    });

    // Known gap, not fixed here: on a PR, /approve is refused (approvals are reviews) and the
    // review handler never looks at a pending extension, so a human can never approve one.
    it("on a pull request, is approved by a code owner's review", async () => {
      const pr = await openPrTicket(h, "alice", "extend-pr");
      await reviewPr(h, pr, "bob");
      const endsAt = msOf((await stateOf(h, pr))?.ends_at);
      await commentOn(h, pr, "alice", "/extend 30m");
      await reviewPr(h, pr, "carol");
      expect(isoOf((await stateOf(h, pr))?.ends_at)).toBe(
        new Date(endsAt + 30 * MINUTE).toISOString(),
      );
    });

    it("is refused beyond the resource's max_ttl", async () => {
      const issue = await activeIssue();
      const endsAt = isoOf((await stateOf(h, issue))?.ends_at);
      await commentOn(h, issue, "alice", "/extend 3h");
      expect(await lastNotice(h, issue)).toEqual({
        kind: "command_refused",
        command: "/extend",
        actor: "alice",
        why: "that would make 5h in all; payments-api allows at most 4h",
      });
      await commentOn(h, issue, "bob", "/approve");
      expect(isoOf((await stateOf(h, issue))?.ends_at)).toBe(endsAt);
      expect(await auditKindsOf(h, issue)).toEqual([
        ...ACTIVE,
        "command.refused",
        "command.refused",
      ]);
    });

    it("is auto-approved when an auto_approve rule covers the whole duration", async () => {
      const issue = await openIssueTicket(h, "sid", requestBody({ duration: "10m" }));
      const grant = await stateOf(h, issue);
      expect(grant).toMatchObject({ state: "active", decision: "auto" });
      await commentOn(h, issue, "sid", "/extend 10m");
      expect(isoOf((await stateOf(h, issue))?.ends_at)).toBe(
        new Date(msOf(grant?.ends_at) + 10 * MINUTE).toISOString(),
      );
      expect(await auditKindsOf(h, issue)).toEqual([
        "grant.requested",
        "grant.activated",
        "grant.extension_requested",
        "grant.extended",
      ]);
    });

    it("is refused to anyone but the requester, and without active access", async () => {
      const pending = await openIssueTicket(h, "alice");
      await commentOn(h, pending, "alice", "/extend 30m");
      expect((await lastNotice(h, pending))?.why).toBe("there is no active access to extend");

      const issue = await activeIssue();
      const endsAt = isoOf((await stateOf(h, issue))?.ends_at);
      await commentOn(h, issue, "bob", "/extend 30m");
      expect((await lastNotice(h, issue))?.why).toBe("only the requester can ask for more time");
      await commentOn(h, issue, "carol", "/approve");
      expect(isoOf((await stateOf(h, issue))?.ends_at)).toBe(endsAt);
      expect(await auditKindsOf(h, issue)).toEqual([
        ...ACTIVE,
        "command.refused",
        "command.refused",
      ]);
    });
  });

  describe("/break-glass", () => {
    it("grants an allowed requester at once, flagged for review", async () => {
      const issue = await openIssueTicket(h, "olga");
      await commentOn(h, issue, "olga", "/break-glass checkout is down, INC-1234");
      const grant = await stateOf(h, issue);
      const now = h.clock.now().getTime();
      expect(grant).toMatchObject({
        state: "active",
        break_glass: true,
        decision: "break_glass",
        approvers: [],
        reviewed_at: null,
      });
      expect(isoOf(grant?.starts_at)).toBe(new Date(now).toISOString());
      expect(isoOf(grant?.ends_at)).toBe(new Date(now + 30 * MINUTE).toISOString());
      expect(isoOf(grant?.review_due_at)).toBe(new Date(now + 24 * HOUR).toISOString());
      expect(await lastNotice(h, issue)).toMatchObject({
        kind: "granted",
        decision: "break_glass",
        reviewBy: new Date(now + 24 * HOUR).toISOString(),
        approvers: [],
      });
      const activated = (await auditOf(h, issue)).at(-1);
      expect(activated).toMatchObject({
        kind: "grant.activated",
        actor: "github:olga",
        data: { decision: "break_glass", break_glass_reason: "checkout is down, INC-1234" },
      });

      // A code owner's /approve afterwards is the review.
      await commentOn(h, issue, "bob", "/approve");
      expect((await stateOf(h, issue))?.reviewed_at).not.toBeNull();
      expect(await auditKindsOf(h, issue)).toEqual([
        "grant.requested",
        "grant.activated",
        "approval.recorded",
        "grant.reviewed",
      ]);
      h.clock.advance(25 * HOUR);
      await h.sweep();
      expect((await noticesOf(h, issue)).map((n) => n.kind)).toEqual([
        "request_received",
        "granted",
        "ended",
      ]);
    });

    it("flags a break-glass grant nobody reviewed in time, once", async () => {
      const issue = await openIssueTicket(h, "otto");
      await commentOn(h, issue, "otto", "/break-glass payments queue stuck");
      const due = msOf((await stateOf(h, issue))?.review_due_at);
      h.clock.advance(due - 1_000 - h.clock.now().getTime());
      await h.sweep();
      expect((await noticesOf(h, issue)).map((n) => n.kind)).not.toContain("review_overdue");
      h.clock.advance(1_000);
      await h.sweep();
      await h.sweep();
      expect(await lastNotice(h, issue)).toEqual({
        kind: "review_overdue",
        reviewBy: new Date(due).toISOString(),
      });
      expect(await auditKindsOf(h, issue)).toEqual([
        "grant.requested",
        "grant.activated",
        "grant.expired",
        "grant.review_overdue",
      ]);
    });

    it("is refused to a requester the rule does not name", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "alice", "/break-glass I am in a hurry");
      expect((await stateOf(h, issue))?.state).toBe("pending");
      expect(await lastNotice(h, issue)).toEqual({
        kind: "command_refused",
        command: "/break-glass",
        actor: "alice",
        why: "@alice is not in break_glass.requesters (@acme/oncall)",
      });
      expect(await auditKindsOf(h, issue)).toEqual(["grant.requested", "break_glass.refused"]);
    });

    it("is refused on someone else's request, even to an allowed requester", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "olga", "/break-glass helping alice out");
      expect((await stateOf(h, issue))?.state).toBe("pending");
      expect((await lastNotice(h, issue))?.why).toBe(
        "only the requester can break the glass on their own request",
      );
    });
  });

  describe("auto-approval", () => {
    it("grants an allowed requester within quota; past it a code owner approves", async () => {
      const body = requestBody({ duration: "30m" });
      const first = await openIssueTicket(h, "sue", body);
      const second = await openIssueTicket(h, "sue", body);
      for (const issue of [first, second]) {
        expect(await stateOf(h, issue)).toMatchObject({
          state: "active",
          decision: "auto",
          auto_rule: 0,
          approvers: [],
        });
        expect(await auditKindsOf(h, issue)).toEqual(["grant.requested", "grant.activated"]);
        expect((await auditOf(h, issue)).at(-1)?.actor).toBe("github:sue");
      }
      const third = await openIssueTicket(h, "sue", body);
      expect((await stateOf(h, third))?.state).toBe("pending");
      await commentOn(h, third, "sue", "/status");
      expect((await lastNotice(h, third))?.trace).toContain(
        "auto_approve rule 1 quota is used up (2 of 2 in 7d); a code owner approves instead",
      );
      await commentOn(h, third, "carol", "/approve");
      expect(await stateOf(h, third)).toMatchObject({ state: "active", decision: "approvals" });

      // Outside the rule (a scope it does not list), a human is needed at once.
      const refund = await openIssueTicket(
        h,
        "sue",
        requestBody({ scopes: "refund", duration: "30m" }),
      );
      expect((await stateOf(h, refund))?.state).toBe("pending");
    });
  });

  describe("a scheduled window", () => {
    const scheduled = (start: Date) =>
      requestBody()
        .replace("```\n", "")
        .replace(/```$/, `start: ${start.toISOString().slice(0, 19)}Z\n\`\`\``);

    it("approved before its start, begins at the start", async () => {
      const start = new Date(Math.ceil(h.clock.now().getTime() / 1000) * 1000 + HOUR);
      const issue = await openIssueTicket(h, "alice", scheduled(start));
      expect((await stateOf(h, issue))?.state).toBe("pending");
      await commentOn(h, issue, "carol", "/approve");
      const grant = await stateOf(h, issue);
      expect(grant?.state).toBe("active");
      expect(isoOf(grant?.starts_at)).toBe(start.toISOString());
      expect(isoOf(grant?.ends_at)).toBe(new Date(start.getTime() + 2 * HOUR).toISOString());
    });

    it("approved after its start, begins at the approval", async () => {
      const start = new Date(Math.ceil(h.clock.now().getTime() / 1000) * 1000 + HOUR);
      const issue = await openIssueTicket(h, "alice", scheduled(start));
      h.clock.advance(2 * HOUR);
      // The approver's comment is written after the start, too.
      const comment = h.sim.comment("acme/payments", issue.number, {
        author: "carol",
        body: "/approve",
      });
      (comment as { createdAt: Date }).createdAt = h.clock.now();
      await h.deliver(issueCommentEvent(h.sim, "created", comment));
      const grant = await stateOf(h, issue);
      expect(grant).toMatchObject({ state: "active", approvers: ["carol"] });
      expect(isoOf(grant?.starts_at)).toBe(h.clock.now().toISOString());
      expect(await auditKindsOf(h, issue)).toEqual(ACTIVE);
    });

    it("reviewed after its start, on a pull request, begins at the review", async () => {
      const start = new Date(Math.ceil(h.clock.now().getTime() / 1000) * 1000 + HOUR);
      const pr = await openPrTicket(h, "alice", "scheduled", { body: scheduled(start) });
      h.clock.advance(2 * HOUR);
      const review = h.sim.review("acme/payments", pr.number, { user: "bob", state: "APPROVED" });
      (review as { submittedAt: Date }).submittedAt = h.clock.now();
      await h.deliver(pullRequestReviewEvent(h.sim, "submitted", review));
      const grant = await stateOf(h, pr);
      expect(grant).toMatchObject({ state: "active", approvers: ["bob"] });
      expect(isoOf(grant?.starts_at)).toBe(h.clock.now().toISOString());
    });
  });

  describe("commands that must not apply", () => {
    it("/deny on an active grant, /done by someone else, /revoke by a non-owner", async () => {
      const issue = await activeIssue();
      await commentOn(h, issue, "bob", "/deny changed my mind");
      // One refusal a minute per person and ticket: the next within it goes unanswered.
      await commentOn(h, issue, "bob", "/done");
      expect(await noticesOf(h, issue)).toHaveLength(3);
      h.clock.advance(60_000);
      await commentOn(h, issue, "bob", "/done");
      await commentOn(h, issue, "mallory", "/revoke");
      await commentOn(h, issue, "carol", "/approve");
      expect((await stateOf(h, issue))?.state).toBe("active");
      expect((await noticesOf(h, issue)).slice(2).map((n) => n.why)).toEqual([
        "there is no pending request to deny",
        "only the requester can give access back with /done; code owners use /revoke",
        "only the requester or a code owner of services/payments/ can revoke",
        "this access is already granted",
      ]);
      expect(await auditKindsOf(h, issue)).toEqual([
        ...ACTIVE,
        "command.refused",
        "command.refused",
        "command.refused",
        "command.refused",
      ]);
    });

    it("/deny by someone who is not a code owner", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "mallory", "/deny nope nope");
      expect((await stateOf(h, issue))?.state).toBe("pending");
      expect((await lastNotice(h, issue))?.why).toBe(
        "only code owners of services/payments/ can deny",
      );
    });

    it("commands with bad arguments are answered, not guessed", async () => {
      const issue = await openIssueTicket(h, "alice");
      await commentOn(h, issue, "carol", "/approve please");
      await commentOn(h, issue, "bob", "/deny");
      expect((await stateOf(h, issue))?.state).toBe("pending");
      expect((await noticesOf(h, issue)).slice(1).map((n) => [n.command, n.why])).toEqual([
        ["/approve", "/approve takes no arguments"],
        ["/deny", "/deny needs a reason, e.g. `/deny too broad for this task`"],
      ]);
    });

    it("commands on an issue that is not an access request are ignored", async () => {
      const issue = h.sim.openIssue("acme/payments", { author: "alice", body: "A bug report" });
      await commentOn(h, issue, "bob", "/approve");
      await commentOn(h, issue, "alice", "/break-glass it is urgent");
      expect(await grantsOf(h, issue)).toEqual([]);
      expect(await noticesOf(h, issue)).toEqual([]);
      expect(await auditKindsOf(h, issue)).toEqual([]);
    });
  });
});
