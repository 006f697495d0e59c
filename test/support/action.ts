/**
 * The companion Action as a GitHub runner runs it: the committed bundle
 * `action/dist/index.js` in its own Node.js process, inputs as `INPUT_*`
 * variables (with `action.yml`'s defaults), file commands written to
 * `GITHUB_OUTPUT`/`GITHUB_ENV`/`GITHUB_STATE`, the post step given the saved
 * state as `STATE_*` — and an ID token endpoint answering as GitHub's does.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse } from "yaml";
import type { OidcIssuer } from "./oidc-issuer.js";

export const ACTION_DIR = path.resolve(import.meta.dirname, "../../action");
export const BUNDLE = path.join(ACTION_DIR, "dist/index.js");

export interface StepResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** What the step wrote to `GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_STATE`. */
  readonly outputs: Record<string, string>;
  readonly env: Record<string, string>;
  readonly state: Record<string, string>;
  /** The `::error::`, `::warning::` and `::add-mask::` commands, decoded. */
  readonly errors: string[];
  readonly warnings: string[];
  readonly masks: string[];
}

export interface StepOptions {
  /** `with:` of the step; unset inputs get `action.yml`'s defaults, as on the runner. */
  readonly inputs?: Record<string, string>;
  /** Further environment (ID token request URL and token, ...). */
  readonly env?: Record<string, string>;
  /** The main step's saved state (the post step gets it as `STATE_*`). */
  readonly state?: Record<string, string>;
}

interface ActionYaml {
  inputs: Record<string, { default?: string }>;
}

/** Runs one step (main, or post when `state` holds `isPost`) of the bundled Action. */
export async function runStep(options: StepOptions = {}): Promise<StepResult> {
  const meta = parse(await readFile(path.join(ACTION_DIR, "action.yml"), "utf8")) as ActionYaml;
  const dir = await mkdtemp(path.join(tmpdir(), "hallpass-action-"));
  try {
    const files = {
      GITHUB_OUTPUT: path.join(dir, "output"),
      GITHUB_ENV: path.join(dir, "env"),
      GITHUB_STATE: path.join(dir, "state"),
    };
    for (const file of Object.values(files)) await writeFile(file, "");
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      RUNNER_TEMP: dir,
      GITHUB_ACTIONS: "true",
      ...files,
      ...options.env,
    };
    // The runner: every declared input, lower-cased names upper-cased, dashes kept.
    for (const [name, spec] of Object.entries(meta.inputs)) {
      env[`INPUT_${name.toUpperCase()}`] = options.inputs?.[name] ?? spec.default ?? "";
    }
    for (const [name, value] of Object.entries(options.state ?? {})) env[`STATE_${name}`] = value;

    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((resolve, reject) => {
      const child = spawn(process.execPath, [BUNDLE], { cwd: dir, env });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk) => {
        stdout += chunk;
      });
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      child.on("error", reject);
      child.on("close", (exit) => resolve({ code: exit, stdout, stderr }));
    });
    const commands = (name: string) =>
      [...stdout.matchAll(new RegExp(`^::${name}(?: [^:]*)?::(.*)$`, "gm"))].map((m) =>
        decodeCommand(m[1] ?? ""),
      );
    return {
      code,
      stdout,
      stderr,
      outputs: parseFileCommands(await readFile(files.GITHUB_OUTPUT, "utf8")),
      env: parseFileCommands(await readFile(files.GITHUB_ENV, "utf8")),
      state: parseFileCommands(await readFile(files.GITHUB_STATE, "utf8")),
      errors: commands("error"),
      warnings: commands("warning"),
      masks: commands("add-mask"),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The post step after `main`, as the runner runs it: same inputs, the main step's state. */
export function runPost(main: StepResult, options: StepOptions = {}): Promise<StepResult> {
  return runStep({ ...options, state: main.state });
}

/**
 * Reads a file command file as the runner does: `name<<DELIMITER` heredocs
 * (what @actions/core writes) and plain `name=value` lines.
 */
export function parseFileCommands(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line === "") continue;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line);
    if (heredoc) {
      const [, name, delimiter] = heredoc as unknown as [string, string, string];
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== delimiter; i++) body.push(lines[i] ?? "");
      if (i >= lines.length) throw new Error(`unterminated ${name}<<${delimiter}`);
      values[name] = body.join("\n");
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`not a file command line: ${JSON.stringify(line)}`);
    values[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return values;
}

/** Workflow command data escaping (`%`, CR, LF), undone. */
function decodeCommand(data: string): string {
  return data.replace(/%0D/g, "\r").replace(/%0A/g, "\n").replace(/%25/g, "%");
}

export interface IdTokenEndpoint {
  /** `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN` for a step's env. */
  readonly env: Record<string, string>;
  /** Audiences asked for, one per ID token served. */
  readonly audiences: string[];
  /** The ID tokens served, in order. */
  readonly served: string[];
  /** The claims of the next ID tokens (merged over the issuer's defaults). */
  claims: Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * GitHub's ID token endpoint for one job: `GET <url>&audience=<aud>` with
 * `Authorization: Bearer <request token>` answers `{"value": "<jwt>"}`, the
 * JWT signed by the test OIDC issuer.
 */
export async function startIdTokenEndpoint(
  issuer: OidcIssuer,
  claims: Record<string, unknown> = {},
): Promise<IdTokenEndpoint> {
  const requestToken = `request-token-${Math.random().toString(36).slice(2)}`;
  const audiences: string[] = [];
  const served: string[] = [];
  const endpoint = {
    env: {} as Record<string, string>,
    audiences,
    served,
    claims,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
  const server: Server = createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    if (request.headers.authorization !== `Bearer ${requestToken}`) {
      response.statusCode = 401;
      response.end();
      return;
    }
    const audience = url.searchParams.get("audience");
    if (url.pathname !== "/idtoken" || url.searchParams.get("api-version") !== "2.0" || !audience) {
      response.statusCode = 400;
      response.end();
      return;
    }
    audiences.push(audience);
    const value = await issuer.idToken(audience, { claims: endpoint.claims });
    served.push(value);
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify({ count: 1, value }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  endpoint.env = {
    ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${port}/idtoken?api-version=2.0`,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: requestToken,
  };
  return endpoint;
}
