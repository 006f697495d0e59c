/**
 * hallpass as it is deployed, for end-to-end stories. In their own
 * processes: `hallpass serve` (the build `npm run build` makes) with the
 * access proxy, the companion Action's committed bundle, and the CLI. In the
 * test process, what they talk to: the GitHub simulator as a GitHub
 * Enterprise Server, seeded with acme/payments, its policy and CODEOWNERS
 * (`seedAcme`); the GitHub Actions OIDC issuer and a job's ID token
 * endpoint; and the payments API behind the proxy. The server runs on
 * Postgres when TEST_DATABASE_URL is set, else on its embedded database
 * (operator commands then reach it through its admin socket). Tests see the
 * server only from outside: GitHub's comments, the Action's outputs, the
 * proxy's answers, what reached the upstream, and the CLI.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { ExpectStatic } from "vitest";
import { bundleServer } from "../../scripts/bundle-server.mjs";
import { runPost, runStep, type StepResult, startIdTokenEndpoint } from "../support/action.js";
import { createTestDb, primaryBackend, type TestDb } from "../support/db.js";
import { cleanEnv } from "../support/env.js";
import { type ClaimedRepo, dispatchRunClaims, pullRequestRunClaims } from "../support/exchange.js";
import { GitHubSimulator } from "../support/github/simulator.js";
import { issueCommentEvent, issuesEvent, type Webhook } from "../support/github/webhooks.js";
import { freePort } from "../support/net.js";
import { type OidcIssuer, startOidcIssuer } from "../support/oidc-issuer.js";
import { spawnServe } from "../support/serve.js";
import { type Seen, startUpstream, type Upstream } from "../support/upstream.js";
import { operatorYaml, seedAcme } from "../tickets/fixtures.js";
import type { PostedNotice } from "./comments.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
export const REPO = "acme/payments";
export const RESOURCE = "payments-api";
/** The payments API's real credential: only the proxy holds it. */
export const CREDENTIAL = `payments-upstream-${randomBytes(8).toString("hex")}`;
const WEBHOOK_SECRET = "e2e-webhook-secret";

let built: { dir: string; cli: Promise<string>; users: number } | null = null;

/**
 * `dist/main.js` as `scripts/build.mjs` bundles it, built into a directory
 * of its own under `node_modules/.cache` (where the bundle's external
 * packages resolve), so that a concurrent `npm run build` cannot pull it
 * away and a fresh clone needs no build first. A process of the bundle
 * starts in about a second, of the sources under tsx in four. Built once for
 * the stacks that run at the same time; removed when the last one closes.
 */
function useBuiltCli(): Promise<string> {
  if (!built) {
    const parent = path.join(ROOT, "node_modules/.cache");
    mkdirSync(parent, { recursive: true });
    // What killed test workers left behind more than an hour ago.
    for (const entry of readdirSync(parent)) {
      const stale = path.join(parent, entry);
      if (entry.startsWith("hallpass-e2e-") && statSync(stale).mtimeMs < Date.now() - 3_600_000)
        rmSync(stale, { recursive: true, force: true });
    }
    const dir = mkdtempSync(path.join(parent, "hallpass-e2e-"));
    const cli = bundleServer(dir, { root: ROOT });
    built = { dir, cli, users: 0 };
  }
  built.users += 1;
  return built.cli;
}

async function releaseBuiltCli(): Promise<void> {
  if (!built || --built.users > 0) return;
  const { dir } = built;
  built = null;
  await rm(dir, { recursive: true, force: true });
}

export interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** One call through the proxy, as the caller saw it. */
export interface ProxyCall {
  /** Its `X-Request-Id`, which the proxy passes on to the API. */
  readonly requestId: string;
  readonly token: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** The refusal's code (`SCOPE_NOT_GRANTED`, `TOKEN_REVOKED`, ...), null when forwarded. */
  readonly error: string | null;
}

/**
 * A story's client of the payments API through the proxy. Its calls carry
 * request ids of its own (`<tag>-<n>`, passed on by the proxy), so that
 * stories sharing a server each count what reached the API for them.
 */
export interface ApiClient {
  call(token: string, method: string, apiPath: string): Promise<ProxyCall>;
  /** The calls made with `token`, oldest first. */
  callsWith(token: string): ProxyCall[];
  /** Of the calls made with `token`: how many the API answered 200, and how many the proxy refused as revoked. */
  tally(token: string): { forwarded: number; revoked: number };
  /** What reached the API of this client's calls (and of `requestId`s it handed out). */
  seen(): Seen[];
  /** A request id of this client, for a call made elsewhere (a command's). */
  nextRequestId(): string;
}

export interface Job {
  readonly main: StepResult;
  /** The post step, as the runner runs it when the job ends. */
  post(): Promise<StepResult>;
}

