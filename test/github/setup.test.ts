import { spawn } from "node:child_process";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseEnv } from "node:util";
import { sign } from "@octokit/webhooks-methods";
import { WebSocket } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadConfig } from "#src/config.js";
import { writeEnvFile } from "#src/github/setup.js";
import { Runtime } from "#src/runtime.js";
import { buildServer } from "#src/server.js";
import { createTestDb, primaryBackend, type TestDb } from "../support/db.js";
import { cleanEnv } from "../support/env.js";
import { captureLogger } from "../support/log.js";

const PUBLIC_URL = "https://hallpass.acme.test";
const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
  type: "pkcs1",
  format: "pem",
}) as string;
const appYml = parseYaml(readFileSync("app.yml", "utf8")) as Record<string, unknown>;
const staticDir = "node_modules/probot/static";

let db: TestDb;
let dir: string;
let envFile: string;
beforeAll(async () => {
  db = await createTestDb(primaryBackend);
});
afterAll(() => db.close());
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "hallpass-setup-"));
  envFile = path.join(dir, ".env");
  return () => rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
});

/** The real server on an ephemeral port, writing the setup flow's `.env` to `envFile`. */
async function startServer(env: Record<string, string> = {}) {
  const config = loadConfig(cleanEnv({ HALLPASS_URL: PUBLIC_URL, GH_ORG: "", ...env }));
  const capture = captureLogger("info");
  const runtime = new Runtime({
    database: config.database,
    log: capture.log,
    open: async () => ({ ...db, close: async () => {} }),
  });
  const server = await buildServer({ config, log: capture.log, runtime, envFile });
  await server.listen({ host: "127.0.0.1", port: 0 });
  await runtime.start();
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    lines: capture.lines,
    async stop() {
      await server.close();
      await runtime.stop();
    },
  };
}
type Started = Awaited<ReturnType<typeof startServer>>;

async function withServer(env: Record<string, string>, fn: (server: Started) => Promise<void>) {
  const server = await startServer(env);
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

/** A GET with the headers a browser on another host (or a proxy) would send. */
function get(url: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>(
    (resolve, reject) => {
      http
        .get(url, { headers }, (response) => {
          let body = "";
          response.setEncoding("utf8");
          response.on("data", (chunk) => {
            body += chunk;
          });
          response.on("end", () =>
            resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
          );
        })
        .on("error", reject);
    },
  );
}

/** The form of the setup page: where it posts, and the manifest it posts. */
function setupForm(html: string): { action: string; manifest: Record<string, unknown> } {
  const action = /<form action="([^"]*)" method="post"/.exec(html)?.[1];
  const value = /name="manifest" id="manifest" value='([^']*)'/.exec(html)?.[1];
  if (action === undefined || value === undefined) throw new Error("no manifest form");
  return { action: unescapeHtml(action), manifest: JSON.parse(unescapeHtml(value)) };
}

