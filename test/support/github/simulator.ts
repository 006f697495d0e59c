/**
 * A local GitHub for tests: a real HTTP server on an ephemeral port serving
 * the REST endpoints hallpass calls, over an in-memory model that tests seed
 * (see `model.ts` and `tickets.ts`). It records every request, can fail the
 * next ones on purpose, and delivers webhooks to the App.
 *
 * ```ts
 * const sim = await GitHubSimulator.start({ appId: 1 });
 * sim.addOrg("acme", { members: ["alice"] });
 * sim.addRepo("acme/payments", { files: { ".github/hallpass.yml": "label: hallpass\n" } });
 * sim.addInstallation("acme");
 * // APP_ID=1 PRIVATE_KEY=sim.privateKeyPem GHE_HOST=sim.host GHE_PROTOCOL=http
 * ```
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { type AuthKind, type Credential, Credentials, generateAppKey } from "./auth.js";
import { Deliveries, type Delivery, type WebhookTarget } from "./deliveries.js";
import {
  type Backend,
  compile,
  error,
  notFound,
  type Reply,
  type RepoRoute,
  type RequestContext,
  type Requires,
  type Route,
} from "./http.js";
import type { ModelOptions, Repo } from "./model.js";
import type { View } from "./render.js";
import { appRoutes } from "./routes-app.js";
import { peopleRoutes } from "./routes-people.js";
import { repoRoutes } from "./routes-repos.js";
import { ticketRoutes } from "./routes-tickets.js";
import { TicketModel } from "./tickets.js";
import type { Webhook } from "./webhooks.js";

export interface SimulatorOptions extends ModelOptions {
  /** The App's private key (PKCS#8 or PKCS#1 PEM); a fresh RSA key when absent. */
  readonly privateKeyPem?: string;
  /** Delay before every answer, in milliseconds. */
  readonly latencyMs?: number;
}

export interface RecordedRequest {
  readonly method: string;
  /** Without the `/api/v3` prefix and the query string: `/repos/acme/payments/issues/7`. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** The parsed JSON body, the raw text of any other body, or `undefined`. */
  readonly body: unknown;
  readonly auth: AuthKind;
  readonly installationId: number | null;
  readonly status: number;
  /** Answered by `failNext`, not by the endpoint. */
  readonly fault: boolean;
  /** No endpoint of the simulator serves it (answered 404). */
  readonly unexpected: boolean;
  /** Wall-clock time the request arrived (ms since epoch), for measuring retry delays. */
  readonly at: number;
}

export interface RequestFilter {
  readonly method?: string;
  /** The exact path (without `/api/v3` and query), or a pattern. */
  readonly path?: string | RegExp;
  readonly status?: number;
}

export interface Fault {
  readonly method?: string;
  /** The exact path (without `/api/v3` and query), or a pattern. */
  readonly path: string | RegExp;
  /** How many matching requests fail (default 1). */
  readonly times?: number;
  /**
   * 500 and 502 are server errors. 403 and 429 are rate limits: a secondary
   * one (GitHub's message and `retry-after`) unless `rateLimit: "primary"`
   * (`x-ratelimit-remaining: 0` and `x-ratelimit-reset`).
   */
  readonly status: 500 | 502 | 403 | 429;
  /** Seconds, sent as `retry-after` (secondary) or used for `x-ratelimit-reset` (primary). Default 1. */
  readonly retryAfter?: number;
  readonly rateLimit?: "secondary" | "primary";
}

const SECONDARY_RATE_LIMIT =
  "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.";

export class GitHubSimulator extends TicketModel {
  /** The App's private key, for `PRIVATE_KEY`. */
  readonly privateKeyPem: string;
  /** Delay before every answer, in milliseconds; change it at any time. */
  latencyMs: number;
  /** Every request, in order of arrival. */
  readonly recorded: RecordedRequest[] = [];
  readonly #credentials: Credentials;
  readonly #deliveries: Deliveries;
  readonly #server: Server;
  readonly #faults: (Fault & { remaining: number })[] = [];
  #port = 0;
  #routes: { route: Route | RepoRoute; repo: boolean; match: ReturnType<typeof compile> }[] = [];

