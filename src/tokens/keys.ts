import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { calculateJwkThumbprint } from "jose";
import { appendAudit } from "#src/audit/append.js";
import { HallpassError } from "#src/errors.js";
import { type Db, notify, type Sql } from "#src/store/db.js";
import {
  activateSigningKey,
  insertSigningKey,
  listSigningKeys,
  lockActiveKey,
  lockSigningKeys,
  type NewSigningKey,
  type PublicJwk,
  retireSigningKey,
  SIGNING_KEYS_CHANNEL,
} from "#src/store/keys.js";
import {
  checkMasterKey,
  type MasterKey,
  masterKeyMismatch,
  seal,
  unseal,
} from "#src/tokens/master-key.js";

/** `Cache-Control: max-age` of the JWKS: how long a verifier may hold an old key set. */
export const JWKS_MAX_AGE_S = 300;

/**
 * How long a rotated key is published before it signs: twice the JWKS
 * max-age, so every verifier that honours the cache header (and the server's
 * own short cache of the key set) has seen the new key before the first
 * token signed by it arrives.
 */
export const ROTATION_DELAY_S = 2 * JWKS_MAX_AGE_S;

/** A fresh Ed25519 key, its private part sealed under the master key. */
export async function generateSigningKey(masterKey: MasterKey): Promise<NewSigningKey> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const { x } = publicKey.export({ format: "jwk" });
  if (typeof x !== "string") throw new Error("Ed25519 public key without x");
  const kid = await calculateJwkThumbprint({ kty: "OKP", crv: "Ed25519", x }, "sha256");
  const publicJwk: PublicJwk = { kty: "OKP", crv: "Ed25519", x, kid, alg: "EdDSA", use: "sig" };
  const der = privateKey.export({ format: "der", type: "pkcs8" });
  try {
    return { kid, publicJwk, privateSealed: seal(masterKey.key, der, sealContext(kid)) };
  } finally {
    der.fill(0);
  }
}

/**
 * Opens a key's sealed private part.
 *
 * @throws MASTER_KEY_MISMATCH when the master key (or the kid it is bound to) is wrong
 */
export function openSigningKey(masterKey: MasterKey, kid: string, sealed: string): KeyObject {
  const der = unseal(masterKey.key, sealed, sealContext(kid));
  if (!der) throw masterKeyMismatch(masterKey);
  try {
    return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  } finally {
    der.fill(0);
  }
}

function sealContext(kid: string): string {
  return `signing-key:${kid}`;
}

export interface Bootstrap {
  readonly masterKeyCheck: "created" | "verified";
  readonly activeKid: string;
  /** Whether the database had no active key and one was created. */
  readonly created: boolean;
}

/**
 * At start, before anything is signed:
 *
 * 1. Under the key lifecycle lock, prove the master key is the database's
 *    (the sealed check value in `server_meta`); a wrong key stops the start.
 * 2. On a database without an active key (a new one), create one, active at
 *    once: nobody can hold an older key set to wait for.
 * 3. Check the active key opens too (a row sealed under another key).
 */
export async function bootstrapKeys(
  db: Db,
  masterKey: MasterKey,
  now: Date = new Date(),
): Promise<Bootstrap> {
  return db.transaction(async (tx) => {
    await lockSigningKeys(tx);
    const masterKeyCheck = await checkMasterKey(tx, masterKey);
    const active = (await listSigningKeys(tx)).find((k) => k.state === "active");
    if (active) {
      openSigningKey(masterKey, active.kid, active.privateSealed);
      return { masterKeyCheck, activeKid: active.kid, created: false };
    }
    const key = await generateSigningKey(masterKey);
    await insertSigningKey(tx, key, { state: "active", at: now });
    await announce(tx, key.kid);
    await appendAudit(
      tx,
      { kind: "key.activated", actor: "system", data: { kid: key.kid, reason: "first key" } },
      now,
    );
    return { masterKeyCheck, activeKid: key.kid, created: true };
  });
}

export interface RotateOptions {
  /**
   * Activate the new key at once instead of after `ROTATION_DELAY_S`. For
   * emergencies: verifiers whose cached key set predates the new key reject
   * its tokens until they refetch the JWKS (most do on an unknown `kid`;
   * those that only honour max-age, for up to `JWKS_MAX_AGE_S`).
   */
  readonly immediate?: boolean;
  /**
   * With `immediate`: drop the old key from the JWKS now rather than when its
   * last token expires; every token it signed stops verifying (a leaked key).
   */
  readonly revokeOld?: boolean;
  /** Who asked, for the audit log. */
  readonly actor?: string;
  readonly now?: Date;
}

export interface Rotation {
  readonly kid: string;
  readonly state: "published" | "active";
  /** When the new key starts signing. */
  readonly activeFrom: Date;
  /** Keys retired by this rotation and until when they stay published. */
  readonly retired: ReadonlyArray<{ readonly kid: string; readonly verifyUntil: Date }>;
}

