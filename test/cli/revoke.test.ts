import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeCommand } from "#src/cli/revoke.js";
import { runCli } from "#src/cli/run.js";
import { isHallpassError } from "#src/errors.js";
import { cleanEnv } from "../support/env.js";
import { issuesEvent } from "../support/github/webhooks.js";
import { type Hallpass, startHallpass } from "../support/hallpass.js";
import { captureOutput } from "../support/output.js";
import { operatorYaml, requestBody, seedAcme } from "../tickets/fixtures.js";

describe("hallpass revoke", () => {
  let h: Hallpass;
  beforeAll(async () => {
    h = await startHallpass({ seed: seedAcme, operatorYaml });
  });
  afterAll(() => h.stop());

  it("ends a ticket's active grant as the operator, with an audit event and a comment", async () => {
    // sam may auto-approve `read` up to 30 minutes.
    const issue = h.sim.openIssue("acme/payments", {
      author: "sam",
      body: requestBody({ duration: "20m" }),
      labels: ["hallpass"],
    });
    await h.deliver(issuesEvent(h.sim, "opened", issue));
    expect((await h.grants(issue.number))[0]?.state).toBe("active");

    const out = captureOutput();
    const code = await revokeCommand(
      h.db,
      { stdout: out.stream, stderr: captureOutput().stream },
      { ticket: `acme/payments#${issue.number}` },
      "incident 7",
    );
    expect(code).toBe(0);
    expect(out.text()).toMatch(/^revoked grant [0-9a-f-]{36} on acme\/payments#\d+\n$/);
    const [grant] = await h.grants(issue.number);
    expect(grant).toMatchObject({
      state: "revoked",
      ended_by: "operator",
      end_reason: "revoked by the operator: incident 7",
    });
    expect((await h.auditKinds(issue.number)).at(-1)).toBe("grant.revoked");
    expect((await h.effects(issue.number)).at(-1)?.notice).toMatchObject({
      kind: "ended",
      state: "revoked",
      by: "operator",
    });

    const again = await revokeCommand(
      h.db,
      { stdout: captureOutput().stream, stderr: captureOutput().stream },
      { ticket: `acme/payments#${issue.number}` },
      "x",
    ).catch((e: unknown) => e);
    expect(isHallpassError(again, "NOT_FOUND")).toBe(true);
  });

  it("refuses a malformed target with usage", async () => {
    const err = captureOutput();
    const code = await runCli(
      ["revoke"],
      { stdout: captureOutput().stream, stderr: err.stream },
      cleanEnv(),
    );
    expect(code).toBe(2);
    expect(err.text()).toMatch(/usage: hallpass revoke/);
    const both = await runCli(
      ["revoke", "a/b#1", "--grant", "x"],
      { stdout: captureOutput().stream, stderr: err.stream },
      cleanEnv(),
    );
    expect(both).toBe(2);
  });
});
