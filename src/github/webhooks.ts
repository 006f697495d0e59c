import { verify } from "@octokit/webhooks-methods";
import { HallpassError } from "#src/errors.js";
import { type Db, notify } from "#src/store/db.js";
import { DELIVERIES_CHANNEL, recordDelivery } from "#src/store/deliveries.js";

export interface IncomingWebhook {
  readonly deliveryId: string | undefined;
  readonly event: string | undefined;
  readonly signature: string | undefined;
  /** The body exactly as received: the signature covers these bytes. */
  readonly body: string;
}

export type WebhookOutcome = "accepted" | "duplicate";

const DELIVERY_ID = /^[A-Za-z0-9-]{1,100}$/;
const EVENT_NAME = /^[a-z_]{1,64}$/;
const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

/**
 * Verifies a webhook delivery (HMAC SHA-256 over the raw body, timing-safe)
 * and stores it for the delivery worker, once per `X-GitHub-Delivery`.
 * Nothing is acted on here, so GitHub gets its answer in milliseconds.
 *
 * Every verified delivery is kept, as the bytes GitHub signed (whatever
 * they hold, a NUL included): one that is not a JSON object is stored as
 * given up, with the reason, and answered 400.
 */
export async function receiveWebhook(
  db: Db,
  secret: string,
  webhook: IncomingWebhook,
): Promise<WebhookOutcome> {
  const { deliveryId, event, signature, body } = webhook;
  if (!deliveryId || !DELIVERY_ID.test(deliveryId)) {
    throw new HallpassError("WEBHOOK_MALFORMED", "missing or malformed X-GitHub-Delivery header");
  }
  if (!event || !EVENT_NAME.test(event)) {
    throw new HallpassError("WEBHOOK_MALFORMED", "missing or malformed X-GitHub-Event header");
  }
  if (!signature || !SIGNATURE.test(signature)) {
    throw new HallpassError(
      "WEBHOOK_SIGNATURE_INVALID",
      "missing or malformed X-Hub-Signature-256 header",
    );
  }
  // GitHub never sends an empty body, and `verify` throws on one instead of answering.
  if (body === "") throw new HallpassError("WEBHOOK_MALFORMED", "the delivery has no body");
  if (!(await verify(secret, body, signature))) {
    throw new HallpassError("WEBHOOK_SIGNATURE_INVALID", "signature does not match the payload");
  }
  const bytes = Buffer.from(body, "utf8");
  const fields = jsonObject(body);
  if (!fields) {
    const refused = "payload is not a JSON object";
    const delivery = { id: deliveryId, event, action: null, installationId: null, ticketKey: null };
    await recordDelivery(db, { ...delivery, body: bytes, refused });
    throw new HallpassError("WEBHOOK_MALFORMED", refused);
  }
  const isNew = await recordDelivery(db, {
    id: deliveryId,
    event,
    action: typeof fields.action === "string" ? fields.action.slice(0, 64) : null,
    installationId: numberAt(fields, "installation", "id"),
    ticketKey: ticketKeyOf(fields),
    body: bytes,
  });
  if (!isNew) return "duplicate";
  // Wakes a delivery worker at once (on any replica) instead of at its next poll.
  await notify(db, DELIVERIES_CHANNEL, "");
  return "accepted";
}

/** The body as a JSON object, or null when it is not one. */
export function jsonObject(body: string): Record<string, unknown> | null {
  let payload: unknown;
  try {
    payload = JSON.parse(body);
  } catch {
    return null;
  }
  return payload !== null && typeof payload === "object" && !Array.isArray(payload)
    ? (payload as Record<string, unknown>)
    : null;
}

/** `repo_id#number` for events about one issue or pull request. */
export function ticketKeyOf(payload: Record<string, unknown>): string | null {
  const repoId = numberAt(payload, "repository", "id");
  const number =
    numberAt(payload, "issue", "number") ??
    numberAt(payload, "pull_request", "number") ??
    (typeof payload.number === "number" ? payload.number : null);
  return repoId !== null && number !== null ? `${repoId}#${number}` : null;
}

function numberAt(payload: Record<string, unknown>, key: string, field: string): number | null {
  const value = payload[key];
  if (value === null || typeof value !== "object") return null;
  const n = (value as Record<string, unknown>)[field];
  return typeof n === "number" && Number.isSafeInteger(n) ? n : null;
}
