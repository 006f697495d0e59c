import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendAudit } from "#src/audit/append.js";
import { runCli } from "#src/cli/run.js";
import type { Db } from "#src/store/db.js";
import { openPglite } from "#src/store/pglite.js";
import { backends, createTestDb, type TestDb } from "../support/db.js";
import { cleanEnv } from "../support/env.js";
import { REFUSED_PORT } from "../support/net.js";
import { captureOutput } from "../support/output.js";

async function cli(args: string[], env: NodeJS.ProcessEnv) {
  const stdout = captureOutput();
  const stderr = captureOutput();
  const code = await runCli(args, { stdout: stdout.stream, stderr: stderr.stream }, env);
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** A database the CLI can open through its own configuration, and a way to reach it from the test. */
interface Target {
  env: NodeJS.ProcessEnv;
  /** Runs `fn` with the database open (the embedded one cannot be open twice). */
  use<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

async function target(backend: "pglite" | "postgres"): Promise<Target> {
  if (backend === "postgres") {
    const db: TestDb = await createTestDb("postgres", { migrated: false });
    return {
      env: cleanEnv({
        DATABASE_URL: db.url ?? "",
        HALLPASS_MASTER_KEY: randomBytes(32).toString("hex"),
      }),
      use: (fn) => fn(db),
      close: () => db.close(),
    };
  }
  const dir = await mkdtemp(path.join(tmpdir(), "hallpass-cli-"));
  return {
    env: cleanEnv({ HALLPASS_DATA_DIR: dir }),
    async use(fn) {
      const db = await openPglite(path.join(dir, "pgdata"));
      try {
        return await fn(db);
      } finally {
        await db.close();
      }
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

describe.each(backends)("hallpass audit on %s", (backend) => {
  let t: Target;
  beforeAll(async () => {
    t = await target(backend);
  });
  afterAll(() => t.close());

  it("migrates, then says the database is up to date", async () => {
    const first = await cli(["migrate"], t.env);
    expect(first).toMatchObject({ code: 0, stderr: "" });
    expect(first.stdout).toMatch(/^applied 1_init/);
    expect((await cli(["migrate"], t.env)).stdout).toBe("database is up to date\n");
  });

  it("verifies an intact chain and exports it as JSON lines", async () => {
    await t.use(async (db) => {
      for (let i = 0; i < 5; i++)
        await appendAudit(db, { kind: "test.cli", actor: "system", data: { i } });
    });
    const verify = await cli(["audit", "verify"], t.env);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/^audit chain intact: 5 events, tip [0-9a-f]{64}\n$/);
    const exported = await cli(["audit", "export"], t.env);
    const lines = exported.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.seq, l.event.kind, l.event.data.i])).toEqual([
      [1, "test.cli", 0],
      [2, "test.cli", 1],
      [3, "test.cli", 2],
      [4, "test.cli", 3],
      [5, "test.cli", 4],
    ]);
  });

  it("verifies and exports with nothing configured but the database: no master key, App or URL", async () => {
    // Production would require all three of the server; the audit log is hashes and needs none.
    const env: NodeJS.ProcessEnv = { ...t.env, NODE_ENV: "production" };
    delete env.HALLPASS_MASTER_KEY;
    const verify = await cli(["audit", "verify"], env);
    expect(verify).toMatchObject({ code: 0, stderr: "" });
    expect(verify.stdout).toMatch(/^audit chain intact: 5 events/);
    const exported = await cli(["audit", "export"], env);
    expect(exported).toMatchObject({ code: 0, stderr: "" });
    expect(exported.stdout.trim().split("\n")).toHaveLength(5);
  });

  it("exits non-zero and names the row when the chain is broken", async () => {
    await t.use((db) =>
      db.exec(`ALTER TABLE audit_events DISABLE TRIGGER USER;
               DELETE FROM audit_events WHERE seq = 3;
               ALTER TABLE audit_events ENABLE TRIGGER USER;`),
    );
    const verify = await cli(["audit", "verify"], t.env);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/^audit chain BROKEN at row 3 \(deleted\): row 3 is missing/);
    const json = await cli(["audit", "verify", "--json"], t.env);
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: false,
      checked: 2,
      break: { seq: 3, kind: "deleted" },
    });
  });

  it("refuses a malformed --ticket", async () => {
    const result = await cli(["audit", "export", "--ticket", "not-a-ticket"], t.env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--ticket: expected owner\/repo#N/);
  });
});

describe("hallpass CLI", () => {
  it("prints one line per bad variable and exits 1", async () => {
    const result = await cli(["migrate"], cleanEnv({ PORT: "http" }));
    expect(result).toEqual({
      code: 1,
      stdout: "",
      stderr: 'hallpass: PORT: must be a port number (got "http")\n',
    });
  });

  it("says in one line that the database cannot be reached", async () => {
    const port = REFUSED_PORT;
    const result = await cli(
      ["audit", "verify"],
      cleanEnv({ DATABASE_URL: `postgresql://hallpass@127.0.0.1:${port}/none` }),
    );
    expect(result).toEqual({
      code: 1,
      stdout: "",
      stderr: `hallpass: the database failed: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    });
  });

  it("rejects unknown commands and options with usage", async () => {
    expect((await cli(["frobnicate"], cleanEnv())).code).toBe(2);
    const bad = await cli(["audit", "verify", "--bogus"], cleanEnv());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bogus/);
  });
});
