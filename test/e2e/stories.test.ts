/**
 * End-to-end stories across real processes (see `stack.ts`): the server,
 * the companion Action and the CLI each in their own, GitHub, the OIDC
 * issuer and the API in this one.
 *
 * The stories run side by side, as most of a story is waiting: for the
 * clock, or for comments, which a GitHub App's process posts at most one
 * every three seconds (Octokit's throttling of requests that notify people).
 * So stories that comment a lot get a server (and a GitHub) of their own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expiryStory, warningStory } from "./expiry-stories.js";
import { issueStory, personStory } from "./issue-stories.js";
import { pullRequestStory } from "./pull-request-story.js";
import { type Stack, startStack } from "./stack.js";

const STORY_TIMEOUT = 120_000;

describe("hallpass end to end", () => {
  const stacks: Record<"issues" | "pulls" | "clock", Stack> = {} as never;
  beforeAll(async () => {
    const names = ["issues", "pulls", "clock"] as const;
    const started = await Promise.allSettled(names.map(() => startStack()));
    started.forEach((result, i) => {
      if (result.status === "fulfilled") stacks[names[i] as (typeof names)[number]] = result.value;
    });
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  }, 90_000);
  afterAll(async () => {
    await Promise.all(Object.values(stacks).map((s) => s.close()));
  }, 60_000);

  describe.concurrent("stories", () => {
    it(
      "1. an issue ticket: asked on the issue form, approved by /approve, used by a workflow_dispatch run, ended by /revoke",
      ({ expect }) => issueStory(stacks.issues, expect),
      STORY_TIMEOUT,
    );
    it(
      "2. a pull request ticket: approved by review, used by its pull_request run, revoked by a push; approved again, revoked by the merge",
      ({ expect }) => pullRequestStory(stacks.pulls, expect),
      STORY_TIMEOUT,
    );
    it(
      "3a. a 20-second grant expires at its end: comment with usage, the token refused",
      ({ expect }) => expiryStory(stacks.clock, expect),
      STORY_TIMEOUT,
    );
    it(
      "3b. a grant longer than the warning's lead is warned before it ends",
      ({ expect }) => warningStory(stacks.clock, expect),
      STORY_TIMEOUT,
    );
    it(
      "4. a person's story: hallpass token through the proxy, ended by the operator's hallpass revoke",
      ({ expect }) => personStory(stacks.issues, expect),
      STORY_TIMEOUT,
    );
  });

  it("every server stops cleanly on SIGTERM, its audit chain intact", async () => {
    const outcomes = await Promise.all(
      Object.values(stacks).map(async (s) => ({
        exit: await s.stopServer(),
        verify: await s.operator(["audit", "verify"]),
      })),
    );
    for (const { exit, verify } of outcomes) {
      expect(exit).toBe(0);
      expect(verify).toMatchObject({ code: 0, stderr: "" });
      expect(verify.stdout).toMatch(/^audit chain intact: \d+ events/);
    }
  }, 60_000);
});
