import * as core from "@actions/core";
import { formatDuration } from "../../src/rules/duration.js";
import { exchange } from "./exchange.js";
import { explain, MissingPermission } from "./explain.js";
import { httpClient } from "./http.js";
import { INPUT_NAMES, type Inputs, parseInputs, type RawInputs } from "./inputs.js";
import { withRetry } from "./retry.js";
import { markMainStarted, saveToken } from "./state.js";
import { ticketOf } from "./ticket.js";
import { waitForGrant } from "./wait.js";

/** Four attempts, 1 + 2 + 4 s apart: rides out a restart or a deploy of the server. */
export const EXCHANGE_RETRY = { attempts: 4, baseMs: 1_000, maxWaitMs: 30_000 } as const;

/**
 * The main step: the job's ticket token, masked, in outputs and the environment.
 *
 * 1. Mark the state, so that the post step knows it is the post step.
 * 2. Check the inputs, and that the job may ask GitHub for an ID token
 *    (`permissions: id-token: write`).
 * 3. Exchange a fresh ID token for a hallpass token, retrying transient failures;
 *    with `wait-for-approval`, again (each time with a fresh ID token) while
 *    the grant is not active yet, saying what the ticket still needs when that changes.
 * 4. The token is masked as soon as it is read; save it for the post step, then
 *    set the outputs and the environment variable.
 *
 * Never throws: every failure ends in one `core.setFailed` saying what to do.
 */
export async function run(): Promise<void> {
  let inputs: Inputs | null = null;
  try {
    markMainStarted();
    inputs = parseInputs(readInputs());
    if (!process.env.ACTIONS_ID_TOKEN_REQUEST_URL || !process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
      throw new MissingPermission();
    }
    const checked = inputs;
    const client = httpClient();
    const ticket = ticketOf(checked.ticket, {
      repository: process.env.GITHUB_REPOSITORY,
      ref: process.env.GITHUB_REF,
      serverUrl: process.env.GITHUB_SERVER_URL,
    });
    const started = Date.now();
    let waited = false;
    const once = () =>
      withRetry(async () => exchange(client, checked, await idToken(checked.audience)), {
        ...EXCHANGE_RETRY,
        onRetry: (error, attempt, waitMs) =>
          core.info(
            `hallpass: ${error.message}; attempt ${attempt} of ${EXCHANGE_RETRY.attempts} failed, retrying in ${seconds(waitMs)}`,
          ),
      });
    const minted = await waitForGrant(once, {
      waitS: checked.waitForApprovalS,
      ticket,
      onWaiting: (refusal, leftMs) => {
        waited = true;
        core.info(
          `hallpass: ${ticket}: ${refusal.serverMessage}; waiting up to ${formatDuration(Math.ceil(leftMs / 1000))} for it (wait-for-approval)`,
        );
      },
      onPause: (refusal, pauseMs) =>
        refusal.status === 429
          ? core.info(`hallpass: ${refusal.message}; asking again in ${seconds(pauseMs)}`)
          : core.debug(`hallpass: ${refusal.code}; asking again in ${seconds(pauseMs)}`),
    });
    if (waited) {
      core.info(
        `hallpass: the grant on ${ticket} is active (after ${formatDuration(Math.round((Date.now() - started) / 1000))})`,
      );
    }
    saveToken(checked.url, minted.token);
    core.setOutput("token", minted.token);
    core.setOutput("expires-at", minted.expiresAt);
    core.setOutput("grant", minted.grant);
    core.setOutput("scopes", minted.scopes.join(" "));
    if (checked.exportEnv) core.exportVariable(checked.exportEnv, minted.token);
    core.info(
      `hallpass: a token for ${checked.resource} (grant ${minted.grant}, scopes ${minted.scopes.join(" ") || "none"}), valid until ${minted.expiresAt}${checked.exportEnv ? `, in $${checked.exportEnv}` : ""}; it is released when the job ends`,
    );
  } catch (error) {
    core.setFailed(explain(error, inputs));
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function readInputs(): RawInputs {
  return Object.fromEntries(INPUT_NAMES.map((name) => [name, core.getInput(name)])) as RawInputs;
}

/** A new ID token for each attempt: the server accepts each one once. */
async function idToken(audience: string): Promise<string> {
  try {
    return await core.getIDToken(audience);
  } catch (error) {
    throw new Error(
      `GitHub did not give this job an OIDC ID token for audience ${JSON.stringify(audience)}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}
