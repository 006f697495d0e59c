import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminSocketPath } from "#src/cli/admin-socket.js";
import { runCli } from "#src/cli/run.js";
import { migrate } from "#src/store/migrate.js";
import { openPglite } from "#src/store/pglite.js";
import { cleanEnv } from "../support/env.js";
import { type GrantFixture, insertGrant } from "../support/grants.js";
import { freePort } from "../support/net.js";
import { captureOutput } from "../support/output.js";

/** Runs a CLI command in this process, as an operator's shell would. */
async function cli(argv: string[], env: NodeJS.ProcessEnv) {
  const stdout = captureOutput();
  const stderr = captureOutput();
  const code = await runCli(argv, { stdout: stdout.stream, stderr: stderr.stream }, env, {
    dotEnv: null,
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

describe("operator commands while hallpass serve holds the embedded database", () => {
  let dir: string;
  let child: ReturnType<typeof spawn>;
  let env: NodeJS.ProcessEnv;
  let grant: GrantFixture;
  const masterKey = randomBytes(32).toString("base64");

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "hallpass-admin-"));
    // An active grant, left in the embedded database as the lifecycle would
    // leave it, for the operator to revoke while the server holds the database.
    const db = await openPglite(path.join(dir, "pgdata"));
    try {
      await migrate(db);
      grant = await insertGrant(db, { state: "active" });
    } finally {
      await db.close();
    }
    const port = await freePort();
    env = cleanEnv({ PORT: String(port), HALLPASS_DATA_DIR: dir, HALLPASS_MASTER_KEY: masterKey });
    child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
      env,
      stdio: ["ignore", "ignore", "ignore"],
    });
    const deadline = Date.now() + 40_000;
    while ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status !== 200) {
      if (Date.now() > deadline) throw new Error("hallpass serve did not become ready");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }, 60_000);
  afterAll(async () => {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    await rm(dir, { recursive: true, force: true });
  });

  it("are carried out by the server, on its database, over a socket only the operator can use", async () => {
    const socket = adminSocketPath(path.join(dir, "pgdata"));
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(socket)).mode & 0o777).toBe(0o700);

    const verify = await cli(["audit", "verify"], env);
    expect(verify).toMatchObject({ code: 0, stderr: "" });
    expect(verify.stdout).toMatch(/^audit chain intact: [1-9]\d* events/);

    const rotate = await cli(["keys", "rotate", "--now"], { ...env, HALLPASS_MASTER_KEY: "" });
    expect(rotate.code).toBe(0);
    expect(rotate.stdout).toMatch(/active/);

    const revoke = await cli(["revoke", "--grant", "00000000-0000-4000-8000-000000000000"], env);
    expect(revoke.code).toBe(1);
    expect(revoke.stderr).toMatch(/no grant 00000000-0000-4000-8000-000000000000/);

    expect((await cli(["migrate"], env)).stdout).toBe("database is up to date\n");
  });

  it("revoke a live grant, and the export shows it", async () => {
    const revoke = await cli(["revoke", "--grant", grant.grantId, "--reason", "incident 7"], env);
    expect(revoke).toMatchObject({ code: 0, stderr: "" });
    expect(revoke.stdout).toMatch(new RegExp(`^revoked grant ${grant.grantId} on `));

    const again = await cli(["revoke", "--grant", grant.grantId], env);
    expect(again.code).toBe(1);

    const exported = await cli(["audit", "export"], env);
    expect(exported).toMatchObject({ code: 0, stderr: "" });
    const events = exported.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type?: string; event?: { type?: string } });
    expect(JSON.stringify(events)).toContain(grant.grantId);
    expect(JSON.stringify(events)).toContain("incident 7");

    const verify = await cli(["audit", "verify"], env);
    expect(verify).toMatchObject({ code: 0, stderr: "" });
  });

  it("never make a new embedded database where there is none", async () => {
    const elsewhere = await mkdtemp(path.join(tmpdir(), "hallpass-empty-"));
    try {
      for (const command of [
        ["audit", "verify"],
        ["audit", "export"],
        ["revoke", "--grant", grant.grantId],
        ["keys", "rotate"],
      ]) {
        const run = await cli(command, { ...env, HALLPASS_DATA_DIR: elsewhere });
        expect(run.code, command.join(" ")).toBe(1);
        expect(run.stderr, command.join(" ")).toMatch(
          /there is no embedded database in .*: run this where hallpass serve runs/,
        );
      }
      expect(existsSync(path.join(elsewhere, "pgdata", "PG_VERSION"))).toBe(false);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});
