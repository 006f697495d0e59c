/**
 * A local GitHub for tests: a real HTTP server on an ephemeral port serving
 * the REST endpoints hallpass calls, over an in-memory model that tests seed
 * (see `model.ts` and `tickets.ts`). It records every request, can fail the
 * next ones on purpose, enforces GitHub's rate limits when asked (see
 * `limits.ts`), and delivers webhooks to the App.
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
import { type Credential, Credentials, generateAppKey } from "./auth.js";
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
  readBody,
  safeDecode,
  send,
} from "./http.js";
import { RateLimiter, type RateLimitState, type RateLimits } from "./limits.js";
import type { ModelOptions, Repo } from "./model.js";
import { newClient, OAuthApp } from "./oauth.js";
import {
  type Fault,
  Faults,
  faultReply,
  matches,
  type RecordedRequest,
  type RequestFilter,
} from "./recording.js";
import type { View } from "./render.js";
import { appRoutes } from "./routes-app.js";
import { peopleRoutes } from "./routes-people.js";
import { repoRoutes } from "./routes-repos.js";
import { ticketRoutes } from "./routes-tickets.js";
import { TicketModel } from "./tickets.js";
import type { Webhook } from "./webhooks.js";

export type { RateLimitState, RateLimits } from "./limits.js";
export type { Fault, RecordedRequest, RequestFilter } from "./recording.js";

export interface SimulatorOptions extends ModelOptions {
  /** The App's private key (PKCS#8 or PKCS#1 PEM); a fresh RSA key when absent. */
  readonly privateKeyPem?: string;
  /** Delay before every answer, in milliseconds. */
  readonly latencyMs?: number;
  /**
   * GitHub's rate limits per installation (see `limits.ts`); `{}` for
   * GitHub's documented numbers. Absent: no limit, and every answer says
   * 4,999 of 5,000 remain.
   */
  readonly limits?: RateLimits;
}

export class GitHubSimulator extends TicketModel {
  /** The App's private key, for `PRIVATE_KEY`. */
  readonly privateKeyPem: string;
  /** Delay before every answer, in milliseconds; change it at any time. */
  latencyMs: number;
  /** Every request, in order of arrival. */
  readonly recorded: RecordedRequest[] = [];
  /** The App's OAuth client, its user tokens and the device flow (see `oauth.ts`). */
  readonly oauth: OAuthApp;
  readonly #credentials: Credentials;
  readonly #deliveries: Deliveries;
  readonly #server: Server;
  readonly #faults = new Faults();
  #limits: RateLimits | null = null;
  #limiter: RateLimiter | null = null;
  #port = 0;
  #routes: { route: Route | RepoRoute; repo: boolean; match: ReturnType<typeof compile> }[] = [];

