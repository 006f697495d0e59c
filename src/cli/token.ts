import { type SpawnOptions, spawn, spawnSync } from "node:child_process";
import { constants } from "node:os";
import { parseArgs } from "node:util";
import type { Output } from "#src/cli/audit.js";
import { loginsPath, readLogin } from "#src/cli/logins.js";
import { resolveServerUrl } from "#src/cli/server-url.js";
import { PERSON_TOKEN_PATH } from "#src/tokens/metadata.js";
import { TICKET_REF } from "#src/tokens/people.js";

export const TOKEN_USAGE = `usage: hallpass token <owner/repo#N> [--scope S]... [--resource R] [--url URL] [-- command [args...]]

  Prints an access token for your own active grant on the ticket, or runs the
  command with HALLPASS_TOKEN and HALLPASS_TOKEN_EXPIRES_AT in its environment
  (its exit code is hallpass's; signals to hallpass are passed on to it).

  --scope S      only some of the grant's scopes (repeat for several)
  --resource R   the resource you expect; refused if the grant is for another
  --url URL      the hallpass server (default: HALLPASS_URL of the environment;
                 no .env file is read); https://, or http:// for localhost only

  Your GitHub token comes from GH_TOKEN, else GITHUB_TOKEN, else the login
  \`hallpass login\` kept for the server, else \`gh auth token\` when the GitHub
  CLI is installed. Servers take only tokens of their own GitHub App (hallpass
  login) unless their operator accepts others. The token is sent to the
  hallpass server only, which asks GitHub who you are; it is never printed.
`;

const REQUEST_TIMEOUT_MS = 30_000;
/** Forwarded to the command; the terminal sends SIGINT to both. */
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export interface TokenCommandDeps {
  readonly env: NodeJS.ProcessEnv;
  /** `gh auth token`, or null when the GitHub CLI is not there or not logged in. */
  readonly ghAuthToken?: (env: NodeJS.ProcessEnv) => string | null;
}

/**
 * `hallpass token owner/repo#N`: asks the hallpass server (`POST /v1/token`)
 * for a token of the person's own grant, then prints it (stdout holds the
 * token and nothing else) or runs a command with it.
 *
 * @returns 0; 1 when refused or the server cannot be reached; 2 on a usage
 *   error; with a command, the command's exit code (128 + n when a signal n ended it)
 */
