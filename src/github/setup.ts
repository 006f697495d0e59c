import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "#src/config.js";
import type { Logger } from "#src/log.js";

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;
type SetupAppFactory = (options: {
  host: string;
  port: number;
  log: Logger;
}) => () => Promise<NodeHandler>;

/**
 * Probot's GitHub App setup flow (the manifest flow, built from `app.yml`),
 * served while no App credentials are configured: `/` leads to a page that
 * registers the App on GitHub and writes APP_ID, PRIVATE_KEY and
 * WEBHOOK_SECRET to `.env`; a restart then starts the App.
 *
 * Probot exports this flow only inside `run()`, which would start a second
 * server, so its module is loaded by file path from the pinned probot version.
 */
export async function setupFlow(config: Config, log: Logger): Promise<FastifyPluginAsync> {
  // hallpass never opens a smee.io channel on its own (it needs the network and npx).
  process.env.NO_SMEE_SETUP ??= "true";
  const entry = createRequire(import.meta.url).resolve("probot");
  const module = (await import(new URL("./apps/setup.js", pathToFileURL(entry)).href)) as {
    setupAppFactory: SetupAppFactory;
  };
  const handler = await module.setupAppFactory({
    host: config.host,
    port: config.port,
    log: log.child({ name: "setup" }),
  })();

  const forward = async (request: FastifyRequest, reply: FastifyReply) => {
    if (typeof request.body === "string") request.raw.body = request.body;
    reply.hijack();
    const handled = await handler(request.raw, reply.raw);
    if (!handled) reply.raw.writeHead(404, { "content-type": "text/plain" }).end("Not Found");
  };

  return async (scope) => {
    // The setup handler reads the raw body itself.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "string" }, (_request, body, done) =>
      done(null, body),
    );
    scope.get("/", forward);
    scope.get("/probot", forward);
    scope.get("/probot/*", forward);
    scope.post("/probot/import", forward);
  };
}