  private constructor(options: SimulatorOptions) {
    super(options);
    this.privateKeyPem = options.privateKeyPem ?? generateAppKey().privateKeyPem;
    this.latencyMs = options.latencyMs ?? 0;
    this.#credentials = new Credentials({
      appId: options.appId,
      privateKeyPem: this.privateKeyPem,
      now: this.now,
    });
    this.#deliveries = new Deliveries(() => this.nextId(), this.now);
    this.#server = createServer((req, res) => {
      this.#serve(req, res).catch((cause: unknown) => {
        console.error("GitHub simulator failed on", req.method, req.url, cause);
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ message: "Simulator error" }));
      });
    });
  }

  /** Starts a simulator on an ephemeral port of 127.0.0.1. */
  static async start(options: SimulatorOptions): Promise<GitHubSimulator> {
    const sim = new GitHubSimulator(options);
    await new Promise<void>((resolve) => sim.#server.listen(0, "127.0.0.1", resolve));
    sim.#port = (sim.#server.address() as AddressInfo).port;
    const backend: Backend = {
      model: sim,
      view: sim.view,
      credentials: sim.#credentials,
      deliveries: sim.#deliveries,
    };
    const plain = [...appRoutes(backend), ...peopleRoutes(backend)];
    const repo = [...ticketRoutes(backend), ...repoRoutes(backend)];
    sim.#routes = [
      ...plain.map((route) => ({ route, repo: false, match: compile(route.pattern) })),
      ...repo.map((route) => ({ route, repo: true, match: compile(route.pattern) })),
    ];
    return sim;
  }

  /** `http://127.0.0.1:<port>`: the web URL. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** `http://127.0.0.1:<port>/api/v3`: the REST API base URL, as GitHub Enterprise Server has it. */
  get apiUrl(): string {
    return `${this.url}/api/v3`;
  }

  /** `127.0.0.1:<port>`, for `GHE_HOST` (with `GHE_PROTOCOL=http`). */
  get host(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /**
   * The environment that points the hallpass server (Probot) at this
   * simulator as a GitHub Enterprise Server: API base `http://<host>/api/v3`.
   */
  appEnv(webhookSecret: string): Record<string, string> {
    return {
      APP_ID: String(this.app.id),
      PRIVATE_KEY: this.privateKeyPem,
      WEBHOOK_SECRET: webhookSecret,
      GHE_HOST: this.host,
      GHE_PROTOCOL: "http",
    };
  }

  get view(): View {
    return { model: this, api: this.apiUrl, web: this.url };
  }

  async close(): Promise<void> {
    await this.#deliveries.settled();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve, reject) =>
      this.#server.close((err) => (err ? reject(err) : resolve())),
    );
  }

  // --- recording and faults -------------------------------------------------

  /** Recorded requests matching the filter, in order of arrival. */
  requests(filter: RequestFilter = {}): RecordedRequest[] {
    return this.recorded.filter((r) => matches(filter, r));
  }

  /** Requests no endpoint of the simulator serves (answered 404); a test usually expects none. */
  get unexpected(): RecordedRequest[] {
    return this.recorded.filter((r) => r.unexpected);
  }

  /** Forgets recorded requests and pending faults, e.g. between tests sharing a simulator. */
  clearRequests(): void {
    this.recorded.length = 0;
    this.#faults.length = 0;
  }

  /** Makes the next `times` requests matching `fault` fail with its status. */
  failNext(fault: Fault): void {
    this.#faults.push({ ...fault, remaining: fault.times ?? 1 });
  }

  // --- tokens and webhooks --------------------------------------------------

  /** A user access token for the login, accepted by `GET /user` and the read endpoints. */
  userToken(login: string): string {
    return this.#credentials.issueUserToken(this.user(login).login);
  }

  /** Where webhooks go: the App's base URL and webhook secret. */
  set webhookTarget(target: WebhookTarget | null) {
    this.#deliveries.target = target;
  }

  get webhookTarget(): WebhookTarget | null {
    return this.#deliveries.target;
  }

  /**
   * Delivers a webhook (from a builder of `webhooks.ts`) to `webhookTarget`
   * and records it for `GET /app/hook/deliveries`. `drop: true` records a
   * failed delivery the App never received.
   */
  deliver(
    webhook: Webhook,
    options: { deliveryId?: string; drop?: boolean } = {},
  ): Promise<{ delivery: Delivery; response: Response | null }> {
    if (!options.drop && !this.#deliveries.target) {
      throw new Error("simulator: set webhookTarget before delivering webhooks");
    }
    return this.#deliveries.deliver(webhook, options);
  }

  /** Every delivery made, oldest first (redeliveries included). */
  get deliveries(): readonly Delivery[] {
    return this.#deliveries.all;
  }

  /** Resolves when redeliveries requested through the API have been answered. */
  settled(): Promise<void> {
    return this.#deliveries.settled();
  }

  // --- HTTP -------------------------------------------------------------------

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const url = new URL(req.url ?? "/", this.url);
    const rawPath = url.pathname.replace(/^\/api\/v3(?=\/|$)/, "").replace(/(.)\/+$/, "$1") || "/";
    // Recorded decoded (`contents/.github/hallpass.yml`, not `.github%2Fhallpass.yml`); routed raw.
    const path = safeDecode(rawPath);
    const query = Object.fromEntries(url.searchParams);
    const method = (req.method ?? "GET").toUpperCase();
    const body = await readBody(req);
    const credential = await this.#credentials.identify(req.headers.authorization);
    if (this.latencyMs > 0) await sleep(this.latencyMs);

    const fault = this.#takeFault(method, path);
    let reply: Reply;
    let served = true;
    if (fault) {
      reply = faultReply(fault, this.now());
    } else {
      const ctx = {
        method,
        path: rawPath,
        query,
        body,
        headers: req.headers,
        credential,
        params: {},
      };
      const routed = await this.#route(ctx, url.search);
      reply = routed ?? notFound();
      served = routed !== null;
    }

    const record: RecordedRequest = {
      method,
      path,
      query,
      body,
      auth: credential.kind,
      installationId: credential.kind === "installation" ? credential.installationId : null,
      status: reply.status,
      fault: fault !== null,
      unexpected: !served,
      at,
    };
    this.recorded.push(record);
    send(res, reply);
  }

  async #route(ctx: RequestContext, search: string): Promise<Reply | null> {
    const scoped = repoScope(ctx.path);
    for (const { route, repo, match } of this.#routes) {
      if (route.method !== ctx.method || repo !== (scoped !== null)) continue;
      const params = match(scoped ? scoped.rest : ctx.path);
      if (!params) continue;
      const refused = authorize(route.requires, ctx.credential);
      if (refused) return refused;
      const withParams = { ...ctx, params };
      if (!scoped) return (route as Route).handle(withParams);
      const found = this.#resolveRepo(scoped, ctx.credential, search);
      if ("status" in found) return found;
      return (route as RepoRoute).handle({ ...withParams, repo: found });
    }
    return null;
  }

  /** The repository of a `/repos/{o}/{r}` or `/repositories/{id}` path: 404 when unseen, a redirect for an old name. */
  #resolveRepo(scoped: RepoScope, credential: Credential, search: string): Repo | Reply {
    let repo: Repo | undefined;
    if ("id" in scoped) {
      repo = this.repos.get(scoped.id);
      if (repo?.deletedAt) repo = undefined;
    } else {
      repo = this.findRepo(scoped.owner, scoped.name);
      if (!repo) {
        const renamed = this.renames.findLast(
          (r) => r.from.toLowerCase() === `${scoped.owner}/${scoped.name}`.toLowerCase(),
        );
        const target = renamed ? this.repos.get(renamed.repoId) : undefined;
        if (target && !target.deletedAt) {
          const location = `${this.apiUrl}/repositories/${target.id}${scoped.rest}${search}`;
          return {
            status: 301,
            body: {
              message: "Moved Permanently",
              url: location,
              documentation_url: "https://docs.github.com/rest",
            },
            headers: { location },
          };
        }
      }
    }
    if (!repo) return notFound();
    if (credential.kind === "installation") {
      const installation = this.installations.get(credential.installationId);
      if (!installation || !this.installationCovers(installation, repo)) return notFound();
    }
    return repo;
  }

  #takeFault(method: string, path: string): Fault | null {
    const fault = this.#faults.find((f) =>
      matches({ method: f.method, path: f.path }, { method, path }),
    );
    if (!fault) return null;
    fault.remaining -= 1;
    if (fault.remaining <= 0) this.#faults.splice(this.#faults.indexOf(fault), 1);
    return fault;
  }
}

