import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { z } from "zod";
import type { Output } from "#src/cli/audit.js";
import { removeLogin, writeLogin } from "#src/cli/logins.js";
import { checkUrl, resolveServerUrl, type ServerUrl } from "#src/cli/server-url.js";
import { LOGIN_PATH } from "#src/tokens/metadata.js";

export const LOGIN_USAGE = `usage: hallpass login [--url URL]
       hallpass logout [--url URL]

  login gets you a GitHub user token of the hallpass server's own GitHub App
  (GitHub's device flow: open the page it names and enter the code) and keeps
  it for that server in $XDG_CONFIG_HOME/hallpass/logins.json (else
  ~/.config/hallpass/), readable by you alone. hallpass token then uses it.
  logout forgets it.

  --url URL   the hallpass server (default: HALLPASS_URL of the environment);
              https://, or http:// for localhost only

  GitHub's URLs come from the server; HALLPASS_GITHUB_URL and
  HALLPASS_GITHUB_API_URL override them.
`;

const REQUEST_TIMEOUT_MS = 30_000;
const DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code";

const loginMetadata = z.object({
  client_id: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/),
  github_url: z.string(),
  github_api_url: z.string(),
});

const deviceCode = z.object({
  device_code: z.string().min(1).max(1024),
  user_code: z.string().regex(/^[A-Za-z0-9-]{1,32}$/),
  verification_uri: z.string(),
  expires_in: z.number().positive().max(86_400),
  interval: z.number().positive().max(600).optional(),
});

const tokenAnswer = z.union([
  z.object({
    access_token: z.string().regex(/^[\x21-\x7e]{1,4096}$/),
    expires_in: z.number().positive().optional(),
  }),
  z.object({
    error: z.string().max(100),
    error_description: z.string().max(1000).optional(),
    interval: z.number().positive().max(600).optional(),
  }),
]);

const githubUser = z.object({ login: z.string().min(1).max(100) });

/** Where a command talks to GitHub, and who named each URL. */
interface GitHubUrls {
  readonly web: string;
  readonly api: string;
  readonly source: string;
}

/**
 * `hallpass login`: GitHub's device flow (RFC 8628) for the server's App.
 *
 * 1. Ask the server for its App's client id and GitHub's URLs (`GET /v1/login`).
 * 2. `POST <github>/login/device/code`; show the page and the code to enter.
 * 3. Poll `POST <github>/login/oauth/access_token` every `interval` seconds:
 *    `authorization_pending` waits, `slow_down` waits longer (GitHub's new
 *    interval), `expired_token` and `access_denied` end it.
 * 4. Ask GitHub whose token it is (for the message), and keep it for the server.
 *
 * Instructions and outcome go to stderr; the token is never printed.
 *
 * @returns 0 logged in; 1 refused or unreachable; 2 usage error
 */
export async function loginCommand(
  args: readonly string[],
  out: Output,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const parsed = parseCommand(args, out);
  if (typeof parsed === "number") return parsed;
  const fail = failWith(out);
  const resolved = resolveServerUrl(parsed.url, env);
  if (!resolved.ok) return fail(resolved.message, 2);
  const server = resolved.server;
  const from = `${server.url} (from ${server.source})`;

  // 1. The server's App.
  const metadata = await getJson(`${server.url}${LOGIN_PATH}`, { accept: "application/json" });
  if ("failed" in metadata)
    return fail(`cannot reach the hallpass server at ${from}: ${metadata.failed}`);
  if (metadata.status !== 200) {
    return fail(`the hallpass server at ${from} offers no login (${describe(metadata)})`);
  }
  const app = loginMetadata.safeParse(metadata.body);
  if (!app.success)
    return fail(`the hallpass server at ${from} answered ${LOGIN_PATH} unexpectedly`);
  const github = githubUrls(app.data, env, server);
  if ("message" in github) return fail(github.message);
  const at = (url: string) => `${url} (named by ${github.source})`;

  // 2. A device code.
  const started = await postForm(`${github.web}/login/device/code`, {
    client_id: app.data.client_id,
  });
  if ("failed" in started)
    return fail(`cannot reach GitHub at ${at(github.web)}: ${started.failed}`);
  const device = deviceCode.safeParse(started.body);
  if (started.status !== 200 || !device.success) {
    const error = errorOf(started.body);
    return fail(
      error === "device_flow_disabled"
        ? `the GitHub App of ${from} does not allow the device flow: its owner turns on "Enable Device Flow" in the App's settings`
        : `GitHub at ${at(github.web)} did not start a login (${describe(started)})`,
    );
  }
  const code = device.data;
  out.stderr.write(
    `Open ${printable(code.verification_uri)} and enter the code ${code.user_code} (within ${Math.round(code.expires_in / 60)} minutes).\n`,
  );

  // 3. Poll until the person has entered the code.
  const deadline = Date.now() + code.expires_in * 1000;
  let interval = code.interval ?? 5;
  let token: { access_token: string; expires_in?: number | undefined } | null = null;
  while (token === null) {
    if (Date.now() + interval * 1000 > deadline) return fail(expired());
    await sleep(interval * 1000);
    const polled = await postForm(`${github.web}/login/oauth/access_token`, {
      client_id: app.data.client_id,
      device_code: code.device_code,
      grant_type: DEVICE_GRANT_TYPE,
    });
    if ("failed" in polled)
      return fail(`cannot reach GitHub at ${at(github.web)}: ${polled.failed}`);
    const answer = tokenAnswer.safeParse(polled.body);
    if (polled.status !== 200 || !answer.success) {
      return fail(
        `GitHub at ${at(github.web)} answered the login unexpectedly (${describe(polled)})`,
      );
    }
    if ("access_token" in answer.data) {
      token = answer.data;
      break;
    }
    switch (answer.data.error) {
      case "authorization_pending":
        break;
      case "slow_down":
        // RFC 8628 §3.5: at least five seconds more; GitHub says how long.
        interval = answer.data.interval ?? interval + 5;
        break;
      case "expired_token":
        return fail(expired());
      case "access_denied":
        return fail("the login was cancelled on GitHub; nothing was kept");
      default:
        return fail(
          `GitHub refused the login: ${printable(answer.data.error)}${answer.data.error_description ? ` (${printable(answer.data.error_description)})` : ""}`,
        );
    }
  }

  // 4. Whose token, then keep it.
  const user = await getJson(`${github.api}/user`, {
    accept: "application/vnd.github+json",
    authorization: `Bearer ${token.access_token}`,
  });
  const login =
    !("failed" in user) && user.status === 200
      ? (githubUser.safeParse(user.body).data?.login ?? null)
      : null;
  const now = new Date();
  const file = await writeLogin(env, server.url, {
    token: token.access_token,
    login,
    githubUrl: github.web,
    expiresAt: token.expires_in ? new Date(now.getTime() + token.expires_in * 1000) : null,
    createdAt: now,
  });
  out.stderr.write(
    `Logged in to ${server.url}${login ? ` as ${printable(login)}` : ""}; the token is kept in ${file}.\n`,
  );
  return 0;
}