  private constructor(options: SimulatorOptions) {
    super(options);
    this.privateKeyPem = options.privateKeyPem ?? generateAppKey().privateKeyPem;
    this.latencyMs = options.latencyMs ?? 0;
    this.limits = options.limits ?? null;
    const client = newClient(options.appId);
    this.#credentials = new Credentials({
      appId: options.appId,
      privateKeyPem: this.privateKeyPem,
      now: this.now,
      installationLive: (id) => this.installations.get(id)?.deletedAt === null,
      client,
    });
    this.oauth = new OAuthApp({ client, credentials: this.#credentials, now: this.now });
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
      oauth: sim.oauth,
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
   * simulator as a GitHub Enterprise Server: API base `http://<host>/api/v3`,
   * with the App's OAuth client.
   */
  appEnv(webhookSecret: string): Record<string, string> {
    return {
      APP_ID: String(this.app.id),
      PRIVATE_KEY: this.privateKeyPem,
      WEBHOOK_SECRET: webhookSecret,
      GITHUB_CLIENT_ID: this.oauth.clientId,
      GITHUB_CLIENT_SECRET: this.oauth.clientSecret,
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

  /**
   * The first request matching the filter, already recorded or yet to come:
   * for waiting on an app that acts in the background (after a webhook).
   */
  waitForRequest(filter: RequestFilter, timeoutMs = 5_000): Promise<RecordedRequest> {
    const seen = this.requests(filter)[0];
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = { filter, resolve };
      this.#waiters.add(waiter);
      setTimeout(() => {
        if (!this.#waiters.delete(waiter)) return;
        const made = this.recorded.map((r) => `${r.method} ${r.path} ${r.status}`).join("\n  ");
        reject(
          new Error(
            `simulator: no request ${describeFilter(filter)} in ${timeoutMs} ms; made:\n  ${made}`,
          ),
        );
      }, timeoutMs).unref();
    });
  }

  readonly #waiters = new Set<{
    filter: RequestFilter;
    resolve: (request: RecordedRequest) => void;
  }>();

  /** Forgets recorded requests and pending faults, e.g. between tests sharing a simulator. */
  clearRequests(): void {
    this.recorded.length = 0;
    this.#faults.clear();
  }

  /** Makes the next `times` requests matching `fault` fail with its status. */
  failNext(fault: Fault): void {
    this.#faults.add(fault);
  }

  /** The rate limits enforced (null: none). Setting them starts every count afresh. */
  get limits(): RateLimits | null {
    return this.#limits;
  }

  set limits(limits: RateLimits | null) {
    this.#limits = limits;
    this.#limiter = limits ? new RateLimiter(limits) : null;
  }

  /** Where the installation's primary limit stands (null without `limits`). */
  rateLimit(installationId: number): RateLimitState | null {
    return this.#limiter?.state(installationId) ?? null;
  }

  /**
   * An installation access token, as `POST /app/installations/{id}/access_tokens`
   * issues it: for a test that spends the installation's rate limit itself.
   */
  installationToken(installationId: number): string {
    return this.#credentials.issueInstallationToken(installationId).token;
  }

  readonly #holds: { filter: RequestFilter; reached: () => void; released: Promise<void> }[] = [];

  /**
   * Holds the next request matching `filter` before answering it, until
   * `release()`: GitHub as slow as a test needs it, to see what the App does
   * meanwhile. `reached` resolves when the request arrives.
   */
  holdNext(filter: RequestFilter): { reached: Promise<void>; release: () => void } {
    let reached = () => {};
    let release = () => {};
    const arrived = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.#holds.push({ filter, reached, released });
    return { reached: arrived, release };
  }

  // --- tokens and webhooks --------------------------------------------------

  /**
   * A user token of the App for the login (as `hallpass login` gets one),
   * accepted by `GET /user`, the read endpoints and "check a token".
   */
  userToken(login: string): string {
    return this.oauth.issueUserToken(this.user(login).login);
  }

  /**
   * A user token not issued to the App (a personal access token, another
   * app's): `GET /user` and the read endpoints accept it; "check a token"
   * does not know it.
   */
  otherUserToken(login: string): string {
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
    const held = this.#holds.findIndex((h) => matches(h.filter, { method, path }));
    if (held >= 0) {
      const [hold] = this.#holds.splice(held, 1);
      hold?.reached();
      await hold?.released;
    }

    const installationId = credential.kind === "installation" ? credential.installationId : null;
    // GitHub's rate limiter stands before the endpoints: a refused request meets no fault.
    const admitted =
      installationId !== null && this.#limiter ? this.#limiter.admit(installationId, method) : null;
    const fault = admitted?.refused ? null : this.#faults.take(method, path);
    const applied = fault ? (fault.applied ?? fault.status === undefined) : true;
    let reply: Reply = admitted?.refused ?? notFound();
    let served = true;
    if (!admitted?.refused && applied) {
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
    if (fault?.status !== undefined) {
      reply = faultReply({ ...fault, status: fault.status }, new Date(), installationId);
    }
    if (admitted) reply = { ...reply, headers: { ...admitted.headers, ...reply.headers } };
    if (fault?.delayMs) await sleep(fault.delayMs);

    const record: RecordedRequest = {
      method,
      path,
      query,
      body,
      auth: credential.kind,
      installationId,
      status: fault?.noAnswer ? 0 : reply.status,
      fault: fault !== null,
      unexpected: !served,
      at,
    };
    this.recorded.push(record);
    if (fault?.noAnswer === "close") res.destroy();
    // A hung answer is never sent: the client gives up, or `close()` ends the connection.
    else if (fault?.noAnswer !== "hang") send(res, reply);
    for (const waiter of this.#waiters) {
      if (!matches(waiter.filter, record)) continue;
      this.#waiters.delete(waiter);
      waiter.resolve(record);
    }
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
      const found = this.#resolveRepo(scoped, ctx, search);
      if ("status" in found) return found;
      return (route as RepoRoute).handle({ ...withParams, repo: found });
    }
    return null;
  }

  /** The repository of a `/repos/{o}/{r}` or `/repositories/{id}` path: 404 when unseen, a redirect for an old name. */
  #resolveRepo(
    scoped: RepoScope,
    { method, credential }: RequestContext,
    search: string,
  ): Repo | Reply {
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
          // 307 keeps the method and body of a write; fetch turns a 301 POST into a GET.
          return {
            status: method === "GET" || method === "HEAD" ? 301 : 307,
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
}

function describeFilter(filter: RequestFilter): string {
  return [filter.method ?? "*", filter.path ?? "*", filter.status ?? ""].join(" ").trim();
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
  if (requires === "none") return null;
  if (credential.kind === "invalid") return error(401, credential.message);
  if (credential.kind === "none") return error(401, "Requires authentication");
  if (requires === "app") {
    return credential.kind === "app" ? null : error(401, "A JSON web token could not be decoded");
  }
  if (requires === "client") {
    return credential.kind === "client" ? null : error(401, "Bad credentials");
  }
  if (credential.kind === "app" || credential.kind === "client") {
    return error(401, "Bad credentials");
  }
  if (requires === "user" && credential.kind !== "user") {
    return error(403, "Resource not accessible by integration");
  }
  return null;
}