export async function tokenCommand(
  args: readonly string[],
  out: Output,
  deps: TokenCommandDeps,
): Promise<number> {
  const split = args.indexOf("--");
  const own = split === -1 ? [...args] : args.slice(0, split);
  const command = split === -1 ? [] : args.slice(split + 1);
  const { values, positionals } = parseArgs({
    args: own,
    options: {
      scope: { type: "string", multiple: true },
      resource: { type: "string" },
      url: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    out.stdout.write(TOKEN_USAGE);
    return 0;
  }
  const fail = (message: string, code = 1) => {
    out.stderr.write(`hallpass: ${oneLine(message)}\n`);
    return code;
  };
  const [ticket, ...extra] = positionals;
  if (!ticket || extra.length > 0 || (split !== -1 && command.length === 0)) {
    out.stderr.write(TOKEN_USAGE);
    return 2;
  }
  if (!TICKET_REF.test(ticket)) return fail(`${JSON.stringify(ticket)} is not owner/repo#N`, 2);
  const resolved = resolveServerUrl(values.url, deps.env);
  if (!resolved.ok) return fail(resolved.message, 2);
  const server = resolved.server.url;
  const from = `${server} (from ${resolved.server.source})`;
  const github = await githubToken(deps, server);
  if (!github) {
    return fail(
      `no GitHub token: run hallpass login --url ${server}, or set GH_TOKEN (or GITHUB_TOKEN)`,
    );
  }
  if ("refused" in github) return fail(github.refused);

  let response: Response;
  try {
    response = await fetch(`${server}${PERSON_TOKEN_PATH}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${github.token}`,
        "content-type": "application/json",
        "user-agent": "hallpass-cli",
      },
      body: JSON.stringify({
        ticket,
        ...(values.scope ? { scopes: values.scope } : {}),
        ...(values.resource ? { resource: values.resource } : {}),
      }),
      // The GitHub token goes to this URL and no other.
      redirect: "error",
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    return fail(`cannot reach the hallpass server at ${from}: ${networkReason(error)}`);
  }
  const body = (await response.json().catch(() => null)) as Record<string, unknown> | null;
  if (!response.ok) return fail(refusalMessage(response, body, from, github.source));
  const token = typeof body?.token === "string" ? body.token : null;
  const expiresAt = typeof body?.expires_at === "string" ? body.expires_at : null;
  if (!token || !expiresAt) return fail(`the server at ${from} answered without a token`);

  if (command.length === 0) {
    out.stdout.write(`${token}\n`);
    return 0;
  }
  return run(
    command,
    { ...deps.env, HALLPASS_TOKEN: token, HALLPASS_TOKEN_EXPIRES_AT: expiresAt },
    fail,
  );
}

/**
 * The person's GitHub token: GH_TOKEN, GITHUB_TOKEN, the server's login
 * (`hallpass login`), `gh auth token`, first found. A login past its expiry
 * is refused with what to do rather than sent.
 */
async function githubToken(
  deps: TokenCommandDeps,
  server: string,
): Promise<{ token: string; source: string } | { refused: string } | null> {
  for (const name of ["GH_TOKEN", "GITHUB_TOKEN"]) {
    const value = deps.env[name]?.trim();
    if (value) return { token: value, source: name };
  }
  const stored = await readLogin(deps.env, server);
  if (stored) {
    if (stored.expiresAt && stored.expiresAt <= new Date()) {
      return {
        refused: `your login to ${server} expired at ${stored.expiresAt.toISOString()}: run hallpass login --url ${server}`,
      };
    }
    return { token: stored.token, source: `hallpass login (${loginsPath(deps.env)})` };
  }
  const fromGh = (deps.ghAuthToken ?? ghAuthToken)(deps.env);
  return fromGh ? { token: fromGh, source: "gh auth token" } : null;
}

/**
 * The GitHub CLI's token for its default host (GH_HOST), if it is installed
 * (on the PATH of `env`) and logged in.
 */
export function ghAuthToken(env: NodeJS.ProcessEnv): string | null {
  const result = spawnSync("gh", ["auth", "token"], {
    env,
    encoding: "utf8",
    timeout: 10_000,
    stdio: ["ignore", "pipe", "ignore"],
  });
  if (result.error || result.status !== 0) return null;
  return result.stdout.trim() || null;
}

/** One line saying what to do, from the server's answer (its 4xx messages say which check failed). */
function refusalMessage(
  response: Response,
  body: Record<string, unknown> | null,
  from: string,
  source: string,
): string {
  const code = typeof body?.error === "string" ? body.error : `HTTP ${response.status}`;
  const message = typeof body?.message === "string" ? body.message : response.statusText;
  switch (code) {
    case "GITHUB_TOKEN_INVALID":
      return `${message} (the token came from ${source})`;
    case "PEOPLE_NOT_CONFIGURED":
      return `${message} (the server at ${from})`;
    case "RATE_LIMITED":
      return `${message}`;
    default:
      if (response.status >= 500) {
        return `the server at ${from} failed (${code}: ${message}); try again later`;
      }
      return typeof body?.error === "string"
        ? message
        : `the server at ${from} answered ${code} (is it a hallpass server?)`;
  }
}

function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if ((error as Error).name === "TimeoutError")
    return `no answer in ${REQUEST_TIMEOUT_MS / 1000} s`;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

/** Runs the command, passing signals on; resolves with its exit code. */
function run(
  command: readonly string[],
  env: NodeJS.ProcessEnv,
  fail: (message: string, code?: number) => number,
): Promise<number> {
  const [file, ...args] = command as [string, ...string[]];
  const options: SpawnOptions = { stdio: "inherit", env };
  return new Promise((resolve) => {
    const child = spawn(file, args, options);
    const forward = (signal: NodeJS.Signals) => () => {
      child.kill(signal);
    };
    const handlers = FORWARDED.map((signal) => [signal, forward(signal)] as const);
    for (const [signal, handler] of handlers) process.on(signal, handler);
    let finished = false;
    const done = (code: number) => {
      if (finished) return;
      finished = true;
      for (const [signal, handler] of handlers) process.off(signal, handler);
      resolve(code);
    };
    child.once("error", (error: NodeJS.ErrnoException) => {
      done(
        fail(
          error.code === "ENOENT"
            ? `cannot run ${file}: not found`
            : `cannot run ${file}: ${error.message}`,
          error.code === "ENOENT" ? 127 : 126,
        ),
      );
    });
    child.once("exit", (code, signal) => {
      done(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}
