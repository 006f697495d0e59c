/**
 * `hallpass config check`: the operator config checked as the server checks
 * it at start (schema, then every secret reference resolved), without
 * starting anything, and never showing a secret's value.
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "#src/cli/run.js";
import { tempDirs } from "../support/dirs.js";
import { cleanEnv } from "../support/env.js";
import { captureOutput } from "../support/output.js";

const tempDir = tempDirs("hallpass-config-check-");

const TOKEN = "upstream-credential-do-not-print";
const INTROSPECTION = "introspection-secret-do-not-print";

async function cli(args: string[], env: Record<string, string> = {}, dotEnv: string | null = null) {
  const stdout = captureOutput();
  const stderr = captureOutput();
  const code = await runCli(args, { stdout: stdout.stream, stderr: stderr.stream }, cleanEnv(env), {
    dotEnv,
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** A config whose secrets are a variable and a file of its own directory. */
function setUp(edit: (text: string) => string = (t) => t) {
  const dir = tempDir();
  const secret = join(dir, "introspection");
  writeFileSync(secret, `${INTROSPECTION}\n`);
  const file = join(dir, "hallpass.yml");
  writeFileSync(
    file,
    edit(`resources:
  payments-api:
    repository: { id: 1001, owner_id: 2002, name: acme/payments }
    max_ttl: 8h
    scopes: ["GET /v1/**", "POST /v1/refunds"]
    upstream: https://payments.internal.example
    credential:
      header: Authorization
      value: env:PAYMENTS_API_TOKEN
      prefix: "Bearer "
    introspection_secret: file:${secret}
  ledger-api:
    repository: { id: 1001, owner_id: 2002, name: acme/payments }
    max_ttl: 1h
    scopes: ["GET /ledger/**"]
`),
  );
  return { dir, file, secret };
}

const serverEnv = { PAYMENTS_API_TOKEN: TOKEN, PROXY_PORT: "8080" };

