import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { createTestDb, TEST_DATABASE_URL } from "../support/db.js";
import { cleanEnv } from "../support/env.js";
import { GitHubSimulator } from "../support/github/simulator.js";
import { issuesEvent } from "../support/github/webhooks.js";
import { freePort } from "../support/net.js";
import { operatorYaml, requestBody, seedAcme } from "../tickets/fixtures.js";

const SECRET = "crash-secret";

describe.runIf(TEST_DATABASE_URL)("a server killed between a state change and its comment", () => {
  it("posts the comment once after the restart, though GitHub made it before the kill was noticed", async () => {
    const db = await createTestDb("postgres");
    const sim = await GitHubSimulator.start({ appId: 7400 + Math.floor(Math.random() * 500) });
    const ids = seedAcme(sim);
    const dir = await mkdtemp(path.join(tmpdir(), "hallpass-crash-"));
    const operatorFile = path.join(dir, "operator.yml");
    await writeFile(operatorFile, operatorYaml(ids));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = cleanEnv({
      ...sim.appEnv(SECRET),
      PORT: String(port),
      HALLPASS_DATA_DIR: dir,
      DATABASE_URL: db.url ?? "",
      HALLPASS_MASTER_KEY: randomBytes(32).toString("base64"),
      HALLPASS_CONFIG: operatorFile,
      LOG_LEVEL: "warn",
    });
    const start = async (): Promise<{ child: ChildProcess; exited: Promise<unknown> }> => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
        env,
        stdio: ["ignore", "ignore", "ignore"],
      });
      const exited = new Promise((resolve) => child.once("exit", resolve));
      const deadline = Date.now() + 40_000;
      while ((await fetch(`${url}/readyz`).catch(() => null))?.status !== 200) {
        if (Date.now() > deadline) throw new Error("hallpass serve did not become ready");
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return { child, exited };
    };
    sim.webhookTarget = { url, secret: SECRET };
    let server = await start();
    try {
      // GitHub takes the comment, but the answer never reaches hallpass: it is killed first.
      const hold = sim.holdNext({ method: "POST", path: /\/issues\/\d+\/comments$/ });
      const issue = sim.openIssue("acme/payments", {
        author: "alice",
        body: requestBody(),
        labels: ["hallpass"],
      });
      expect((await sim.deliver(issuesEvent(sim, "opened", issue))).response?.status).toBe(202);
      await hold.reached;
      server.child.kill("SIGKILL");
      await server.exited;
      hold.release();
      await expect
        .poll(() => sim.commentsOn("acme/payments", issue.number).length, { timeout: 5_000 })
        .toBe(1);
      // As if the dead replica's lease on the side effect had run out (it lasts two minutes).
      await db.query("UPDATE outbox SET locked_until = now() WHERE state = 'pending'");

      server = await start();
      await expect
        .poll(
          async () =>
            (
              await db.query<{ state: string; attempts: number }>(
                "SELECT state, attempts FROM outbox WHERE kind = 'comment'",
              )
            ).rows,
          { timeout: 20_000, interval: 200 },
        )
        .toEqual([{ state: "done", attempts: 2 }]);
      // The earlier attempt's comment was found and recorded: none posted twice.
      const comments = sim.commentsOn("acme/payments", issue.number);
      expect(comments).toHaveLength(1);
      const { rows } = await db.query<{ comment_id: string }>(
        "SELECT comment_id::text FROM ticket_comments",
      );
      expect(rows.map((r) => r.comment_id)).toEqual([String(comments[0]?.id)]);
    } finally {
      server.child.kill("SIGKILL");
      await Promise.all([sim.close(), db.close()]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