/**
 * `hallpass logout`: forgets the server's login. The token stays valid on
 * GitHub until it expires; revoke it there (Settings, Applications) to end it now.
 *
 * @returns 0 (also when there was no login); 2 usage error
 */
export async function logoutCommand(
  args: readonly string[],
  out: Output,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const parsed = parseCommand(args, out);
  if (typeof parsed === "number") return parsed;
  const resolved = resolveServerUrl(parsed.url, env);
  if (!resolved.ok) return failWith(out)(resolved.message, 2);
  const { url, source } = resolved.server;
  const removed = await removeLogin(env, url);
  out.stderr.write(
    removed
      ? `Logged out of ${url} (from ${source}).\n`
      : `Not logged in to ${url} (from ${source}): nothing to forget.\n`,
  );
  return 0;
}

function parseCommand(args: readonly string[], out: Output): { url?: string | undefined } | number {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { url: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    out.stdout.write(LOGIN_USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    out.stderr.write(LOGIN_USAGE);
    return 2;
  }
  return { url: values.url };
}

/** GitHub's web and API URLs: the server's, or the environment's overrides. */
function githubUrls(
  app: z.infer<typeof loginMetadata>,
  env: NodeJS.ProcessEnv,
  server: ServerUrl,
): GitHubUrls | { message: string } {
  const webOverride = env.HALLPASS_GITHUB_URL?.trim();
  const apiOverride = env.HALLPASS_GITHUB_API_URL?.trim();
  const byServer = `the hallpass server at ${server.url} (from ${server.source})`;
  const web = checkUrl(
    webOverride || app.github_url,
    webOverride ? "HALLPASS_GITHUB_URL" : `GitHub's URL named by ${byServer}`,
  );
  if (!web.ok) return { message: web.message };
  const api = checkUrl(
    apiOverride || app.github_api_url,
    apiOverride ? "HALLPASS_GITHUB_API_URL" : `GitHub's API URL named by ${byServer}`,
  );
  if (!api.ok) return { message: api.message };
  return {
    web: web.url,
    api: api.url,
    source: webOverride ? "HALLPASS_GITHUB_URL" : byServer,
  };
}

type Answer = { status: number; body: unknown } | { failed: string };

async function getJson(url: string, headers: Record<string, string>): Promise<Answer> {
  return send(url, { method: "GET", headers: { ...headers, "user-agent": "hallpass-cli" } });
}

/** A form POST to one of GitHub's OAuth endpoints, asking for JSON. */
async function postForm(url: string, form: Record<string, string>): Promise<Answer> {
  return send(url, {
    method: "POST",
    headers: {
      accept: "application/json",
      "content-type": "application/x-www-form-urlencoded",
      "user-agent": "hallpass-cli",
    },
    body: new URLSearchParams(form).toString(),
  });
}

async function send(url: string, init: RequestInit): Promise<Answer> {
  let response: Response;
  try {
    response = await fetch(url, {
      ...init,
      redirect: "error",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    return { failed: networkReason(error) };
  }
  const body = await response.json().catch(() => null);
  return { status: response.status, body };
}

function describe(answer: { status: number; body: unknown }): string {
  const body = answer.body as { error?: unknown; message?: unknown } | null;
  const said = typeof body?.message === "string" ? body.message : errorOf(body);
  return `HTTP ${answer.status}${said ? `: ${printable(said)}` : ""}`;
}

function errorOf(body: unknown): string | null {
  const error = (body as { error?: unknown } | null)?.error;
  return typeof error === "string" ? error : null;
}

function expired(): string {
  return "the code expired before it was entered: run hallpass login again";
}

function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if ((error as Error).name === "TimeoutError")
    return `no answer in ${REQUEST_TIMEOUT_MS / 1000} s`;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

/** What others wrote, bounded and without control characters, before it reaches a terminal. */
function printable(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}]/gu, "?").slice(0, 300);
}

function failWith(out: Output): (message: string, code?: number) => number {
  return (message, code = 1) => {
    out.stderr.write(`hallpass: ${message}\n`);
    return code;
  };
}
