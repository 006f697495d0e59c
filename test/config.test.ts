import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, GITHUB_OIDC_ISSUER, loadConfig } from "#src/config.js";

const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
  type: "pkcs1",
  format: "pem",
}) as string;
const masterKey = randomBytes(32).toString("base64");

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env as NodeJS.ProcessEnv);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  throw new Error("expected a configuration error");
}

describe("configuration", () => {
  it("runs with no configuration at all: embedded database, setup mode", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      production: false,
      host: "localhost",
      port: 3000,
      proxyPort: null,
      logLevel: "info",
      publicUrl: "http://localhost:3000",
      database: { kind: "pglite" },
      masterKey: null,
      app: null,
      github: { apiUrl: "https://api.github.com", webUrl: "https://github.com" },
      oidc: { issuer: GITHUB_OIDC_ISSUER, audience: "http://localhost:3000" },
    });
    expect(config.database.kind === "pglite" && config.database.dataDir).toMatch(
      /\.hallpass[/\\]pgdata$/,
    );
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("reads every setting", () => {
    const config = loadConfig({
      PORT: "8080",
      PROXY_PORT: "8443",
      HOST: "0.0.0.0",
      LOG_LEVEL: "debug",
      HALLPASS_URL: "https://hallpass.example.com/",
      DATABASE_URL: "postgres://hallpass@db.internal:5432/hallpass",
      HALLPASS_MASTER_KEY: masterKey,
      HALLPASS_OIDC_AUDIENCE: "https://hallpass.example.com/actions",
      APP_ID: "12345",
      PRIVATE_KEY: pem.replace(/\n/g, "\\n"),
      WEBHOOK_SECRET: "s3cret",
      GHE_HOST: "github.acme.internal",
    });
    expect(config).toMatchObject({
      port: 8080,
      proxyPort: 8443,
      host: "0.0.0.0",
      logLevel: "debug",
      publicUrl: "https://hallpass.example.com",
      database: { kind: "postgres", url: "postgres://hallpass@db.internal:5432/hallpass" },
      app: { appId: 12345, privateKey: pem, webhookSecret: "s3cret" },
      github: {
        apiUrl: "https://github.acme.internal/api/v3",
        webUrl: "https://github.acme.internal",
        enterpriseHost: "github.acme.internal",
      },
      oidc: {
        issuer: "https://github.acme.internal/_services/token",
        audience: "https://hallpass.example.com/actions",
      },
    });
    expect(config.masterKey?.equals(Buffer.from(masterKey, "base64"))).toBe(true);
  });

  it("accepts the private key as a file or base64", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "hallpass-config-"));
    const file = path.join(dir, "app.pem");
    await writeFile(file, pem);
    const base = { APP_ID: "1", WEBHOOK_SECRET: "x" };
    expect(loadConfig({ ...base, PRIVATE_KEY_PATH: file }).app?.privateKey).toBe(pem);
    expect(
      loadConfig({ ...base, PRIVATE_KEY: Buffer.from(pem).toString("base64") }).app?.privateKey,
    ).toBe(pem);
  });

  it.each([
    [{ PORT: "abc" }, /^PORT: must be a port number \(got "abc"\)$/],
    [{ PORT: "70000" }, /^PORT: must be a port number between 1 and 65535/],
    [{ LOG_LEVEL: "loud" }, /^LOG_LEVEL: .*\(got "loud"\)$/],
    [{ HALLPASS_URL: "ftp://x" }, /^HALLPASS_URL: must be an http\(s\) URL/],
    [
      { DATABASE_URL: "mysql://x" },
      /^DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL$/,
    ],
    [{ HALLPASS_MASTER_KEY: "too-short" }, /^HALLPASS_MASTER_KEY: must be 32 random bytes/],
    [
      { APP_ID: "abc", PRIVATE_KEY: pem, WEBHOOK_SECRET: "x" },
      /^APP_ID: must be the numeric GitHub App id/,
    ],
    [
      { APP_ID: "1", PRIVATE_KEY: "not a key", WEBHOOK_SECRET: "x" },
      /^PRIVATE_KEY: not a PEM private key/,
    ],
    [
      { APP_ID: "1", PRIVATE_KEY_PATH: "/nonexistent/app.pem", WEBHOOK_SECRET: "x" },
      /^PRIVATE_KEY_PATH: cannot read/,
    ],
    [{ APP_ID: "1", PRIVATE_KEY: pem }, /^WEBHOOK_SECRET: missing/],
    [{ GHE_HOST: "https://github.acme.internal" }, /^GHE_HOST: must be a host name/],
    [{ HALLPASS_CONFIG: "/nonexistent/hallpass.yml" }, /^HALLPASS_CONFIG: file not found/],
    [{ PROXY_PORT: "3000" }, /^PROXY_PORT: must differ from PORT/],
    [{ PROXY_MAX_STALENESS: "5" }, /^PROXY_MAX_STALENESS: "5" has no unit/],
    [{ PROXY_MAX_STALENESS: "1h" }, /^PROXY_MAX_STALENESS: at most 10m/],
    [{ PROXY_RESYNC_INTERVAL: "soon" }, /^PROXY_RESYNC_INTERVAL: /],
    [{ HALLPASS_PROXY_URL: "proxy.example" }, /^HALLPASS_PROXY_URL: must be an http\(s\) URL/],
  ])("names the variable and what is wrong: %o", (env, message) => {
    const found = problems(env);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(message);
  });

  it("reads the proxy's public URL and how fresh its view of grants must be", () => {
    expect(loadConfig({ PROXY_PORT: "8443" })).toMatchObject({
      proxyUrl: "http://localhost:8443",
      liveGrants: { maxStalenessMs: 5_000, resyncMs: 30_000 },
    });
    expect(
      loadConfig({
        PROXY_PORT: "8443",
        HALLPASS_PROXY_URL: "https://api-proxy.acme.dev/",
        PROXY_MAX_STALENESS: "2s",
        PROXY_RESYNC_INTERVAL: "1m",
      }),
    ).toMatchObject({
      proxyUrl: "https://api-proxy.acme.dev",
      liveGrants: { maxStalenessMs: 2_000, resyncMs: 60_000 },
    });
    expect(
      problems({
        NODE_ENV: "production",
        PROXY_PORT: "8443",
        HALLPASS_URL: "https://h.example",
        HALLPASS_MASTER_KEY: masterKey,
        APP_ID: "1",
        PRIVATE_KEY: pem,
        WEBHOOK_SECRET: "x",
      }),
    ).toEqual([
      "HALLPASS_PROXY_URL: required in production with PROXY_PORT (the URL callers reach the proxy at)",
    ]);
  });

  it("never echoes a secret value", () => {
    const found = problems({
      DATABASE_URL: "mysql://admin:hunter2@db/x",
      HALLPASS_MASTER_KEY: "hunter2",
      APP_ID: "1",
      PRIVATE_KEY: "hunter2",
      WEBHOOK_SECRET: "hunter2",
    });
    expect(found.length).toBeGreaterThan(0);
    for (const line of found) expect(line).not.toMatch(/hunter2/);
  });

  it("refuses GitHub's default OIDC audience, which any workflow of the org can request", () => {
    expect(problems({ HALLPASS_OIDC_AUDIENCE: "https://github.com/acme" })[0]).toMatch(
      /^HALLPASS_OIDC_AUDIENCE: must be a custom audience/,
    );
    expect(
      problems({
        GHE_HOST: "ghe.acme.internal",
        HALLPASS_OIDC_AUDIENCE: "https://ghe.acme.internal/acme",
      })[0],
    ).toMatch(/^HALLPASS_OIDC_AUDIENCE/);
  });

  it("requires a master key with a shared database, and more in production", () => {
    expect(problems({ DATABASE_URL: "postgres://db/x" })[0]).toMatch(
      /^HALLPASS_MASTER_KEY: required/,
    );
    const production = problems({ NODE_ENV: "production" });
    expect(production.map((p) => p.split(":")[0])).toEqual([
      "HALLPASS_URL",
      "HALLPASS_MASTER_KEY",
      "APP_ID",
    ]);
  });
});
