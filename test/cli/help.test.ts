/**
 * The CLI's own surface: `--version`, `<command> --help` for every command
 * (its usage with every flag it takes, exit 0, nothing run), and unknown
 * flags refused by name before anything is opened.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "#src/cli/run.js";
import { tempDirs } from "../support/dirs.js";
import { cleanEnv } from "../support/env.js";
import { captureOutput } from "../support/output.js";

const tempDir = tempDirs("hallpass-help-");

/**
 * An environment in which any command that went ahead would fail loudly:
 * the server's settings are invalid, and the data directory is a file.
 */
function trap(): NodeJS.ProcessEnv {
  const dir = tempDir();
  const file = join(dir, "not-a-directory");
  return cleanEnv({ PORT: "http", HALLPASS_DATA_DIR: file, HALLPASS_URL: "not a url" });
}

async function cli(args: string[], env: NodeJS.ProcessEnv = trap()) {
  const stdout = captureOutput();
  const stderr = captureOutput();
  const code = await runCli(args, { stdout: stdout.stream, stderr: stderr.stream }, env, {
    dotEnv: null,
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** Every command, how to call it, and the flags its usage must list. */
const COMMANDS: Record<string, { args: string[]; flags: string[] }> = {
  serve: { args: ["serve"], flags: [] },
  migrate: { args: ["migrate"], flags: [] },
  init: { args: ["init"], flags: ["--repo", "--resource", "--force"] },
  policy: {
    args: ["policy", "check"],
    flags: ["--repo", "--config", "--repo-id", "--owner-id", "--json"],
  },
  config: { args: ["config", "check"], flags: ["--json"] },
  audit: { args: ["audit", "verify"], flags: ["--json", "--ticket"] },
  keys: { args: ["keys", "rotate"], flags: ["--now", "--revoke-old"] },
  revoke: { args: ["revoke", "acme/payments#1"], flags: ["--grant", "--reason"] },
  login: { args: ["login"], flags: ["--url"] },
  logout: { args: ["logout"], flags: ["--url"] },
  token: { args: ["token", "acme/payments#1"], flags: ["--scope", "--resource", "--url"] },
};

describe("hallpass --version", () => {
  it("prints the version of package.json", async () => {
    const { version } = JSON.parse(
      readFileSync(new URL("../../package.json", import.meta.url), "utf8"),
    ) as { version: string };
    expect(await cli(["--version"])).toEqual({
      code: 0,
      stdout: `hallpass ${version}\n`,
      stderr: "",
    });
  });
});

describe("hallpass <command> --help", () => {
  it.each(Object.entries(COMMANDS))(
    "%s: prints its usage with every flag, runs nothing, exits 0",
    async (name, { args, flags }) => {
      for (const help of ["--help", "-h"]) {
        const { code, stdout, stderr } = await cli([...args, help]);
        expect(stderr).toBe("");
        expect(code).toBe(0);
        expect(stdout).toMatch(/^usage: hallpass /);
        expect(stdout).toContain(`hallpass ${name}`);
        for (const flag of flags) expect(stdout, flag).toContain(flag);
      }
      // Also before the subcommand, and as `hallpass help <command>`.
      const bare = await cli([name, "--help"]);
      expect(bare.code).toBe(0);
      expect((await cli(["help", name])).stdout).toBe(bare.stdout);
    },
  );

  it("lists every command in the overall usage", async () => {
    const { code, stdout } = await cli(["--help"]);
    expect(code).toBe(0);
    for (const name of Object.keys(COMMANDS))
      expect(stdout).toMatch(new RegExp(`^ {2}${name}\\b`, "m"));
    expect(stdout).toContain("--version");
  });

  it("lists every flag of every command in the overall usage and in the README's table", async () => {
    const { stdout } = await cli(["--help"]);
    const usage = entries(stdout, /^ {2}([a-z]+)\b/, /^ {4,}\S/);
    const readme = entries(readFileSync("README.md", "utf8"), /^\| `([a-z]+)\b/);
    for (const [name, { flags }] of Object.entries(COMMANDS)) {
      for (const flag of flags) {
        expect(usage.get(name), `hallpass --help, ${name} ${flag}`).toContain(flag);
        expect(readme.get(name), `README.md, ${name} ${flag}`).toContain(flag);
      }
    }
  });

  it("leaves --help after -- to the command token runs", async () => {
    // token parses the command line itself; a --help meant for the command is not hallpass's.
    const { code, stdout } = await cli(["token", "acme/payments#1", "--", "curl", "--help"]);
    expect(stdout).not.toMatch(/^usage:/);
    expect(code).not.toBe(0);
  });
});

describe("unknown flags", () => {
  it.each(Object.entries(COMMANDS))(
    "%s: refused by name, exit 2, before anything is opened",
    async (name, { args }) => {
      // The trap environment would fail any command that opened its config or database.
      const { code, stdout, stderr } = await cli([...args, "--frobnicate"]);
      expect(code).toBe(2);
      expect(stdout).toBe("");
      expect(stderr).toBe(
        `hallpass ${name}: unknown flag --frobnicate (hallpass ${name} --help lists its flags)\n`,
      );
    },
  );

  it("refuses a flag of another subcommand, and a stray argument", async () => {
    expect((await cli(["audit", "export", "--json"])).stderr).toContain("unknown flag --json");
    expect((await cli(["audit", "verify", "--ticket", "a/b#1"])).code).toBe(2);
    expect(await cli(["serve", "now"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('unexpected argument "now"'),
    });
    expect((await cli(["--version", "--json"])).code).toBe(2);
  });

  it("refuses an unknown command, and help for one", async () => {
    expect((await cli(["frobnicate"])).code).toBe(2);
    expect(await cli(["help", "frobnicate"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('no command "frobnicate"'),
    });
  });
});

/**
 * The lines of `text` about each command: a line matching `start` (its first
 * group the command) and the lines after it matching `more`, if given.
 */
function entries(text: string, start: RegExp, more?: RegExp): Map<string, string> {
  const found = new Map<string, string>();
  let current: string | null = null;
  for (const line of text.split("\n")) {
    const name = start.exec(line)?.[1];
    if (name) current = name;
    else if (!current || !more?.test(line)) {
      current = null;
      continue;
    }
    found.set(current, `${found.get(current) ?? ""}${line}\n`);
  }
  return found;
}
