/**
 * A pull request ticket: approved by a code owner's review, used by the
 * pull request's own `pull_request` run (the Action), revoked by a push;
 * approved again on the new head, used by a new run, revoked by the merge.
 */
import type { ExpectStatic } from "vitest";
import { pullRequestEvent, pullRequestReviewEvent } from "../support/github/webhooks.js";
import { requestBody } from "../tickets/fixtures.js";
import { tokenRows, usage, usageRows } from "./comments.js";
import { type Job, noticeOn, REPO, type Stack, step, untilRefused } from "./stack.js";

const BRANCH = "e2e-refund-retries";

/**
 * Story 2: a labeled pull request → request comment → bob's approving
 * review of its head → grant comment and a successful check run → the
 * pull request's `pull_request` run (the Action, on its test merge commit)
 * gets a token → reads pass the proxy, a write is refused → a push of a new
 * commit revokes the grant: the token is refused, the closing comment names
 * the push and sums what the API saw, a run of the new commit gets nothing →
 * bob approves the new head: a new grant and a new run's token → the merge
 * revokes it → post steps release both tokens → `hallpass audit verify`.
 */
export async function pullRequestStory(s: Stack, expect: ExpectStatic): Promise<void> {
  const review = (number: number, user: string) =>
    s.deliver(
      pullRequestReviewEvent(
        s.sim,
        "submitted",
        s.sim.review(REPO, number, { user, state: "APPROVED" }),
      ),
    );
  /** A `pull_request` run of the pull request as it is now, and its token. */
  const ciRun = async (number: number): Promise<{ job: Job; token: string }> => {
    const job = await s.action(s.pullRequestRun(number));
    expect(job.main.errors).toEqual([]);
    expect(job.main.code).toBe(0);
    const token = job.main.outputs.token ?? "";
    expect(job.main.masks).toContain(token);
    expect(job.main.outputs.scopes).toBe("read");
    return { job, token };
  };
  const revokedNotices = (number: number) =>
    s.notices(number).filter((x) => x.heading === "🔒 Access revoked");

  const n = await step(
    "alice opens a labeled pull request changing the payments service",
    async () => {
      const pr = s.sim.openPullRequest(REPO, {
        author: "alice",
        head: BRANCH,
        files: { "services/payments/refunds.ts": "export const retries = 3;\n" },
        body: requestBody({ scopes: "read", duration: "2h" }),
        labels: ["hallpass"],
      });
      await s.deliver(pullRequestEvent(s.sim, "opened", pr));
      const asked = await noticeOn(expect, s, pr.number, "📝 Access requested");
      expect(asked.body).toContain("| Scopes | `read` |");
      return pr.number;
    },
  );
  const api = s.api(`pull-${n}`);
  const approved = s.sim.pull(REPO, n).pull.head.sha;

  await step("bob approves the head commit with a review", async () => {
    await review(n, "bob");
    const granted = await noticeOn(expect, s, n, "✅ Access granted");
    expect(granted.body).toContain("| Approved by | `bob` |");
    expect(granted.body).toContain("on: pull_request");
    await expect
      .poll(() => s.sim.checkRunsFor(REPO, approved).map((c) => c.conclusion), {
        timeout: 20_000,
        interval: 100,
      })
      .toContain("success");
  });

  const first = await step(
    "the pull request's pull_request run gets a token through the Action",
    () => ciRun(n),
  );

  await step("the token reads through the proxy, and only reads", async () => {
    expect(await api.call(first.token, "GET", "/v1/charges/ch_1")).toMatchObject({ status: 200 });
    expect(await api.call(first.token, "POST", "/v1/refunds")).toMatchObject({
      status: 403,
      error: "SCOPE_NOT_GRANTED",
    });
    expect(api.seen()).toHaveLength(1);
  });

  await step("alice pushes a new commit: the grant is revoked, the token refused", async () => {
    s.sim.commit(REPO, {
      branch: BRANCH,
      files: { "services/payments/refunds.ts": "export const retries = 5;\n" },
      author: "alice",
    });
    await s.deliver(
      pullRequestEvent(s.sim, "synchronize", s.sim.pull(REPO, n), { before: approved }),
    );
    await untilRefused(expect, api, first.token, "GET", "/v1/charges/ch_after_push");
    expect(api.callsWith(first.token).at(-1)?.error).toBe("TOKEN_REVOKED");
  });

  await step(
    "the closing comment names the push and sums the usage as the API saw it",
    async () => {
      const ended = await noticeOn(expect, s, n, "🔒 Access revoked");
      expect(ended.body).toContain(
        `| Reason | new commits were pushed after the approved commit ${approved.slice(0, 7)} |`,
      );
      const { forwarded, revoked } = api.tally(first.token);
      expect(api.seen()).toHaveLength(forwarded);
      const rows = usageRows(ended.body);
      expect(rows).toEqual(
        expect.arrayContaining([
          usage("GET /v1/**", forwarded, "2xx"),
          usage("POST not let through: SCOPE_NOT_GRANTED", 1, "4xx"),
          usage("GET not let through: TOKEN_REVOKED", revoked, "4xx"),
        ]),
      );
      expect(rows).toHaveLength(3);
      expect(tokenRows(ended.body)).toEqual([
        ["CI", expect.stringMatching(/:run:\d+:1$/), "alice", expect.stringMatching(/^\d+$/), "1"],
      ]);
    },
  );

  await step("a run of the new commit gets nothing while no approval covers it", async () => {
    const job = await s.action(s.pullRequestRun(n));
    expect(job.main.code).toBe(1);
    expect(job.main.outputs).toEqual({});
    expect(job.main.errors).toHaveLength(1);
    expect(job.main.errors[0]).toMatch(
      new RegExp(
        `^hallpass refused a token for payments-api: the grant on #${n} has been revoked: .*\\(GRANT_NOT_ACTIVE\\)\n`,
      ),
    );
  });

  const second = await step(
    "bob approves the new head: a new grant, a new run's token",
    async () => {
      await review(n, "bob");
      await expect
        .poll(() => s.notices(n).filter((x) => x.heading === "✅ Access granted").length, {
          timeout: 20_000,
          interval: 100,
        })
        .toBe(2);
      const run = await ciRun(n);
      expect(run.job.main.outputs.grant).not.toBe(first.job.main.outputs.grant);
      expect(await api.call(run.token, "GET", "/v1/charges/ch_2")).toMatchObject({ status: 200 });
      // The first grant's token stays refused.
      expect(await api.call(first.token, "GET", "/v1/charges/ch_old")).toMatchObject({
        status: 401,
        error: "TOKEN_REVOKED",
      });
      return run;
    },
  );

  await step("bob merges the pull request: the grant is revoked, the token refused", async () => {
    s.sim.mergePullRequest(REPO, n, { by: "bob" });
    await s.deliver(pullRequestEvent(s.sim, "closed", s.sim.pull(REPO, n)));
    await untilRefused(expect, api, second.token, "GET", "/v1/charges/ch_after_merge");
  });

  await step(
    "the second closing comment names the merge and sums the second grant's usage",
    async () => {
      await expect.poll(() => revokedNotices(n).length, { timeout: 20_000, interval: 100 }).toBe(2);
      const ended = revokedNotices(n)[1]?.body ?? "";
      expect(ended).toContain("| Reason | the pull request was merged |");
      expect(ended).toContain("| By | `bob` |");
      const { forwarded, revoked } = api.tally(second.token);
      const firstForwarded = api.tally(first.token).forwarded;
      expect(api.seen()).toHaveLength(firstForwarded + forwarded);
      const rows = usageRows(ended);
      expect(rows).toEqual(
        expect.arrayContaining([
          usage("GET /v1/**", forwarded, "2xx"),
          usage("GET not let through: TOKEN_REVOKED", revoked, "4xx"),
        ]),
      );
      expect(rows).toHaveLength(2);
    },
  );

  await step("both jobs' post steps give their tokens back without failing", async () => {
    for (const job of [first.job, second.job]) {
      const post = await job.post();
      expect(post.code).toBe(0);
      expect(post.warnings).toEqual([]);
    }
  });

  await step("hallpass audit verify finds the chain intact", async () => {
    const verify = await s.operator(["audit", "verify"]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/^audit chain intact: \d+ events, tip [0-9a-f]{64}\n$/);
  });
}
