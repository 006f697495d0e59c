import { describe, expect, it } from "vitest";
import { DEFAULT_RETRY, describeFailure, whenToRetry } from "#src/github/retry.js";

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
    });
    expect(whenToRetry(githubError(403, secondary), 1).retryInMs).toBe(60_000);
    expect(
      whenToRetry(githubError(429, "Too Many Requests", { "retry-after": "2" }), 1).retryInMs,
    ).toBe(2_000);
    const reset = String(Math.floor(Date.now() / 1000) + 120);
    const primary = whenToRetry(
      githubError(403, "API rate limit exceeded", {
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": reset,
      }),
      1,
    );
    expect(primary.retryInMs).toBeGreaterThan(110_000);
    expect(primary.retryInMs).toBeLessThanOrEqual(120_000);
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
});
