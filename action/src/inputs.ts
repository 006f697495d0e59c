import * as z from "zod/mini";
import { formatDuration, parseDuration } from "../../src/rules/duration.js";

/** Same syntax as the server's resource names (`src/rules/policy.ts`; a test keeps them equal). */
export const RESOURCE_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** Same syntax as the server's scope names (`src/rules/policy.ts`). */
export const SCOPE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The runner's own variables, and those a token would break the job with. */
const RESERVED_ENV = /^(GITHUB_.*|RUNNER_.*|ACTIONS_.*|PATH|NODE_OPTIONS)$/i;
const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);
/** A job on a GitHub-hosted runner ends after 6 h: waiting longer would only hold a runner. */
export const MAX_WAIT_S = 6 * 3_600;

/** The Action's inputs, checked. */
export interface Inputs {
  /** Base URL of the server, without a trailing slash. */
  readonly url: string;
  readonly resource: string;
  /** Empty: every scope of the grant. */
  readonly scopes: readonly string[];
  readonly ticket: number | undefined;
  readonly audience: string;
  /** `null`: no environment variable. */
  readonly exportEnv: string | null;
  /** How long to wait for a grant that is not active yet; 0: fail at once. */
  readonly waitForApprovalS: number;
}

/** The Action's inputs, as `action.yml` names them. */
export const INPUT_NAMES = [
  "url",
  "resource",
  "scopes",
  "ticket",
  "audience",
  "export-env",
  "wait-for-approval",
] as const;

/** The raw inputs as the runner gives them (`core.getInput`: trimmed, "" when unset). */
export type RawInputs = Readonly<Record<(typeof INPUT_NAMES)[number], string>>;

type Issues = { issues: unknown[] };
/** Records a problem of the input being checked; the transform then returns `z.NEVER`. */
const problem = (ctx: Issues, input: string, message: string) =>
  ctx.issues.push({ code: "custom", message, input });

/** zod/mini: the same checks as zod, a tenth of the bundle. */
const checked = <T>(check: (value: string, ctx: Issues) => T) =>
  z.pipe(z.string(), z.transform(check));

const serverUrl = checked((value, ctx) => {
  if (value === "") {
    problem(ctx, value, "required: the base URL of the hallpass server");
    return z.NEVER;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problem(ctx, value, `${JSON.stringify(value)} is not a URL`);
    return z.NEVER;
  }
  const local = LOCAL_HOSTS.has(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && local)) {
    problem(
      ctx,
      value,
      "must be an https:// URL (http:// only for localhost): the ID token is sent to it",
    );
    return z.NEVER;
  }
  if (url.username || url.password || url.search || url.hash) {
    problem(ctx, value, "must be the server's base URL, without credentials, query or fragment");
    return z.NEVER;
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, "");
});

const resource = z.string().check(
  z.minLength(1, {
    error: "required: the resource to get a token for, e.g. payments-api",
    abort: true,
  }),
  z.regex(RESOURCE_NAME, {
    error: (issue) =>
      `${JSON.stringify(issue.input)} is not a resource name: lower case letters, digits and -, starting with a letter (at most 63)`,
  }),
);

const scopes = checked((value, ctx) => {
  const names = [
    ...new Set(
      value
        .split(/[,\n]/)
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ];
  for (const name of names) {
    if (!SCOPE_NAME.test(name)) {
      problem(
        ctx,
        name,
        `${JSON.stringify(name)} is not a scope name: lower case letters, digits, _ and -, starting with a letter`,
      );
    }
  }
  return names;
});

const ticket = checked((value, ctx) => {
  if (value === "") return undefined;
  const number = /^#?([1-9][0-9]{0,9})$/.exec(value)?.[1];
  if (number === undefined) {
    problem(ctx, value, `${JSON.stringify(value)} is not an issue number (such as 42)`);
    return z.NEVER;
  }
  return Number(number);
});

const exportEnv = checked((value, ctx) => {
  if (value === "") return null;
  if (!ENV_NAME.test(value) || RESERVED_ENV.test(value)) {
    problem(
      ctx,
      value,
      `${JSON.stringify(value)} is not a name a step may export (letters, digits and _; not GITHUB_*, RUNNER_*, ACTIONS_*, PATH or NODE_OPTIONS); empty exports nothing`,
    );
    return z.NEVER;
  }
  return value;
});

/** The server's duration syntax (`90s`, `15m`, `1h30m`); `0` or empty: no wait. */
const waitForApproval = checked((value, ctx) => {
  if (value === "" || /^0+[dhms]?$/.test(value)) return 0;
  const parsed = parseDuration(value);
  if (!parsed.ok) {
    problem(ctx, value, parsed.message);
    return z.NEVER;
  }
  if (parsed.seconds > MAX_WAIT_S) {
    problem(
      ctx,
      value,
      `${JSON.stringify(value)} is longer than ${formatDuration(MAX_WAIT_S)}, the longest a job runs on a GitHub-hosted runner`,
    );
    return z.NEVER;
  }
  return parsed.seconds;
});

const inputsSchema = z.object({
  url: serverUrl,
  resource,
  scopes,
  ticket,
  audience: z.string().check(z.maxLength(1024, "at most 1024 characters")),
  "export-env": exportEnv,
  "wait-for-approval": waitForApproval,
});

/**
 * Checks the raw inputs; every problem is named after its input.
 *
 * @example
 * parseInputs({ url: "https://hallpass.acme.dev/", resource: "payments-api", scopes: "read, refund",
 *               ticket: "", audience: "", "export-env": "HALLPASS_TOKEN", "wait-for-approval": "15m" })
 * // { url: "https://hallpass.acme.dev", scopes: ["read", "refund"], audience: "https://hallpass.acme.dev",
 * //   waitForApprovalS: 900, ... }
 * @throws Error listing each input that is wrong and why
 */
export function parseInputs(raw: RawInputs): Inputs {
  const parsed = inputsSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `input ${String(i.path[0])}: ${i.message}`);
    throw new Error(problems.join("\n"));
  }
  const { url, audience, "export-env": env, "wait-for-approval": wait, ...rest } = parsed.data;
  return { ...rest, url, audience: audience || url, exportEnv: env, waitForApprovalS: wait };
}
