import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "#src/cli/run.js";
import { SPEC_POLICY } from "./fixtures/policies.js";

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
      resources: [
        {
          name: "payments-api",
          path: "services/payments/",
          approvers: ["@acme/payments-owners", "@alice"],
          approvals: 1,
          scopes: { read: ["GET /v1/**"], refund: ["POST /v1/refunds", "GET /v1/charges/*"] },
          default_ttl_s: 3_600,
          max_ttl_s: 14_400,
        },
      ],
      errors: [],
    });
    expect(code).toBe(0);
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
        message: 'resources.payments-api.max_tll: unknown key "max_tll" (did you mean max_ttl?)',
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
        message:
          "resources.ledger-api.path: services/ledger/ has no code owners: docs/CODEOWNERS line 4 names none; nobody can approve",
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
      resources: [],
      errors: [
        {
          file: ".github/hallpass.yml",
          line: null,
          message:
            "no policy file; the server would use the organization's (.github:.github/hallpass.yml), which policy check cannot read offline",
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
        message:
          "resources.payments-api.path: approvals is 3 but services/payments/ has only 2 owners (.github/CODEOWNERS line 1)",
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
    expect(report.errors).toHaveLength(2);
  });

  it("refuses a --repo that is not a directory, and a bad subcommand", async () => {
    expect((await run(["policy", "check", "--repo", "/nonexistent/hallpass"])).code).toBe(2);
    expect((await run(["policy", "lint"])).code).toBe(2);
    expect((await run(["policy", "check", "--nope"])).code).toBe(2);
  });
});