export interface Stack {
  readonly sim: GitHubSimulator;
  readonly issuer: OidcIssuer;
  readonly upstream: Upstream;
  /** The server's public URL (`HALLPASS_URL`). */
  readonly url: string;
  readonly proxyUrl: string;
  /** What the server wrote to stdout and stderr so far (JSON log lines). */
  output(): string;
  /** Delivers a webhook as GitHub does; throws unless hallpass accepted it. */
  deliver(webhook: Webhook): Promise<void>;
  /** `author` opens an issue of acme/payments with the hallpass label; its number, once delivered. */
  openIssue(author: string, body: string): Promise<number>;
  /** `author` comments on a ticket of acme/payments, delivered. */
  comment(number: number, author: string, body: string): Promise<void>;
  /** hallpass's comments on a ticket of acme/payments, oldest first. */
  notices(number: number): PostedNotice[];
  /** The claims of a `workflow_dispatch` run by `actor` on the default branch. */
  dispatchRun(actor: string): Record<string, unknown>;
  /** The claims of a `pull_request` run of pull request `number` at its merge commit now. */
  pullRequestRun(number: number): Record<string, unknown>;
  /** The Action's main step in a job of its own, whose ID tokens carry `claims`. */
  action(claims: Record<string, unknown>, inputs?: Record<string, string>): Promise<Job>;
  /** A client of the payments API through the proxy, its request ids starting with `tag`. */
  api(tag: string): ApiClient;
  /** An operator's `hallpass <args>` where the server runs (same database, master key). */
  operator(args: readonly string[]): Promise<Outcome>;
  /** A person's `hallpass <args>`: only `env`, no login, no `.env`. */
  person(args: readonly string[], env: Record<string, string>): Promise<Outcome>;
  /** SIGTERM, then waits for the server; resolves to its exit code. */
  stopServer(): Promise<number | null>;
  close(): Promise<void>;
}

