import { randomUUID } from "node:crypto";
import type { Logger } from "#src/log.js";
import type { Db, Unlisten } from "#src/store/db.js";
import {
  GRANTS_CHANNEL,
  type GrantChange,
  type LiveGrantRow,
  liveGrant,
  liveSnapshot,
  parseGrantChange,
  sendHeartbeat,
} from "#src/store/grant-changes.js";

export interface LiveGrantsOptions {
  /** Past this long without hearing from the database, the view is unsure. Default 5 s. */
  readonly maxStalenessMs?: number;
  /** Full reload from the tables, whatever was heard. Default 30 s. */
  readonly resyncMs?: number;
  /** Own heartbeats through the database; default a quarter of `maxStalenessMs`. */
  readonly heartbeatMs?: number;
  /** Listen for changes (default). Off, the view learns only from resyncs. */
  readonly listen?: boolean;
  /** The clock grant windows are compared with (tests pin it); freshness uses a monotonic clock. */
  readonly now?: () => Date;
}

/** A grant the proxy may let requests through for, as approved. */
export interface LiveGrant {
  readonly id: string;
  readonly version: number;
  readonly resource: string;
  readonly audience: string;
  /** Epoch milliseconds. */
  readonly startsAt: number;
  readonly endsAt: number;
  readonly rateLimit: LiveGrantRow["rateLimit"];
}

/** What the view knows of a token's grant. */
export type Standing =
  /** The view has not heard from the database recently enough to say: refuse. */
  | { readonly kind: "unsure" }
  /** The grant is active (the caller still checks its window) and the token was not given back. */
  | { readonly kind: "live"; readonly grant: LiveGrant }
  /** Revoked, expired, never active, unknown, or the token was given back. */
  | { readonly kind: "dead"; readonly why: "grant" | "released" };

const UNSURE: Standing = Object.freeze({ kind: "unsure" });
const DEAD_GRANT: Standing = Object.freeze({ kind: "dead", why: "grant" });
const RELEASED: Standing = Object.freeze({ kind: "dead", why: "released" });

/** How long an unknown grant id is remembered as dead. */
const UNKNOWN_TTL_MS = 10 * 60_000;

interface Tombstone {
  readonly version: number;
  /** Epoch ms after which the tombstone may go (no token of it can still be valid). */
  readonly until: number;
  /** Change sequence at which it was learnt (see `#seq`). */
  readonly seq: number;
}

/**
 * One replica's in-memory view of live grants: active grants by id, and the
 * tokens given back (by `jti`). Answers without a database round trip, so
 * the proxy can check every request.
 *
 * Kept current by the database's own announcements (`GRANTS_CHANNEL`):
 * a revocation, expiry or release is applied from its notification alone; an
 * activation or extension reads the grant once. Changes carry the grant's
 * version, so an older one never overwrites a newer. On top, the whole view
 * is reloaded every `resyncMs`, and at once whenever the listening
 * connection was lost (its notifications are gone).
 *
 * It knows how fresh it is: it sends itself a heartbeat through the
 * database every `heartbeatMs`, and hearing it back proves that everything
 * committed before it was sent has been heard. Past `maxStalenessMs` since
 * the last heartbeat heard or resync started, every answer is `unsure`.
 */
export class LiveGrants {
  readonly #db: Db;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #maxStalenessMs: number;
  readonly #resyncMs: number;
  readonly #heartbeatMs: number;
  readonly #listening: boolean;
  readonly #instance = randomUUID();
  readonly #grants = new Map<string, LiveGrant & { readonly seq: number }>();
  readonly #dead = new Map<string, Tombstone>();
  readonly #released = new Map<string, number>();
  readonly #lookups = new Map<string, Promise<Standing>>();
  readonly #sentAt = new Map<number, number>();
  /** Monotonic ms of the newest proof that the view had heard everything committed by then. */
  #heardAt = Number.NEGATIVE_INFINITY;
  /** Counts changes applied, so a resync keeps what was learnt after it started. */
  #seq = 0;
  #heartbeatSeq = 0;
  #resyncing: Promise<void> | null = null;
  #resyncAgain = false;
  #timers: NodeJS.Timeout[] = [];
  #unlisten: Unlisten | null = null;
  #stopped = false;
  /** Database reads, for the benchmark's and the metrics' count of round trips. */
  readonly reads = { resyncs: 0, lookups: 0, heartbeats: 0 };

