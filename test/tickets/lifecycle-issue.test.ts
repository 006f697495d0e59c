import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueCommentEvent, issuesEvent } from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import { operatorYaml, requestBody, seedAcme } from "./fixtures.js";

describe("an issue ticket, from request to expiry", () => {
  let h: Hallpass;
  beforeAll(async () => {
    h = await startHallpass({ seed: seedAcme, operatorYaml });
  });
  afterAll(() => h.stop());

  it("is requested, refused to the wrong people, approved by a code owner, then expires", async () => {
    const issue = h.sim.openIssue("acme/payments", {
      author: "alice",
      body: requestBody(),
      labels: ["hallpass"],
    });
    await h.deliver(issuesEvent(h.sim, "opened", issue));
    let [grant] = await h.grants(issue.number);
    expect(grant).toMatchObject({
      state: "pending",
      resource: "payments-api",
      scopes: ["read"],
      duration_s: 7200,
    });
    expect((await h.effects(issue.number)).map((e) => e.notice.kind)).toEqual(["request_received"]);

    for (const author of ["mallory", "alice"]) {
      const c = h.sim.comment("acme/payments", issue.number, { author, body: "/approve" });
      await h.deliver(issueCommentEvent(h.sim, "created", c));
    }
    [grant] = await h.grants(issue.number);
    expect(grant?.state).toBe("pending");
    const refused = (await h.effects(issue.number)).filter(
      (e) => e.notice.kind === "command_refused",
    );
    expect(refused.map((e) => e.notice.why)).toEqual([
      expect.stringMatching(/only code owners of services\/payments\/ can approve/),
      "you cannot approve your own request",
    ]);

    const approval = h.sim.comment("acme/payments", issue.number, {
      author: "carol",
      body: "/approve",
    });
    await h.deliver(issueCommentEvent(h.sim, "created", approval));
    [grant] = await h.grants(issue.number);
    expect(grant).toMatchObject({ state: "active", approvers: ["carol"], decision: "approvals" });
    const startsAt = grant!.starts_at as Date;
    const endsAt = grant!.ends_at as Date;
    expect(startsAt.toISOString()).toBe(h.clock.now().toISOString());
    expect(endsAt.getTime() - startsAt.getTime()).toBe(7_200_000);

    h.clock.advance(7_200_000 - 5 * 60_000);
    await h.sweep();
    h.clock.advance(5 * 60_000);
    await h.sweep();
    [grant] = await h.grants(issue.number);
    expect(grant?.state).toBe("expired");
    expect((await h.effects(issue.number)).map((e) => e.notice.kind)).toEqual([
      "request_received",
      "command_refused",
      "command_refused",
      "granted",
      "expiry_warning",
      "ended",
    ]);
    expect(await h.auditKinds(issue.number)).toEqual([
      "grant.requested",
      "command.refused",
      "command.refused",
      "approval.recorded",
      "grant.activated",
      "grant.expiry_warned",
      "grant.expired",
    ]);

    // What a reader of the issue sees: one comment per step, each with its audit event's hash.
    await h.settle();
    const comments = h.sim
      .commentsOn("acme/payments", issue.number)
      .filter((c) => c.author.endsWith("[bot]"));
    expect(comments).toHaveLength(6);
    const { rows } = await h.db.query<{ seq: number; hash: string }>(
      "SELECT seq, hash FROM audit_events WHERE ticket_id = (SELECT id FROM tickets WHERE number = $1::int) AND kind <> 'approval.recorded' ORDER BY seq",
      [issue.number],
    );
    comments.forEach((comment, i) => {
      expect(comment.body.startsWith("<!-- hallpass:")).toBe(true);
      expect(comment.body).toContain(rows[i]!.hash);
    });
    expect(comments[3]!.body).toMatch(/Access granted/);
    expect(comments[4]!.body).toMatch(/@alice, access through this ticket ends at/);
    expect(comments[5]!.body).toMatch(/No tokens were minted/);
    if (process.env.HALLPASS_PRINT_COMMENTS)
      for (const c of comments) console.log(`${c.body}\n\n----\n`);
  });
});