/** Starts the simulator, issuer, upstream and `hallpass serve`, and waits until it is ready. */
export async function startStack(): Promise<Stack> {
  const cli = await useBuiltCli().catch(async (error: unknown) => {
    await releaseBuiltCli();
    throw error;
  });
  const [sim, issuer, upstream] = await Promise.all([
    GitHubSimulator.start({ appId: 8100 + Math.floor(Math.random() * 1000) }),
    startOidcIssuer(),
    startUpstream(),
  ]);
  const ids = seedAcme(sim);
  const simRepo: ClaimedRepo = { id: ids.repoId, ownerId: ids.ownerId, fullName: REPO };
  const dir = await mkdtemp(path.join(tmpdir(), "hallpass-e2e-"));
  const operatorFile = path.join(dir, "operator.yml");
  await writeFile(
    operatorFile,
    `${operatorYaml(ids)}    upstream: ${upstream.url}
    credential: { header: authorization, value: env:PAYMENTS_API_TOKEN, prefix: "Bearer " }
`,
  );
  const db: TestDb | null = primaryBackend === "postgres" ? await createTestDb("postgres") : null;
  const [port, proxyPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${port}`;
  const proxyUrl = `http://127.0.0.1:${proxyPort}`;
  // What the server and the operator's commands share: the database and its master key.
  const storage: Record<string, string> = {
    HALLPASS_DATA_DIR: path.join(dir, "data"),
    HALLPASS_CONFIG: operatorFile,
    ...(db
      ? { DATABASE_URL: db.url ?? "", HALLPASS_MASTER_KEY: randomBytes(32).toString("base64") }
      : {}),
  };
  // No .env of the checkout: the server reads one from its working directory.
  const server = spawnServe(
    {
      ...sim.appEnv(WEBHOOK_SECRET),
      ...storage,
      HOST: "127.0.0.1",
      PORT: String(port),
      PROXY_PORT: String(proxyPort),
      HALLPASS_URL: url,
      HALLPASS_PROXY_URL: proxyUrl,
      HALLPASS_OIDC_ISSUER: issuer.url,
      PAYMENTS_API_TOKEN: CREDENTIAL,
      LOG_LEVEL: "info",
    },
    { entry: cli, cwd: dir },
  );
  const { child, exited } = server;
  let running = true;
  void exited.then(() => {
    running = false;
  });
  sim.webhookTarget = { url, secret: WEBHOOK_SECRET };

  let runs = 0;
  let closed = false;
  const xdg = path.join(dir, "no-login");

  const spawnCli = (args: readonly string[], env: NodeJS.ProcessEnv): Promise<Outcome> =>
    new Promise((resolve, reject) => {
      const process_ = spawn(process.execPath, [cli, ...args], {
        cwd: dir,
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      process_.stdout.on("data", (chunk) => {
        stdout += chunk;
      });
      process_.stderr.on("data", (chunk) => {
        stderr += chunk;
      });
      process_.once("error", reject);
      process_.once("close", (code) => resolve({ code, stdout, stderr }));
    });

  const stopServer = async (): Promise<number | null> => {
    if (!running) return exited;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  const stack: Stack = {
    sim,
    issuer,
    upstream,
    url,
    proxyUrl,
    output: server.output,
    async deliver(webhook) {
      const { response } = await sim.deliver(webhook);
      if (response?.status !== 202) {
        throw new Error(`hallpass did not accept ${webhook.event}: ${response?.status}`);
      }
    },
    async openIssue(author, body) {
      const issue = sim.openIssue(REPO, {
        author,
        title: "Access to payments-api",
        body,
        labels: ["hallpass"],
      });
      await stack.deliver(issuesEvent(sim, "opened", issue));
      return issue.number;
    },
    comment: (number, author, body) =>
      stack.deliver(issueCommentEvent(sim, "created", sim.comment(REPO, number, { author, body }))),
    notices: (number) =>
      sim
        .commentsOn(REPO, number)
        .filter((c) => c.author === sim.app.bot)
        .map((c) => ({
          heading: /^### (.*)$/m.exec(c.body)?.[1] ?? "",
          body: c.body,
        })),
    dispatchRun: (actor) => dispatchRunClaims(sim, simRepo, actor),
    pullRequestRun: (number) => ({
      ...pullRequestRunClaims(sim, simRepo, number),
      actor: sim.issue(REPO, number).author,
      actor_id: String(sim.user(sim.issue(REPO, number).author).id),
    }),
    async action(claims, extra = {}) {
      runs += 1;
      // GitHub's ID token endpoint for this job alone: jobs may run side by side.
      const idTokens = await startIdTokenEndpoint(issuer, {
        run_id: String(9000 + runs),
        run_number: String(runs),
        ...claims,
      });
      const inputs = { url, resource: RESOURCE, ...extra };
      try {
        const main = await runStep({ inputs, env: idTokens.env });
        return { main, post: () => runPost(main, { inputs }) };
      } finally {
        await idTokens.close();
      }
    },
    api(tag) {
      const calls: ProxyCall[] = [];
      let count = 0;
      const nextRequestId = () => `${tag}-${++count}`;
      return {
        nextRequestId,
        callsWith: (token) => calls.filter((c) => c.token === token),
        tally(token) {
          const mine = calls.filter((c) => c.token === token);
          return {
            forwarded: mine.filter((c) => c.status === 200).length,
            revoked: mine.filter((c) => c.error === "TOKEN_REVOKED").length,
          };
        },
        seen: () =>
          upstream.seen.filter((r) => String(r.headers["x-request-id"]).startsWith(`${tag}-`)),
        async call(token, method, apiPath) {
          const requestId = nextRequestId();
          const response = await fetch(`${proxyUrl}/${RESOURCE}${apiPath}`, {
            method,
            headers: {
              authorization: `Bearer ${token}`,
              "x-request-id": requestId,
              ...(method === "GET" ? {} : { "content-type": "application/json" }),
            },
            ...(method === "GET" ? {} : { body: "{}" }),
          });
          const text = await response.text();
          const error =
            response.status >= 400 ? ((JSON.parse(text) as { error?: string }).error ?? "") : null;
          const made = { requestId, token, method, path: apiPath, status: response.status, error };
          calls.push(made);
          return made;
        },
      };
    },
    operator: (args) => spawnCli(args, cleanEnv({ ...storage, XDG_CONFIG_HOME: xdg })),
    person(args, env) {
      const base = cleanEnv();
      delete base.GH_TOKEN;
      delete base.GITHUB_TOKEN;
      return spawnCli(args, { ...base, XDG_CONFIG_HOME: xdg, ...env });
    },
    stopServer,
    async close() {
      if (closed) return;
      closed = true;
      await stopServer();
      await Promise.all([sim.close(), issuer.close(), upstream.close()]);
      await db?.close();
      await rm(dir, { recursive: true, force: true });
      await releaseBuiltCli();
    },
  };

  const deadline = Date.now() + 60_000;
  for (;;) {
    const status = (await fetch(`${url}/readyz`).catch(() => null))?.status;
    if (status === 200) break;
    if (!running || Date.now() > deadline) {
      await stack.close();
      throw new Error(`hallpass serve did not become ready:\n${server.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return stack;
}

/**
 * Waits for hallpass's comment with this heading on the ticket (the first
 * such), and returns it. `expect` is the test's own: stories run concurrently.
 */
export async function noticeOn(
  expect: ExpectStatic,
  s: Stack,
  number: number,
  heading: string,
  timeoutMs = 20_000,
): Promise<PostedNotice> {
  await expect
    .poll(() => s.notices(number).map((n) => n.heading), { timeout: timeoutMs, interval: 100 })
    .toContain(heading);
  return s.notices(number).find((n) => n.heading === heading) as PostedNotice;
}

/** Calls through the proxy with `token` until it is refused (401); each try is a call of `api`. */
export async function untilRefused(
  expect: ExpectStatic,
  api: ApiClient,
  token: string,
  method: string,
  apiPath: string,
): Promise<void> {
  await expect
    .poll(async () => (await api.call(token, method, apiPath)).status, {
      timeout: 20_000,
      interval: 100,
    })
    .toBe(401);
}

/**
 * One step of a story: runs `fn`, and on failure prefixes the error with the
 * step's name, so a failed story says where it broke.
 */
export async function step<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof Error) error.message = `[${name}] ${error.message}`;
    throw error;
  }
}
