import type { BodySet } from "#src/store/ticket-bodies.js";

interface Person {
  readonly id: number;
  readonly login: string;
}

/** The parts of an `issues` or `pull_request` payload that say who set the body. */
export interface TicketPayload {
  readonly action: string;
  readonly sender?: Person | null;
  /** An edit's `changes`: `body` is there when the edit changed the body. */
  readonly changes?: unknown;
  readonly item: {
    readonly body?: string | null;
    readonly user?: Person | null;
    readonly updated_at: string;
  };
}

/**
 * Who set the ticket's body, when this event says: its author when it was
 * opened, the sender of an edit that changed the body. Null for every other
 * event (they say nothing of who wrote the body they carry).
 */
export function bodySetBy(payload: TicketPayload): BodySet | null {
  const by =
    payload.action === "opened"
      ? payload.item.user
      : payload.action === "edited" &&
          typeof payload.changes === "object" &&
          payload.changes !== null &&
          "body" in payload.changes
        ? payload.sender
        : null;
  const at = new Date(payload.item.updated_at);
  if (!by || Number.isNaN(at.getTime())) return null;
  return { body: payload.item.body ?? "", by: { id: by.id, login: by.login }, at };
}
