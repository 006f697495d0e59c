import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { isHallpassError } from "#src/errors.js";
import { loadMigrations } from "#src/store/migrate.js";
import { createTestDb, primaryBackend } from "../support/db.js";
import { cleanEnv } from "../support/env.js";
import { startTestServer } from "../support/server.js";

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
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
      expect(output).not.toMatch(/"level":(50|60)/); // no error or fatal line
      // The data directory is released for the next start.
      expect(existsSync(path.join(dir, "pgdata.lock"))).toBe(false);
    } finally {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });

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
});
