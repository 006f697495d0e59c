/**
 * The ready-made policy workflow: it runs on changes to exactly the files
 * `hallpass policy check` reads, and its problem matcher turns every error the
 * CLI prints into an annotation (and nothing else).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { runCli } from "#src/cli/run.js";
import { CODEOWNERS_PATHS } from "#src/rules/codeowners.js";
import { POLICY_FILE } from "#src/rules/policy.js";
import { ACTION_DIR } from "../support/action.js";

interface Workflow {
  on: { pull_request: { paths: string[] } };
  permissions: Record<string, string>;
  jobs: { check: { steps: Array<{ run?: string }> } };
}

const workflow = async () =>
  parse(
    await readFile(path.join(ACTION_DIR, "workflows/hallpass-policy-check.yml"), "utf8"),
  ) as Workflow;

/** The matcher the workflow writes, and the command it runs. */
async function matcherAndCommand() {
  const steps = (await workflow()).jobs.check.steps;
  const script = steps.at(-1)?.run ?? "";
  const json = /<<'MATCHER'\n([\s\S]*?)\nMATCHER\n/.exec(script)?.[1];
  if (!json) throw new Error("no matcher in the last step");
  const matcher = JSON.parse(json) as {
    problemMatcher: Array<{
      pattern: Array<{ regexp: string; file: number; line: number; message: number }>;
    }>;
  };
  const pattern = matcher.problemMatcher[0]?.pattern[0];
  if (!pattern) throw new Error("no pattern");
  return { pattern, command: script.trim().split("\n").at(-1) };
}

async function policyCheck(repo: string) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { stdout: "", stderr: "" };
  stdout.on("data", (c) => {
    chunks.stdout += c;
  });
  stderr.on("data", (c) => {
    chunks.stderr += c;
  });
  const code = await runCli(["policy", "check", "--repo", repo], { stdout, stderr });
  return { code, ...chunks };
}

describe("the policy check workflow", () => {
  let repo: string;
  beforeEach(async () => {
    repo = await mkdtemp(path.join(tmpdir(), "hallpass-policy-"));
    await mkdir(path.join(repo, ".github"));
  });
  afterEach(() => rm(repo, { recursive: true, force: true }));

  it("runs on changes to the policy and to every CODEOWNERS GitHub reads, reading only", async () => {
    const w = await workflow();
    expect(new Set(w.on.pull_request.paths)).toEqual(new Set([POLICY_FILE, ...CODEOWNERS_PATHS]));
    expect(w.permissions).toEqual({ contents: "read" });
    expect((await matcherAndCommand()).command).toBe(
      "node .hallpass-cli/dist/main.js policy check --repo .",
    );
  });

  it("annotates every error the CLI prints, at its file and line, and nothing else", async () => {
    await writeFile(
      path.join(repo, POLICY_FILE),
      [
        "label: hallpass",
        "resources:",
        "  payments-api:",
        "    path: services/payments/",
        "    scopes:",
        '      read: ["GET /v1/**"]',
        "    max_ttl: 40x",
        "    approvals: 0",
        "",
      ].join("\n"),
    );
    await writeFile(
      path.join(repo, ".github/CODEOWNERS"),
      "services/payments/ @alice not-an-owner\n[abc] @bob\n",
    );
    const { code, stdout, stderr } = await policyCheck(repo);
    expect(code).toBe(1);
    const { pattern } = await matcherAndCommand();
    const regexp = new RegExp(pattern.regexp);
    const errors = stderr.trim().split("\n");
    expect(errors.length).toBeGreaterThanOrEqual(4);
    const files = new Set<string>();
    for (const line of errors) {
      const match = regexp.exec(line);
      expect(match, line).not.toBeNull();
      files.add(match?.[pattern.file] ?? "?");
      expect(Number(match?.[pattern.line])).toBeGreaterThan(0);
      expect(line.endsWith(match?.[pattern.message] ?? "?")).toBe(true);
    }
    expect(files).toEqual(new Set([POLICY_FILE, ".github/CODEOWNERS"]));
    for (const line of stdout.split("\n")) expect(regexp.test(line), line).toBe(false);
  });

  it("passes a sound policy", async () => {
    await writeFile(
      path.join(repo, POLICY_FILE),
      'resources:\n  payments-api:\n    path: services/payments/\n    scopes:\n      read: ["GET /v1/**"]\n',
    );
    await writeFile(path.join(repo, "CODEOWNERS"), "services/payments/ @alice\n");
    const { code, stdout, stderr } = await policyCheck(repo);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toContain("policy OK");
  });
});