function unescapeHtml(text: string): string {
  const entities: Record<string, string> = {
    "&lt;": "<",
    "&gt;": ">",
    "&quot;": '"',
    "&#39;": "'",
    "&amp;": "&",
  };
  return text.replace(/&(?:lt|gt|quot|#39|amp);/g, (e) => entities[e] ?? e);
}

/** Every absolute URL in the manifest, by where it is. */
function urlsOf(value: unknown, at = ""): Record<string, string> {
  if (typeof value === "string") return /^https?:/.test(value) ? { [at]: value } : {};
  if (value === null || typeof value !== "object") return {};
  return Object.assign(
    {},
    ...Object.entries(value).map(([key, item]) => urlsOf(item, at ? `${at}.${key}` : key)),
  );
}

/** A local server that answers like smee.io: an event stream per channel. */
async function startSmeeChannel() {
  const streams = new Set<http.ServerResponse>();
  let connections = 0;
  const server = http.createServer((request, response) => {
    if (request.method !== "GET" || request.url !== "/channel") {
      response.writeHead(404).end();
      return;
    }
    connections += 1;
    response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    response.write("event: ready\ndata: {}\n\n");
    streams.add(response);
    request.on("close", () => streams.delete(response));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/channel`,
    connections: () => connections,
    open: () => streams.size,
    /** What smee.io sends for one delivery: its headers, with the body as JSON. */
    send(delivery: Record<string, unknown>) {
      for (const stream of streams) stream.write(`data: ${JSON.stringify(delivery)}\n\n`);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const stream of streams) stream.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("App registration (setup mode)", () => {
  it("posts a manifest whose every URL is under HALLPASS_URL, whatever the Host header says", async () => {
    await withServer({}, async (server) => {
      const root = await get(`${server.url}/`);
      expect(root.status).toBe(302);
      expect(root.headers.location).toBe("/probot");

      const page = await get(`${server.url}/probot`, {
        host: "localhost:3000",
        "x-forwarded-host": "attacker.example",
        "x-forwarded-proto": "http",
      });
      expect(page.status).toBe(200);
      expect(page.headers["content-type"]).toMatch(/^text\/html/);
      const { action, manifest } = setupForm(page.body);
      expect(action).toBe("https://github.com/settings/apps/new");
      expect(manifest).toMatchObject({
        name: "hallpass",
        public: false,
        default_events: appYml.default_events,
        default_permissions: appYml.default_permissions,
        hook_attributes: { url: `${PUBLIC_URL}/api/github/webhooks`, active: true },
        redirect_url: `${PUBLIC_URL}/probot/setup`,
        callback_urls: [`${PUBLIC_URL}/probot/success`],
        setup_url: `${PUBLIC_URL}/probot/success`,
      });
      // `url` is the App's homepage, from app.yml; every other URL is this server's.
      const { url: homepage, ...urls } = urlsOf(manifest);
      expect(homepage).toBe(appYml.url);
      expect(Object.keys(urls).sort()).toEqual([
        "callback_urls.0",
        "hook_attributes.url",
        "redirect_url",
        "setup_url",
      ]);
      for (const url of Object.values(urls)) expect(url.startsWith(`${PUBLIC_URL}/`)).toBe(true);
      expect(page.body).not.toMatch(/localhost:3000|attacker\.example/);
    });
  });

  it("registers the App under GH_ORG, and points its webhooks at WEBHOOK_PROXY_URL", async () => {
    const channel = await startSmeeChannel();
    try {
      await withServer({ GH_ORG: "acme", WEBHOOK_PROXY_URL: channel.url }, async (server) => {
        const { action, manifest } = setupForm((await get(`${server.url}/probot`)).body);
        expect(action).toBe("https://github.com/organizations/acme/settings/apps/new");
        expect(manifest).toMatchObject({
          hook_attributes: { url: channel.url },
          redirect_url: `${PUBLIC_URL}/probot/setup`,
          setup_url: `${PUBLIC_URL}/probot/success`,
        });
        const imported = await get(`${server.url}/probot/import`);
        expect(imported.body).toContain(`<b>${channel.url}</b>`);
        expect(imported.body).toContain(
          'href="https://github.com/organizations/acme/settings/apps"',
        );
      });
    } finally {
      await channel.close();
    }
  });

  it("serves Probot's assets for every page of the flow", async () => {
    await withServer({}, async (server) => {
      const types: Record<string, RegExp> = { ".css": /^text\/css/, ".svg": /^image\/svg\+xml/ };
      const seen = new Set<string>();
      for (const page of ["/probot", "/probot/import", "/probot/success"]) {
        const { status, body } = await get(`${server.url}${page}`);
        expect(status, page).toBe(200);
        const assets = [...body.matchAll(/(?:href|src)="(\/[^"]*)"/g)].map((m) => m[1] ?? "");
        expect(assets.length, page).toBeGreaterThanOrEqual(3);
        for (const asset of assets.filter((a) => a.startsWith("/probot/static/"))) seen.add(asset);
      }
      expect([...seen].sort()).toEqual([
        "/probot/static/primer.css",
        "/probot/static/probot-head.svg",
        "/probot/static/robot.svg",
      ]);
      for (const asset of seen) {
        const response = await fetch(`${server.url}${asset}`);
        expect(response.status, asset).toBe(200);
        expect(response.headers.get("content-type"), asset).toMatch(
          types[path.extname(asset)] ?? /^$/,
        );
        expect(await response.text()).toBe(
          readFileSync(path.join(staticDir, path.basename(asset)), "utf8"),
        );
      }
      expect((await fetch(`${server.url}/probot/static/..%2Fpackage.json`)).status).toBe(404);
      expect((await fetch(`${server.url}/probot/static/nope.css`)).status).toBe(404);
    });
  });

  it("stays ready, saying the App is not configured yet", async () => {
    await withServer({}, async (server) => {
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({
        status: "ready",
        app: `not configured yet: register the GitHub App at ${PUBLIC_URL}/`,
      });
    });
  });

  it("warns at start when GitHub could not deliver webhooks to HALLPASS_URL", async () => {
    await withServer({ HALLPASS_URL: "", PORT: "3999" }, async (server) => {
      expect(server.lines().find((l) => l.level === 40)).toMatchObject({
        webhook_url: "http://localhost:3999/api/github/webhooks",
        msg: expect.stringMatching(/^GitHub cannot deliver webhooks to this server's URL/),
      });
    });
    await withServer({}, async (server) => {
      expect(server.lines().filter((l) => Number(l.level) >= 40)).toEqual([]);
    });
  });

  it("imports an existing App into .env, readable by its owner alone, keeping the other lines", async () => {
    await writeFile(envFile, "# local settings\nLOG_LEVEL=debug\nAPP_ID=1\n", { mode: 0o644 });
    await chmod(envFile, 0o644);
    await withServer({}, async (server) => {
      const post = (body: unknown) =>
        fetch(`${server.url}/probot/import`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });

      const refused = await post({ appId: "42", pem: "not a key", webhook_secret: "s" });
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as { message: string }).message).toMatch(/^pem: /);
      expect(await readFile(envFile, "utf8")).toBe("# local settings\nLOG_LEVEL=debug\nAPP_ID=1\n");

      const imported = await post({ appId: "42", pem, webhook_secret: "a secret with # in it" });
      expect(imported.status).toBe(200);
      expect((await stat(envFile)).mode & 0o777).toBe(0o600);
      const text = await readFile(envFile, "utf8");
      expect(text.startsWith("# local settings\nLOG_LEVEL=debug\n")).toBe(true);
      const written = parseEnv(text) as Record<string, string>;
      expect(written).toEqual({
        LOG_LEVEL: "debug",
        APP_ID: "42",
        PRIVATE_KEY: pem,
        WEBHOOK_SECRET: "a secret with # in it",
      });
      // What the flow wrote is what the next start reads.
      expect(loadConfig(cleanEnv(written)).app).toMatchObject({
        appId: 42,
        privateKey: pem.trim(),
      });
      expect(server.lines().map((l) => l.msg)).toContain(
        "GitHub App credentials written (mode 0600): restart hallpass to start the App",
      );
      expect(JSON.stringify(server.lines())).not.toContain("a secret with");
    });
  });

  it("exchanges GitHub's code for the App's credentials, written to .env with mode 0600", async () => {
    const calls: string[] = [];
    const github = http.createServer((request, response) => {
      calls.push(`${request.method} ${request.url}`);
      if (request.url === "/api/v3/app-manifests/good-code/conversions") {
        response.writeHead(201, { "content-type": "application/json" }).end(
          JSON.stringify({
            id: 7301,
            slug: "hallpass-acme",
            html_url: `http://${request.headers.host}/apps/hallpass-acme`,
            client_id: "Iv23liAbCdEf",
            client_secret: "0123456789abcdef0123456789abcdef01234567",
            webhook_secret: "e3b0c44298fc1c149afbf4c8996fb924",
            pem,
          }),
        );
        return;
      }
      response
        .writeHead(404, { "content-type": "application/json" })
        .end('{"message":"Not Found"}');
    });
    await new Promise<void>((resolve) => github.listen(0, "127.0.0.1", resolve));
    const ghe = `127.0.0.1:${(github.address() as AddressInfo).port}`;
    try {
      await withServer({ GHE_HOST: ghe, GHE_PROTOCOL: "http" }, async (server) => {
        const { action } = setupForm((await get(`${server.url}/probot`)).body);
        expect(action).toBe(`http://${ghe}/settings/apps/new`);

        const expired = await get(`${server.url}/probot/setup?code=old-code`);
        expect(expired.status).toBe(400);
        expect(expired.body).toMatch(/GitHub does not know this code/);
        expect(existsSync(envFile)).toBe(false);

        const done = await get(`${server.url}/probot/setup?code=good-code`);
        expect(done.status).toBe(302);
        expect(done.headers.location).toBe(`http://${ghe}/apps/hallpass-acme/installations/new`);
        expect(calls).toEqual([
          "POST /api/v3/app-manifests/old-code/conversions",
          "POST /api/v3/app-manifests/good-code/conversions",
        ]);
        expect((await stat(envFile)).mode & 0o777).toBe(0o600);
        const written = parseEnv(await readFile(envFile, "utf8")) as Record<string, string>;
        expect(written).toEqual({
          APP_ID: "7301",
          PRIVATE_KEY: pem,
          WEBHOOK_SECRET: "e3b0c44298fc1c149afbf4c8996fb924",
          GITHUB_CLIENT_ID: "Iv23liAbCdEf",
          GITHUB_CLIENT_SECRET: "0123456789abcdef0123456789abcdef01234567",
        });
        const next = loadConfig(cleanEnv(written));
        expect(next.app?.appId).toBe(7301);
        expect(next.github.client?.id).toBe("Iv23liAbCdEf");
        expect(JSON.stringify(server.lines())).not.toMatch(/e3b0c442|0123456789abcdef|PRIVATE KEY/);
      });
    } finally {
      await new Promise((resolve) => github.close(resolve));
    }
  });

  it("connects to WEBHOOK_PROXY_URL while it listens, and lets go when it stops", async () => {
    const channel = await startSmeeChannel();
    try {
      const server = await startServer({ WEBHOOK_PROXY_URL: channel.url });
      await expect.poll(() => channel.open(), { timeout: 10_000 }).toBe(1);
      await server.stop();
      await expect.poll(() => channel.open(), { timeout: 10_000 }).toBe(0);
      expect(channel.connections()).toBe(1);
    } finally {
      await channel.close();
    }
  });

  it.runIf(chromium())(
    "renders the setup page styled in a browser, every request answered 200",
    async () => {
      await withServer({}, async (server) => {
        const result = await inChromium(`${server.url}/probot`, dir);
        expect(result.failed).toEqual([]);
        // The icon, when headless Chromium asks for it at all, is checked with the other assets.
        expect(result.requests).toEqual(
          expect.arrayContaining([
            "/probot",
            "/probot/static/primer.css",
            "/probot/static/robot.svg",
          ]),
        );
        expect(result.style).toEqual({
          bodyMargin: "0px",
          font: "-apple-system",
          buttonRadius: "6px",
          layout: "flex",
          logoWidth: 100,
        });
        expect(result.screenshot.byteLength).toBeGreaterThan(10_000);
        // HALLPASS_SCREENSHOT=docs/setup-page.png keeps the picture (the README shows it).
        const keep = process.env.HALLPASS_SCREENSHOT;
        if (keep) await writeFile(keep, result.screenshot);
      });
    },
    60_000,
  );
});

