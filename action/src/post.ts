import * as core from "@actions/core";
import { explain } from "./explain.js";
import { httpClient } from "./http.js";
import { release } from "./release.js";
import { withRetry } from "./retry.js";
import { savedToken } from "./state.js";

/** The post step should not hold the job up: three quick attempts. */
export const RELEASE_RETRY = { attempts: 3, baseMs: 500, maxWaitMs: 5_000 } as const;

/**
 * The post step: gives the token back when the job ends, whatever became of
 * the job. Nothing saved (the main step failed) is nothing to do; a failed
 * release is a warning, never a failed job: the token still expires by itself.
 */
export async function post(): Promise<void> {
  const saved = savedToken();
  if (!saved) {
    core.info("hallpass: no token was issued, nothing to release");
    return;
  }
  core.setSecret(saved.token);
  try {
    const client = httpClient();
    const outcome = await withRetry(() => release(client, saved.url, saved.token), {
      ...RELEASE_RETRY,
      onRetry: (error, attempt, waitMs) =>
        core.info(
          `hallpass: ${error.message}; attempt ${attempt} of ${RELEASE_RETRY.attempts} failed, retrying in ${(waitMs / 1000).toFixed(1)} s`,
        ),
    });
    core.info(
      outcome.status === "expired"
        ? `hallpass: the token (jti ${outcome.jti}) had already expired`
        : `hallpass: released the token (jti ${outcome.jti})`,
    );
  } catch (error) {
    core.warning(
      `hallpass: could not release the token, it stays valid until it expires: ${explain(error, null)}`,
    );
  }
}
