import { z } from "zod";
import { notify, type Sql, type Statement } from "#src/store/db.js";
import type { GrantState } from "#src/store/grant-lifecycle.js";

/**
 * Grant changes, as every replica hears them. The database announces them
 * itself (triggers of migration 0004), whoever writes the change: every
 * activation, extension, revocation and expiry of a grant, and every token
 * given back. Payloads are JSON; `parseGrantChange` is the one reader.
 */
export const GRANTS_CHANNEL = "hallpass_grants";

export type GrantChange =
  /** A grant became, stayed (new window) or stopped being active. */
  | {
      readonly kind: "grant";
      readonly grantId: string;
      readonly state: GrantState;
      readonly version: number;
    }
  /** A token was given back: dead, though its grant lives on. */
  | {
      readonly kind: "release";
      readonly jti: string;
      readonly grantId: string;
      readonly expiresAt: Date;
    }
  /**
   * A replica's own heartbeat: hearing it proves that every change committed
   * before it was sent has been heard too (notifications arrive in commit order).
   */
  | { readonly kind: "heartbeat"; readonly from: string; readonly seq: number };

const states = z.enum(["pending", "active", "revoked", "expired", "denied", "cancelled"]);
const payload = z.union([
  z.strictObject({ grant: z.uuid(), state: states, version: z.int().min(0) }),
  z.strictObject({ jti: z.uuid(), grant: z.uuid(), expires_at: z.iso.datetime({ offset: true }) }),
  z.strictObject({ heartbeat: z.string().min(1).max(64), seq: z.int().min(0) }),
]);

/** The change a notification announces, or null for a payload that is not one (never thrown). */
export function parseGrantChange(text: string): GrantChange | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = payload.safeParse(json);
  if (!parsed.success) return null;
  const p = parsed.data;
  if ("heartbeat" in p) return { kind: "heartbeat", from: p.heartbeat, seq: p.seq };
  if ("jti" in p) {
    return { kind: "release", jti: p.jti, grantId: p.grant, expiresAt: new Date(p.expires_at) };
  }
  return { kind: "grant", grantId: p.grant, state: p.state, version: p.version };
}

/** Sends a heartbeat on the grants channel (see `GrantChange`). */
export async function sendHeartbeat(sql: Sql, from: string, seq: number): Promise<void> {
  await notify(sql, GRANTS_CHANNEL, JSON.stringify({ heartbeat: from, seq }));
}

/** What the proxy needs of an active grant to let a request through. */
export interface LiveGrantRow {
  readonly id: string;
  readonly state: GrantState;
  readonly version: number;
  readonly resource: string;
  readonly audience: string;
  readonly startsAt: Date | null;
  readonly endsAt: Date | null;
  readonly rateLimit: { readonly count: number; readonly perSeconds: number } | null;
}

const LIVE_COLUMNS = `id, state, version, resource, audience, starts_at AS "startsAt",
  ends_at AS "endsAt", rate_limit_count, rate_limit_seconds`;

type Row = Omit<LiveGrantRow, "rateLimit"> & {
  rate_limit_count: number | null;
  rate_limit_seconds: number | null;
};

function fromRow(r: Row): LiveGrantRow {
  return {
    id: r.id,
    state: r.state,
    version: r.version,
    resource: r.resource,
    audience: r.audience,
    startsAt: r.startsAt,
    endsAt: r.endsAt,
    rateLimit:
      r.rate_limit_count !== null && r.rate_limit_seconds !== null
        ? { count: r.rate_limit_count, perSeconds: r.rate_limit_seconds }
        : null,
  };
}

export interface LiveSnapshot {
  /** Active grants whose window has not ended. */
  readonly grants: LiveGrantRow[];
  /** Tokens given back that have not expired yet. */
  readonly released: { readonly jti: string; readonly expiresAt: Date }[];
}

/** Everything a replica's view of live grants holds, read in one snapshot. */
export async function liveSnapshot(sql: Sql, now: Date): Promise<LiveSnapshot> {
  // One statement, so both halves come from one snapshot of the database.
  const { rows } = await sql.query<{ grants: Row[] | null; released: LiveSnapshot["released"] }>(
    `SELECT (SELECT json_agg(g) FROM (
               SELECT ${LIVE_COLUMNS} FROM grants
                WHERE state = 'active' AND ends_at > $1::timestamptz) g) AS grants,
            (SELECT json_agg(t) FROM (
               SELECT jti, expires_at AS "expiresAt" FROM tokens
                WHERE released_at IS NOT NULL AND expires_at > $1::timestamptz) t) AS released`,
    [now],
  );
  const row = rows[0];
  return {
    grants: (row?.grants ?? []).map((g) =>
      fromRow({
        ...g,
        startsAt: g.startsAt === null ? null : new Date(g.startsAt),
        endsAt: g.endsAt === null ? null : new Date(g.endsAt),
      }),
    ),
    released: (row?.released ?? []).map((t) => ({ jti: t.jti, expiresAt: new Date(t.expiresAt) })),
  };
}

const LIVE_GRANT: Statement = {
  name: "live_grant_by_id",
  text: `SELECT ${LIVE_COLUMNS} FROM grants WHERE id = $1::uuid`,
};

/** One grant, whatever its state; null when there is none with this id. */
export async function liveGrant(sql: Sql, id: string): Promise<LiveGrantRow | null> {
  const { rows } = await sql.query<Row>(LIVE_GRANT, [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}
