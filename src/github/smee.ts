import type { AddressInfo } from "node:net";
import { SmeeClient } from "smee-client";
import type { Logger } from "#src/log.js";

/** A running forwarder of a smee.io channel's deliveries. */
export interface WebhookProxy {
  stop(): Promise<void>;
}

/**
 * Forwards the webhook deliveries of a smee.io channel (`WEBHOOK_PROXY_URL`)
 * to this server, as Probot does for local development: GitHub delivers to
 * the channel, which a server behind NAT can read but GitHub could not reach.
 * It returns at once; the client connects on its own, and reconnects after
 * network errors. A channel that cannot be reached is logged, never fatal.
 *
 * @example
 * const proxy = startWebhookProxy({
 *   source: "https://smee.io/abc123",
 *   target: "http://127.0.0.1:3000/api/github/webhooks",
 *   log,
 * });
 * await proxy.stop();
 */
export function startWebhookProxy(options: {
  readonly source: string;
  readonly target: string;
  readonly log: Logger;
}): WebhookProxy {
  const log = options.log.child({ component: "smee" });
  const client = new SmeeClient({
    source: options.source,
    target: options.target,
    logger: {
      // "Connected to …", "Forwarding … to …", "POST <target> - <status>".
      info: (message: unknown) => log.info(String(message)),
      error: (message: unknown, error?: unknown) =>
        message instanceof Error
          ? log.warn({ err: message }, "smee.io delivery not forwarded")
          : log.warn(error instanceof Error ? { err: error } : {}, `smee.io: ${String(message)}`),
    },
  });
  client.start().catch((error: unknown) => {
    log.warn(
      { err: error, source: options.source },
      "cannot connect to the smee.io channel (WEBHOOK_PROXY_URL): network errors are retried, an HTTP error is not",
    );
  });
  return { stop: () => client.stop() };
}

/**
 * The URL on this machine of a path of a server listening at `address`:
 * loopback when it listens on every interface.
 */
export function localUrl(address: AddressInfo, path: string): string {
  const any = address.address === "0.0.0.0" || address.address === "::";
  const host = any
    ? address.family === "IPv6"
      ? "[::1]"
      : "127.0.0.1"
    : address.family === "IPv6"
      ? `[${address.address}]`
      : address.address;
  return `http://${host}:${address.port}${path}`;
}
