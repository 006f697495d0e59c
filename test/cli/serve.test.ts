import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { isHallpassError } from "#src/errors.js";
import { loadMigrations, migrate } from "#src/store/migrate.js";
import { openPglite } from "#src/store/pglite.js";
import { createTestDb, primaryBackend, TEST_DATABASE_URL } from "../support/db.js";
import { cleanEnv } from "../support/env.js";
import { GitHubSimulator } from "../support/github/simulator.js";
import { insertGrant } from "../support/grants.js";
import { freePort } from "../support/net.js";
import { startOidcIssuer } from "../support/oidc-issuer.js";
import { startTestServer } from "../support/server.js";

/**
 * `hallpass serve` as its own process; resolves with its exit code, or
 * "still running" after 50 s (a server that starts stays up: only a fatal
 * error ends it; the margin is for a loaded machine compiling the sources).
 */
async function serveUntilExit(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  const code = await Promise.race([
    exited,
    new Promise<string>((resolve) => setTimeout(() => resolve("still running"), 50_000)),
  ]);
  child.kill("SIGKILL");
  await exited;
  const logged = stdout
    .trim()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { level: number; msg: string; code?: string });
  return { code, stdout, stderr, errors: logged.filter((line) => line.level >= 50) };
}

describe("hallpass serve", () => {
  it("starts on the embedded database with no configuration and stops cleanly on SIGTERM", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "hallpass-serve-"));
    const port = await freePort();
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
      env: cleanEnv({ PORT: String(port), HALLPASS_DATA_DIR: dir }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    try {
      const url = `http://127.0.0.1:${port}`;
      await expect
        .poll(async () => (await fetch(`${url}/healthz`).catch(() => null))?.status, {
          timeout: 20_000,
          interval: 100,
        })
        .toBe(200);
      await expect
        .poll(async () => (await fetch(`${url}/readyz`)).status, { timeout: 30_000, interval: 200 })
        .toBe(200);
      // Without the GitHub App, workflow runs cannot exchange their ID tokens.
      const exchange = await fetch(`${url}/v1/exchange`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer a.b.c" },
        body: JSON.stringify({ resource: "payments-api" }),
      });
      expect(exchange.status).toBe(503);
      expect(await exchange.json()).toMatchObject({ error: "NOT_READY" });
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      const lines = output
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => l.msg)).toEqual(
        expect.arrayContaining(["ready", "shutting down", "stopped"]),
      );
      // No error or fatal line but the one telling the operator the exchange needs the App.
      expect(lines.filter((l) => l.level >= 50).map((l) => l.err?.code)).toEqual(["NOT_READY"]);
      // The data directory is released for the next start.
      expect(existsSync(path.join(dir, "pgdata.lock"))).toBe(false);
    } finally {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.runIf(TEST_DATABASE_URL)(
    "hands the exchange the operator's bindings and the App's installation clients",
    async () => {
      const db = await createTestDb("postgres");
      const [sim, issuer] = await Promise.all([
        GitHubSimulator.start({ appId: 7300 }),
        startOidcIssuer(),
      ]);
      sim.addOrg("acme", { members: ["alice"] });
      const installationId = sim.addInstallation("acme").id;
      const repo = sim.addRepo("acme/app");
      const pr = sim.openPullRequest(repo.id, {
        author: "alice",
        head: "change",
        files: { "x.txt": "x\n" },
      });
      const dir = await mkdtemp(path.join(tmpdir(), "hallpass-serve-"));
      const operatorFile = path.join(dir, "operator.yml");
      const ownerId = sim.user("acme").id;
      await writeFile(
        operatorFile,
        `resources:\n  payments-api:\n    repository: { id: ${repo.id}, owner_id: ${ownerId}, name: acme/app }\n    max_ttl: 8h\n    scopes: ["GET /v1/**"]\n`,
      );
      await insertGrant(db, {
        repoId: repo.id,
        repoOwnerId: ownerId,
        installationId,
        repoFullName: "acme/app",
        number: pr.number,
        resource: "payments-api",
        approvedCommit: pr.pull.head.sha,
      });
      const port = await freePort();
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
        env: cleanEnv({
          ...sim.appEnv("serve-secret"),
          PORT: String(port),
          HALLPASS_DATA_DIR: dir,
          DATABASE_URL: db.url ?? "",
          HALLPASS_MASTER_KEY: randomBytes(32).toString("base64"),
          HALLPASS_CONFIG: operatorFile,
          HALLPASS_OIDC_ISSUER: issuer.url,
          HALLPASS_OIDC_AUDIENCE: "https://hallpass.example",
          LOG_LEVEL: "warn",
        }),
        stdio: ["ignore", "ignore", "ignore"],
      });
      const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
      try {
        const url = `http://127.0.0.1:${port}`;
        await expect
          .poll(async () => (await fetch(`${url}/readyz`).catch(() => null))?.status, {
            timeout: 30_000,
            interval: 200,
          })
          .toBe(200);
        const idToken = await issuer.idToken("https://hallpass.example", {
          claims: {
            repository: "acme/app",
            repository_id: String(repo.id),
            repository_owner_id: String(ownerId),
            ref: `refs/pull/${pr.number}/merge`,
            sha: pr.pull.mergeCommitSha,
          },
        });
        const response = await fetch(`${url}/v1/exchange`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${idToken}` },
          body: JSON.stringify({ resource: "payments-api" }),
        });
        expect(response.status).toBe(200);
        // The merge commit was read through the App's installation.
        expect(
          sim.requests({ path: `/repositories/${repo.id}/commits/${pr.pull.mergeCommitSha}` }),
        ).toMatchObject([{ auth: "installation", installationId, status: 200 }]);
        child.kill("SIGTERM");
        expect(await exited).toBe(0);
      } finally {
        child.kill("SIGKILL");
        await Promise.all([sim.close(), issuer.close(), db.close()]);
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it("stops the start with a clear message when a migration fails, leaving the schema as it was", async () => {
    const db = await createTestDb(primaryBackend, { migrated: false });
    const migrations = [
      ...(await loadMigrations()),
      { version: 99, name: "broken", sql: "CREATE TABLE never (x int); SELECT 1/0", checksum: "x" },
    ].map((m, i) => ({ ...m, version: i + 1 }));
    const server = await startTestServer({ db, migrations, ready: false });
    try {
      const error = await server.started.catch((e: unknown) => e);
      expect(isHallpassError(error, "MIGRATION_FAILED")).toBe(true);
      expect((error as Error).message).toMatch(
        /migration \d{4}_broken failed: division by zero; no migration was applied/,
      );
      const { rows } = await db.query<{ t: string | null }>(
        "SELECT to_regclass('tickets')::text AS t",
      );
      expect(rows[0]?.t).toBeNull();
    } finally {
      await server.stop();
      await db.close();
    }
  });

  it("exits non-zero within seconds, in one line naming the cause, on a wrong master key", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "hallpass-serve-"));
    const run = async (masterKey: string) => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
        env: cleanEnv({
          PORT: String(await freePort()),
          HALLPASS_DATA_DIR: dir,
          HALLPASS_MASTER_KEY: masterKey,
        }),
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (chunk) => {
        output += chunk;
      });
      child.stderr.on("data", (chunk) => {
        output += chunk;
      });
      return {
        child,
        output: () => output,
        exited: new Promise<number | null>((r) => child.on("exit", r)),
      };
    };
    try {
      // The first start seals the signing key with one master key...
      const first = await run(randomBytes(32).toString("base64"));
      await expect
        .poll(() => first.output(), { timeout: 30_000, interval: 100 })
        .toMatch(/"msg":"ready"/);
      first.child.kill("SIGTERM");
      expect(await first.exited).toBe(0);
      // ...the second brings another one: it stops by itself, without a signal.
      const second = await run(randomBytes(32).toString("base64"));
      const code = await Promise.race([
        second.exited,
        new Promise((r) => setTimeout(() => r("still running"), 20_000)),
      ]);
      second.child.kill("SIGKILL");
      expect(code).toBe(1);
      const lines = second
        .output()
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"));
      const fatal = lines.map((l) => JSON.parse(l)).filter((l) => l.level === 60);
      expect(fatal).toEqual([
        expect.objectContaining({
          code: "MASTER_KEY_MISMATCH",
          msg: expect.stringMatching(/^HALLPASS_MASTER_KEY does not open the signing keys/),
        }),
      ]);
      expect(JSON.stringify(fatal)).not.toContain("stack");
      // No log line names its logger twice (child loggers say their component).
      expect(lines.filter((l) => l.split('"name":').length > 2)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it("exits non-zero within seconds, in one line naming the cause, when PORT is taken", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "hallpass-serve-"));
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const outcome = await serveUntilExit(
        cleanEnv({ PORT: String(port), HOST: "127.0.0.1", HALLPASS_DATA_DIR: dir }),
      );
      expect(outcome.code).toBe(1);
      expect(outcome.stderr).toBe(
        `hallpass: PORT: cannot listen on 127.0.0.1:${port}: another process is listening there\n`,
      );
      expect(outcome.errors).toEqual([]);
      expect(outcome.stdout).not.toMatch(/EADDRINUSE|\n\s+at /);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it("exits non-zero within seconds, in one line naming the cause, on a database migrated by a newer hallpass", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "hallpass-serve-"));
    const newer = [
      ...(await loadMigrations()),
      { name: "from_a_newer_hallpass", sql: "SELECT 1", checksum: "newer" },
    ].map((m, i) => ({ ...m, version: i + 1 }));
    const unknown = newer.length;
    let env: NodeJS.ProcessEnv;
    let close = async () => {};
    if (primaryBackend === "postgres") {
      const db = await createTestDb("postgres", { migrated: false });
      await migrate(db, newer);
      env = cleanEnv({
        DATABASE_URL: db.url ?? "",
        HALLPASS_MASTER_KEY: randomBytes(32).toString("base64"),
      });
      close = () => db.close();
    } else {
      const db = await openPglite(path.join(dir, "pgdata"));
      await migrate(db, newer);
      await db.close();
      env = cleanEnv({ HALLPASS_DATA_DIR: dir });
    }
    try {
      const outcome = await serveUntilExit({ ...env, PORT: String(await freePort()) });
      expect(outcome.code).toBe(1);
      expect(outcome.errors).toEqual([
        expect.objectContaining({
          level: 60,
          code: "MIGRATION_TAMPERED",
          msg: `the database has migration ${unknown} (from_a_newer_hallpass) that this hallpass does not know; it was migrated by a newer version`,
        }),
      ]);
      expect(`${outcome.stdout}${outcome.stderr}`).not.toMatch(/stack|\n\s+at /);
      expect(outcome.stderr).toBe("");
    } finally {
      await close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
