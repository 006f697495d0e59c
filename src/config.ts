import { createPrivateKey } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { isLoopback } from "#src/cli/server-url.js";
import { HallpassError } from "#src/errors.js";
import { parseDuration } from "#src/rules/duration.js";

/** GitHub's OIDC issuer for Actions on github.com. */
export const GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface GitHubAppConfig {
  readonly appId: number;
  /** PEM, never logged. */
  readonly privateKey: string;
  /** Never logged. */
  readonly webhookSecret: string;
}

export type DatabaseConfig =
  | { readonly kind: "postgres"; readonly url: string }
  | { readonly kind: "pglite"; readonly dataDir: string };

export interface Config {
  readonly production: boolean;
  readonly host: string;
  readonly port: number;
  readonly proxyPort: number | null;
  /** The proxy's public URL without a trailing slash: the `host` it answers for. */
  readonly proxyUrl: string;
  /** The proxy's view of live grants: how stale it may get, how often it reloads. */
  readonly liveGrants: { readonly maxStalenessMs: number; readonly resyncMs: number };
  readonly logLevel: LogLevel;
  /** Public base URL without a trailing slash; the `iss` of every token. */
  readonly publicUrl: string;
  readonly dataDir: string;
  readonly database: DatabaseConfig;
  /** 32 bytes, or null when the embedded set-up keeps its own key in the data directory. */
  readonly masterKey: Buffer | null;
  readonly operatorConfigPath: string | null;
  /** Null until the GitHub App is registered (setup mode). */
  readonly app: GitHubAppConfig | null;
  readonly github: {
    /** REST API base URL (github.com or GitHub Enterprise Server). */
    readonly apiUrl: string;
    /** Web URL, e.g. for links to tickets. */
    readonly webUrl: string;
    readonly enterpriseHost: string | null;
    /** The organization the setup flow registers the App under (`GH_ORG`); null: the person's account. */
    readonly org: string | null;
    /**
     * The GitHub App's OAuth client (`GITHUB_CLIENT_ID`, `GITHUB_CLIENT_SECRET`,
     * which the setup flow writes to `.env`): `hallpass login` asks for user
     * tokens of this client, and `POST /v1/token` checks with GitHub that a
     * token was issued to it. Null when not configured. The secret is never logged.
     */
    readonly client: { readonly id: string; readonly secret: string } | null;
  };
  readonly oidc: { readonly issuer: string; readonly audience: string };
  /**
   * A smee.io channel (`WEBHOOK_PROXY_URL`) for local development: the setup
   * flow registers it as the webhook URL and the server forwards its
   * deliveries to itself. Null: GitHub delivers to `publicUrl`.
   */
  readonly webhookProxyUrl: string | null;
}

/** Variables whose values must never be echoed, even in an error. */
const SECRET_VARIABLES = new Set([
  "PRIVATE_KEY",
  "WEBHOOK_SECRET",
  "HALLPASS_MASTER_KEY",
  "DATABASE_URL",
  "GITHUB_CLIENT_SECRET",
]);

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === "" ? undefined : value.trim()));

const port = () =>
  optionalText.pipe(
    z
      .string()
      .regex(/^\d+$/, "must be a port number")
      .transform(Number)
      .refine((n) => n >= 1 && n <= 65535, "must be a port number between 1 and 65535")
      .optional(),
  );

const httpUrl = z
  .string()
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === "https:" || url.protocol === "http:") && url.username === "";
    } catch {
      return false;
    }
  }, "must be an http(s) URL")
  .transform((value) => value.replace(/\/+$/, ""));

const seconds = z.string().transform((value, ctx) => {
  const parsed = parseDuration(value);
  if (parsed.ok) return parsed.seconds;
  ctx.addIssue({ code: "custom", message: parsed.message });
  return z.NEVER;
});

