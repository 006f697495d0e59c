/**
 * Every command the docs show (README.md, action/README.md, SECURITY.md,
 * docs/*.md) is one that works. Which text holds commands, and how it is
 * split into commands, is in test/support/doc-commands.ts: fenced sh, bash,
 * shell and zsh blocks; console blocks and untagged blocks of `$ ` prompts
 * (the prompted lines); the `run:` of workflow steps in yaml blocks (and
 * such a block must be valid YAML); and inline `hallpass …` spans of prose.
 *
 * Each command of a block parses as shell (`bash -n`, a `<placeholder>`
 * read as a word), and then, by what it runs:
 * - the hallpass CLI (`hallpass …`, `node dist/main.js …`, `npm run hallpass
 *   -- …`, and the inline mentions): its command, subcommand and every flag
 *   it names must be in the command's `--help` (the CLI's usage, asked in
 *   this process). Those that work offline (`--version`, `--help`, `init`,
 *   `policy check`) are run as processes of one build of `dist/main.js`
 *   (as `npm run build` makes it) and must exit 0: `hallpass` in an API's
 *   checkout set up by `hallpass init` (with the CODEOWNERS and operator
 *   config its next steps ask for), `node dist/main.js` in a hallpass
 *   checkout beside it (`../payments`). Inline mentions are never run;
 * - npm: `npm start`, `npm test` and `npm run X` name a script of the
 *   package.json of the directory they run in (after the block's `cd`);
 * - `cd DIR` and `bash FILE` in a shell block name what is in this repository;
 * - curl: each URL on the hallpass server of the docs (hallpass.acme.dev,
 *   localhost:3000) is a route of the real server (`hallpass serve`, started
 *   once), with the method curl would use;
 * - anything else (git, gh, npx, scripts of the reader's repository): parsing only.
 * A failure names the document, the line and the command.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { readdir, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "#src/cli/run.js";
import { bundleServer } from "../../scripts/bundle-server.mjs";
import { type DocCommand, docCommands, PLACEHOLDER } from "../support/doc-commands.js";
import { cleanEnv } from "../support/env.js";
import { freePort } from "../support/net.js";
import { captureOutput } from "../support/output.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DOCS = [
  "README.md",
  "action/README.md",
  "SECURITY.md",
  ...(await readdir(path.join(ROOT, "docs")))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
].filter((file) => existsSync(path.join(ROOT, file)));
const COMMANDS = DOCS.flatMap((file) =>
  docCommands(file, readFileSync(path.join(ROOT, file), "utf8")),
);

/** Hosts the docs give the hallpass server. */
const HALLPASS_HOSTS = new Set(["hallpass.acme.dev", "localhost:3000"]);
/** The repository ids docs/policy.md checks the policy as. */
const IDS = { repo: "123456789", owner: "4567890" };
/** npm's own commands the docs may use. */
const NPM_COMMANDS = new Set(["ci", "install", "i", "exec"]);

const run = promisify(execFile);

interface Fixture {
  readonly dir: string;
  /** A hallpass checkout: `dist/main.js` built; node_modules, action/ and app.yml linked. */
  readonly hallpass: string;
  readonly main: string;
  /** An API's repository, `acme/payments`, set up by `hallpass init`. */
  readonly payments: string;
}

