import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "#src/config.js";
import type { GitHub } from "#src/github/api.js";
import { createGitHubApp } from "#src/github/app.js";
import { redeliverMissed } from "#src/github/redeliver.js";
import { cleanEnv } from "../support/env.js";
import { issuesEvent } from "../support/github/webhooks.js";
import { type Hallpass, SECRET, startHallpass } from "../support/hallpass.js";
import { TestOctokit } from "../support/octokit.js";
import { operatorYaml, requestBody, seedAcme } from "../tickets/fixtures.js";

describe("missed webhook deliveries", () => {
  let h: Hallpass;
  let app: () => Promise<GitHub>;
  beforeAll(async () => {
    h = await startHallpass({ seed: seedAcme, operatorYaml });
    const config = loadConfig(cleanEnv(h.sim.appEnv(SECRET)));
    const probot = await createGitHubApp(config, config.app!, h.server.log, [], {
      octokit: TestOctokit,
    });
    app = async () => (await probot.auth()) as unknown as GitHub;
  });
  afterAll(() => h.stop());

  it("are found through the App's deliveries and replayed once", async () => {
    const issue = h.sim.openIssue("acme/payments", {
      author: "alice",
      body: requestBody(),
      labels: ["hallpass"],
    });
    // GitHub tried, but hallpass never got it (it was down).
    await h.sim.deliver(issuesEvent(h.sim, "opened", issue), { drop: true });
    expect(await h.grants(issue.number)).toEqual([]);

    expect(await redeliverMissed({ db: h.db, log: h.server.log, app })).toBe(1);
    await h.sim.settled();
    await expect
      .poll(async () => (await h.grants(issue.number))[0]?.state, { timeout: 5_000 })
      .toBe("pending");

    // Now known: asking again replays nothing.
    expect(await redeliverMissed({ db: h.db, log: h.server.log, app })).toBe(0);
  });

  it("holds nothing in the database while GitHub is slow to list deliveries", async () => {
    const hold = h.sim.holdNext({ method: "GET", path: "/app/hook/deliveries" });
    const pass = redeliverMissed({ db: h.db, log: h.server.log, app });
    await hold.reached;
    try {
      // Webhooks are taken in and processed meanwhile (on the embedded
      // database a transaction held across the call stalled every query)...
      const issue = h.sim.openIssue("acme/payments", {
        author: "alice",
        body: requestBody(),
        labels: ["hallpass"],
      });
      await h.deliver(issuesEvent(h.sim, "opened", issue));
      expect((await h.grants(issue.number))[0]?.state).toBe("pending");
      // ...and another replica's pass does not start a second one.
      expect(await redeliverMissed({ db: h.db, log: h.server.log, app })).toBe(0);
    } finally {
      hold.release();
    }
    expect(await pass).toBe(0);
    // The lease was given back: the next pass runs.
    const next = h.sim.holdNext({ method: "GET", path: "/app/hook/deliveries" });
    const again = redeliverMissed({ db: h.db, log: h.server.log, app });
    await next.reached;
    next.release();
    expect(await again).toBe(0);
  });
});
