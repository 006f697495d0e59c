import { createPrivateKey, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { open, readdir, readFile, rename, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { isLoopback } from "#src/cli/server-url.js";
import type { Config } from "#src/config.js";
import { HallpassError } from "#src/errors.js";
import type { Logger } from "#src/log.js";
import packageJson from "../../package.json" with { type: "json" };

/** Probot's paths: its pages link to one another and to their assets by these. */
const SETUP_PAGE = "/probot";
const IMPORT_PAGE = "/probot/import";
const CODE_EXCHANGE = "/probot/setup";
/** Where GitHub sends people after they install the App (`setup_url`), on every installation. */
const INSTALLED_PAGE = "/probot/success";
const ASSETS = "/probot/static";

export interface SetupFlowOptions {
  readonly config: Config;
  readonly log: Logger;
  /** The path the server receives webhooks on. */
  readonly webhookPath: string;
  /** The `.env` file the App's credentials are written to. */
  readonly envFile: string;
}

/**
 * Probot's GitHub App setup flow (the manifest flow), served while no App
 * credentials are configured, with Probot's pages and their assets:
 *
 * 1. `/` leads to `/probot`, whose button posts the manifest (`app.yml`,
 *    with every URL under HALLPASS_URL) to GitHub, under GH_ORG if set.
 * 2. GitHub registers the App and sends the browser to `/probot/setup?code=`;
 *    the code is exchanged for the App's id, key and secrets, which are
 *    written to `.env` (mode 0600), and the browser goes on to GitHub's
 *    page that installs the App.
 * 3. Or `/probot/import` takes the credentials of an App registered before.
 *
 * A restart then starts the App. The routes are hallpass's own, as every
 * one of them depends on its configuration (Probot's would take the URLs
 * from the request's Host header and its API URL from `process.env`); the
 * pages and assets are loaded by file path from the pinned probot version,
 * which exports them only inside `run()`, which starts a server of its own.
 * Probot's setup handler is not used, so neither is its creation of a
 * smee.io channel: hallpass opens none the operator did not configure.
 */
export function setupFlow(options: SetupFlowOptions): FastifyPluginAsync {
  const { config, envFile } = options;
  const log = options.log.child({ component: "setup" });
  return async (scope) => {
    const [views, manifest] = await Promise.all([loadViews(), buildManifest(options)]);
    const hook = webhookUrl(options);
    if (isLoopback(new URL(hook).hostname)) {
      log.warn(
        { webhook_url: hook },
        "GitHub cannot deliver webhooks to this server's URL: set HALLPASS_URL to its public URL, or WEBHOOK_PROXY_URL to a smee.io channel for local development",
      );
    }
    const settings = `${config.github.webUrl}${config.github.org ? `/organizations/${config.github.org}` : ""}`;
    const setupPage = views.setup.setupView({
      name: escapeHtml(packageJson.name),
      version: escapeHtml(packageJson.version),
      description: escapeHtml(packageJson.description),
      createAppUrl: escapeHtml(`${settings}/settings/apps/new`),
      manifest: escapeHtml(manifest),
    });
    const importPage = views.import.importView({
      name: escapeHtml(packageJson.name),
      GH_HOST: escapeHtml(settings),
      WEBHOOK_PROXY_URL: escapeHtml(hook),
    });
    const written = (variables: Record<string, string>) => {
      log.info(
        { file: envFile, variables: Object.keys(variables) },
        "GitHub App credentials written (mode 0600): restart hallpass to start the App",
      );
    };

    scope.addHook("onRequest", async (_request, reply) => {
      reply.header("x-frame-options", "DENY");
    });
    scope.get("/", async (_request, reply) => reply.redirect(SETUP_PAGE));
    scope.get(SETUP_PAGE, async (_request, reply) => reply.type("text/html").send(setupPage));
    scope.get(IMPORT_PAGE, async (_request, reply) => reply.type("text/html").send(importPage));
    scope.post(IMPORT_PAGE, async (request, reply) => {
      const body = importBody.parse(request.body);
      const variables = {
        APP_ID: body.appId,
        PRIVATE_KEY: body.pem,
        WEBHOOK_SECRET: body.webhook_secret,
      };
      await writeEnvFile(envFile, variables);
      written(variables);
      return reply.code(200).send();
    });
    scope.get(CODE_EXCHANGE, async (request, reply) => {
      const { code } = codeQuery.parse(request.query);
      const app = await convertManifestCode(config.github.apiUrl, code);
      const variables = {
        APP_ID: String(app.id),
        PRIVATE_KEY: app.pem,
        WEBHOOK_SECRET: app.webhook_secret,
        GITHUB_CLIENT_ID: app.client_id,
        GITHUB_CLIENT_SECRET: app.client_secret,
      };
      await writeEnvFile(envFile, variables);
      written(variables);
      return reply.redirect(`${app.html_url}/installations/new`);
    });
    await installedPage(scope, views);
  };
}

/**
 * What stays of the setup flow once the App is configured: the page GitHub
 * sends people to after each installation of the App (`setup_url`), and its assets.
 */
export function installedPages(): FastifyPluginAsync {
  return async (scope) => installedPage(scope, await loadViews());
}

async function installedPage(scope: FastifyInstance, views: ProbotViews): Promise<void> {
  const page = views.success.successView({ name: escapeHtml(packageJson.name) });
  const assets = await loadAssets();
  scope.get(INSTALLED_PAGE, async (_request, reply) => reply.type("text/html").send(page));
  scope.get<{ Params: { name: string } }>(`${ASSETS}/:name`, async (request, reply) => {
    const asset = assets.get(request.params.name);
    if (!asset) throw new HallpassError("NOT_FOUND", "no such asset");
    return reply.type(asset.type).header("cache-control", "max-age=86400").send(asset.body);
  });
}

/** The URL the App's manifest gives GitHub for webhooks: the smee.io channel, else this server's. */
function webhookUrl(options: Pick<SetupFlowOptions, "config" | "webhookPath">): string {
  return options.config.webhookProxyUrl ?? `${options.config.publicUrl}${options.webhookPath}`;
}

/**
 * The App's manifest: `app.yml` (name, permissions, events), and every URL
 * GitHub sends deliveries or people to under HALLPASS_URL. The request's
 * Host header plays no part: a browser on `localhost` must not register an
 * App whose webhooks go to `localhost`.
 */
async function buildManifest(
  options: Pick<SetupFlowOptions, "config" | "webhookPath">,
): Promise<string> {
  const base = options.config.publicUrl;
  const file = findUp("app.yml", path.dirname(fileURLToPath(import.meta.url)));
  if (!file) throw new HallpassError("CONFIG_INVALID", "app.yml not found beside hallpass");
  const app = appManifest.parse(parseYaml(await readFile(file, "utf8")));
  return JSON.stringify({
    ...app,
    hook_attributes: { url: webhookUrl(options), active: true },
    redirect_url: `${base}${CODE_EXCHANGE}`,
    callback_urls: [`${base}${INSTALLED_PAGE}`],
    setup_url: `${base}${INSTALLED_PAGE}`,
  });
}

/**
 * Sets `values` in a `.env` file, readable by its owner alone (0600): the
 * file is written whole beside it, then renamed over it, so it is never
 * readable by others, nor half written. Other lines (settings, comments)
 * are kept; values are written so that `process.loadEnvFile` and dotenv
 * read them back (a PEM quoted, its newlines as `\n`).
 */
export async function writeEnvFile(
  file: string,
  values: Readonly<Record<string, string>>,
): Promise<void> {
  const existing = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return "";
    throw error;
  });
  const kept = withoutVariables(existing, new Set(Object.keys(values)));
  const set = Object.entries(values).map(([name, value]) => `${name}=${envValue(value)}`);
  const temporary = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  const handle = await open(temporary, "wx", 0o600);
  try {
    await handle.chmod(0o600); // whatever the umask
    await handle.writeFile(`${[...kept, ...set].join("\n")}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** The lines of a `.env` text but those that set one of `names` (a quoted value may span lines). */
function withoutVariables(text: string, names: ReadonlySet<string>): string[] {
  const kept: string[] = [];
  let closing: string | null = null;
  for (const line of text.split(/\r?\n/)) {
    if (closing !== null) {
      if (line.includes(closing)) closing = null;
      continue;
    }
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match?.[1] || !names.has(match[1])) {
      kept.push(line);
      continue;
    }
    const value = match[2] ?? "";
    const quote = value[0];
    if ((quote === '"' || quote === "'" || quote === "`") && !value.slice(1).includes(quote)) {
      closing = quote;
    }
  }
  while (kept.length > 0 && kept.at(-1)?.trim() === "") kept.pop();
  return kept;
}

