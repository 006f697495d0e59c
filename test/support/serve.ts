/**
 * `hallpass serve` in its own process, as an operator runs it: a clean
 * environment (see `cleanEnv`) plus `env`, its output kept for the test to
 * read or show when something goes wrong.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cleanEnv } from "./env.js";

export interface ServeProcess {
  readonly child: ChildProcess;
  /** Everything it wrote, stdout and stderr, in order. */
  output(): string;
  /** Its JSON log lines, parsed. */
  lines(): Array<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
}

export interface SpawnServeOptions {
  /** The entry to run: a built `main.js`, or (the default) the sources through tsx. */
  readonly entry?: string;
  readonly cwd?: string;
}

export function spawnServe(
  env: Record<string, string>,
  options: SpawnServeOptions = {},
): ServeProcess {
  const args = options.entry ? [options.entry] : ["--import", "tsx", "src/main.ts"];
  const child = spawn(process.execPath, [...args, "serve"], {
    env: cleanEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    output += chunk.toString("utf8");
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  return {
    child,
    output: () => output,
    lines: () =>
      output
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    exited,
  };
}