describe("App registration (configured)", () => {
  const appEnv = { APP_ID: "4242", PRIVATE_KEY: pem, WEBHOOK_SECRET: "smee-secret" };

  it("forwards deliveries of WEBHOOK_PROXY_URL to the webhook route", async () => {
    const channel = await startSmeeChannel();
    try {
      await withServer({ ...appEnv, WEBHOOK_PROXY_URL: channel.url }, async (server) => {
        await expect.poll(() => channel.open(), { timeout: 10_000 }).toBe(1);
        const body = { zen: "Keep it logically awesome.", hook_id: 1 };
        channel.send({
          "x-github-event": "ping",
          "x-github-delivery": randomUUID(),
          "x-hub-signature-256": await sign("smee-secret", JSON.stringify(body)),
          host: "smee.io",
          body,
          query: {},
        });
        await expect
          .poll(() => server.lines().map((l) => l.msg), { timeout: 10_000 })
          .toContain(`POST ${server.url}/api/github/webhooks - 202`);
      });
    } finally {
      await channel.close();
    }
  });

  it("keeps the page GitHub shows after each installation, and no setup route", async () => {
    await withServer(appEnv, async (server) => {
      expect((await fetch(`${server.url}/probot/success`)).status).toBe(200);
      expect((await fetch(`${server.url}/probot/static/primer.css`)).status).toBe(200);
      expect((await fetch(`${server.url}/probot`)).status).toBe(404);
      expect((await fetch(`${server.url}/probot/import`, { method: "POST" })).status).toBe(404);
      expect(await (await fetch(`${server.url}/readyz`)).json()).toMatchObject({
        app: "configured",
      });
    });
  });
});