function envValue(value: string): string {
  return /^[\w./+=:@-]+$/.test(value) ? value : `"${value.replace(/\n/g, "\\n")}"`;
}

/** One line of text a `.env` file holds as it is: no control characters, quotes or backslashes. */
const envText = z
  .string()
  .min(1)
  .regex(/^[^\p{Cc}"\\]+$/u, "must be one line of text without quotes or backslashes");

const privateKeyPem = z
  .string()
  .transform((pem) => `${pem.replace(/\r\n/g, "\n").trim()}\n`)
  .refine((pem) => {
    try {
      createPrivateKey(pem);
      return /^[A-Za-z0-9+/=\n -]+$/.test(pem);
    } catch {
      return false;
    }
  }, "must be the App's private key (PEM, as downloaded from its settings on GitHub)");

/** What `/probot/import` posts: an App registered before, as Probot's page sends it. */
const importBody = z.object({
  appId: z
    .union([z.string(), z.number()])
    .transform(String)
    .pipe(z.string().regex(/^[1-9]\d*$/, "must be the App's numeric id")),
  pem: privateKeyPem,
  webhook_secret: envText,
});

const codeQuery = z.object({
  code: z.string().regex(/^[\w-]{1,200}$/, "must be the code GitHub gave after registering"),
});

/** What hallpass keeps of GitHub's answer to a manifest code. */
const conversion = z.object({
  id: z.number().int().positive(),
  html_url: z.url({ protocol: /^https?$/ }),
  pem: privateKeyPem,
  webhook_secret: envText,
  client_id: envText,
  client_secret: envText,
});

/**
 * Exchanges the code GitHub gives after registering an App from a manifest
 * for the App's credentials (`POST /app-manifests/{code}/conversions`,
 * unauthenticated). The answer holds secrets: it is never logged.
 */
async function convertManifestCode(apiUrl: string, code: string) {
  const what = "POST /app-manifests/{code}/conversions";
  let response: Response;
  try {
    response = await fetch(`${apiUrl}/app-manifests/${encodeURIComponent(code)}/conversions`, {
      method: "POST",
      headers: {
        accept: "application/vnd.github+json",
        "x-github-api-version": "2022-11-28",
        "user-agent": `hallpass/${packageJson.version}`,
      },
      signal: AbortSignal.timeout(15_000),
    });
  } catch (error) {
    throw new HallpassError("GITHUB_UNAVAILABLE", `${what} failed: ${(error as Error).name}`, {
      cause: error,
    });
  }
  if (response.status === 404 || response.status === 422) {
    throw new HallpassError(
      "BAD_REQUEST",
      `GitHub does not know this code (status ${response.status}): it is good once, within an hour of registering the App; register it again at ${SETUP_PAGE}`,
    );
  }
  if (!response.ok) {
    throw new HallpassError("GITHUB_UNAVAILABLE", `${what} answered ${response.status}`);
  }
  const parsed = conversion.safeParse(await response.json().catch(() => null));
  if (!parsed.success) {
    throw new HallpassError(
      "GITHUB_UNAVAILABLE",
      `${what} answered without ${parsed.error.issues.map((i) => i.path.join(".")).join(", ")}`,
    );
  }
  return parsed.data;
}

/** The parts of `app.yml` hallpass relies on; the rest goes to GitHub as written. */
const appManifest = z.looseObject({
  name: z.string().min(1),
  default_permissions: z.record(z.string(), z.enum(["read", "write", "admin"])),
  default_events: z.array(z.string()),
});

interface ProbotViews {
  readonly setup: {
    setupView(o: {
      name: string;
      version: string;
      description: string;
      createAppUrl: string;
      manifest: string;
    }): string;
  };
  readonly import: {
    importView(o: { name: string; GH_HOST: string; WEBHOOK_PROXY_URL: string }): string;
  };
  readonly success: { successView(o: { name: string }): string };
}

/** probot's `lib/` directory. */
const probotLib = path.dirname(createRequire(import.meta.url).resolve("probot"));

async function loadViews(): Promise<ProbotViews> {
  const view = (name: string) => import(pathToFileURL(path.join(probotLib, "views", name)).href);
  const [setup, imported, success] = await Promise.all(
    ["setup.js", "import.js", "success.js"].map(view),
  );
  return { setup, import: imported, success };
}

const ASSET_TYPES: Readonly<Record<string, string>> = {
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** probot's `static/` directory, which its pages link to under `/probot/static/`. */
async function loadAssets(): Promise<ReadonlyMap<string, { type: string; body: Buffer }>> {
  const dir = path.join(probotLib, "..", "static");
  const assets = new Map<string, { type: string; body: Buffer }>();
  for (const name of await readdir(dir)) {
    const type = ASSET_TYPES[path.extname(name)];
    if (type) assets.set(name, { type, body: await readFile(path.join(dir, name)) });
  }
  return assets;
}

/** `name` in `dir` or the nearest directory above it that has one. */
function findUp(name: string, dir: string): string | null {
  for (let at = dir; ; at = path.dirname(at)) {
    const file = path.join(at, name);
    if (existsSync(file)) return file;
    if (path.dirname(at) === at) return null;
  }
}

/** Probot's pages put their values into HTML (the manifest into a `'`-quoted attribute) as they are. */
function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );
}