const envSchema = z.object({
  NODE_ENV: optionalText,
  HOST: optionalText.transform((v) => v ?? "localhost"),
  PORT: port(),
  PROXY_PORT: port(),
  HALLPASS_PROXY_URL: optionalText.pipe(httpUrl.optional()),
  PROXY_MAX_STALENESS: optionalText.pipe(seconds.optional()),
  PROXY_RESYNC_INTERVAL: optionalText.pipe(seconds.optional()),
  LOG_LEVEL: optionalText.pipe(
    z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  ),
  HALLPASS_URL: optionalText.pipe(httpUrl.optional()),
  HALLPASS_DATA_DIR: optionalText.transform((v) => v ?? ".hallpass"),
  DATABASE_URL: optionalText.pipe(
    z
      .string()
      .refine((value) => {
        try {
          return ["postgres:", "postgresql:"].includes(new URL(value).protocol);
        } catch {
          return false;
        }
      }, "must be a postgres:// or postgresql:// URL")
      .optional(),
  ),
  HALLPASS_MASTER_KEY: optionalText.pipe(
    z
      .string()
      .transform((value) => decodeKey(value))
      .refine((key) => key !== null, "must be 32 random bytes, base64 or hex encoded")
      .optional(),
  ),
  HALLPASS_CONFIG: optionalText,
  HALLPASS_OIDC_ISSUER: optionalText.pipe(httpUrl.optional()),
  HALLPASS_OIDC_AUDIENCE: optionalText,
  APP_ID: optionalText.pipe(
    z
      .string()
      .regex(/^[1-9]\d*$/, "must be the numeric GitHub App id")
      .transform(Number)
      .optional(),
  ),
  PRIVATE_KEY: optionalText,
  PRIVATE_KEY_PATH: optionalText,
  WEBHOOK_SECRET: optionalText,
  GHE_HOST: optionalText.pipe(
    z
      .string()
      .regex(/^[a-z0-9.-]+(:\d+)?$/i, "must be a host name, without scheme or path")
      .optional(),
  ),
  GHE_PROTOCOL: optionalText.pipe(z.enum(["https", "http"]).default("https")),
  GH_ORG: optionalText.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}$/, "must be an organization's login")
      .optional(),
  ),
  WEBHOOK_PROXY_URL: optionalText.pipe(httpUrl.optional()),
  GITHUB_CLIENT_ID: optionalText.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,100}$/, "must be the GitHub App's client id (such as Iv23li...)")
      .optional(),
  ),
  GITHUB_CLIENT_SECRET: optionalText.pipe(
    z
      .string()
      .regex(/^[\x21-\x7e]{1,255}$/, "must be the GitHub App's client secret")
      .optional(),
  ),
});

/** Thrown when the environment is invalid; `message` is one line per bad variable. */
export class ConfigError extends HallpassError {
  constructor(readonly problems: readonly string[]) {
    super("CONFIG_INVALID", problems.join("\n"));
    this.name = "ConfigError";
  }
}

