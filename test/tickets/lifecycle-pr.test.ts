import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  issueCommentEvent,
  pullRequestEvent,
  pullRequestReviewEvent,
} from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import { duplicateKeys } from "../support/log.js";
import {
  auditKindsOf,
  checkRunsOf,
  grantsOf,
  isoOf,
  noticesOf,
  openPrTicket,
  operatorYaml,
  requestBody,
  reviewPr,
  seedAcme,
  syncClock,
} from "./fixtures.js";

describe("a pull request ticket", () => {
  let h: Hallpass;
  beforeAll(async () => {
    // Debug: Probot's loggers write a line for each GitHub request.
    h = await startHallpass({ seed: seedAcme, operatorYaml, logLevel: "debug" });
  });
  afterAll(() => h.stop());
  beforeEach(() => syncClock(h));

  it("is pending, granted on the reviewed commit, and revoked by a later push", async () => {
    const pr = await openPrTicket(h, "alice", "pr-push");
    const approvedSha = pr.pull.head.sha;
    let [grant] = await grantsOf(h, pr);
    expect(grant).toMatchObject({ state: "pending", resource: "payments-api", scopes: ["read"] });
    expect(await checkRunsOf(h, pr)).toEqual([
      { status: "in_progress", conclusion: null, headSha: approvedSha },
    ]);

    await reviewPr(h, pr, "bob");
    [grant] = await grantsOf(h, pr);
    expect(grant).toMatchObject({
      state: "active",
      approvers: ["bob"],
      decision: "approvals",
      approved_commit: approvedSha,
      policy_sha: h.sim.branchHead("acme/payments"),
    });
    expect(isoOf(grant?.starts_at)).toBe(h.clock.now().toISOString());

    h.sim.commit("acme/payments", {
      branch: "pr-push",
      files: { "services/payments/more.ts": "export const more = 1;\n" },
      author: "alice",
    });
    const newSha = h.sim.pull("acme/payments", pr.number).pull.head.sha;
    await h.deliver(pullRequestEvent(h.sim, "synchronize", pr, { before: approvedSha }));
    [grant] = await grantsOf(h, pr);
    expect(grant).toMatchObject({ state: "revoked", ended_by: "hallpass" });
    expect(grant?.end_reason).toBe(
      `new commits were pushed after the approved commit ${approvedSha.slice(0, 7)}`,
    );
    expect((await h.grants(pr.number)).length).toBe(1);
    expect((await noticesOf(h, pr)).map((n) => n.kind)).toEqual([
      "request_received",
      "granted",
      "ended",
    ]);
    expect(await checkRunsOf(h, pr)).toEqual([
      { status: "in_progress", conclusion: null, headSha: approvedSha },
      { status: "completed", conclusion: "success", headSha: approvedSha },
      { status: "completed", conclusion: "neutral", headSha: newSha },
    ]);
    expect(await auditKindsOf(h, pr)).toEqual([
      "grant.requested",
      "approval.recorded",
      "grant.activated",
      "grant.revoked",
    ]);
  });

  it("a review of an older commit does not count once new commits are on the PR", async () => {
    const pr = await openPrTicket(h, "alice", "pr-old-review");
    const first = pr.pull.head.sha;
    h.sim.commit("acme/payments", {
      branch: "pr-old-review",
      files: { "services/payments/x.ts": "export const x = 1;\n" },
      author: "alice",
    });
    await h.deliver(pullRequestEvent(h.sim, "synchronize", pr, { before: first }));
    await reviewPr(h, pr, "bob", "APPROVED", first);
    const [grant] = await grantsOf(h, pr);
    expect(grant?.state).toBe("pending");
    expect(await auditKindsOf(h, pr)).toEqual(["grant.requested", "approval.recorded"]);

    // The same owner approving the head counts.
    await reviewPr(h, pr, "bob");
    const [after] = await grantsOf(h, pr);
    expect(after).toMatchObject({ state: "active", approved_commit: pr.pull.head.sha });
  });

  it("is revoked when merged", async () => {
    const pr = await openPrTicket(h, "alice", "pr-merge");
    await reviewPr(h, pr, "carol");
    expect((await grantsOf(h, pr))[0]?.state).toBe("active");
    h.sim.mergePullRequest("acme/payments", pr.number, { by: "bob" });
    await h.deliver(pullRequestEvent(h.sim, "closed", pr));
    const [grant] = await grantsOf(h, pr);
    expect(grant).toMatchObject({
      state: "revoked",
      end_reason: "the pull request was merged",
      ended_by: "bob",
    });
    expect(await auditKindsOf(h, pr)).toEqual([
      "grant.requested",
      "approval.recorded",
      "grant.activated",
      "grant.revoked",
    ]);
    const ended = (await noticesOf(h, pr)).at(-1);
    expect(ended).toMatchObject({ kind: "ended", state: "revoked", by: "bob" });
  });

  it("is revoked when closed without merging", async () => {
    const pr = await openPrTicket(h, "alice", "pr-close");
    await reviewPr(h, pr, "carol");
    h.sim.closeIssue("acme/payments", pr.number, { by: "alice" });
    await h.deliver(pullRequestEvent(h.sim, "closed", pr));
    const [grant] = await grantsOf(h, pr);
    expect(grant).toMatchObject({ state: "revoked", end_reason: "the pull request was closed" });
    expect(await auditKindsOf(h, pr)).toEqual([
      "grant.requested",
      "approval.recorded",
      "grant.activated",
      "grant.revoked",
    ]);
  });

  it("counts a review given before the label once the label is added", async () => {
    const pr = await openPrTicket(h, "alice", "pr-late-label", { labels: [] });
    expect(await grantsOf(h, pr)).toEqual([]);
    await reviewPr(h, pr, "bob");
    expect(await grantsOf(h, pr)).toEqual([]);
    expect(await auditKindsOf(h, pr)).toEqual(["approval.recorded"]);

    h.sim.addLabel("acme/payments", pr.number, "hallpass");
    await h.deliver(pullRequestEvent(h.sim, "labeled", pr, { label: "hallpass" }));
    const [grant] = await grantsOf(h, pr);
    expect(grant).toMatchObject({
      state: "active",
      approvers: ["bob"],
      approved_commit: pr.pull.head.sha,
    });
    expect(await auditKindsOf(h, pr)).toEqual([
      "approval.recorded",
      "grant.requested",
      "grant.activated",
    ]);
  });

  it("is revoked when the counted review is dismissed", async () => {
    const pr = await openPrTicket(h, "alice", "pr-dismiss");
    const review = await reviewPr(h, pr, "bob");
    expect((await grantsOf(h, pr))[0]?.state).toBe("active");
    h.sim.dismissReview("acme/payments", pr.number, review.id);
    await h.deliver(pullRequestReviewEvent(h.sim, "dismissed", review, { sender: "dave" }));
    const [grant] = await grantsOf(h, pr);
    expect(grant).toMatchObject({
      state: "revoked",
      end_reason: "the approving review by bob was dismissed",
      ended_by: "dave",
    });
    expect(await auditKindsOf(h, pr)).toEqual([
      "grant.requested",
      "approval.recorded",
      "grant.activated",
      "grant.revoked",
    ]);
  });

  it("is revoked when its approver later requests changes (their latest review stands)", async () => {
    const pr = await openPrTicket(h, "alice", "pr-changes-requested");
    await reviewPr(h, pr, "bob");
    expect((await grantsOf(h, pr))[0]?.state).toBe("active");
    await reviewPr(h, pr, "bob", "CHANGES_REQUESTED");
    expect((await grantsOf(h, pr))[0]).toMatchObject({
      state: "revoked",
      end_reason: "bob, who approved it, now requests changes",
    });
  });

  it("does not count an approval its reviewer withdrew by requesting changes", async () => {
    const pr = await openPrTicket(h, "alice", "pr-withdrawn", { labels: [] });
    await reviewPr(h, pr, "bob");
    await reviewPr(h, pr, "bob", "CHANGES_REQUESTED");
    h.sim.addLabel("acme/payments", pr.number, "hallpass");
    await h.deliver(pullRequestEvent(h.sim, "labeled", pr, { label: "hallpass" }));
    expect((await grantsOf(h, pr))[0]?.state).toBe("pending");
  });

  it("stays active when a review that did not count is dismissed", async () => {
    const pr = await openPrTicket(h, "alice", "pr-dismiss-other");
    const other = await reviewPr(h, pr, "mallory");
    await reviewPr(h, pr, "bob");
    expect((await grantsOf(h, pr))[0]?.state).toBe("active");
    h.sim.dismissReview("acme/payments", pr.number, other.id);
    await h.deliver(pullRequestReviewEvent(h.sim, "dismissed", other, { sender: "bob" }));
    expect((await grantsOf(h, pr))[0]?.state).toBe("active");
    expect(await auditKindsOf(h, pr)).toEqual([
      "grant.requested",
      "approval.recorded",
      "approval.recorded",
      "grant.activated",
    ]);
  });

  it("refuses /approve in a comment: a PR is approved with a review", async () => {
    const pr = await openPrTicket(h, "alice", "pr-comment-approve");
    const c = h.sim.comment("acme/payments", pr.number, { author: "bob", body: "/approve" });
    await h.deliver(issueCommentEvent(h.sim, "created", c));
    expect((await grantsOf(h, pr))[0]?.state).toBe("pending");
    expect((await noticesOf(h, pr)).at(-1)).toMatchObject({
      kind: "command_refused",
      command: "/approve",
      why: "on a pull request, approve with a review: it binds the approval to the reviewed commit",
    });
    expect(await auditKindsOf(h, pr)).toEqual(["grant.requested", "command.refused"]);
  });

  it("a dismissed review no longer counts towards a pending request", async () => {
    const pr = await openPrTicket(h, "alice", "pr-dismiss-pending", { labels: [] });
    const review = await reviewPr(h, pr, "bob");
    h.sim.dismissReview("acme/payments", pr.number, review.id);
    await h.deliver(pullRequestReviewEvent(h.sim, "dismissed", review, { sender: "bob" }));
    h.sim.addLabel("acme/payments", pr.number, "hallpass");
    await h.deliver(pullRequestEvent(h.sim, "labeled", pr, { label: "hallpass" }));
    const [grant] = await grantsOf(h, pr);
    expect(grant?.state).toBe("pending");
  });

  it("shows each state in its check run: denied fails, cancelled is neutral", async () => {
    const denied = await openPrTicket(h, "alice", "pr-deny");
    const c = h.sim.comment("acme/payments", denied.number, {
      author: "bob",
      body: "/deny not for a refactoring PR",
    });
    await h.deliver(issueCommentEvent(h.sim, "created", c));
    expect((await grantsOf(h, denied))[0]).toMatchObject({
      state: "denied",
      end_reason: "not for a refactoring PR",
      ended_by: "bob",
    });
    expect((await checkRunsOf(h, denied)).map((r) => [r.status, r.conclusion])).toEqual([
      ["in_progress", null],
      ["completed", "failure"],
    ]);
    expect(await auditKindsOf(h, denied)).toEqual(["grant.requested", "grant.denied"]);

    const cancelled = await openPrTicket(h, "alice", "pr-unlabel");
    h.sim.removeLabel("acme/payments", cancelled.number, "hallpass");
    await h.deliver(pullRequestEvent(h.sim, "unlabeled", cancelled, { label: "hallpass" }));
    expect((await grantsOf(h, cancelled))[0]).toMatchObject({
      state: "cancelled",
      end_reason: "the hallpass label was removed",
    });
    expect((await checkRunsOf(h, cancelled)).map((r) => [r.status, r.conclusion])).toEqual([
      ["in_progress", null],
      ["completed", "neutral"],
    ]);
  });

  it("does not act on a PR whose body holds no request until one is written", async () => {
    const pr = await openPrTicket(h, "alice", "pr-no-request", { body: "Refactoring only." });
    expect(await grantsOf(h, pr)).toEqual([]);
    expect((await noticesOf(h, pr)).map((n) => n.kind)).toEqual(["request_invalid"]);
    const before = h.sim.editIssue("acme/payments", pr.number, { body: requestBody() });
    await h.deliver(
      pullRequestEvent(h.sim, "edited", pr, { changes: { body: { from: before.body ?? "" } } }),
    );
    expect((await grantsOf(h, pr))[0]?.state).toBe("pending");
    expect(h.sim.unexpected).toEqual([]);
  });

  it("writes every log line with each key once, at any depth, Probot's lines included", async () => {
    const pr = await openPrTicket(h, "alice", "pr-logs");
    await reviewPr(h, pr, "bob");
    h.sim.mergePullRequest("acme/payments", pr.number, { by: "bob" });
    await h.deliver(pullRequestEvent(h.sim, "closed", pr));
    await h.settle();
    const lines = h.server.logText().split("\n").filter(Boolean);
    const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    // Lines of Probot's loggers (named inside ours), of the outbox worker's, of Fastify's.
    expect(parsed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ component: "github", msg: "Webhook received" }),
        expect.objectContaining({
          component: "github",
          msg: expect.stringMatching(/^GitHub request: POST .*\/check-runs - 201$/),
        }),
        expect.objectContaining({ effect: "comment", msg: "comment posted" }),
        expect.objectContaining({ msg: "request", route: "/api/github/webhooks" }),
      ]),
    );
    expect(lines.flatMap((line) => duplicateKeys(line).map((key) => `${key}: ${line}`))).toEqual(
      [],
    );
  });
});