describe("configuration of the setup flow", () => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return [];
    } catch (error) {
      return (error as { problems: string[] }).problems;
    }
  };
  const production = {
    NODE_ENV: "production",
    HALLPASS_MASTER_KEY: Buffer.alloc(32, 7).toString("base64"),
    APP_ID: "1",
    PRIVATE_KEY: pem,
    WEBHOOK_SECRET: "x",
  };

  it("requires https for HALLPASS_URL in production, but for localhost", () => {
    expect(problems({ ...production, HALLPASS_URL: "http://hallpass.acme.test" })).toEqual([
      'HALLPASS_URL: must be https:// in production, as GitHub delivers webhooks there and tokens name it their issuer; http:// only for localhost (got "http://hallpass.acme.test")',
    ]);
    for (const url of [
      "https://hallpass.acme.test",
      "http://localhost:3000",
      "http://[::1]:3000",
    ]) {
      expect(problems({ ...production, HALLPASS_URL: url }), url).toEqual([]);
    }
  });

  it("takes GH_ORG and WEBHOOK_PROXY_URL, the latter never in production", () => {
    expect(
      loadConfig({ GH_ORG: "acme-corp", WEBHOOK_PROXY_URL: "https://smee.io/abc/" }),
    ).toMatchObject({
      github: { org: "acme-corp" },
      webhookProxyUrl: "https://smee.io/abc",
    });
    expect(loadConfig({})).toMatchObject({ github: { org: null }, webhookProxyUrl: null });
    expect(problems({ GH_ORG: "acme/corp" })).toEqual([
      'GH_ORG: must be an organization\'s login (got "acme/corp")',
    ]);
    expect(
      problems({
        ...production,
        HALLPASS_URL: PUBLIC_URL,
        WEBHOOK_PROXY_URL: "https://smee.io/abc",
      }),
    ).toEqual([expect.stringMatching(/^WEBHOOK_PROXY_URL: for local development only/)]);
  });
});

