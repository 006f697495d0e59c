import { existsSync } from "node:fs";
import { chmod, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { Writable } from "node:stream";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "#src/cli/run.js";
import { primaryBackend } from "../support/db.js";
import { tempDirs } from "../support/dirs.js";
import { type ExchangeWorld, startExchangeWorld } from "../support/exchange.js";

const tempDir = tempDirs("hallpass-login-");

/** A CLI's output as it is written, so a test can act on what it says (the code to enter). */
function liveOutput() {
  let text = "";
  return {
    stream: new Writable({
      write(chunk, _encoding, done) {
        text += String(chunk);
        done();
      },
    }),
    text: () => text,
    /** The first match of `pattern` in what was written, once it is written. */
    async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpExecArray> {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(text);
        if (match) return match;
        if (Date.now() > until) throw new Error(`never written: ${pattern}; got ${text}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
  };
}

/** Runs `hallpass <args>` in this process with only `env` (no gh on its PATH). */
function hallpass(args: string[], env: Record<string, string>) {
  const stdout = liveOutput();
  const stderr = liveOutput();
  const done = runCli(
    args,
    { stdout: stdout.stream, stderr: stderr.stream },
    { PATH: path.dirname(process.execPath), ...env },
  );
  return { done, stdout, stderr };
}

describe("hallpass login", () => {
  let w: ExchangeWorld;
  let ticket: string;
  beforeAll(async () => {
    w = await startExchangeWorld(primaryBackend);
    ticket = `${w.repo.fullName}#${(await w.issueGrant("alice")).number}`;
  });
  afterAll(() => w.close());
  beforeEach(() => {
    w.sim.clearRequests();
    Object.assign(w.sim.oauth, {
      deviceInterval: 0.05,
      slowDownBy: 0.3,
      slowDownNext: 0,
      deviceFlowEnabled: true,
    });
  });

  const polls = () => w.sim.requests({ method: "POST", path: "/login/oauth/access_token" });

  /** Logs alice in through the device flow; resolves with the command's exit code. */
  async function logIn(env: Record<string, string>, login = "alice") {
    const run = hallpass(["login", "--url", w.h.url], env);
    const [, code] = await run.stderr.waitFor(/enter the code ([A-Z]{4}-[A-Z]{4})/);
    // The CLI polls while the person is on GitHub's page.
    await expect.poll(() => polls().length, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
    w.sim.oauth.authorize(code as string, login);
    return { code: await run.done, stderr: run.stderr.text() };
  }

  it("keeps the App's user token for the server, readable by the person alone; token uses it; logout forgets it", async () => {
    const home = tempDir();
    const env = { XDG_CONFIG_HOME: home };
    const outcome = await logIn(env);
    const file = path.join(home, "hallpass", "logins.json");
    expect(outcome).toEqual({
      code: 0,
      stderr: expect.stringContaining(
        `Logged in to ${w.h.url} as alice; the token is kept in ${file}.\n`,
      ),
    });
    expect(outcome.stderr).toMatch(
      new RegExp(`^Open ${w.sim.url}/login/device and enter the code [A-Z]{4}-[A-Z]{4}`),
    );
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    const kept = JSON.parse(await readFile(file, "utf8"));
    const token = kept.logins[w.h.url].token as string;
    // A token GitHub issued to the server's App, for alice; no refresh token kept.
    expect(w.sim.oauth.check(token)?.login).toBe("alice");
    expect(kept.logins[w.h.url]).toEqual({
      token,
      login: "alice",
      github_url: w.sim.url,
      expires_at: expect.any(String),
      created_at: expect.any(String),
    });
    expect(outcome.stderr).not.toContain(token);
    // Polls as GitHub asks: the device code, never faster than the interval.
    const [started] = w.sim.requests({ method: "POST", path: "/login/device/code" });
    expect(started?.body).toBe(`client_id=${w.sim.oauth.clientId}`);
    expect(polls().every((p) => p.auth === "none")).toBe(true);
    const times = polls().map((p) => p.at);
    for (let i = 1; i < times.length; i++) {
      expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(45);
    }

    const minted = hallpass(["token", ticket, "--url", w.h.url], env);
    expect(await minted.done).toBe(0);
    expect(minted.stderr.text()).toBe("");
    const jwks = createRemoteJWKSet(new URL(`${w.h.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(minted.stdout.text().trim(), jwks, { issuer: w.h.url });
    expect(payload.sub).toBe("github:alice");

    const out = hallpass(["logout", "--url", w.h.url], env);
    expect(await out.done).toBe(0);
    expect(out.stderr.text()).toBe(`Logged out of ${w.h.url} (from --url).\n`);
    expect(existsSync(file)).toBe(false);
    const again = hallpass(["token", ticket, "--url", w.h.url], env);
    expect(await again.done).toBe(1);
    expect(again.stderr.text()).toMatch(/^hallpass: no GitHub token: run hallpass login/);
    const twice = hallpass(["logout", "--url", w.h.url], env);
    expect(await twice.done).toBe(0);
    expect(twice.stderr.text()).toMatch(/^Not logged in to /);
  });

  it("keys logins by server URL, under ~/.config without XDG_CONFIG_HOME", async () => {
    const home = tempDir();
    expect((await logIn({ HOME: home, HALLPASS_URL: w.h.url })).code).toBe(0);
    expect(existsSync(path.join(home, ".config", "hallpass", "logins.json"))).toBe(true);
    // The same server under another name is another key: its login is not sent there.
    const other = w.h.url.replace("127.0.0.1", "localhost");
    const elsewhere = hallpass(["token", ticket, "--url", other], { HOME: home });
    expect(await elsewhere.done).toBe(1);
    expect(elsewhere.stderr.text()).toMatch(
      /no GitHub token: run hallpass login --url http:\/\/localhost/,
    );
    const here = hallpass(["token", ticket], { HOME: home, HALLPASS_URL: w.h.url });
    expect(await here.done).toBe(0);
  });

  it("waits longer when GitHub says slow_down", async () => {
    w.sim.oauth.slowDownNext = 1;
    expect((await logIn({ XDG_CONFIG_HOME: tempDir() })).code).toBe(0);
    const times = polls().map((p) => p.at);
    // The first poll was answered slow_down: the interval became 0.05 + 0.3 s.
    expect((times[1] as number) - (times[0] as number)).toBeGreaterThanOrEqual(340);
  });

  it("stops when the person cancels, or the code expires, keeping nothing", async () => {
    const home = tempDir();
    const denied = hallpass(["login", "--url", w.h.url], { XDG_CONFIG_HOME: home });
    const [, code] = await denied.stderr.waitFor(/enter the code (\S+) /);
    w.sim.oauth.deny(code as string);
    expect(await denied.done).toBe(1);
    expect(denied.stderr.text()).toMatch(
      /hallpass: the login was cancelled on GitHub; nothing was kept\n$/,
    );

    const late = hallpass(["login", "--url", w.h.url], { XDG_CONFIG_HOME: home });
    const [, lateCode] = await late.stderr.waitFor(/enter the code (\S+) /);
    w.sim.oauth.device(lateCode as string).expiresAt = new Date(0);
    expect(await late.done).toBe(1);
    expect(late.stderr.text()).toMatch(
      /hallpass: the code expired before it was entered: run hallpass login again\n$/,
    );
    expect(existsSync(path.join(home, "hallpass", "logins.json"))).toBe(false);
  });

  it("says what the App's owner must do when its device flow is off", async () => {
    w.sim.oauth.deviceFlowEnabled = false;
    const run = hallpass(["login", "--url", w.h.url], { XDG_CONFIG_HOME: tempDir() });
    expect(await run.done).toBe(1);
    expect(run.stderr.text()).toMatch(/turns on "Enable Device Flow" in the App's settings\n$/);
  });

  it("refuses a login file others may read", async () => {
    const home = tempDir();
    expect((await logIn({ XDG_CONFIG_HOME: home })).code).toBe(0);
    const file = path.join(home, "hallpass", "logins.json");
    await chmod(file, 0o644);
    const run = hallpass(["token", ticket, "--url", w.h.url], { XDG_CONFIG_HOME: home });
    expect(await run.done).toBe(1);
    expect(run.stderr.text()).toMatch(/others may read it \(mode 644\): chmod 600 it/);
    expect(run.stdout.text()).toBe("");
  });

  it("refuses a server over plain http, and says where each URL came from", async () => {
    const env = { XDG_CONFIG_HOME: tempDir() };
    const flag = hallpass(["login", "--url", "http://hallpass.example.com"], env);
    expect(await flag.done).toBe(2);
    expect(flag.stderr.text()).toBe(
      "hallpass: refusing http://hallpass.example.com: the server URL (from --url) must be https://, or your GitHub token would cross the network unencrypted (http:// only for localhost)\n",
    );
    const fromEnv = hallpass(["login"], { ...env, HALLPASS_URL: "http://10.0.0.7:3000" });
    expect(await fromEnv.done).toBe(2);
    expect(fromEnv.stderr.text()).toMatch(
      /refusing http:\/\/10\.0\.0\.7:3000: the server URL \(from HALLPASS_URL\)/,
    );
    // GitHub's URL, from the server or the environment, is held to the same rule.
    const github = hallpass(["login", "--url", w.h.url], {
      ...env,
      HALLPASS_GITHUB_URL: "http://github.example.com",
    });
    expect(await github.done).toBe(1);
    expect(github.stderr.text()).toMatch(
      /refusing http:\/\/github\.example\.com: HALLPASS_GITHUB_URL must be https:\/\//,
    );
    expect(w.sim.requests({ path: "/login/device/code" })).toEqual([]);
  });
});

describe("hallpass login against a server without the App's client", () => {
  it("says the server offers no login, and what its operator sets", async () => {
    const w = await startExchangeWorld(primaryBackend, {
      env: { GITHUB_CLIENT_ID: "", GITHUB_CLIENT_SECRET: "" },
    });
    try {
      const run = hallpass(["login", "--url", w.h.url], { XDG_CONFIG_HOME: tempDir() });
      expect(await run.done).toBe(1);
      expect(run.stderr.text()).toBe(
        `hallpass: the hallpass server at ${w.h.url} (from --url) offers no login (HTTP 404: this hallpass server has no GitHub App client configured for hallpass login: its operator sets GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET)\n`,
      );
      expect(w.sim.requests()).toEqual([]);
    } finally {
      await w.close();
    }
  });
});
