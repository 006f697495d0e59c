import type { AddressInfo } from "node:net";
import path from "node:path";
import Fastify, {
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { Registry } from "prom-client";
import { ZodError } from "zod";
import type { Config } from "#src/config.js";
import { HallpassError } from "#src/errors.js";
import { installedPages, setupFlow } from "#src/github/setup.js";
import { localUrl, startWebhookProxy, type WebhookProxy } from "#src/github/smee.js";
import { receiveWebhook } from "#src/github/webhooks.js";
import type { Logger } from "#src/log.js";
import { metricsRoute } from "#src/metrics.js";
import type { Runtime } from "#src/runtime.js";
import { isDatabaseUnreachable } from "#src/store/db.js";

export interface ServerOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly runtime: Runtime;
  /** Further routes (token service, ...), registered after the built-in ones. */
  readonly routes?: readonly FastifyPluginAsync[];
  /** The process's metrics, served at `/metrics` (see `createMetrics`). */
  readonly metrics?: Registry;
  /** The `.env` file the App setup flow writes to; default `.env` of the working directory. */
  readonly envFile?: string;
}

/** GitHub caps webhook payloads at 25 MB. */
const WEBHOOK_BODY_LIMIT = 25 * 1024 * 1024;
export const WEBHOOK_PATH = "/api/github/webhooks";

/**
 * Composes the HTTP app: health and readiness, metrics, GitHub webhooks (or
 * Probot's App setup flow while no App is configured), then the given
 * routes. It does not listen; the caller decides where. With
 * WEBHOOK_PROXY_URL, it forwards that smee.io channel's deliveries to itself
 * while it listens.
 */
export async function buildServer(options: ServerOptions) {
  const { config, log, runtime } = options;
  const app = Fastify({
    loggerInstance: log,
    logController: new RequestLog(),
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    trustProxy: config.production,
  });

  app.setErrorHandler(async (error, request, reply) => {
    if (error instanceof HallpassError) {
      if (!error.expose) request.log.error({ err: error }, error.message);
      return reply.code(error.status).send({ error: error.code, message: error.publicMessage });
    }
    if (error instanceof ZodError) {
      return reply.code(400).send({
        error: "BAD_REQUEST",
        message: error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "),
      });
    }
    const status = (error as { statusCode?: number }).statusCode;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return reply.code(status).send({ error: "BAD_REQUEST", message: (error as Error).message });
    }
    if (isDatabaseUnreachable(error)) {
      request.log.warn({ err: error }, "database unreachable");
      return reply.code(503).send({ error: "DB_UNAVAILABLE", message: "database unavailable" });
    }
    request.log.error({ err: error }, "unhandled error");
    return reply.code(500).send({ error: "INTERNAL", message: "internal error" });
  });

  app.get("/healthz", async () => ({ status: "ok" }));
  // Without the App, still ready: a load balancer must keep the setup flow reachable.
  const appStatus = config.app
    ? "configured"
    : `not configured yet: register the GitHub App at ${config.publicUrl}/`;
  app.get("/readyz", async (_request, reply) => {
    const readiness = await runtime.readiness();
    return reply.code(readiness.ready ? 200 : 503).send({
      status: readiness.ready ? "ready" : "not ready",
      ...readiness,
      app: appStatus,
    });
  });

  if (options.metrics) await app.register(metricsRoute(options.metrics));

  const appConfig = config.app;
  if (appConfig) {
    await app.register(async (scope) => {
      scope.addContentTypeParser(
        "application/json",
        { parseAs: "string", bodyLimit: WEBHOOK_BODY_LIMIT },
        (_request, body, done) => done(null, body),
      );
      const handler = async (
        request: { headers: Record<string, string | string[] | undefined>; body: unknown },
        reply: { code(n: number): { send(body: unknown): unknown } },
      ) => {
        const outcome = await receiveWebhook(runtime.requireDb(), appConfig.webhookSecret, {
          deliveryId: header(request.headers["x-github-delivery"]),
          event: header(request.headers["x-github-event"]),
          signature: header(request.headers["x-hub-signature-256"]),
          body: typeof request.body === "string" ? request.body : "",
        });
        return reply.code(outcome === "accepted" ? 202 : 200).send({ outcome });
      };
      scope.post(WEBHOOK_PATH, handler);
      // Apps registered through Probot's own manifest flow deliver to the root URL.
      scope.post("/", handler);
    });
    await app.register(installedPages());
  } else {
    await app.register(
      setupFlow({
        config,
        log,
        webhookPath: WEBHOOK_PATH,
        envFile: options.envFile ?? path.resolve(".env"),
      }),
    );
  }
  const source = config.webhookProxyUrl;
  if (source) {
    let proxy: WebhookProxy | null = null;
    app.addHook("onListen", async () => {
      const target = localUrl(app.server.address() as AddressInfo, WEBHOOK_PATH);
      proxy ??= startWebhookProxy({ source, target, log });
    });
    app.addHook("onClose", async () => {
      await proxy?.stop();
    });
  }

  for (const routes of options.routes ?? []) await app.register(routes);
  return app;
}

/** One line per request, naming the route pattern: query strings may carry codes or tokens. */
class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const line = {
      method: request.method,
      route: request.routeOptions.url ?? "(none)",
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
    };
    if (error) reply.log.error({ ...line, err: error }, "request failed");
    else reply.log.info(line, "request");
  }
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export type HallpassServer = Awaited<ReturnType<typeof buildServer>>;
