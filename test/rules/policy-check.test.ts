import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "#src/cli/run.js";
import { OPERATOR_CONFIG, SPEC_POLICY } from "./fixtures/policies.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function checkout(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "hallpass-policy-check-"));
  dirs.push(dir);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  stdout.on("data", (c: Buffer) => chunks.stdout.push(c));
  stderr.on("data", (c: Buffer) => chunks.stderr.push(c));
  const code = await runCli(args, { stdout, stderr });
  return {
    code,
    stdout: Buffer.concat(chunks.stdout).toString("utf8"),
    stderr: Buffer.concat(chunks.stderr).toString("utf8"),
  };
}

async function json(dir: string) {
  const result = await run(["policy", "check", "--repo", dir, "--json"]);
  return { code: result.code, report: JSON.parse(result.stdout) };
}

const CODEOWNERS = `# Owners
*                     @acme/eng
/services/payments/   @acme/payments-owners @alice ops@acme.example
/services/ledger/
`;

describe("hallpass policy check", () => {
  it("prints resources, approvers and no errors for a sound checkout (--json)", async () => {
    const dir = checkout({ ".github/hallpass.yml": SPEC_POLICY, ".github/CODEOWNERS": CODEOWNERS });
    const { code, report } = await json(dir);
    expect(report).toEqual({
      label: "hallpass",
      codeowners_file: ".github/CODEOWNERS",
      binding: null,
      resources: [
        {
          name: "payments-api",
          path: "services/payments/",
          approvers: ["@acme/payments-owners", "@alice"],
          email_owners: ["ops@acme.example"],
          approvals: 1,
          ownership: { status: "owned", line: 3 },
          scopes: { read: ["GET /v1/**"], refund: ["POST /v1/refunds", "GET /v1/charges/*"] },
          default_ttl_s: 3_600,
          max_ttl_s: 14_400,
          token_ttl_s: 900,
          request_ttl_s: 86_400,
          auto_approve: [
            {
              scopes: ["read"],
              max_ttl_s: 1_800,
              requesters: ["@acme/sre"],
              quota: { count: 5, window_s: 604_800 },
            },
          ],
          break_glass: { requesters: ["@acme/oncall"], max_ttl_s: 1_800, review_within_s: 86_400 },
          rate_limit: { count: 20, per_s: 1 },
          actions: {
            environments: null,
            job_workflow_refs: null,
            runner_environment: null,
            allow_forks: false,
            allow_pull_request_target: false,
          },
          people: false,
        },
      ],
      errors: [],
      warnings: [],
    });
    expect(code).toBe(0);
  });

  it("carries in --json what the summary shows of actions rules and people's tokens", async () => {
    const policy = SPEC_POLICY.replace(
      "    rate_limit: 20/s\n",
      [
        "    rate_limit: 20/s",
        "    people: true",
        "    actions:",
        "      environments: [production]",
        '      job_workflow_refs: ["acme/payments/.github/workflows/ops.yml@refs/heads/main"]',
        "      runner_environment: github-hosted",
        "      allow_forks: true",
        "",
      ].join("\n"),
    );
    const dir = checkout({ ".github/hallpass.yml": policy, CODEOWNERS });
    const { stdout } = await run(["policy", "check", "--repo", dir]);
    expect(stdout).toContain(
      "  actions: environments production; workflows acme/payments/.github/workflows/ops.yml@refs/heads/main; " +
        "runners github-hosted; forks yes; pull_request_target no\n" +
        "  people: tokens also for pull request tickets and actions rules\n",
    );
    const { report } = await json(dir);
    expect(report.resources[0]).toMatchObject({
      actions: {
        environments: ["production"],
        job_workflow_refs: ["acme/payments/.github/workflows/ops.yml@refs/heads/main"],
        runner_environment: "github-hosted",
        allow_forks: true,
        allow_pull_request_target: false,
      },
      people: true,
    });
  });

  it("prints a readable summary and exits 0", async () => {
    const dir = checkout({ ".github/hallpass.yml": SPEC_POLICY, CODEOWNERS });
    const { code, stdout, stderr } = await run(["policy", "check", "--repo", dir]);
    expect(code).toBe(0);
    expect(stderr).toBe("");
    expect(stdout).toContain("payments-api  (path services/payments/)");
    expect(stdout).toContain(
      "approvers: @acme/payments-owners @alice (CODEOWNERS line 3); 1 approval needed",
    );
    expect(stdout).toContain("e-mail owners cannot approve: ops@acme.example");
    expect(stdout).toContain("refund: POST /v1/refunds, GET /v1/charges/*");
    expect(stdout).toContain("ttl: default 1h, max 4h, token 15m, stale after 1d");
    expect(stdout).toContain("auto-approve: read up to 30m for @acme/sre, 5 per 7d each");
    expect(stdout).toContain("break-glass: @acme/oncall up to 30m, review within 1d");
    expect(stdout).toContain("rate limit: 20/s");
    expect(stdout).toMatch(/policy OK\n$/);
  });

  it("reports policy errors as file:line: message and exits 1", async () => {
    const broken = SPEC_POLICY.replace("max_ttl: 4h", "max_ttl: 4h\n    max_tll: 2h");
    const dir = checkout({ ".github/hallpass.yml": broken, ".github/CODEOWNERS": CODEOWNERS });
    const { code, stderr } = await run(["policy", "check", "--repo", dir]);
    expect(code).toBe(1);
    expect(stderr).toBe(
      '.github/hallpass.yml:11: resources.payments-api.max_tll: unknown key "max_tll" (did you mean max_ttl?)\n',
    );
    const { report } = await json(dir);
    expect(report.resources).toEqual([]);
    expect(report.errors).toEqual([
      {
        file: ".github/hallpass.yml",
        line: 11,
        column: null,
        message: 'resources.payments-api.max_tll: unknown key "max_tll" (did you mean max_ttl?)',
        excerpt: null,
      },
    ]);
  });

  it("reports an unowned resource path with an empty approver list", async () => {
    const policy = `${SPEC_POLICY}  ledger-api:\n    path: services/ledger/\n    scopes:\n      read: ["GET /ledger/**"]\n`;
    const dir = checkout({ ".github/hallpass.yml": policy, "docs/CODEOWNERS": CODEOWNERS });
    const { code, report } = await json(dir);
    expect(code).toBe(1);
    expect(
      report.resources.map((r: { name: string; approvers: string[] }) => [r.name, r.approvers]),
    ).toEqual([
      ["payments-api", ["@acme/payments-owners", "@alice"]],
      ["ledger-api", []],
    ]);
    expect(report.errors).toEqual([
      {
        file: ".github/hallpass.yml",
        line: 25,
        column: null,
        message:
          "resources.ledger-api.path: services/ledger/ has no code owners: docs/CODEOWNERS line 4 names none; nobody can approve",
        excerpt: null,
      },
    ]);
  });

  it("uses GitHub's search order for CODEOWNERS", async () => {
    const dir = checkout({
      ".github/hallpass.yml": SPEC_POLICY,
      CODEOWNERS: "/services/payments/ @root-owner\n",
      "docs/CODEOWNERS": "/services/payments/ @docs-owner\n",
    });
    const { report } = await json(dir);
    expect(report.resources[0].approvers).toEqual(["@root-owner"]);
  });

  it("reports a missing CODEOWNERS and the resources nobody can approve", async () => {
    const dir = checkout({ ".github/hallpass.yml": SPEC_POLICY });
    const { code, report } = await json(dir);
    expect(code).toBe(1);
    expect(report.resources[0].approvers).toEqual([]);
    expect(
      report.errors.map((e: { file: string; message: string }) => `${e.file}: ${e.message}`),
    ).toEqual([
      "CODEOWNERS: no CODEOWNERS file (looked for .github/CODEOWNERS, CODEOWNERS, docs/CODEOWNERS): nobody can approve",
      ".github/hallpass.yml: resources.payments-api.path: services/payments/ has no code owners; nobody can approve",
    ]);
  });

  it("reports a missing policy file, and that the organization's cannot be read offline", async () => {
    const dir = checkout({ ".github/CODEOWNERS": CODEOWNERS });
    const { code, report } = await json(dir);
    expect(code).toBe(1);
    expect(report).toEqual({
      label: null,
      codeowners_file: ".github/CODEOWNERS",
      binding: null,
      warnings: [],
      resources: [],
      errors: [
        {
          file: ".github/hallpass.yml",
          line: null,
          column: null,
          message:
            "no policy file; the server would use the organization's (.github:.github/hallpass.yml), which policy check cannot read offline",
          excerpt: null,
        },
      ],
    });
  });

  it("fails on an _extends it cannot read offline, at its line", async () => {
    const dir = checkout({
      ".github/hallpass.yml": `${SPEC_POLICY}_extends: acme/.github\n`,
      ".github/CODEOWNERS": CODEOWNERS,
    });
    const { code, stdout, stderr } = await run(["policy", "check", "--repo", dir]);
    expect(code).toBe(1);
    expect(stdout).toBe("1 error\n");
    expect(stderr).toBe(
      `.github/hallpass.yml:${SPEC_POLICY.split("\n").length}: _extends: policy check cannot read acme/.github:.github/hallpass.yml offline, so the merged policy is not checked\n`,
    );
  });

  it("reports owners too few for the approvals asked", async () => {
    const policy = SPEC_POLICY.replace("approvals: 1 ", "approvals: 3 ");
    const dir = checkout({
      ".github/hallpass.yml": policy,
      ".github/CODEOWNERS": "/services/ @alice @bob\n",
    });
    const { code, report } = await json(dir);
    expect(code).toBe(1);
    expect(report.errors).toEqual([
      {
        file: ".github/hallpass.yml",
        line: 5,
        column: null,
        message:
          "resources.payments-api.path: approvals is 3 but services/payments/ has only 2 owners (.github/CODEOWNERS line 1)",
        excerpt: null,
      },
    ]);
  });

  it("reports CODEOWNERS lines GitHub skips, and the resource paths they block", async () => {
    const codeowners = "* @acme/eng\n/services/payments/ @bad@ @alice\n/docs/ @acme/docs\n";
    const dir = checkout({ ".github/hallpass.yml": SPEC_POLICY, ".github/CODEOWNERS": codeowners });
    const { code, stderr } = await run(["policy", "check", "--repo", dir]);
    expect(code).toBe(1);
    const lines = stderr.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^\.github\/CODEOWNERS:2: invalid owner `@bad@`/);
    expect(lines[1]).toMatch(
      /^\.github\/hallpass\.yml:5: resources\.payments-api\.path: services\/payments\/ is blocked: .*\(\.github\/CODEOWNERS line 2\); nothing can be approved$/,
    );
    const { report } = await json(dir);
    expect(report.resources[0].approvers).toEqual([]);
    expect(report.resources[0].ownership).toEqual({
      status: "blocked",
      reason: expect.stringMatching(/\S/),
      lines: [2],
    });
    expect(lines[1]).toContain(report.resources[0].ownership.reason);
    expect(report.errors).toHaveLength(2);
  });

  it("reports a YAML syntax error once, at its line, with the line and a caret", async () => {
    const broken = SPEC_POLICY.replace("    default_ttl: 1h", "   default_ttl: 1h");
    const dir = checkout({ ".github/hallpass.yml": broken, CODEOWNERS });
    const { code, stdout, stderr } = await run(["policy", "check", "--repo", dir]);
    expect(code).toBe(1);
    expect(stdout).toBe("1 error\n");
    expect(stderr).toBe(
      ".github/hallpass.yml:9: YAML: All mapping items must start at the same column\n" +
        "       default_ttl: 1h\n" +
        "       ^\n",
    );
    const { report } = await json(dir);
    expect(report.errors).toEqual([
      {
        file: ".github/hallpass.yml",
        line: 9,
        column: 4,
        message: "YAML: All mapping items must start at the same column",
        excerpt: "   default_ttl: 1h\n   ^",
      },
    ]);
  });

  it("points at the unclosed bracket's line, not past the end of the file", async () => {
    const dir = checkout({
      ".github/hallpass.yml": SPEC_POLICY.replace("rate_limit: 20/s", "rate_limit: [20/s"),
      CODEOWNERS,
    });
    const { stderr } = await run(["policy", "check", "--repo", dir]);
    expect(stderr.split("\n").slice(0, 3)).toEqual([
      expect.stringMatching(/^\.github\/hallpass\.yml:23: YAML: Flow sequence/),
      "        rate_limit: [20/s",
      `    ${" ".repeat("    rate_limit: [20/".length)}^`,
    ]);
  });

  it("refuses a --repo that is not a directory, and a bad subcommand", async () => {
    expect((await run(["policy", "check", "--repo", "/nonexistent/hallpass"])).code).toBe(2);
    expect((await run(["policy", "lint"])).code).toBe(2);
    expect((await run(["policy", "check", "--nope"])).code).toBe(2);
  });
});

