import { ProbotOctokit } from "probot";

/**
 * Probot's Octokit without its write throttling and retry waits, so that
 * GitHub's faults reach the caller at once (the outbox retries on its own).
 * A function, not an object: Probot passes throttling options of its own,
 * which would replace an object's `throttle` entirely (and with it
 * `enabled: false`).
 */
export const TestOctokit = ProbotOctokit.defaults((options: { throttle?: object }) => ({
  ...options,
  throttle: { ...options.throttle, enabled: false },
  retry: { enabled: false },
}));