type RepoScope = ({ owner: string; name: string } | { id: number }) & { rest: string };

function repoScope(path: string): RepoScope | null {
  const byName = /^\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(path);
  if (byName?.[1] && byName[2]) {
    return {
      owner: decodeURIComponent(byName[1]),
      name: decodeURIComponent(byName[2]),
      rest: byName[3] ?? "",
    };
  }
  const byId = /^\/repositories\/(\d+)(\/.*)?$/.exec(path);
  if (byId?.[1]) return { id: Number(byId[1]), rest: byId[2] ?? "" };
  return null;
}

/** GitHub's answer to a credential the route does not accept, or null when it does. */
function authorize(requires: Requires, credential: Credential): Reply | null {
  if (credential.kind === "invalid") return error(401, credential.message);
  if (credential.kind === "none") return error(401, "Requires authentication");
  if (requires === "app") {
    return credential.kind === "app" ? null : error(401, "A JSON web token could not be decoded");
  }
  if (credential.kind === "app") return error(401, "Bad credentials");
  if (requires === "user" && credential.kind !== "user") {
    return error(403, "Resource not accessible by integration");
  }
  return null;
}

function matches(
  filter: RequestFilter,
  request: { method: string; path: string; status?: number },
): boolean {
  if (filter.method && filter.method.toUpperCase() !== request.method) return false;
  if (filter.status !== undefined && filter.status !== request.status) return false;
  if (filter.path === undefined) return true;
  return typeof filter.path === "string"
    ? filter.path === request.path
    : filter.path.test(request.path);
}

