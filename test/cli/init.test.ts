/**
 * `hallpass init`: the files it writes into a repository, that it never
 * overwrites without --force, that its policy passes `policy check`, and that
 * its issue form, filled in and rendered as GitHub renders issue forms,
 * reads back as the request the person meant.
 */
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { defaultResourceName, INIT_FILES, parseRemote } from "#src/cli/init.js";
import { runCli } from "#src/cli/run.js";
import { bindPolicy } from "#src/rules/bind.js";
import { parseOperatorYaml } from "#src/rules/operator.js";
import { parsePolicyYaml } from "#src/rules/policy.js";
import { parseRequest } from "#src/rules/request.js";
import { ACTION_DIR } from "../support/action.js";
import { tempDirs } from "../support/dirs.js";
import { cleanEnv } from "../support/env.js";
import { captureOutput } from "../support/output.js";

const tempDir = tempDirs("hallpass-init-");
const FILES = Object.values(INIT_FILES);

async function cli(args: string[]) {
  const stdout = captureOutput();
  const stderr = captureOutput();
  const code = await runCli(args, { stdout: stdout.stream, stderr: stderr.stream }, cleanEnv(), {
    dotEnv: null,
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** A checkout named `name`, with an `origin` remote when given. */
function repository(name: string, origin?: string): string {
  const dir = join(tempDir(), name);
  mkdirSync(join(dir, ".git"), { recursive: true });
  if (origin !== undefined) {
    writeFileSync(
      join(dir, ".git", "config"),
      `[core]\n\tbare = false\n[remote "upstream"]\n\turl = https://github.com/other/fork.git\n[remote "origin"]\n\turl = ${origin}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n`,
    );
  }
  return dir;
}

const read = (dir: string, path: string) => readFileSync(join(dir, path), "utf8");

// ---- GitHub's rendering of an issue form ------------------------------------

interface FormField {
  type: "markdown" | "input" | "textarea" | "dropdown" | "checkboxes";
  id?: string;
  attributes: {
    label?: string;
    options?: (string | { label: string })[];
    multiple?: boolean;
  };
}

/**
 * The issue body GitHub writes for a submitted form, as its documentation
 * describes it: each field but markdown as `### <label>`, a blank line and
 * the value; `_No response_` for an empty one; a multi-select dropdown as
 * `a, b`; checkboxes as `- [X] option` or `- [ ] option`, one per line.
 */
function renderIssueForm(
  form: { body: FormField[] },
  answers: Record<string, string | string[] | undefined>,
): string {
  const sections: string[] = [];
  for (const field of form.body) {
    if (field.type === "markdown") continue;
    const answer = answers[field.id ?? ""];
    let value: string;
    if (field.type === "checkboxes") {
      const chosen = new Set(Array.isArray(answer) ? answer : []);
      value = (field.attributes.options ?? [])
        .map((o) => (typeof o === "string" ? o : o.label))
        .map((label) => `- [${chosen.has(label) ? "X" : " "}] ${label}`)
        .join("\n");
    } else {
      const text = Array.isArray(answer) ? answer.join(", ") : (answer ?? "");
      value = text.trim() === "" ? "_No response_" : text;
    }
    sections.push(`### ${field.attributes.label}\n\n${value}`);
  }
  return sections.join("\n\n");
}

// ---- tests --------------------------------------------------------------------

describe("hallpass init", () => {
  it("writes the policy, the issue form and the shipped workflow, and prints the next steps", async () => {
    const dir = repository("payments", "git@github.com:acme/payments.git");
    const { code, stdout, stderr } = await cli(["init", "--repo", dir]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    for (const path of FILES) expect(existsSync(join(dir, path)), path).toBe(true);

    const policy = parsePolicyYaml(read(dir, INIT_FILES.policy));
    expect(policy.ok && [...policy.policy.resources.keys()]).toEqual(["payments-api"]);
    // The workflow is the one hallpass ships, not a copy of its own.
    expect(read(dir, INIT_FILES.workflow)).toBe(
      readFileSync(join(ACTION_DIR, "workflows/hallpass-policy-check.yml"), "utf8"),
    );
    const form = parse(read(dir, INIT_FILES.issueForm));
    expect(form.labels).toEqual(["hallpass"]);
    expect(form.body.find((f: FormField) => f.id === "resource").attributes.options).toEqual([
      "payments-api",
    ]);

    for (const path of FILES) expect(stdout).toContain(path);
    expect(stdout).toContain(
      'gh label create hallpass --repo acme/payments --description "Access request (hallpass)"',
    );
    expect(stdout).toContain("gh api repos/acme/payments --jq '.id, .owner.id'");
    expect(stdout).toContain("name: acme/payments");
    expect(stdout).toContain(`hallpass policy check --repo ${dir}`);
  });

  it("names the resource with --resource, and prints placeholders without a remote", async () => {
    const dir = repository("checkout");
    const { code, stdout } = await cli(["init", "--repo", dir, "--resource", "ledger"]);
    expect(code).toBe(0);
    expect(read(dir, INIT_FILES.policy)).toMatch(/^ {2}ledger:$/m);
    expect(stdout).toContain("gh api repos/OWNER/REPO --jq '.id, .owner.id'");
    expect(stdout).toContain("name: OWNER/REPO");
    expect(stdout).toMatch(/gh label create hallpass --description/);
  });

  it("refuses to overwrite: names every file that exists and writes none", async () => {
    const dir = repository("payments");
    mkdirSync(join(dir, ".github/workflows"), { recursive: true });
    writeFileSync(join(dir, INIT_FILES.policy), "# mine\n");
    writeFileSync(join(dir, INIT_FILES.workflow), "# mine too\n");
    const { code, stdout, stderr } = await cli(["init", "--repo", dir]);
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toContain(INIT_FILES.policy);
    expect(stderr).toContain(INIT_FILES.workflow);
    expect(stderr).not.toContain(INIT_FILES.issueForm);
    expect(read(dir, INIT_FILES.policy)).toBe("# mine\n");
    expect(read(dir, INIT_FILES.workflow)).toBe("# mine too\n");
    expect(existsSync(join(dir, INIT_FILES.issueForm))).toBe(false);
  });

  it("replaces existing files with --force, and a symbolic link rather than its target", async () => {
    const dir = repository("payments");
    const outside = join(tempDir(), "outside.yml");
    writeFileSync(outside, "# not the repository's\n");
    mkdirSync(join(dir, ".github"), { recursive: true });
    writeFileSync(join(dir, INIT_FILES.policy), "# mine\n");
    symlinkSync(outside, join(dir, ".github/ISSUE_TEMPLATE"));
    // A link where a folder should be: init never writes through it, nor anything else.
    expect(await cli(["init", "--repo", dir, "--force"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(".github/ISSUE_TEMPLATE must be a directory, not a link"),
    });
    expect(read(dir, INIT_FILES.policy)).toBe("# mine\n");

    const again = repository("payments");
    mkdirSync(join(again, ".github/ISSUE_TEMPLATE"), { recursive: true });
    writeFileSync(join(again, INIT_FILES.policy), "# mine\n");
    symlinkSync(outside, join(again, INIT_FILES.issueForm));
    const { code } = await cli(["init", "--repo", again, "--force"]);
    expect(code).toBe(0);
    expect(read(again, INIT_FILES.policy)).toContain("payments-api:");
    expect(read(again, INIT_FILES.issueForm)).toContain("labels:");
    expect(readFileSync(outside, "utf8")).toBe("# not the repository's\n");
  });

  it("writes a policy that passes hallpass policy check, also against the operator binding it prints", async () => {
    const dir = repository("payments", "https://github.com/acme/payments.git");
    const { stdout } = await cli(["init", "--repo", dir]);
    writeFileSync(join(dir, ".github/CODEOWNERS"), "* @alice\n");
    const check = await cli(["policy", "check", "--repo", dir]);
    expect(check.stderr).toBe("");
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/policy OK\n$/);

    const config = join(tempDir(), "hallpass.yml");
    writeFileSync(config, operatorSnippet(stdout, 1001, 2002));
    const bound = await cli([
      ...["policy", "check", "--repo", dir, "--config", config],
      ...["--repo-id", "1001", "--owner-id", "2002"],
    ]);
    expect(bound.stderr).toBe("");
    expect(bound.code).toBe(0);
    expect(bound.stdout).toContain("(from --repo-id and --owner-id)");
  });

  it("writes an issue form whose rendering reads back as the request meant", async () => {
    const dir = repository("payments", "git@github.com:acme/payments.git");
    const { stdout } = await cli(["init", "--repo", dir]);
    const form = parse(read(dir, INIT_FILES.issueForm));
    const policy = parsePolicyYaml(read(dir, INIT_FILES.policy));
    const operator = parseOperatorYaml(operatorSnippet(stdout, 1001, 2002), "config.yml");
    if (!policy.ok || !operator.ok) throw new Error("init wrote what does not parse");
    const { resources, errors } = bindPolicy(policy.policy, operator.config, {
      id: 1001,
      ownerId: 2002,
    });
    expect(errors).toEqual([]);
    const now = new Date("2030-01-01T00:00:00Z");

    const body = renderIssueForm(form, {
      resource: "payments-api",
      scopes: ["read"],
      duration: "2h",
      reason: "Investigate refund failures for INC-42",
      start: "2030-01-20T09:00Z",
    });
    expect(body).toContain("### Scopes\n\n- [X] read");
    expect(parseRequest(body, resources, now)).toEqual({
      ok: true,
      request: {
        resource: "payments-api",
        scopes: ["read"],
        durationSeconds: 7_200,
        reason: "Investigate refund failures for INC-42",
        start: new Date("2030-01-20T09:00:00Z"),
        source: "issue-form",
      },
    });

    // Optional fields left empty: the default duration, a start as soon as approved.
    const minimal = renderIssueForm(form, {
      resource: "payments-api",
      scopes: ["read"],
      reason: "Look at the ledger for INC-43",
    });
    expect(minimal).toContain("### Duration\n\n_No response_");
    const request = parseRequest(minimal, resources, now);
    expect(request.ok && [request.request.durationSeconds, request.request.start]).toEqual([
      3_600,
      null,
    ]);

    // No scope ticked: refused, naming the choices.
    const none = parseRequest(
      renderIssueForm(form, { resource: "payments-api", reason: "Look at the ledger" }),
      resources,
      now,
    );
    expect(none).toEqual({ ok: false, problems: ["Scopes is empty: choose from read"] });
  });

  it("names the resource after the directory", () => {
    expect(defaultResourceName("payments")).toBe("payments-api");
    expect(defaultResourceName("payments-api")).toBe("payments-api");
    expect(defaultResourceName("Billing_Service")).toBe("billing-service-api");
    expect(defaultResourceName("2fa")).toBe("fa-api");
    expect(defaultResourceName("___")).toBeNull();
    expect(defaultResourceName("x".repeat(80))).toBe(`${"x".repeat(59)}-api`);
  });

  it("reads origin's owner/repo from the forms git writes", () => {
    const acme = { host: "github.com", fullName: "acme/payments" };
    expect(parseRemote("git@github.com:acme/payments.git")).toEqual(acme);
    expect(parseRemote("https://github.com/acme/payments")).toEqual(acme);
    expect(parseRemote("ssh://git@github.com/acme/payments.git")).toEqual(acme);
    expect(parseRemote("https://ghe.acme.dev/acme/payments.git")).toEqual({
      ...acme,
      host: "ghe.acme.dev",
    });
    expect(parseRemote("/srv/git/payments.git")).toBeNull();
    expect(parseRemote("https://github.com/acme")).toBeNull();
  });

  it("refuses a bad resource name and a missing directory, as usage errors", async () => {
    const dir = repository("payments");
    expect((await cli(["init", "--repo", dir, "--resource", "Payments API"])).code).toBe(2);
    expect((await cli(["init", "--repo", join(dir, "nope")])).code).toBe(2);
    expect(existsSync(join(dir, ".github"))).toBe(false);
    expect(await cli(["init", "--repo", dir, "--frobnicate"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("unknown flag --frobnicate"),
    });
  });
});

/** The operator config `init` printed, with the ids filled in. */
function operatorSnippet(stdout: string, repoId: number, ownerId: number): string {
  const lines = stdout.split("\n");
  const start = lines.findIndex((l) => l.trim() === "resources:");
  const end = lines.findIndex((l, i) => i > start && l.trim() === "");
  const indent = lines[start]?.indexOf("resources:") ?? 0;
  return `${lines
    .slice(start, end)
    .map((l) => l.slice(indent))
    .join("\n")
    .replace("REPO_ID", String(repoId))
    .replace("OWNER_ID", String(ownerId))}\n`;
}