/**
 * Reads and validates every setting of the server from the environment.
 *
 * @example
 * const config = loadConfig(process.env);
 * config.database.kind; // "pglite" when DATABASE_URL is not set
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const e = parseEnv(envSchema, env);
  const problems: string[] = [];
  const production = e.NODE_ENV === "production";
  const httpPort = e.PORT ?? 3000;

  if (production && !e.HALLPASS_URL) {
    problems.push("HALLPASS_URL: required in production (the public URL tokens are issued by)");
  }
  if (production && e.HALLPASS_URL && !isHttpsOrLoopback(e.HALLPASS_URL)) {
    problems.push(
      `HALLPASS_URL: must be https:// in production, as GitHub delivers webhooks there and tokens name it their issuer; http:// only for localhost (got ${JSON.stringify(e.HALLPASS_URL)})`,
    );
  }
  if (production && e.WEBHOOK_PROXY_URL) {
    problems.push(
      "WEBHOOK_PROXY_URL: for local development only; in production GitHub delivers webhooks to HALLPASS_URL (anyone who knows a smee.io channel's URL can read its deliveries)",
    );
  }
  if (!e.HALLPASS_MASTER_KEY && (production || e.DATABASE_URL)) {
    problems.push(
      "HALLPASS_MASTER_KEY: required with DATABASE_URL or in production (32 bytes, e.g. `openssl rand -base64 32`)",
    );
  }

  const app = readAppCredentials(e, problems);
  if (production && !app) {
    problems.push("APP_ID: required in production (register the GitHub App first)");
  }

  const operatorConfigPath = e.HALLPASS_CONFIG ? path.resolve(e.HALLPASS_CONFIG) : null;
  if (operatorConfigPath && !existsSync(operatorConfigPath)) {
    problems.push(`HALLPASS_CONFIG: file not found (got ${JSON.stringify(e.HALLPASS_CONFIG)})`);
  }

  const publicUrl = e.HALLPASS_URL ?? `http://localhost:${httpPort}`;
  const webUrl = e.GHE_HOST ? `${e.GHE_PROTOCOL}://${e.GHE_HOST}` : "https://github.com";
  const apiUrl = e.GHE_HOST ? `${webUrl}/api/v3` : "https://api.github.com";
  const issuer =
    e.HALLPASS_OIDC_ISSUER ?? (e.GHE_HOST ? `${webUrl}/_services/token` : GITHUB_OIDC_ISSUER);
  const audience = e.HALLPASS_OIDC_AUDIENCE ?? publicUrl;
  if (isGitHubDefaultAudience(audience, webUrl)) {
    problems.push(
      "HALLPASS_OIDC_AUDIENCE: must be a custom audience; GitHub's default audience can be requested by any workflow of the organization",
    );
  }
  if (e.PROXY_PORT !== undefined && e.PROXY_PORT === httpPort) {
    problems.push(`PROXY_PORT: must differ from PORT (both are ${httpPort})`);
  }
  if (production && e.PROXY_PORT !== undefined && !e.HALLPASS_PROXY_URL) {
    problems.push(
      "HALLPASS_PROXY_URL: required in production with PROXY_PORT (the URL callers reach the proxy at)",
    );
  }
  if ((e.GITHUB_CLIENT_ID === undefined) !== (e.GITHUB_CLIENT_SECRET === undefined)) {
    problems.push(
      `${e.GITHUB_CLIENT_ID === undefined ? "GITHUB_CLIENT_ID" : "GITHUB_CLIENT_SECRET"}: missing; GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET are set together`,
    );
  }
  const maxStaleness = e.PROXY_MAX_STALENESS ?? 5;
  const resync = e.PROXY_RESYNC_INTERVAL ?? 30;
  if (maxStaleness > 600) problems.push("PROXY_MAX_STALENESS: at most 10m (got more)");

  if (problems.length > 0) throw new ConfigError(problems);

  const dataDir = path.resolve(e.HALLPASS_DATA_DIR);
  return Object.freeze({
    production,
    host: e.HOST,
    port: httpPort,
    proxyPort: e.PROXY_PORT ?? null,
    proxyUrl: e.HALLPASS_PROXY_URL ?? `http://localhost:${e.PROXY_PORT ?? 8080}`,
    liveGrants: { maxStalenessMs: maxStaleness * 1000, resyncMs: resync * 1000 },
    logLevel: e.LOG_LEVEL,
    publicUrl,
    dataDir,
    database: databaseOf(e),
    masterKey: e.HALLPASS_MASTER_KEY ?? null,
    operatorConfigPath,
    app,
    github: {
      apiUrl,
      webUrl,
      enterpriseHost: e.GHE_HOST ?? null,
      org: e.GH_ORG ?? null,
      client:
        e.GITHUB_CLIENT_ID && e.GITHUB_CLIENT_SECRET
          ? Object.freeze({ id: e.GITHUB_CLIENT_ID, secret: e.GITHUB_CLIENT_SECRET })
          : null,
    },
    oidc: { issuer, audience },
    webhookProxyUrl: e.WEBHOOK_PROXY_URL ?? null,
  } satisfies Config);
}

const databaseSchema = envSchema.pick({ DATABASE_URL: true, HALLPASS_DATA_DIR: true });

/**
 * Reads only where the database is (`DATABASE_URL`, else the embedded one
 * under `HALLPASS_DATA_DIR`), for commands that need nothing else: the audit
 * log is hashes and never sealed, so `hallpass audit` needs no master key,
 * App or public URL.
 */