function faultReply(fault: Fault, now: Date): Reply {
  const retryAfter = fault.retryAfter ?? 1;
  if (fault.status === 500 || fault.status === 502) {
    return error(fault.status, fault.status === 500 ? "Server Error" : "Bad Gateway");
  }
  if (fault.rateLimit === "primary") {
    const reset = Math.ceil(now.getTime() / 1000 + retryAfter);
    return {
      ...error(fault.status, "API rate limit exceeded for installation."),
      headers: {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-used": "5000",
        "x-ratelimit-reset": String(reset),
        "x-ratelimit-resource": "core",
      },
    };
  }
  return {
    status: fault.status,
    body: {
      message: SECONDARY_RATE_LIMIT,
      documentation_url:
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
    },
    headers: { "retry-after": String(retryAfter) },
  };
}

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = {
    "x-github-request-id": `SIM:${Math.random().toString(16).slice(2, 10).toUpperCase()}`,
    "x-github-api-version-selected": "2022-11-28",
    "x-ratelimit-limit": "5000",
    "x-ratelimit-remaining": "4999",
    "x-ratelimit-used": "1",
    "x-ratelimit-resource": "core",
    "x-ratelimit-reset": String(Math.ceil(Date.now() / 1000) + 3600),
    ...reply.headers,
  };
  if (reply.status === 204 || reply.body === undefined) {
    res.writeHead(reply.status, headers).end();
    return;
  }
  const isText = typeof reply.body === "string";
  headers["content-type"] ??= isText
    ? "text/plain; charset=utf-8"
    : "application/json; charset=utf-8";
  res.writeHead(reply.status, headers).end(isText ? reply.body : JSON.stringify(reply.body));
}
