import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "#src/cli/run.js";
import { tempDirs } from "../support/dirs.js";
import { cleanEnv } from "../support/env.js";
import { freePort, REFUSED_PORT } from "../support/net.js";
import { captureOutput } from "../support/output.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const tempDir = tempDirs("hallpass-cli-env-");

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `hallpass <args>` as its own process, in the working directory `cwd`. */
function hallpass(args: readonly string[], cwd: string, env: Record<string, string> = {}) {
  const base = cleanEnv();
  delete base.GH_TOKEN;
  delete base.GITHUB_TOKEN;
  const loader = pathToFileURL(path.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;
  const child = spawn(
    process.execPath,
    ["--import", loader, path.join(ROOT, "src/main.ts"), ...args],
    {
      cwd,
      env: { ...base, XDG_CONFIG_HOME: path.join(cwd, "config"), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise<Outcome>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** `hallpass <args>` in this process, with only `env`. */
async function inProcess(args: string[], env: Record<string, string>) {
  const stdout = captureOutput();
  const stderr = captureOutput();
  const code = await runCli(
    args,
    { stdout: stdout.stream, stderr: stderr.stream },
    { PATH: path.dirname(process.execPath), XDG_CONFIG_HOME: tempDir(), ...env },
  );
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

describe("the CLI and .env", () => {
  // A server a .env names: it must hear nothing from a person's command.
  const heard: string[] = [];
  const listener = createServer((req, res) => {
    heard.push(`${req.method} ${req.url} ${req.headers.authorization ?? ""}`);
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
  let checkout: string;
  beforeAll(async () => {
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    const { port } = listener.address() as AddressInfo;
    checkout = tempDir();
    await writeFile(
      path.join(checkout, ".env"),
      [
        `HALLPASS_URL=http://127.0.0.1:${port}`,
        "GH_TOKEN=ghu_tokenfromadotenvfile",
        "DATABASE_URL=mysql://not-postgres",
        "",
      ].join("\n"),
    );
  });
  afterAll(() => new Promise<void>((resolve) => listener.close(() => resolve())));

  it("client commands read no .env: a checkout's file never chooses where a GitHub token goes", async () => {
    const token = await hallpass(["token", "acme/app#1"], checkout);
    expect(token).toMatchObject({ code: 2, stdout: "" });
    expect(token.stderr).toBe("hallpass: no server: pass --url or set HALLPASS_URL\n");
    const login = await hallpass(["login"], checkout);
    expect(login.code).toBe(2);
    expect(login.stderr).toBe("hallpass: no server: pass --url or set HALLPASS_URL\n");
    // With the server given, the .env's GH_TOKEN is not taken either.
    const port = await freePort();
    const given = await hallpass(
      ["token", "acme/app#1", "--url", `http://127.0.0.1:${port}`],
      checkout,
      { PATH: path.dirname(process.execPath) },
    );
    expect(given.code).toBe(1);
    expect(given.stderr).toMatch(/^hallpass: no GitHub token: run hallpass login/);
    expect(heard).toEqual([]);
  });

  it("server commands still read .env", async () => {
    const migrate = await hallpass(["migrate"], checkout);
    expect(migrate.code).toBe(1);
    expect(migrate.stderr).toMatch(
      /^hallpass: DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL/,
    );
    // The environment wins over the file.
    const dotEnv = path.join(checkout, ".env");
    const stderr = captureOutput();
    const code = await runCli(
      ["keys", "rotate"],
      { stdout: captureOutput().stream, stderr: stderr.stream },
      cleanEnv({ DATABASE_URL: "postgresql://user@127.0.0.1:1/none", HALLPASS_MASTER_KEY: "" }),
      { dotEnv },
    );
    expect(code).toBe(1);
    expect(stderr.text()).toMatch(/HALLPASS_MASTER_KEY: required with DATABASE_URL/);
    expect(stderr.text()).not.toMatch(/mysql/);
  });
});

describe("client commands and the server URL", () => {
  it("refuses plain http but to this machine, naming where the URL came from", async () => {
    for (const [args, env, source] of [
      [["--url", "http://hallpass.example.com"], {}, "--url"],
      [[], { HALLPASS_URL: "http://hallpass.example.com/" }, "HALLPASS_URL"],
      [["--url", "http://192.168.1.10:3000"], { HALLPASS_URL: "https://ignored.example" }, "--url"],
    ] as const) {
      const outcome = await inProcess(["token", "acme/app#1", ...args], {
        GH_TOKEN: "ghu_secret",
        ...env,
      });
      expect(outcome.code).toBe(2);
      expect(outcome.stderr).toMatch(
        new RegExp(
          `^hallpass: refusing http://[^ ]+: the server URL \\(from ${source}\\) must be https://`,
        ),
      );
    }
    const weird = await inProcess(["token", "acme/app#1", "--url", "ftp://hallpass.example.com"], {
      GH_TOKEN: "ghu_secret",
    });
    expect(weird).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/\(from --url\) must be an https:\/\/ URL/),
    });
  });

  it("takes https anywhere and http to loopback, saying where an unreachable URL came from", async () => {
    const port = REFUSED_PORT;
    for (const [url, source] of [
      [`http://localhost:${port}`, "--url"],
      [`http://127.0.0.1:${port}`, "--url"],
      [`http://127.5.6.7:${port}`, "HALLPASS_URL"],
      [`https://127.0.0.1:${port}`, "HALLPASS_URL"],
    ] as const) {
      const outcome = await inProcess(
        ["token", "acme/app#1", ...(source === "--url" ? ["--url", url] : [])],
        { GH_TOKEN: "ghu_secret", ...(source === "HALLPASS_URL" ? { HALLPASS_URL: url } : {}) },
      );
      expect(outcome.code).toBe(1);
      expect(outcome.stderr).toBe(
        `hallpass: cannot reach the hallpass server at ${url} (from ${source}): ECONNREFUSED\n`,
      );
      expect(outcome.stderr).not.toContain("ghu_secret");
    }
  });

  it("says which server answered something that is not hallpass", async () => {
    const stranger = createServer((_req, res) => {
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>nope</h1>");
    });
    await new Promise<void>((resolve) => stranger.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(stranger.address() as AddressInfo).port}`;
      const outcome = await inProcess(["token", "acme/app#1"], {
        GH_TOKEN: "ghu_secret",
        HALLPASS_URL: url,
      });
      expect(outcome).toMatchObject({
        code: 1,
        stderr: `hallpass: the server at ${url} (from HALLPASS_URL) answered HTTP 404 (is it a hallpass server?)\n`,
      });
    } finally {
      await new Promise<void>((resolve) => stranger.close(() => resolve()));
    }
  });
});
