import * as core from "@actions/core";

/**
 * What the main step leaves for the post step. The runner hands saved state
 * back as `STATE_<name>` variables to this action's post step only, and never
 * prints it; the token is masked anyway.
 */
const IS_POST = "isPost";
const TOKEN = "token";
const URL = "url";

/** As actions/checkout does: the main step marks the state, so its presence means "post". */
export function isPost(): boolean {
  return core.getState(IS_POST) === "true";
}

export function markMainStarted(): void {
  core.saveState(IS_POST, "true");
}

export function saveToken(url: string, token: string): void {
  core.saveState(URL, url);
  core.saveState(TOKEN, token);
}

/** The token to give back, or null when the main step saved none. */
export function savedToken(): { url: string; token: string } | null {
  const token = core.getState(TOKEN);
  const url = core.getState(URL);
  return token && url ? { url, token } : null;
}