/**
 * `hallpass keys rotate`: publishes a new signing key that starts signing
 * `ROTATION_DELAY_S` later (the promotion is done by whichever replica mints
 * or runs its housekeeping first after that), or at once with `immediate`.
 *
 * @throws KEY_ROTATION_PENDING when a published key is still waiting (unless `immediate`)
 */
export async function rotateKeys(
  db: Db,
  masterKey: MasterKey,
  options: RotateOptions = {},
): Promise<Rotation> {
  const now = options.now ?? new Date();
  const actor = options.actor ?? "operator";
  if (options.revokeOld && !options.immediate) {
    throw new HallpassError("BAD_REQUEST", "--revoke-old goes with --now");
  }
  const key = await generateSigningKey(masterKey);
  return db.transaction(async (tx) => {
    await lockSigningKeys(tx);
    await checkMasterKey(tx, masterKey);
    const keys = await listSigningKeys(tx);
    const waiting = keys.filter((k) => k.state === "published");
    const active = keys.find((k) => k.state === "active");

    if (!options.immediate && active) {
      const pending = waiting[0];
      if (pending) {
        throw new HallpassError(
          "KEY_ROTATION_PENDING",
          `key ${pending.kid} is already published and starts signing at ${pending.activateAfter?.toISOString()}; wait for it, or rotate with --now`,
        );
      }
      const activeFrom = new Date(now.getTime() + ROTATION_DELAY_S * 1000);
      await insertSigningKey(tx, key, { state: "published", at: now, activateAfter: activeFrom });
      await announce(tx, key.kid);
      await appendAudit(
        tx,
        {
          kind: "key.published",
          actor,
          data: { kid: key.kid, activate_after: activeFrom.toISOString() },
        },
        now,
      );
      return { kid: key.kid, state: "published", activeFrom, retired: [] };
    }

    // Immediate (or a database without an active key): the new key signs now.
    const retired: Array<{ kid: string; verifyUntil: Date }> = [];
    for (const old of waiting) {
      // Never signed anything: nothing to keep it published for.
      retired.push({ kid: old.kid, verifyUntil: await retireSigningKey(tx, old.kid, now, now) });
    }
    const activeKid = await lockActiveKey(tx);
    if (activeKid) {
      const verifyUntil = await retireSigningKey(
        tx,
        activeKid,
        now,
        options.revokeOld ? now : undefined,
      );
      retired.push({ kid: activeKid, verifyUntil });
    }
    await insertSigningKey(tx, key, { state: "active", at: now });
    await announce(tx, key.kid);
    await appendAudit(
      tx,
      {
        kind: "key.rotated",
        actor,
        data: {
          kid: key.kid,
          immediate: true,
          revoke_old: options.revokeOld === true,
          retired: retired.map((r) => ({ kid: r.kid, verify_until: r.verifyUntil.toISOString() })),
        },
      },
      now,
    );
    return { kid: key.kid, state: "active", activeFrom: now, retired };
  });
}

export interface Promotion {
  readonly kid: string;
  readonly retired: { readonly kid: string; readonly verifyUntil: Date } | null;
}

/**
 * Activates the published key whose time has come, retiring the active one.
 * Safe on any number of replicas at once: the lifecycle lock serialises them
 * and the second finds nothing due. Mints in flight hold `FOR KEY SHARE` on
 * the old key's row; `lockActiveKey` waits for them, so the old key's
 * `verify_until` covers every token it signed, and mints that start later
 * find it retired and sign with the new one.
 *
 * @returns the promotion, or null when no key was due
 */
export async function promoteDueKey(db: Db, now: Date = new Date()): Promise<Promotion | null> {
  return db.transaction(async (tx) => {
    await lockSigningKeys(tx);
    const due = (await listSigningKeys(tx))
      .filter((k) => k.state === "published" && k.activateAfter && k.activateAfter <= now)
      .sort((a, b) => (b.activateAfter?.getTime() ?? 0) - (a.activateAfter?.getTime() ?? 0));
    const next = due[0];
    if (!next) return null;
    const activeKid = await lockActiveKey(tx);
    const retired = activeKid
      ? { kid: activeKid, verifyUntil: await retireSigningKey(tx, activeKid, now) }
      : null;
    for (const skipped of due.slice(1)) await retireSigningKey(tx, skipped.kid, now, now);
    await activateSigningKey(tx, next.kid, now);
    await announce(tx, next.kid);
    await appendAudit(
      tx,
      {
        kind: "key.activated",
        actor: "system",
        data: {
          kid: next.kid,
          retired: retired?.kid ?? null,
          retired_verify_until: retired?.verifyUntil.toISOString() ?? null,
        },
      },
      now,
    );
    return { kid: next.kid, retired };
  });
}

/** Tells every replica's key caches to reload (delivered at commit). */
async function announce(tx: Sql, kid: string): Promise<void> {
  await notify(tx, SIGNING_KEYS_CHANNEL, kid);
}
