import { type SpawnOptions, spawn, spawnSync } from "node:child_process";
import { constants } from "node:os";
import { parseArgs } from "node:util";
import type { Output } from "#src/cli/audit.js";
import { PERSON_TOKEN_PATH } from "#src/tokens/metadata.js";
import { TICKET_REF } from "#src/tokens/people.js";

export const TOKEN_USAGE = `usage: hallpass token <owner/repo#N> [--scope S]... [--resource R] [--url URL] [-- command [args...]]

  Prints an access token for your own active grant on the ticket, or runs the
  command with HALLPASS_TOKEN and HALLPASS_TOKEN_EXPIRES_AT in its environment
  (its exit code is hallpass's; signals to hallpass are passed on to it).

  --scope S      only some of the grant's scopes (repeat for several)
  --resource R   the resource you expect; refused if the grant is for another
  --url URL      the hallpass server (default: HALLPASS_URL)

  Your GitHub token comes from GH_TOKEN, else GITHUB_TOKEN, else \`gh auth token\`
  when the GitHub CLI is installed. It is sent to the hallpass server only,
  which asks GitHub who you are; it is never printed.
`;

const REQUEST_TIMEOUT_MS = 30_000;
/** Forwarded to the command; the terminal sends SIGINT to both. */
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export interface TokenCommandDeps {
  readonly env: NodeJS.ProcessEnv;
  /** `gh auth token`, or null when the GitHub CLI is not there or not logged in. */
  readonly ghAuthToken?: () => string | null;
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
  const server = parseServerUrl(values.url ?? deps.env.HALLPASS_URL);
  if (!server) {
    return fail(
      (values.url ?? deps.env.HALLPASS_URL)
        ? "the server URL must be an http(s) URL"
        : "no server: pass --url or set HALLPASS_URL",
      2,
    );
  }
  const github = githubToken(deps);
  if (!github) {
    return fail(
      "no GitHub token: set GH_TOKEN (or GITHUB_TOKEN), or log in with the GitHub CLI (gh auth login)",
    );
  }

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
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    return fail(`cannot reach the hallpass server at ${server}: ${networkReason(error)}`);
  }
  const body = (await response.json().catch(() => null)) as Record<string, unknown> | null;
  if (!response.ok) return fail(refusalMessage(response, body, server, github.source));
  const token = typeof body?.token === "string" ? body.token : null;
  const expiresAt = typeof body?.expires_at === "string" ? body.expires_at : null;
  if (!token || !expiresAt) return fail(`the server at ${server} answered without a token`);

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

function githubToken(deps: TokenCommandDeps): { token: string; source: string } | null {
  for (const name of ["GH_TOKEN", "GITHUB_TOKEN"]) {
    const value = deps.env[name]?.trim();
    if (value) return { token: value, source: name };
  }
  const fromGh = (deps.ghAuthToken ?? ghAuthToken)();
  return fromGh ? { token: fromGh, source: "gh auth token" } : null;
}

/** The GitHub CLI's token for its default host (GH_HOST), if it is installed and logged in. */
export function ghAuthToken(): string | null {
  const result = spawnSync("gh", ["auth", "token"], {
    encoding: "utf8",
    timeout: 10_000,
    stdio: ["ignore", "pipe", "ignore"],
  });
  if (result.error || result.status !== 0) return null;
  return result.stdout.trim() || null;
}

function parseServerUrl(text: string | undefined): string | null {
  if (!text) return null;
  try {
    const url = new URL(text);
    if (url.protocol !== "https:" && url.protocol !== "http:") return null;
    return url.href.replace(/\/+$/, "");
  } catch {
    return null;
  }
}

/** One line saying what to do, from the server's answer (its 4xx messages say which check failed). */
function refusalMessage(
  response: Response,
  body: Record<string, unknown> | null,
  server: string,
  source: string,
): string {
  const code = typeof body?.error === "string" ? body.error : `HTTP ${response.status}`;
  const message = typeof body?.message === "string" ? body.message : response.statusText;
  switch (code) {
    case "GITHUB_TOKEN_INVALID":
      return `${message} (the token came from ${source})`;
    case "RATE_LIMITED":
      return `${message}`;
    default:
      return response.status >= 500
        ? `the server at ${server} failed (${code}: ${message}); try again later`
        : message;
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
