import { createHash } from "node:crypto";
import canonicalize from "canonicalize";

/** A JSON value as it may appear in an audit event. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json | undefined };

/** What a caller records; the log adds time and chain position. */
export interface AuditEventInput {
  /** Dotted event name, e.g. `grant.approved`, `token.minted`. */
  readonly kind: string;
  /** Who caused it: `github:<login>`, `operator`, `system`, `run:<repo>/<run_id>`... */
  readonly actor: string | null;
  readonly ticketId?: string | null;
  readonly grantId?: string | null;
  readonly data?: { readonly [key: string]: Json | undefined };
}

/** The hashed content of one audit row (its `body`, in canonical JSON). */
export interface AuditEventBody {
  readonly v: 1;
  /** Stable id of the event, known before it is sealed into the chain. */
  readonly id: string;
  readonly at: string;
  readonly kind: string;
  readonly actor: string | null;
  readonly ticket_id: string | null;
  readonly grant_id: string | null;
  readonly data: { readonly [key: string]: Json };
}

/** The hash before the first event: 32 zero bytes. */
export const GENESIS_HASH = "0".repeat(64);

export function eventBody(event: AuditEventInput, id: string, at: Date): AuditEventBody {
  return {
    v: 1,
    id,
    at: at.toISOString(),
    kind: event.kind,
    actor: event.actor,
    ticket_id: event.ticketId ?? null,
    grant_id: event.grantId ?? null,
    data: wellFormed(event.data ?? {}) as AuditEventBody["data"],
  };
}

/** RFC 8785 canonical JSON: the exact bytes the chain hashes. */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError("audit event is not JSON");
  return text;
}

/** sha256(prev_hash bytes || UTF-8 of the canonical body), hex. */
export function chainHash(prevHash: string, body: string): string {
  return createHash("sha256")
    .update(Buffer.from(prevHash, "hex"))
    .update(body, "utf8")
    .digest("hex");
}

/**
 * User-supplied text can hold lone UTF-16 surrogates, which have no canonical
 * JSON form; they are replaced (U+FFFD) rather than refused, so that an event
 * is never lost to bad input.
 */
function wellFormed(value: unknown): unknown {
  if (typeof value === "string") return value.toWellFormed();
  if (Array.isArray(value)) return value.map(wellFormed);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) out[key.toWellFormed()] = wellFormed(item);
    }
    return out;
  }
  return value;
}
