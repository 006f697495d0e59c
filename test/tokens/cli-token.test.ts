import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { primaryBackend } from "../support/db.js";
import { cleanEnv } from "../support/env.js";
import {
  type ExchangeWorld,
  OTHER_RESOURCE,
  RESOURCE,
  startExchangeWorld,
} from "../support/exchange.js";
import { endGrant } from "../support/grants.js";
import { freePort } from "../support/net.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `hallpass token ...` as a person runs it: its own process, its environment only. */
function hallpass(
  args: readonly string[],
  env: Record<string, string>,
  options: { onStdout?: (text: string, kill: (signal: NodeJS.Signals) => void) => void } = {},
): Promise<Outcome> {
  const base = cleanEnv();
  delete base.GH_TOKEN;
  delete base.GITHUB_TOKEN;
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "token", ...args], {
    cwd: ROOT,
    // No login of the person running the tests: a directory that does not exist.
    env: {
      ...base,
      XDG_CONFIG_HOME: path.join(tmpdir(), `hallpass-no-login-${process.pid}`),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    options.onStdout?.(stdout, (signal) => child.kill(signal));
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("hallpass token", () => {
  let w: ExchangeWorld;
  let ticket: string;
  let aliceToken: string;
  beforeAll(async () => {
    w = await startExchangeWorld(primaryBackend);
    const issue = await w.issueGrant("alice");
    ticket = `${w.repo.fullName}#${issue.number}`;
    aliceToken = w.sim.userToken("alice");
  });
  afterAll(() => w.close());

  const asAlice = () => ({ GH_TOKEN: aliceToken, HALLPASS_URL: w.h.url });
  const noSecret = (outcome: Outcome, secret: string) => {
    expect(outcome.stdout).not.toContain(secret);
    expect(outcome.stderr).not.toContain(secret);
  };

  it("prints the token, and nothing else, on stdout", async () => {
    const outcome = await hallpass([ticket, "--scope", "read", "--scope", "refund"], asAlice());
    expect(outcome.stderr).toBe("");
    expect(outcome.code).toBe(0);
    expect(outcome.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const jwks = createRemoteJWKSet(new URL(`${w.h.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(outcome.stdout.trim(), jwks, {
      issuer: w.h.url,
      audience: `${w.repo.fullName}/${RESOURCE}`,
    });
    expect(payload).toMatchObject({ sub: "github:alice", scope: "read refund" });
    noSecret(outcome, aliceToken);
  });

  it("runs a command with the token in its environment and passes its exit code on", async () => {
    const check = await hallpass(
      [
        ticket,
        "--url",
        w.h.url,
        "--",
        process.execPath,
        "-e",
        "const e = process.env; process.stdout.write(e.HALLPASS_TOKEN.split('.').length === 3 && !Number.isNaN(Date.parse(e.HALLPASS_TOKEN_EXPIRES_AT)) ? 'ok' : 'no')",
      ],
      { GH_TOKEN: aliceToken },
    );
    expect(check).toMatchObject({ code: 0, stdout: "ok", stderr: "" });
    const failing = await hallpass(
      [ticket, "--", process.execPath, "-e", "process.exit(7)"],
      asAlice(),
    );
    expect(failing.code).toBe(7);
  });

  it("passes a signal on to the command", async () => {
    let sent = false;
    const outcome = await hallpass(
      [
        ticket,
        "--",
        process.execPath,
        "-e",
        "process.stdout.write('ready'); setInterval(() => {}, 1000)",
      ],
      asAlice(),
      {
        onStdout: (text, kill) => {
          if (text.includes("ready") && !sent) {
            sent = true;
            kill("SIGTERM");
          }
        },
      },
    );
    // The command died of SIGTERM: 128 + 15, as a shell reports it.
    expect(outcome.code).toBe(143);
  });

  it("says what the ticket needs when the person has no grant there", async () => {
    const outcome = await hallpass([ticket], {
      GH_TOKEN: w.sim.userToken("bob"),
      HALLPASS_URL: w.h.url,
    });
    expect(outcome.code).toBe(1);
    expect(outcome.stdout).toBe("");
    expect(outcome.stderr).toBe(
      `hallpass: bob has no grant on ${ticket}: open a request there (the hallpass label and its fields) and have it approved\n`,
    );
  });

  it("says when the grant is over, or for another resource", async () => {
    const revoked = await w.issueGrant("alice");
    await endGrant(w.h.db, revoked.grantId, "revoked");
    const over = await hallpass([`${w.repo.fullName}#${revoked.number}`], asAlice());
    expect(over.code).toBe(1);
    expect(over.stderr).toMatch(
      /^hallpass: the grant on .*#\d+ has been revoked: request access again\n$/,
    );
    const other = await hallpass([ticket, "--resource", OTHER_RESOURCE], asAlice());
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/is for resource payments-api, not ledger-api\n$/);
  });

  it("says when GitHub refuses the token, never printing it", async () => {
    const bad = "gho_thisisnotatokengithubknows";
    const outcome = await hallpass([ticket], { GH_TOKEN: bad, HALLPASS_URL: w.h.url });
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toMatch(
      /GitHub does not know this token .*run hallpass login \(the token came from GH_TOKEN\)\n$/,
    );
    noSecret(outcome, bad);
  });

  it("says when there is no GitHub token, server or usable ticket", async () => {
    // No GH_TOKEN, no GITHUB_TOKEN, no gh on the PATH.
    const none = await hallpass([ticket], {
      HALLPASS_URL: w.h.url,
      PATH: path.dirname(process.execPath),
    });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no GitHub token: run hallpass login --url .*, or set GH_TOKEN/);
    const noServer = await hallpass([ticket], { GH_TOKEN: aliceToken });
    expect(noServer).toMatchObject({ code: 2, stdout: "" });
    expect(noServer.stderr).toMatch(/no server: pass --url or set HALLPASS_URL/);
    const badTicket = await hallpass(["acme/app"], asAlice());
    expect(badTicket.code).toBe(2);
  });

  it("says when the server cannot be reached", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const outcome = await hallpass([ticket, "--url", url], { GH_TOKEN: aliceToken });
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toBe(
      `hallpass: cannot reach the hallpass server at ${url} (from --url): ECONNREFUSED\n`,
    );
    noSecret(outcome, aliceToken);
  });
});
