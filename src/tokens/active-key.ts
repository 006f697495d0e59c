import type { KeyObject } from "node:crypto";
import { HallpassError } from "#src/errors.js";
import type { Db } from "#src/store/db.js";
import { signingSchedule } from "#src/store/keys.js";
import { openSigningKey, promoteDueKey } from "#src/tokens/keys.js";
import type { MasterKey } from "#src/tokens/master-key.js";

export interface ActiveKey {
  readonly kid: string;
  /** The decrypted private key; lives only in memory. */
  readonly privateKey: KeyObject;
}

export interface ActiveKeyOptions {
  /** How long the active key is used without looking at the table again. */
  readonly ttlMs?: number;
  readonly now?: () => Date;
}

/**
 * The key that signs, cached so a mint costs no key lookup or decryption.
 *
 * The cache is dropped after `ttlMs`, at the next published key's activation
 * time (promoting it then, lazily), when a mint finds the key retired by
 * another replica, and when a change of `signing_keys` is announced.
 * Signing with a stale key is never possible: the mint's insert only succeeds
 * while its key is still the active one.
 */
export class ActiveKeyCache {
  readonly #db: Db;
  readonly #masterKey: MasterKey;
  readonly #ttlMs: number;
  readonly #now: () => Date;
  #cached: { key: ActiveKey; until: number } | null = null;
  #loading: Promise<ActiveKey> | null = null;
  #generation = 0;
  /** Decrypted keys by kid: a key is decrypted once per process. */
  readonly #opened = new Map<string, KeyObject>();

  constructor(db: Db, masterKey: MasterKey, options: ActiveKeyOptions = {}) {
    this.#db = db;
    this.#masterKey = masterKey;
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#now = options.now ?? (() => new Date());
  }

  /** The active signing key, promoting a published key whose time has come. */
  async current(): Promise<ActiveKey> {
    const cached = this.#cached;
    if (cached && this.#now().getTime() < cached.until) return cached.key;
    if (!this.#loading) {
      const generation = this.#generation;
      this.#loading = this.#load(generation).finally(() => {
        this.#loading = null;
      });
    }
    return this.#loading;
  }

  /** Forgets the cached key (a rotation happened, or a mint found it retired). */
  invalidate(): void {
    this.#generation++;
    this.#cached = null;
  }

  async #load(generation: number): Promise<ActiveKey> {
    const now = this.#now();
    let schedule = await signingSchedule(this.#db);
    if (schedule.nextActivation && schedule.nextActivation <= now) {
      await promoteDueKey(this.#db, now);
      schedule = await signingSchedule(this.#db);
    }
    const active = schedule.active;
    if (!active) {
      throw new HallpassError("SIGNING_KEY_UNAVAILABLE", "no active signing key in the database");
    }
    let privateKey = this.#opened.get(active.kid);
    if (!privateKey) {
      privateKey = openSigningKey(this.#masterKey, active.kid, active.privateSealed);
      this.#opened.set(active.kid, privateKey);
    }
    const key = { kid: active.kid, privateKey };
    let until = now.getTime() + this.#ttlMs;
    if (schedule.nextActivation) until = Math.min(until, schedule.nextActivation.getTime());
    // An invalidation while loading means what was read may be stale already.
    if (generation === this.#generation) this.#cached = { key, until };
    return key;
  }
}
