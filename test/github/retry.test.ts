import { describe, expect, it } from "vitest";
import { DEFAULT_RETRY, describeFailure, untilReset, whenToRetry } from "#src/github/retry.js";

/** An error shaped like Octokit's RequestError. */
function githubError(status: number, message: string, headers: Record<string, string> = {}) {
  return Object.assign(new Error(message), {
    status,
    response: { headers, data: { message } },
    request: { headers: { authorization: "token ghs_secret" }, body: '{"body":"private"}' },
  });
}

describe("whenToRetry", () => {
  it("backs off exponentially on server errors and no answer, up to 10 minutes", () => {
    expect(whenToRetry(githubError(500, "Server Error"), 1).retryInMs).toBe(2_000);
    expect(whenToRetry(githubError(502, "Bad Gateway"), 3).retryInMs).toBe(8_000);
    expect(whenToRetry(new TypeError("fetch failed"), 2).retryInMs).toBe(4_000);
    expect(whenToRetry(githubError(503, "x"), 9).retryInMs).toBe(512_000);
    expect(
      whenToRetry(githubError(503, "x"), 9, { ...DEFAULT_RETRY, maxAttempts: 20 }).retryInMs,
    ).toBe(512_000);
    expect(
      whenToRetry(githubError(503, "x"), 12, { ...DEFAULT_RETRY, maxAttempts: 20 }).retryInMs,
    ).toBe(600_000);
  });

  it("waits as long as a rate limit asks", () => {
    const secondary =
      "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
    expect(whenToRetry(githubError(403, secondary, { "retry-after": "30" }), 1)).toEqual({
      retryInMs: 30_000,
      why: "secondary rate limit",
      rateLimit: "secondary",
    });
    expect(whenToRetry(githubError(403, secondary), 1).retryInMs).toBe(60_000);
    expect(
      whenToRetry(githubError(429, "Too Many Requests", { "retry-after": "2" }), 1).retryInMs,
    ).toBe(2_000);
    // retry-after: 0 would have the row tried again at once, and again: a second at least.
    expect(whenToRetry(githubError(403, secondary, { "retry-after": "0" }), 1).retryInMs).toBe(
      1_000,
    );
    const reset = String(Math.floor(Date.now() / 1000) + 120);
    const primary = whenToRetry(
      githubError(403, "API rate limit exceeded", {
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": reset,
      }),
      1,
    );
    // Until the reset, and a second more for the clocks' difference.
    expect(primary.retryInMs).toBeGreaterThan(110_000);
    expect(primary.retryInMs).toBeLessThanOrEqual(121_000);
    expect(primary).toMatchObject({ why: "rate limit", rateLimit: "primary" });
    // The simulator's (and GitHub's) message for an installation, with the headers.
    expect(
      whenToRetry(
        githubError(429, "API rate limit exceeded for installation ID 7.", {
          "x-ratelimit-remaining": "0",
          "x-ratelimit-reset": reset,
        }),
        1,
      ).retryInMs,
    ).toBeGreaterThan(110_000);
  });

  it("never gives up on a rate limit, and a secondary one without retry-after waits longer each time", () => {
    const secondary = githubError(403, "You have exceeded a secondary rate limit.");
    // Past maxAttempts: a throttled backlog is not dropped.
    expect(whenToRetry(secondary, 50).retryInMs).toBe(60_000);
    expect(whenToRetry(secondary, 1, DEFAULT_RETRY, 1).retryInMs).toBe(120_000);
    expect(whenToRetry(secondary, 1, DEFAULT_RETRY, 3).retryInMs).toBe(480_000);
    // At most the hour GitHub's limits are counted in.
    expect(whenToRetry(secondary, 1, DEFAULT_RETRY, 20).retryInMs).toBe(3_600_000);
    const limited = githubError(403, "x", { "x-ratelimit-remaining": "0" });
    expect(whenToRetry(limited, 99)).toMatchObject({ rateLimit: "primary", retryInMs: 2_000 });
  });

  it("gives up at once on other client errors", () => {
    for (const [status, message] of [
      [401, "Bad credentials"],
      [403, "This installation has been suspended"],
      [403, "Resource not accessible by integration"],
      [404, "Not Found"],
      [410, "This issue was deleted"],
      [422, "Validation Failed"],
    ] as const) {
      expect(whenToRetry(githubError(status, message), 1).retryInMs).toBeNull();
    }
  });

  it("gives up after the last attempt, whatever the error", () => {
    expect(whenToRetry(githubError(500, "x"), 10)).toEqual({
      retryInMs: null,
      why: "GitHub answered 500; gave up after 10 attempts",
    });
  });
});

describe("untilReset", () => {
  it("says how long until the reset once the primary limit is spent, and nothing before", () => {
    const reset = String(Math.floor(Date.now() / 1000) + 30);
    expect(untilReset({ "x-ratelimit-remaining": "1", "x-ratelimit-reset": reset })).toBeNull();
    expect(untilReset({})).toBeNull();
    const ms = untilReset({ "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset });
    expect(ms).toBeGreaterThan(20_000);
    expect(ms).toBeLessThanOrEqual(31_000);
    // A reset already past: a second, not a request at once.
    expect(untilReset({ "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1" })).toBe(1_000);
  });
});

describe("describeFailure", () => {
  it("keeps status, GitHub's message and headers, never the request", () => {
    const failure = describeFailure(githubError(404, "Not Found", { "x-github-request-id": "1" }));
    expect(failure).toEqual({
      status: 404,
      message: "Not Found",
      headers: { "x-github-request-id": "1" },
    });
    expect(JSON.stringify(failure)).not.toMatch(/ghs_secret|private/);
  });

  it("counts an error Octokit calls 500 without an answer (a timeout, a dropped connection) as no answer", () => {
    // Octokit's RequestError for a fetch that failed: status 500, no response.
    const timedOut = Object.assign(new Error("The operation was aborted due to timeout"), {
      status: 500,
      request: { headers: {} },
    });
    expect(describeFailure(timedOut).status).toBeNull();
    expect(whenToRetry(timedOut, 1)).toEqual({ retryInMs: 2_000, why: "no answer from GitHub" });
    expect(describeFailure(githubError(500, "Server Error")).status).toBe(500);
  });
});
