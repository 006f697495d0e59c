import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalJson, chainHash } from "#src/audit/event.js";
import { ticketEvidence } from "#src/audit/evidence.js";
import { issueCommentEvent, issuesEvent } from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import { operatorYaml, requestBody, seedAcme } from "../tickets/fixtures.js";

describe("a ticket's evidence bundle", () => {
  let h: Hallpass;
  beforeAll(async () => {
    h = await startHallpass({ seed: seedAcme, operatorYaml });
  });
  afterAll(() => h.stop());

  it("holds the request, approvals, grant and events, with a proof that they sit in the chain", async () => {
    const other = h.sim.openIssue("acme/payments", {
      author: "dave",
      body: requestBody(),
      labels: ["hallpass"],
    });
    const issue = h.sim.openIssue("acme/payments", {
      author: "alice",
      body: requestBody(),
      labels: ["hallpass"],
    });
    await h.deliver(issuesEvent(h.sim, "opened", issue));
    await h.deliver(issuesEvent(h.sim, "opened", other)); // interleaved events of another ticket
    await h.deliver(
      issueCommentEvent(
        h.sim,
        "created",
        h.sim.comment("acme/payments", issue.number, { author: "bob", body: "/approve" }),
      ),
    );
    const { rows } = await h.db.query<{ id: string }>(
      "SELECT id FROM tickets WHERE number = $1::int",
      [issue.number],
    );

    const lines: Array<Record<string, unknown>> = [];
    for await (const line of ticketEvidence(h.db, rows[0]!.id))
      lines.push(JSON.parse(JSON.stringify(line)));
    const of = (type: string) => lines.filter((l) => l.type === type);

    expect(of("ticket")[0]).toMatchObject({
      repository: "acme/payments",
      number: issue.number,
      author: "alice",
    });
    expect(of("grant")).toEqual([
      expect.objectContaining({
        state: "active",
        resource: "payments-api",
        approvers: ["bob"],
        policy_commit: expect.stringMatching(/^[0-9a-f]{40}$/),
      }),
    ]);
    expect(of("approval")).toEqual([
      expect.objectContaining({ approver: "bob", channel: "comment" }),
    ]);
    const events = of("event") as Array<{
      seq: number;
      prev_hash: string;
      hash: string;
      event: { kind: string };
    }>;
    expect(events.map((e) => e.event.kind)).toEqual([
      "grant.requested",
      "approval.recorded",
      "grant.activated",
    ]);

    // The proof: each event re-hashes, links are contiguous up to the tip, and contain the events.
    for (const e of events) expect(chainHash(e.prev_hash, canonicalJson(e.event))).toBe(e.hash);
    const links = of("link") as Array<{ seq: number; prev_hash: string; hash: string }>;
    for (let i = 1; i < links.length; i++) {
      expect(links[i]!.seq).toBe(links[i - 1]!.seq + 1);
      expect(links[i]!.prev_hash).toBe(links[i - 1]!.hash);
    }
    for (const e of events) expect(links.find((l) => l.seq === e.seq)?.hash).toBe(e.hash);
    expect(links.some((l) => !events.some((e) => e.seq === l.seq))).toBe(true); // the other ticket's rows
    expect(lines.at(-1)).toEqual({ type: "tip", seq: links.at(-1)!.seq, hash: links.at(-1)!.hash });
  });
});
