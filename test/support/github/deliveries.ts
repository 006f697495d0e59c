/**
 * Webhook deliveries the simulated GitHub made to the App, for the App's
 * "find and replay missed deliveries" path: `GET /app/hook/deliveries` lists
 * them, `POST /app/hook/deliveries/{id}/attempts` sends one again.
 */
import type { components } from "@octokit/openapi-types";
import { iso } from "./render.js";
import { sendWebhook, type Webhook } from "./webhooks.js";

export interface Delivery {
  readonly id: number;
  /** The `X-GitHub-Delivery` header; a redelivery keeps the original's. */
  readonly guid: string;
  readonly event: string;
  readonly action: string | null;
  readonly installationId: number | null;
  readonly repositoryId: number | null;
  readonly payload: object;
  readonly deliveredAt: Date;
  readonly redelivery: boolean;
  /** The App's HTTP status; 0 when nothing answered (or the delivery was dropped on purpose). */
  readonly statusCode: number;
  readonly durationMs: number;
}

export interface WebhookTarget {
  /** The App's base URL; deliveries go to `<url>/api/github/webhooks`. */
  readonly url: string;
  readonly secret: string;
}

export class Deliveries {
  readonly all: Delivery[] = [];
  target: WebhookTarget | null = null;
  readonly #nextId: () => number;
  readonly #now: () => Date;
  readonly #pending = new Set<Promise<unknown>>();

  constructor(nextId: () => number, now: () => Date) {
    this.#nextId = nextId;
    this.#now = now;
  }

  /**
   * Delivers a webhook to the target and records it. With `drop: true` the
   * App never sees it and the delivery is recorded as failed — a missed delivery.
   */
  async deliver(
    webhook: Webhook,
    options: { deliveryId?: string; drop?: boolean; redelivery?: boolean } = {},
  ): Promise<{ delivery: Delivery; response: Response | null }> {
    const guid = options.deliveryId ?? crypto.randomUUID();
    const started = performance.now();
    let response: Response | null = null;
    if (!options.drop && this.target) {
      try {
        response = await sendWebhook(this.target.url, {
          secret: this.target.secret,
          event: webhook.event,
          payload: webhook.payload,
          deliveryId: guid,
        });
        await response.clone().text();
      } catch {
        response = null;
      }
    }
    const payload = webhook.payload as Record<string, unknown>;
    const delivery: Delivery = {
      id: this.#nextId(),
      guid,
      event: webhook.event,
      action: typeof payload.action === "string" ? payload.action : null,
      installationId: idOf(payload.installation),
      repositoryId: idOf(payload.repository),
      payload: webhook.payload,
      deliveredAt: this.#now(),
      redelivery: options.redelivery ?? false,
      statusCode: response?.status ?? 0,
      durationMs: performance.now() - started,
    };
    this.all.push(delivery);
    return { delivery, response };
  }

  /** Sends a recorded delivery again, in the background, as GitHub does after answering 202. */
  redeliver(id: number): Delivery | undefined {
    const original = this.all.find((d) => d.id === id);
    if (!original) return undefined;
    const sending = this.deliver({ event: original.event, payload: original.payload } as Webhook, {
      deliveryId: original.guid,
      redelivery: true,
    }).finally(() => this.#pending.delete(sending));
    this.#pending.add(sending);
    return original;
  }

  /** Resolves when every redelivery in flight has been answered. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  find(id: number): Delivery | undefined {
    return this.all.find((d) => d.id === id);
  }
}

export function hookDeliveryItem(delivery: Delivery): components["schemas"]["hook-delivery-item"] {
  return {
    id: delivery.id,
    guid: delivery.guid,
    delivered_at: iso(delivery.deliveredAt),
    redelivery: delivery.redelivery,
    duration: Math.round(delivery.durationMs) / 1000,
    status: deliveryStatus(delivery.statusCode),
    status_code: delivery.statusCode,
    event: delivery.event,
    action: delivery.action,
    installation_id: delivery.installationId,
    repository_id: delivery.repositoryId,
    throttled_at: null,
  };
}

export function hookDelivery(
  delivery: Delivery,
  url: string,
): components["schemas"]["hook-delivery"] {
  return {
    ...hookDeliveryItem(delivery),
    id: delivery.id,
    installation_id: delivery.installationId,
    repository_id: delivery.repositoryId,
    url,
    request: {
      headers: {
        "X-GitHub-Delivery": delivery.guid,
        "X-GitHub-Event": delivery.event,
        "Content-Type": "application/json",
      },
      payload: delivery.payload as Record<string, unknown>,
    },
    response: { headers: {}, payload: null },
  };
}

function deliveryStatus(code: number): string {
  if (code === 0) return "failed to connect to host";
  return code >= 200 && code < 300 ? "OK" : `Invalid HTTP Response: ${code}`;
}

function idOf(value: unknown): number | null {
  if (value === null || typeof value !== "object") return null;
  const id = (value as Record<string, unknown>).id;
  return typeof id === "number" ? id : null;
}
