import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import {
  auditKindsOf,
  checkRunsOf,
  commentOn,
  effectsOf,
  isoOf,
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

describe("the sweeper", () => {
  let h: Hallpass;
  beforeAll(async () => {
    h = await startHallpass({ seed: seedAcme, operatorYaml });
  });
  afterAll(() => h.stop());
  beforeEach(() => syncClock(h));

  /** Sets the clock to `at`, back in time if need be (for times the database's clock wrote). */
  const setClock = (at: number) => h.clock.advance(at - h.clock.now().getTime());

  /** Moves the clock to `at` (never back) and sweeps. */
  async function sweepAt(at: number): Promise<void> {
    const now = h.clock.now().getTime();
    if (at < now) throw new Error(`the clock is already ${at - now} ms past that`);
    h.clock.advance(at - now);
    await h.sweep();
  }

  async function activeIssue(duration = "2h") {
    const issue = await openIssueTicket(h, "alice", requestBody({ duration }));
    await commentOn(h, issue, "carol", "/approve");
    const grant = await stateOf(h, issue);
    expect(grant?.state).toBe("active");
    return { issue, endsAt: msOf(grant?.ends_at) };
  }

  it("expires a grant exactly at its end, once", async () => {
    const { issue, endsAt } = await activeIssue();
    await sweepAt(endsAt - 1_000);
    expect((await stateOf(h, issue))?.state).toBe("active");
    await sweepAt(endsAt);
    expect(await stateOf(h, issue)).toMatchObject({
      state: "expired",
      end_reason: "its time ran out",
      ended_by: "hallpass",
    });
    const kinds = await auditKindsOf(h, issue);
    const queued = (await effectsOf(h, issue)).length;
    await sweepAt(endsAt + 1_000);
    await sweepAt(endsAt + HOUR);
    expect(await auditKindsOf(h, issue)).toEqual(kinds);
    expect((await effectsOf(h, issue)).length).toBe(queued);
    expect(kinds).toEqual([
      "grant.requested",
      "approval.recorded",
      "grant.activated",
      "grant.expiry_warned",
      "grant.expired",
    ]);
    expect((await noticesOf(h, issue)).at(-1)).toEqual({
      kind: "ended",
      state: "expired",
      reason: "its time ran out",
      by: "hallpass",
      usage: { tokens: [], requests: [], requestsTotal: 0 },
      grantId: expect.any(String),
    });
  });

  it("does not expire a grant that was revoked before its end", async () => {
    const { issue, endsAt } = await activeIssue("30m");
    await commentOn(h, issue, "alice", "/done");
    await sweepAt(endsAt + MINUTE);
    expect((await stateOf(h, issue))?.state).toBe("revoked");
    expect(await auditKindsOf(h, issue)).toEqual([
      "grant.requested",
      "approval.recorded",
      "grant.activated",
      "grant.revoked",
    ]);
  });

  it("warns the requester once before the end, and again after an extension", async () => {
    const { issue, endsAt } = await activeIssue();
    await sweepAt(endsAt - 11 * MINUTE);
    expect((await noticesOf(h, issue)).map((n) => n.kind)).toEqual(["request_received", "granted"]);
    await sweepAt(endsAt - 10 * MINUTE);
    await sweepAt(endsAt - 5 * MINUTE);
    let notices = await noticesOf(h, issue);
    expect(notices.filter((n) => n.kind === "expiry_warning")).toEqual([
      { kind: "expiry_warning", requester: "alice", endsAt: new Date(endsAt).toISOString() },
    ]);

    await commentOn(h, issue, "alice", "/extend 30m");
    await commentOn(h, issue, "bob", "/approve");
    const extended = await stateOf(h, issue);
    const newEnd = endsAt + 30 * MINUTE;
    expect(isoOf(extended?.ends_at)).toBe(new Date(newEnd).toISOString());
    expect(extended?.warned_at).toBeNull();
    await sweepAt(newEnd - 9 * MINUTE);
    await sweepAt(newEnd - 2 * MINUTE);
    notices = await noticesOf(h, issue);
    expect(notices.map((n) => n.kind)).toEqual([
      "request_received",
      "granted",
      "expiry_warning",
      "extension_requested",
      "extended",
      "expiry_warning",
    ]);
    expect(notices.at(-1)).toMatchObject({ endsAt: new Date(newEnd).toISOString() });
    expect((await auditKindsOf(h, issue)).filter((k) => k === "grant.expiry_warned")).toEqual([
      "grant.expiry_warned",
      "grant.expiry_warned",
    ]);
  });

  it("does not warn about a grant shorter than the warning period", async () => {
    const { issue, endsAt } = await activeIssue("5m");
    await sweepAt(endsAt - 4 * MINUTE);
    await sweepAt(endsAt);
    expect(await auditKindsOf(h, issue)).toEqual([
      "grant.requested",
      "approval.recorded",
      "grant.activated",
      "grant.expired",
    ]);
  });

  it("cancels a request nobody approved within request_ttl and closes the issue", async () => {
    const issue = await openIssueTicket(h, "alice");
    // request_ttl counts from the grant's created_at, written with the database's clock
    // (in microseconds: the next millisecond is past it).
    const asked = msOf((await stateOf(h, issue))?.created_at) + 1;
    setClock(asked + 24 * HOUR - MINUTE);
    await h.sweep();
    expect((await stateOf(h, issue))?.state).toBe("pending");
    setClock(asked + 24 * HOUR);
    await h.sweep();
    expect(await stateOf(h, issue)).toMatchObject({
      state: "cancelled",
      end_reason: "no approval within 1d; the request is stale",
      ended_by: "hallpass",
    });
    expect(await auditKindsOf(h, issue)).toEqual(["grant.requested", "grant.cancelled"]);
    const effects = await effectsOf(h, issue);
    expect(effects.map((e) => e.kind)).toEqual(["comment", "comment", "close_issue"]);
    expect(effects[1]?.notice).toMatchObject({ kind: "ended", state: "cancelled", usage: null });
    expect(effects[2]?.payload).toMatchObject({
      kind: "close_issue",
      number: issue.number,
      reason: "not_planned",
    });
    await sweepAt(asked + 48 * HOUR);
    expect(await auditKindsOf(h, issue)).toEqual(["grant.requested", "grant.cancelled"]);
  });

  it("cancels a stale pull request ticket without closing the pull request", async () => {
    const pr = await openPrTicket(h, "alice", "stale-pr");
    await sweepAt(h.clock.now().getTime() + 25 * HOUR);
    expect((await stateOf(h, pr))?.state).toBe("cancelled");
    expect((await effectsOf(h, pr)).map((e) => e.kind)).toEqual([
      "comment",
      "check_run",
      "comment",
      "check_run",
    ]);
    expect((await checkRunsOf(h, pr)).at(-1)).toMatchObject({
      status: "completed",
      conclusion: "neutral",
    });
  });

  it("expires a pull request grant and shows it in the check run", async () => {
    const pr = await openPrTicket(h, "alice", "expire-pr", {
      body: requestBody({ duration: "1h" }),
    });
    await reviewPr(h, pr, "bob");
    const grant = await stateOf(h, pr);
    await sweepAt(msOf(grant?.ends_at));
    expect((await stateOf(h, pr))?.state).toBe("expired");
    expect((await checkRunsOf(h, pr)).map((r) => r.conclusion)).toEqual([
      null,
      "success",
      "neutral",
    ]);
  });
});