  private constructor(db: Db, log: Logger, options: LiveGrantsOptions) {
    this.#db = db;
    this.#log = log;
    this.#now = options.now ?? (() => new Date());
    this.#maxStalenessMs = options.maxStalenessMs ?? 5_000;
    this.#resyncMs = options.resyncMs ?? 30_000;
    this.#heartbeatMs = options.heartbeatMs ?? Math.max(50, Math.floor(this.#maxStalenessMs / 4));
    this.#listening = options.listen !== false;
  }

  /** Listens, loads the view, and keeps it current until `stop()`. */
  static async start(db: Db, log: Logger, options: LiveGrantsOptions = {}): Promise<LiveGrants> {
    const view = new LiveGrants(db, log, options);
    if (view.#listening) {
      view.#unlisten = await db.listen(GRANTS_CHANNEL, (payload) => view.#onNotify(payload), {
        onResync: () => {
          log.info("grant change listener reconnected; reloading live grants");
          void view.resync();
        },
      });
    }
    await view.resync();
    const every = (ms: number, fn: () => void) => {
      const timer = setInterval(fn, ms);
      timer.unref();
      view.#timers.push(timer);
    };
    every(view.#resyncMs, () => void view.resync());
    if (view.#listening) every(view.#heartbeatMs, () => void view.#heartbeat());
    return view;
  }

  /** Milliseconds since the view last proved it had heard everything (Infinity: never). */
  age(): number {
    return performance.now() - this.#heardAt;
  }

  /** Whether answers can be trusted now. */
  get sure(): boolean {
    return this.age() <= this.#maxStalenessMs;
  }

  /** How many active grants the view holds. */
  get size(): number {
    return this.#grants.size;
  }

  /**
   * The standing of a token (`jti`) of grant `grantId`. Synchronous for
   * every grant the view knows of; a grant it has never heard of (activated
   * a moment ago on another replica, or an id it forgot) is read from the
   * database once, coalesced, and remembered.
   */
  standing(grantId: string, jti: string): Standing | Promise<Standing> {
    if (!this.sure) return UNSURE;
    if (this.#released.has(jti)) return RELEASED;
    const grant = this.#grants.get(grantId);
    if (grant) return { kind: "live", grant };
    if (this.#dead.has(grantId)) return DEAD_GRANT;
    return this.#lookup(grantId);
  }

  /**
   * Reloads everything from the tables (one statement). Changes heard while
   * it runs are kept: the snapshot only replaces what was learnt before it.
   * Concurrent calls share one reload, and one more follows if asked meanwhile.
   */
  resync(): Promise<void> {
    if (this.#resyncing) {
      this.#resyncAgain = true;
      return this.#resyncing;
    }
    this.#resyncing = (async () => {
      try {
        do {
          this.#resyncAgain = false;
          await this.#load();
        } while (this.#resyncAgain && !this.#stopped);
      } catch (error) {
        this.#log.warn({ err: error }, "live grants: reload failed; retrying at the next interval");
      } finally {
        this.#resyncing = null;
      }
    })();
    return this.#resyncing;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    await this.#unlisten?.();
    this.#unlisten = null;
    await this.#resyncing;
  }

  async #load(): Promise<void> {
    const startedAt = performance.now();
    const startSeq = this.#seq;
    const now = this.#now();
    this.reads.resyncs++;
    const snapshot = await liveSnapshot(this.#db, now);
    const fresh = new Map<string, LiveGrant & { seq: number }>();
    for (const row of snapshot.grants) {
      const grant = toLive(row);
      if (!grant || (this.#dead.get(row.id)?.version ?? -1) >= row.version) continue;
      const held = this.#grants.get(row.id);
      fresh.set(row.id, held && held.version >= row.version ? held : { ...grant, seq: startSeq });
    }
    // Learnt after the snapshot was taken: newer than it, kept.
    for (const [id, grant] of this.#grants) {
      if (grant.seq > startSeq && !fresh.has(id)) fresh.set(id, grant);
    }
    this.#grants.clear();
    for (const [id, grant] of fresh) this.#grants.set(id, grant);
    const at = now.getTime();
    for (const t of snapshot.released) this.#released.set(t.jti, t.expiresAt.getTime());
    for (const [jti, until] of this.#released) if (until <= at) this.#released.delete(jti);
    for (const [id, tomb] of this.#dead) if (tomb.until <= at) this.#dead.delete(id);
    this.#heard(startedAt);
  }

  /** Whether `version` of grant `id` is newer than anything the view holds of it. */
  #newer(id: string, version: number): boolean {
    const held = this.#grants.get(id)?.version ?? this.#dead.get(id)?.version ?? -1;
    return version > held;
  }

  #onNotify(payload: string): void {
    const change = parseGrantChange(payload);
    if (!change) {
      this.#log.warn("live grants: ignored a notification that is not a grant change");
      return;
    }
    this.#apply(change);
  }

  #apply(change: GrantChange): void {
    switch (change.kind) {
      case "heartbeat": {
        if (change.from !== this.#instance) return;
        const sentAt = this.#sentAt.get(change.seq);
        this.#sentAt.delete(change.seq);
        if (sentAt !== undefined) this.#heard(sentAt);
        return;
      }
      case "release":
        this.#seq++;
        this.#released.set(change.jti, change.expiresAt.getTime());
        return;
      case "grant":
        if (!this.#newer(change.grantId, change.version)) return;
        if (change.state !== "active") {
          this.#bury(change.grantId, change.version, this.#grants.get(change.grantId)?.endsAt);
          return;
        }
        // Activated or extended: its terms are read once.
        void this.#fetch(change.grantId);
    }
  }

  #bury(id: string, version: number, endsAt: number | undefined): void {
    this.#seq++;
    this.#grants.delete(id);
    const until = Math.max(endsAt ?? 0, this.#now().getTime() + UNKNOWN_TTL_MS);
    this.#dead.set(id, { version, until, seq: this.#seq });
  }

  #lookup(grantId: string): Promise<Standing> {
    let pending = this.#lookups.get(grantId);
    if (!pending) {
      pending = this.#fetch(grantId)
        .then((): Standing => {
          if (!this.sure) return UNSURE;
          const grant = this.#grants.get(grantId);
          return grant ? { kind: "live", grant } : DEAD_GRANT;
        })
        .catch((error): Standing => {
          this.#log.warn({ err: error }, "live grants: cannot read a grant; refusing its tokens");
          return UNSURE;
        })
        .finally(() => this.#lookups.delete(grantId));
      this.#lookups.set(grantId, pending);
    }
    return pending;
  }

  /** Reads one grant and applies what it says, unless something newer was heard meanwhile. */
  async #fetch(grantId: string): Promise<void> {
    this.reads.lookups++;
    const row = await liveGrant(this.#db, grantId);
    if (!row) {
      if (!this.#grants.has(grantId) && !this.#dead.has(grantId))
        this.#bury(grantId, -1, undefined);
      return;
    }
    if (!this.#newer(row.id, row.version)) return;
    const grant = toLive(row);
    if (!grant || grant.endsAt <= this.#now().getTime()) {
      this.#bury(row.id, row.version, grant?.endsAt);
      return;
    }
    this.#seq++;
    this.#dead.delete(row.id);
    this.#grants.set(row.id, { ...grant, seq: this.#seq });
  }

  async #heartbeat(): Promise<void> {
    const seq = ++this.#heartbeatSeq;
    this.#sentAt.set(seq, performance.now());
    // Heartbeats lost with a dropped connection are never heard: forget old ones.
    for (const old of this.#sentAt.keys()) {
      if (old >= seq - 16) break;
      this.#sentAt.delete(old);
    }
    try {
      this.reads.heartbeats++;
      await sendHeartbeat(this.#db, this.#instance, seq);
    } catch (error) {
      this.#sentAt.delete(seq);
      this.#log.debug({ err: error }, "live grants: heartbeat failed");
    }
  }

  #heard(at: number): void {
    if (at > this.#heardAt) this.#heardAt = at;
  }
}

function toLive(row: LiveGrantRow): LiveGrant | null {
  if (row.state !== "active" || !row.startsAt || !row.endsAt) return null;
  return {
    id: row.id,
    version: row.version,
    resource: row.resource,
    audience: row.audience,
    startsAt: row.startsAt.getTime(),
    endsAt: row.endsAt.getTime(),
    rateLimit: row.rateLimit,
  };
}