let fixture: Fixture;
let server: Promise<{ url: string; stop: () => Promise<void> }> | null = null;
const helps = new Map<string, Promise<Outcome>>();

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The built CLI with `args`, in `cwd`, in an environment of no hallpass settings. */
async function cli(args: readonly string[], cwd: string): Promise<Outcome> {
  const env = cleanEnv({ XDG_CONFIG_HOME: path.join(fixture.dir, "config") });
  try {
    const { stdout, stderr } = await run(process.execPath, [fixture.main, ...args], { cwd, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === "number" ? failed.code : -1,
      stdout: failed.stdout ?? "",
      stderr: failed.stderr ?? String(error),
    };
  }
}

/** An empty checkout: a `.git` directory and nothing else. */
function checkout(name: string): string {
  const dir = mkdtempSync(path.join(fixture.dir, `${name}-`));
  mkdirSync(path.join(dir, ".git"));
  return dir;
}

async function makeFixture(): Promise<Fixture> {
  const dir = mkdtempSync(path.join(tmpdir(), "hallpass-doc-commands-"));
  const hallpass = path.join(dir, "hallpass");
  mkdirSync(hallpass);
  await symlink(path.join(ROOT, "node_modules"), path.join(hallpass, "node_modules"));
  for (const shipped of ["action", "app.yml"]) {
    await symlink(path.join(ROOT, shipped), path.join(hallpass, shipped));
  }
  const main = await bundleServer(path.join(hallpass, "dist"), { root: ROOT });
  const payments = path.join(dir, "payments");
  mkdirSync(path.join(payments, ".git"), { recursive: true });
  await writeFile(
    path.join(payments, ".git", "config"),
    '[remote "origin"]\n\turl = git@github.com:acme/payments.git\n',
  );
  fixture = { dir, hallpass, main, payments };
  const init = await cli(["init"], payments);
  if (init.code !== 0) throw new Error(`hallpass init failed: ${init.stderr}`);
  // Its next steps: CODEOWNERS, and the operator's binding it prints.
  await writeFile(path.join(payments, ".github", "CODEOWNERS"), "* @acme/payments-owners\n");
  const lines = init.stdout.split("\n");
  const first = lines.findIndex((l) => l.trim() === "resources:");
  const end = lines.findIndex((l, i) => i > first && l.trim() === "");
  const binding = lines.slice(first, end);
  const indent = /^ */.exec(binding[0] ?? "")?.[0].length ?? 0;
  await writeFile(
    path.join(payments, "operator.yml"),
    binding
      .map((l) => l.slice(indent))
      .join("\n")
      .replace("REPO_ID", IDS.repo)
      .replace("OWNER_ID", IDS.owner),
  );
  return fixture;
}

/**
 * `hallpass serve` of the built CLI, started once, when a route is to be
 * checked. It listens before its database is up, and its routes do not
 * depend on it: it is given one that does not answer, which spares the
 * embedded database's start (seconds of CPU).
 */
function hallpassServer() {
  server ??= (async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [fixture.main, "serve"], {
      cwd: fixture.dir,
      env: cleanEnv({
        PORT: String(port),
        DATABASE_URL: "postgres://127.0.0.1:9/none",
        HALLPASS_MASTER_KEY: randomBytes(32).toString("base64"),
        LOG_LEVEL: "error",
      }),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    while ((await fetch(`${url}/healthz`).catch(() => null))?.status !== 200) {
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill("SIGKILL");
        throw new Error(`hallpass serve did not listen: ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return {
      url,
      stop: async () => {
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(killer);
      },
    };
  })();
  return server;
}

/**
 * `hallpass help <command>` (or `hallpass --help`), in this process: usages
 * are the CLI's own text, and a process of the bundle for each would cost
 * most of this file's time.
 */
function help(command: string): Promise<Outcome> {
  let found = helps.get(command);
  if (!found) {
    const stdout = captureOutput();
    const stderr = captureOutput();
    found = runCli(
      command === "" ? ["--help"] : ["help", command],
      { stdout: stdout.stream, stderr: stderr.stream },
      cleanEnv(),
      { dotEnv: null },
    ).then((code) => ({ code, stdout: stdout.text(), stderr: stderr.text() }));
    helps.set(command, found);
  }
  return found;
}

/** What a check found out about a command, and what kind of check it was. */
interface Checked {
  readonly problems: string[];
  readonly kinds: Set<string>;
}

/** Checks one logical command line of a document (see the header). */
async function check(command: DocCommand): Promise<Checked> {
  const problems: string[] = [];
  const kinds = new Set<string>();
  if (command.error) return { problems: [command.error], kinds };
  if (command.origin === "inline") {
    await checkCli(command.commands[0]?.slice(1) ?? [], null, problems, kinds);
    return { problems, kinds };
  }
  const parsed = spawnSync(
    "bash",
    ["-n", "-c", command.source.replace(/<[a-z][a-z0-9 _-]*>/g, "X")],
    {
      encoding: "utf8",
    },
  );
  if (parsed.status !== 0) problems.push(`does not parse as shell: ${parsed.stderr.trim()}`);
  let cwd = directoryOf(command);
  for (const words of command.commands) {
    // Past its variable assignments (`PORT=8080 npm start`).
    const at = words.findIndex((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w));
    const [name, ...args] = at === -1 ? [] : words.slice(at);
    if (name === undefined) continue;
    if (
      name === "cd" ||
      ((name === "bash" || name === "sh") && args[0] && !args[0].startsWith("-"))
    ) {
      if (command.origin !== "shell") continue;
      kinds.add("path");
      const target = path.join(ROOT, cwd, args[0] ?? "");
      if (!existsSync(target)) problems.push(`${args[0]} does not exist in this repository`);
      if (name === "cd") cwd = path.join(cwd, args[0] ?? "");
    } else if (name === "hallpass") {
      await checkCli(args, fixture.payments, problems, kinds);
    } else if (name === "node" && args[0] === "dist/main.js") {
      await checkCli(args.slice(1), fixture.hallpass, problems, kinds);
    } else if (name === "npm") {
      kinds.add("npm");
      // npm's own flags (`npm run --silent hallpass -- …`) come before the script.
      const dashes = args.indexOf("--");
      const words = (dashes === -1 ? args : args.slice(0, dashes)).filter(
        (w) => !w.startsWith("-"),
      );
      const [verb = "", script = ""] = words;
      if (NPM_COMMANDS.has(verb)) continue;
      const wanted = verb === "run" || verb === "run-script" ? script : verb;
      const file = path.join(ROOT, cwd, "package.json");
      const scripts = existsSync(file)
        ? ((JSON.parse(readFileSync(file, "utf8")) as { scripts?: object }).scripts ?? {})
        : {};
      if (!Object.hasOwn(scripts, wanted)) {
        problems.push(`npm ${verb}: no script "${wanted}" in ${path.join(cwd, "package.json")}`);
      }
      if (wanted === "hallpass" && dashes !== -1) {
        await checkCli(args.slice(dashes + 1), fixture.hallpass, problems, kinds);
      }
    } else if (name === "curl") {
      await checkCurl(args, problems, kinds);
    }
  }
  return { problems, kinds };
}

/** The directory (of this repository) a command runs in: the root, or its block's last `cd`. */
function directoryOf(command: DocCommand): string {
  let dir = "";
  for (const other of COMMANDS) {
    if (other.file !== command.file || other.block !== command.block) continue;
    if (other.line >= command.line) break;
    for (const [name, target] of other.commands)
      if (name === "cd" && target) dir = path.join(dir, target);
  }
  return dir;
}

/**
 * A CLI invocation: its command, subcommand and flags exist; run it in `cwd`
 * when it works offline (null: a mention in prose, never run).
 */
async function checkCli(
  argv: readonly string[],
  cwd: string | null,
  problems: string[],
  kinds: Set<string>,
): Promise<void> {
  const end = argv.indexOf("--");
  const own = end === -1 ? argv : argv.slice(0, end);
  const [command = "", sub] = own;
  if (command === "" || PLACEHOLDER.test(command)) return;
  kinds.add("cli flags");
  const topLevel = command.startsWith("-") || command === "help";
  const usage = await help(topLevel ? "" : command);
  if (usage.code !== 0) {
    problems.push(`hallpass has no command "${command}" (${usage.stderr.trim()})`);
    return;
  }
  const subcommands = new Set(
    [
      ...usage.stdout.matchAll(
        new RegExp(`^(?:usage:)? *hallpass ${command} ([a-z][a-z-]*)(?=[ [\\n]|$)`, "gm"),
      ),
    ].map((m) => m[1]),
  );
  if (subcommands.size > 0 && !subcommands.has(sub)) {
    problems.push(`hallpass ${command} has no subcommand "${sub}" (hallpass ${command} --help)`);
  }
  for (const word of own) {
    // As a usage writes it, too: `[--url URL]`.
    const flag = word.replace(/^[[(]+|[\])]+$/g, "").split("=")[0] ?? "";
    if (!/^--?[a-z]/.test(flag)) continue;
    const listed = new RegExp(`(^|[\\s\\[|(])${flag.replace(/[-]/g, "\\-")}(?![\\w-])`, "m");
    if (!listed.test(usage.stdout)) {
      problems.push(`flag ${flag} is not in hallpass ${topLevel ? "" : `${command} `}--help`);
    }
  }
  const offline =
    ["--version", "--help", "-h", "help", "init"].includes(command) ||
    own.includes("--help") ||
    own.includes("-h") ||
    (command === "policy" && sub === "check");
  if (cwd === null || !offline || problems.length > 0 || own.some((w) => PLACEHOLDER.test(w)))
    return;
  kinds.add("cli run");
  const outcome = await cli(argv, command === "init" ? checkout("init") : cwd);
  if (outcome.code !== 0) {
    problems.push(
      `exits ${outcome.code}: ${(outcome.stderr || outcome.stdout).trim().slice(0, 500)}`,
    );
  }
}

/** A curl call: each URL on the hallpass server names one of its routes. */
async function checkCurl(args: readonly string[], problems: string[], kinds: Set<string>) {
  const option = (names: string[]) => {
    const at = args.findIndex((a) => names.includes(a));
    return at === -1 ? undefined : args[at + 1];
  };
  const sends = args.some((a) => /^(-d|--data.*|-F|--form|-T|--upload-file)$/.test(a));
  const method =
    option(["-X", "--request"]) ??
    (args.some((a) => a === "-I" || a === "--head") ? "HEAD" : sends ? "POST" : "GET");
  for (const word of args) {
    if (!/^https?:\/\//.test(word)) continue;
    const url = new URL(word);
    if (!HALLPASS_HOSTS.has(url.host)) continue;
    kinds.add("route");
    const { url: base } = await hallpassServer();
    const response = await fetch(`${base}${url.pathname}`, { method });
    const body = await response.text();
    if (response.status === 404 && /"Route [A-Z]+:\S* not found"/.test(body)) {
      problems.push(`the hallpass server has no route ${method} ${url.pathname}`);
    }
  }
}

/** Runs the checks a few at a time: each CLI run is a process. */
async function checkAll(commands: readonly DocCommand[]): Promise<Map<DocCommand, Checked>> {
  const results = new Map<DocCommand, Checked>();
  const queue = [...commands];
  await Promise.all(
    Array.from({ length: 3 }, async () => {
      for (let next = queue.shift(); next; next = queue.shift())
        results.set(next, await check(next));
    }),
  );
  return results;
}

const where = (c: DocCommand) => `${c.file}:${c.line}: ${c.source.split("\n").join(" ")}`;

let results: Map<DocCommand, Checked>;
beforeAll(async () => {
  await makeFixture();
  results = await checkAll(COMMANDS);
}, 60_000);
afterAll(async () => {
  await (await server?.catch(() => null))?.stop();
  if (fixture) rmSync(fixture.dir, { recursive: true, force: true });
});

describe("the commands of the docs", () => {
  it.each(COMMANDS.map((c) => [where(c), c] as const))("%s", (name, command) => {
    expect(results.get(command)?.problems.map((p) => `${name}: ${p}`)).toEqual([]);
  });

  it("include every kind the checks know: CLI runs and flags, npm scripts, paths, routes", () => {
    const kinds = new Set([...results.values()].flatMap((r) => [...r.kinds]));
    expect([...kinds].sort()).toEqual(["cli flags", "cli run", "npm", "path", "route"]);
  });
});

describe("a wrong command", () => {
  const wrong: [string, string][] = [
    [
      "hallpass policy check --repo . --frobnicate",
      "flag --frobnicate is not in hallpass policy --help",
    ],
    ["hallpass polcy check", 'hallpass has no command "polcy"'],
    ["hallpass audit verfy", 'hallpass audit has no subcommand "verfy"'],
    ["node dist/main.js policy check --repo ../nowhere", "exits 2: hallpass: --repo: ../nowhere"],
    ["npm run no-such-script", 'npm run: no script "no-such-script" in package.json'],
    ["bash .ci/no-such-file", ".ci/no-such-file does not exist in this repository"],
    ["curl -fsS https://hallpass.acme.dev/v1/no-such-route", "no route GET /v1/no-such-route"],
    ["curl -fsS -X DELETE https://hallpass.acme.dev/introspect", "no route DELETE /introspect"],
    ["echo 'unclosed", "does not parse as shell: "],
  ];
  const prose = "Run `hallpass keys rotate --later` to rotate.";

  it.each(wrong)("fails, naming its document and line: %s", async (source, problem) => {
    const [command] = docCommands("docs/wrong.md", `# Wrong\n\n\`\`\`sh\n${source}\n\`\`\`\n`);
    expect(command).toMatchObject({ file: "docs/wrong.md", line: 4 });
    if (!command) return;
    const { problems } = await check(command);
    expect(problems).toEqual([expect.stringContaining(problem)]);
  });

  it("fails when a mention in prose names a flag hallpass lacks", async () => {
    const [command] = docCommands("docs/wrong.md", `# Wrong\n\n${prose}\n`);
    expect(command).toMatchObject({ line: 3, origin: "inline" });
    if (!command) return;
    expect((await check(command)).problems).toEqual([
      "flag --later is not in hallpass keys --help",
    ]);
  });
});

describe("docCommands", () => {
  it("reads shell and console blocks, continuations, comments, workflow steps and mentions", () => {
    const markdown = [
      "# Title", // 1
      "```sh", // 2
      "npm ci && npm start   # comment", // 3
      "# a whole-line comment", // 4
      "hallpass token acme/payments#1 -- sh -c \\", // 5
      "  'curl -H \"A: b\" https://x.test/' # more", // 6
      "```", // 7
      "```console", // 8
      "$ hallpass --version", // 9
      "hallpass 0.1.0", // 10
      "```", // 11
      "```", // 12
      "output, not a command: `hallpass serve`", // 13
      "```", // 14
      "````markdown", // 15
      "```sh", // 16
      "not-run inside markdown", // 17
      "```", // 18
      "````", // 19
      "```yaml", // 20
      "steps:", // 21
      "  - run: ./smoke.sh", // 22
      "  - run: |", // 23
      "      echo one", // 24
      "```", // 25
      "```yaml", // 26
      "steps:", // 27
      '  - run: curl -H "A: b" https://x.test/', // 28
      "```", // 29
      "Prose naming `hallpass init --repo .`, but not `npm test`.", // 30
    ].join("\n");
    const found = docCommands("doc.md", markdown).map((c) => ({
      line: c.line,
      commands: c.commands,
      ...(c.error ? { error: c.error.split(":")[0] } : {}),
    }));
    expect(found).toEqual([
      {
        line: 3,
        commands: [
          ["npm", "ci"],
          ["npm", "start"],
        ],
      },
      {
        line: 5,
        commands: [
          [
            "hallpass",
            "token",
            "acme/payments#1",
            "--",
            "sh",
            "-c",
            'curl -H "A: b" https://x.test/',
          ],
        ],
      },
      { line: 9, commands: [["hallpass", "--version"]] },
      { line: 22, commands: [["./smoke.sh"]] },
      { line: 24, commands: [["echo", "one"]] },
      { line: 28, commands: [], error: "not valid YAML, so GitHub refuses the workflow" },
      { line: 30, commands: [["hallpass", "init", "--repo", "."]] },
    ]);
  });
});