describe("writeEnvFile", () => {
  it("replaces a variable's every line, a multi-line quoted value included, and keeps the rest", async () => {
    const multiLine = pem.trimEnd().split("\n");
    await writeFile(
      envFile,
      [
        "PORT=4000",
        `PRIVATE_KEY="${multiLine[0]}`,
        ...multiLine.slice(1, -1),
        `${multiLine.at(-1)}"`,
        "export WEBHOOK_SECRET='old'",
        "# end",
        "",
        "",
      ].join("\n"),
    );
    await writeEnvFile(envFile, { PRIVATE_KEY: pem, WEBHOOK_SECRET: "new" });
    const text = await readFile(envFile, "utf8");
    expect(text).toBe(
      `PORT=4000\n# end\nPRIVATE_KEY="${pem.replace(/\n/g, "\\n")}"\nWEBHOOK_SECRET=new\n`,
    );
    expect(parseEnv(text)).toEqual({ PORT: "4000", PRIVATE_KEY: pem, WEBHOOK_SECRET: "new" });
    expect((await stat(envFile)).mode & 0o777).toBe(0o600);
  });
});

/** The Chromium of this machine, if any. */
function chromium(): string | null {
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
      const file = path.join(dir, name);
      if (dir && existsSync(file)) return file;
    }
  }
  return null;
}

