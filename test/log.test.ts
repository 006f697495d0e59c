import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { stripVTControlCharacters } from "node:util";
import { describe, expect, it } from "vitest";
import { cleanEnv } from "./support/env.js";
import { captureLogger, duplicateKeys } from "./support/log.js";
import { freePort } from "./support/net.js";

/**
 * `hallpass serve` on the embedded database until it is ready, then stopped
 * with SIGTERM; what it wrote on stdout. `terminal` runs it under `script`
 * (util-linux), whose pseudo-terminal is its stdout; the signal goes to the
 * server, script's child, and script ends with it.
 */
async function serveOutput(terminal: boolean): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "hallpass-log-"));
  const port = await freePort();
  const command = [process.execPath, "--import", "tsx", "src/main.ts", "serve"];
  const env = cleanEnv({ PORT: String(port), HALLPASS_DATA_DIR: dir });
  const child: ChildProcess = terminal
    ? spawn("script", ["-qfec", `exec ${command.join(" ")}`, "/dev/null"], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      })
    : spawn(command[0] as string, command.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  try {
    await expect
      .poll(
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status,
        { timeout: 60_000, interval: 200 },
      )
      .toBe(200);
    const pid = child.pid as number;
    const server = terminal
      ? Number((await readFile(`/proc/${pid}/task/${pid}/children`, "utf8")).trim())
      : pid;
    process.kill(server, "SIGTERM");
    expect(await exited).toBe(0);
    return stdout;
  } finally {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
}

describe("the process logger", () => {
  it("writes pino-pretty's coloured lines to a terminal, and no JSON", async () => {
    const output = await serveOutput(true);
    const lines = output.split(/\r?\n/).filter((line) => line.trim() !== "");
    // pino-pretty colours the level.
    expect(output).toContain("\u001b[32mINFO\u001b[39m");
    const plain = lines.map(stripVTControlCharacters);
    expect(plain).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(hallpass\): ready$/),
        expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(hallpass\): stopped$/),
      ]),
    );
    expect(plain.filter((line) => line.trimStart().startsWith("{"))).toEqual([]);
  }, 120_000);

  it("writes one JSON object per line to a pipe", async () => {
    const output = await serveOutput(false);
    const lines = output.split("\n").filter((line) => line !== "");
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) {
      expect(JSON.parse(line), line).toMatchObject({
        level: expect.any(Number),
        time: expect.any(Number),
        name: "hallpass",
        msg: expect.any(String),
      });
      expect(duplicateKeys(line), line).toEqual([]);
    }
    expect(lines.map((line) => JSON.parse(line).msg)).toEqual(
      expect.arrayContaining(["ready", "stopped"]),
    );
  }, 120_000);

  it("writes a key once when a child logger binds it again, or a line's fields repeat a binding", () => {
    const { log, text } = captureLogger("debug");
    // As Probot names its loggers: "probot", then "octokit", inside ours.
    const octokit = log.child({ component: "github" }).child({ name: "probot" });
    octokit.child({ name: "octokit" }).debug({ name: "hallpass", status: "queued" }, "request");
    octokit.child({ name: "event", id: "d-1" }).info("received");
    const lines = text().trim().split("\n");
    expect(lines.map(duplicateKeys)).toEqual([[], []]);
    // The innermost value stands, as JSON.parse of the repeated keys read it.
    expect(lines.map((line) => JSON.parse(line))).toMatchObject([
      { name: "hallpass", component: "github", status: "queued", msg: "request" },
      { name: "event", component: "github", id: "d-1", msg: "received" },
    ]);
  });

  it("keeps a child's level and redaction for its own children", () => {
    const { log, lines } = captureLogger("debug");
    const quiet = log.child({ component: "quiet" }, { level: "warn" });
    quiet.child({ part: "a" }).info("hidden");
    quiet.child({ part: "a" }).warn({ x: { token: "t0ps3cret" } }, "shown");
    expect(lines()).toEqual([
      expect.objectContaining({ component: "quiet", part: "a", x: { token: "[redacted]" } }),
    ]);
  });

  it("redacts a secret's field at the top of a line as one level down", () => {
    const { log, lines, text } = captureLogger("debug");
    const fields = ["token", "privateKey", "webhookSecret", "masterKey", "password", "secret"];
    log.info(Object.fromEntries(fields.map((f) => [f, `t0ps3cret-${f}`])), "top");
    log.info({ x: Object.fromEntries(fields.map((f) => [f, `t0ps3cret-${f}`])) }, "nested");
    expect(text()).not.toContain("t0ps3cret");
    const [top, nested] = lines() as [Record<string, unknown>, { x: Record<string, unknown> }];
    for (const f of fields) {
      expect(top[f], f).toBe("[redacted]");
      expect(nested.x[f], f).toBe("[redacted]");
    }
  });

  it("finds keys repeated at any depth, whatever the strings hold", () => {
    expect(
      duplicateKeys('{"a":1,"b":{"c":"x,\\"c\\":1","c":2,"d":[{"e":1,"e":2}]},"a":"}"}'),
    ).toEqual(["b.c", "b.d.e", "a"]);
    expect(duplicateKeys('{"a":[{"a":1},{"a":2}],"\\u0061b":1,"ab":2}')).toEqual(["ab"]);
    expect(duplicateKeys('{"a":{"b":1},"c":{"b":1}}')).toEqual([]);
  });
});