export function loadDatabaseConfig(env: NodeJS.ProcessEnv = process.env): DatabaseConfig {
  return databaseOf(parseEnv(databaseSchema, env));
}

function databaseOf(e: z.infer<typeof databaseSchema>): DatabaseConfig {
  return e.DATABASE_URL
    ? { kind: "postgres", url: e.DATABASE_URL }
    : { kind: "pglite", dataDir: path.join(path.resolve(e.HALLPASS_DATA_DIR), "pgdata") };
}

/** Parses `env` with `schema`; a bad variable is a ConfigError naming it (a secret's value never shown). */
function parseEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv): z.infer<T> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? "environment");
      const value = env[name];
      const shown =
        value !== undefined && !SECRET_VARIABLES.has(name) && value.length <= 200
          ? ` (got ${JSON.stringify(value)})`
          : "";
      return `${name}: ${issue.message}${shown}`;
    }),
  );
}

function readAppCredentials(
  e: z.infer<typeof envSchema>,
  problems: string[],
): GitHubAppConfig | null {
  const privateKey = readPrivateKey(e, problems);
  const given = {
    APP_ID: e.APP_ID !== undefined,
    PRIVATE_KEY: privateKey !== undefined,
    WEBHOOK_SECRET: e.WEBHOOK_SECRET !== undefined,
  };
  const present = Object.values(given).filter(Boolean).length;
  if (present === 0) return null;
  if (present < 3) {
    for (const [name, isSet] of Object.entries(given)) {
      if (!isSet) {
        problems.push(
          `${name}: missing; APP_ID, PRIVATE_KEY (or PRIVATE_KEY_PATH) and WEBHOOK_SECRET are set together`,
        );
      }
    }
    return null;
  }
  if (!privateKey || e.APP_ID === undefined || e.WEBHOOK_SECRET === undefined) return null;
  return Object.freeze({
    appId: e.APP_ID,
    privateKey,
    webhookSecret: e.WEBHOOK_SECRET,
  });
}

/** The key as PEM; undefined when not given, null when given but unusable (a problem is pushed). */
function readPrivateKey(
  e: z.infer<typeof envSchema>,
  problems: string[],
): string | null | undefined {
  let pem: string;
  let name: string;
  if (e.PRIVATE_KEY) {
    name = "PRIVATE_KEY";
    pem = e.PRIVATE_KEY.includes("-----BEGIN")
      ? e.PRIVATE_KEY.replace(/\\n/g, "\n")
      : Buffer.from(e.PRIVATE_KEY, "base64").toString("utf8");
  } else if (e.PRIVATE_KEY_PATH) {
    name = "PRIVATE_KEY_PATH";
    try {
      pem = readFileSync(e.PRIVATE_KEY_PATH, "utf8");
    } catch {
      problems.push(`PRIVATE_KEY_PATH: cannot read ${JSON.stringify(e.PRIVATE_KEY_PATH)}`);
      return null;
    }
  } else {
    return undefined;
  }
  try {
    createPrivateKey(pem);
    return pem;
  } catch {
    problems.push(`${name}: not a PEM private key (as downloaded from the GitHub App settings)`);
    return null;
  }
}

function isHttpsOrLoopback(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  return protocol === "https:" || isLoopback(hostname);
}

function decodeKey(value: string): Buffer | null {
  const hex = /^[0-9a-f]{64}$/i.test(value) ? Buffer.from(value, "hex") : null;
  if (hex) return hex;
  if (!/^[A-Za-z0-9+/_-]{43}=?$/.test(value)) return null;
  const bytes = Buffer.from(
    value,
    value.includes("-") || value.includes("_") ? "base64url" : "base64",
  );
  return bytes.length === 32 ? bytes : null;
}

function isGitHubDefaultAudience(audience: string, webUrl: string): boolean {
  const a = audience.toLowerCase().replace(/\/+$/, "");
  return a === webUrl.toLowerCase() || a.startsWith(`${webUrl.toLowerCase()}/`);
}