/**
 * Loads `url` in headless Chromium over the DevTools protocol: the paths it
 * requested, those that did not answer 200, computed styles of the page, and
 * a screenshot.
 */
async function inChromium(url: string, profile: string) {
  // Its own process group, so the renderer and crash handler it starts die
  // with it and stop writing to the profile before the test removes it.
  const browser = spawn(
    chromium() ?? "chromium",
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--remote-debugging-port=0",
      `--user-data-dir=${path.join(profile, "chromium")}`,
      "--window-size=1024,768",
      "about:blank",
    ],
    { stdio: ["ignore", "ignore", "pipe"], detached: true },
  );
  const exited = new Promise((resolve) => browser.once("exit", resolve));
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      let output = "";
      browser.stderr.on("data", (chunk) => {
        output += chunk;
        const found = /DevTools listening on (ws:\/\/\S+)/.exec(output)?.[1];
        if (found) resolve(found);
      });
      browser.on("exit", (code) => reject(new Error(`chromium exited (${code}): ${output}`)));
    });
    const socket = new WebSocket(endpoint);
    await new Promise((resolve, reject) => {
      socket.addEventListener("open", resolve);
      socket.addEventListener("error", reject);
    });
    let nextId = 0;
    const pending = new Map<number, (result: Record<string, unknown>) => void>();
    const events: { method: string; params: Record<string, unknown> }[] = [];
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data));
      if (message.id !== undefined) pending.get(message.id)?.(message.result ?? message.error);
      else events.push(message);
    });
    const send = (method: string, params: object = {}, sessionId?: string) =>
      new Promise<Record<string, unknown>>((resolve) => {
        nextId += 1;
        pending.set(nextId, resolve);
        socket.send(JSON.stringify({ id: nextId, method, params, sessionId }));
      });

    const { targetId } = await send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = (await send("Target.attachToTarget", { targetId, flatten: true })) as {
      sessionId: string;
    };
    await send("Network.enable", {}, sessionId);
    await send("Page.enable", {}, sessionId);
    await send("Page.navigate", { url }, sessionId);
    await expect
      .poll(() => events.some((e) => e.method === "Page.loadEventFired"), { timeout: 20_000 })
      .toBe(true);
    const origin = new URL(url).origin;
    const responses = events
      .filter((e) => e.method === "Network.responseReceived")
      .map((e) => e.params.response as { url: string; status: number })
      .filter((r) => r.url.startsWith(origin));
    const evaluated = (await send(
      "Runtime.evaluate",
      {
        expression: `JSON.stringify({
          bodyMargin: getComputedStyle(document.body).marginTop,
          font: getComputedStyle(document.body).fontFamily.split(",")[0],
          buttonRadius: getComputedStyle(document.getElementById("manifest")).borderTopLeftRadius,
          layout: getComputedStyle(document.querySelector("body > div")).display,
          logoWidth: document.querySelector("img").naturalWidth > 0 ? document.querySelector("img").width : 0,
        })`,
        returnByValue: true,
      },
      sessionId,
    )) as { result: { value: string } };
    const shot = (await send("Page.captureScreenshot", { format: "png" }, sessionId)) as {
      data: string;
    };
    socket.close();
    return {
      requests: responses.map((r) => new URL(r.url).pathname),
      failed: responses.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.url}`),
      style: JSON.parse(evaluated.result.value) as Record<string, unknown>,
      screenshot: Buffer.from(shot.data, "base64"),
    };
  } finally {
    try {
      if (browser.pid !== undefined) process.kill(-browser.pid, "SIGKILL");
    } catch {
      // The whole group is gone already.
    }
    await exited;
  }
}