describe("hallpass policy check --config", () => {
  const operator = (text = OPERATOR_CONFIG): string => {
    const dir = checkout({ "hallpass.yml": text });
    return join(dir, "hallpass.yml");
  };
  const wide = SPEC_POLICY.replace(
    'refund: ["POST /v1/refunds", "GET /v1/charges/*"]',
    'refund: ["POST /v1/refunds", "DELETE /v1/**"]',
  ).replace("max_ttl: 4h", "max_ttl: 3d");

  it("passes a policy within the operator's ceilings, saying whose ids it was bound as", async () => {
    const dir = checkout({ ".github/hallpass.yml": SPEC_POLICY, CODEOWNERS });
    const config = operator();
    const { code, stdout, stderr } = await run([
      "policy",
      "check",
      "--repo",
      dir,
      "--config",
      config,
    ]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toContain(
      `operator config ${config}, as acme/payments (repository id 1001, owner id 2002): ` +
        "the ids the operator bound payments-api to",
    );
    expect(stdout).toContain(
      "  operator: bound to acme/payments; ceilings max_ttl 8h, scopes GET /v1/**, " +
        "POST /v1/refunds, POST /v1/refunds/*; grants up to 4h\n",
    );
    const { report } = await jsonOf(["--repo", dir, "--config", config]);
    expect(report.binding).toEqual({
      config,
      repository: { id: 1001, owner_id: 2002, name: "acme/payments" },
      source: "operator",
      resource: "payments-api",
    });
    expect(report.resources[0].operator).toEqual({
      repository: { id: 1001, owner_id: 2002, name: "acme/payments" },
      audience: "acme/payments/payments-api",
      max_ttl_s: 28_800,
      scopes: ["GET /v1/**", "POST /v1/refunds", "POST /v1/refunds/*"],
      bound: true,
      effective_max_ttl_s: 14_400,
    });
  });

  it("fails a scope and a max_ttl past the ceilings, at their lines (which pass without it)", async () => {
    const dir = checkout({ ".github/hallpass.yml": wide, CODEOWNERS });
    const alone = await run(["policy", "check", "--repo", dir]);
    expect(alone.code).toBe(0);
    const { code, stdout, stderr } = await run([
      ...["policy", "check", "--repo", dir, "--config", operator()],
    ]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/does not bind \(see errors\)\n[\s\S]*2 errors\n$/);
    expect(stderr).toBe(
      '.github/hallpass.yml:8: resources.payments-api.scopes.refund[1]: "DELETE /v1/**" is wider than the operator allows for payments-api: each pattern must lie within one of "GET /v1/**", "POST /v1/refunds", "POST /v1/refunds/*"\n' +
        ".github/hallpass.yml:10: resources.payments-api.max_ttl: max_ttl 3d is longer than the operator allows for payments-api (8h)\n",
    );
  });

  it("binds as the repository given by --repo-id and --owner-id, and says so", async () => {
    const dir = checkout({ ".github/hallpass.yml": SPEC_POLICY, CODEOWNERS });
    const config = operator();
    const as = (repoId: string, ownerId: string) =>
      run([
        ...["policy", "check", "--repo", dir, "--config", config],
        ...["--repo-id", repoId, "--owner-id", ownerId],
      ]);
    const right = await as("1001", "2002");
    expect(right.code).toBe(0);
    expect(right.stdout).toContain(
      "as repository id 1001, owner id 2002 (from --repo-id and --owner-id)",
    );
    const transferred = await as("1001", "9999");
    expect(transferred.code).toBe(1);
    expect(transferred.stderr).toMatch(
      /^\.github\/hallpass\.yml:4: resources\.payments-api: resource payments-api is not bound to this repository \(id 1001\): .*transferred/,
    );
    const { report } = await jsonOf([
      ...["--repo", dir, "--config", config, "--repo-id", "3003", "--owner-id", "2002"],
    ]);
    expect(report.binding).toMatchObject({ source: "given", resource: null });
    expect(report.resources[0].operator).toMatchObject({ bound: false, effective_max_ttl_s: null });
  });

  it("reports a resource the operator does not configure", async () => {
    const policy = `${SPEC_POLICY}  unknown-api:\n    path: services/payments/\n    scopes:\n      read: ["GET /x"]\n`;
    const dir = checkout({ ".github/hallpass.yml": policy, CODEOWNERS });
    const { code, stdout, stderr } = await run([
      ...["policy", "check", "--repo", dir, "--config", operator()],
    ]);
    expect(code).toBe(1);
    expect(stdout).toContain("  operator: not configured (see errors)");
    expect(stderr).toContain(
      ".github/hallpass.yml:24: resources.unknown-api: resource unknown-api is not configured on this hallpass server",
    );
  });

  it("reports the operator config's own errors by its file and line", async () => {
    const dir = checkout({ ".github/hallpass.yml": SPEC_POLICY, CODEOWNERS });
    const config = operator(OPERATOR_CONFIG.replace("max_ttl: 8h", "max_ttl: 8x"));
    const { code, stderr } = await run(["policy", "check", "--repo", dir, "--config", config]);
    expect(code).toBe(1);
    expect(stderr).toMatch(new RegExp(`^${config}:7: resources\\.payments-api\\.max_ttl: `));
  });

  it("refuses ids without --config, one id alone, and ids that are not ids", async () => {
    const dir = checkout({ ".github/hallpass.yml": SPEC_POLICY, CODEOWNERS });
    const config = operator();
    const base = ["policy", "check", "--repo", dir];
    expect((await run([...base, "--repo-id", "1", "--owner-id", "2"])).code).toBe(2);
    expect((await run([...base, "--config", config, "--repo-id", "1"])).code).toBe(2);
    const bad = await run([...base, "--config", config, "--repo-id", "0x1", "--owner-id", "2"]);
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining("--repo-id") });
    expect((await run([...base, "--config", join(dir, "missing.yml")])).code).toBe(2);
  });
});

async function jsonOf(args: string[]) {
  const result = await run(["policy", "check", ...args, "--json"]);
  return { code: result.code, report: JSON.parse(result.stdout) };
}