describe("hallpass config check", () => {
  it("passes a sound config, showing bindings and references but no secret", async () => {
    const { file, secret } = setUp();
    const { code, stdout, stderr } = await cli(["config", "check", file], serverEnv);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toContain(
      "payments-api  (bound to acme/payments: repository id 1001, owner id 2002)\n" +
        "  audience: acme/payments/payments-api\n" +
        "  ceilings: max_ttl 8h; scopes GET /v1/**, POST /v1/refunds\n" +
        "  proxy: upstream https://payments.internal.example/; timeouts connect 5s, headers 30s, body 30s; request body at most 10mb\n" +
        '  credential: authorization from env:PAYMENTS_API_TOKEN (prefix "Bearer ")\n' +
        `  introspection secret: file:${secret}\n`,
    );
    expect(stdout).toContain("ledger-api  (bound to acme/payments");
    expect(stdout).toContain("  proxy: none (the API verifies tokens itself)");
    expect(stdout).toMatch(/config OK\n$/);
    expect(stdout).not.toContain(TOKEN);
    expect(stdout).not.toContain(INTROSPECTION);
  });

  it("--json carries the same, references only", async () => {
    const { file, secret } = setUp();
    const { code, stdout } = await cli(["config", "check", file, "--json"], serverEnv);
    expect(code).toBe(0);
    expect(stdout).not.toContain(TOKEN);
    expect(stdout).not.toContain(INTROSPECTION);
    const report = JSON.parse(stdout);
    expect(report).toMatchObject({
      file,
      source: "argument",
      accept_other_github_tokens: false,
      errors: [],
      warnings: [],
    });
    expect(report.resources[0]).toEqual({
      name: "payments-api",
      repository: { id: 1001, owner_id: 2002, name: "acme/payments" },
      audience: "acme/payments/payments-api",
      max_ttl_s: 28_800,
      scopes: ["GET /v1/**", "POST /v1/refunds"],
      upstream: "https://payments.internal.example/",
      proxy: {
        upstream_ca: null,
        timeouts_ms: { connect: 5_000, headers: 30_000, body: 30_000 },
        max_request_body_bytes: 10_485_760,
        strip_cookies: [],
      },
      credential: { header: "authorization", value: "env:PAYMENTS_API_TOKEN", prefix: "Bearer " },
      introspection_secret: `file:${secret}`,
    });
    expect(report.resources[1]).toMatchObject({ name: "ledger-api", upstream: null, proxy: null });
  });

  it("fails on references that do not resolve here, at their lines", async () => {
    const { file, secret } = setUp();
    rmSync(secret);
    const { code, stdout, stderr } = await cli(["config", "check", file], { PROXY_PORT: "8080" });
    expect(code).toBe(1);
    expect(stdout).toMatch(/2 errors\n$/);
    expect(stderr).toBe(
      `${file}:9: resources.payments-api.credential.value: environment variable PAYMENTS_API_TOKEN is not set\n` +
        `${file}:11: resources.payments-api.introspection_secret: file ${secret} cannot be read (ENOENT)\n`,
    );
  });

  it("fails on a short introspection secret without showing it", async () => {
    const { file, secret } = setUp();
    writeFileSync(secret, "short");
    const { code, stderr } = await cli(["config", "check", file], serverEnv);
    expect(code).toBe(1);
    expect(stderr).toContain("is shorter than 16 characters");
    expect(stderr).not.toContain("short\n");
  });

  it("reports schema errors by key and line, as the server would at start", async () => {
    const { file } = setUp((t) =>
      t.replace("https://payments.internal.example", "http://payments.internal.example"),
    );
    const { code, stderr } = await cli(["config", "check", file], serverEnv);
    expect(code).toBe(1);
    expect(stderr).toBe(
      `${file}:6: resources.payments-api.upstream: must be an https:// URL (http:// only for localhost)\n`,
    );
  });

  it("reports a YAML syntax error once, with the line (values masked) and a caret", async () => {
    const { file } = setUp((t) => t.replace("    max_ttl: 8h", "   max_ttl: 8h"));
    const human = await cli(["config", "check", file], serverEnv);
    expect(human.code).toBe(1);
    expect(human.stderr).toBe(
      `${file}:4: YAML: All mapping items must start at the same column\n       max_ttl: **\n       ^\n`,
    );
    const json = await cli(["config", "check", file, "--json"], serverEnv);
    expect(json.stderr).toBe("");
    expect(JSON.parse(json.stdout).errors).toEqual([
      {
        file,
        line: 4,
        column: 4,
        path: "",
        message: "YAML: All mapping items must start at the same column",
        excerpt: "   max_ttl: **\n   ^",
      },
    ]);
  });

  it("never echoes a secret pasted into a line that does not parse", async () => {
    const { file } = setUp((t) =>
      t.replace("value: env:PAYMENTS_API_TOKEN", `value: ${TOKEN}: oops`),
    );
    const { code, stdout, stderr } = await cli(["config", "check", file], serverEnv);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^.*:9: YAML: .*\n {10}value: \*+ \*+\n {17}\^\n$/);
    expect(stdout + stderr).not.toContain(TOKEN);
    expect((await cli(["config", "check", file, "--json"], serverEnv)).stdout).not.toContain(TOKEN);
  });

  it("warns when PROXY_PORT of this environment and the upstreams disagree", async () => {
    const { file } = setUp();
    const { code, stdout } = await cli(["config", "check", file], { PAYMENTS_API_TOKEN: TOKEN });
    expect(code).toBe(0);
    expect(stdout).toContain(
      "warning: in this environment, the server would not start: PROXY_PORT: not set, but payments-api has an upstream",
    );
  });

  it("checks HALLPASS_CONFIG by default, from the environment or .env as the server does", async () => {
    const { file, dir } = setUp();
    const fromEnv = await cli(["config", "check"], { ...serverEnv, HALLPASS_CONFIG: file });
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.stdout.split("\n")[0]).toBe(`${file} (from HALLPASS_CONFIG)`);
    const dotEnv = join(dir, ".env");
    writeFileSync(dotEnv, `HALLPASS_CONFIG=${file}\nPAYMENTS_API_TOKEN=${TOKEN}\n`);
    const fromDotEnv = await cli(["config", "check", "--json"], { PROXY_PORT: "8080" }, dotEnv);
    expect(JSON.parse(fromDotEnv.stdout)).toMatchObject({ file, source: "HALLPASS_CONFIG" });
    expect(fromDotEnv.code).toBe(0);
  });

  it("fails on a file that cannot be read, and refuses usage errors", async () => {
    const missing = join(tempDir(), "missing.yml");
    const gone = await cli(["config", "check", missing]);
    expect(gone).toMatchObject({ code: 1, stderr: `${missing}: cannot read the file (ENOENT)\n` });
    expect(await cli(["config", "check"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("set HALLPASS_CONFIG"),
    });
    expect((await cli(["config", "check", "a.yml", "b.yml"])).code).toBe(2);
    expect((await cli(["config", "lint"])).code).toBe(2);
    expect(await cli(["config", "check", missing, "--strict"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("unknown flag --strict"),
    });
  });
});
