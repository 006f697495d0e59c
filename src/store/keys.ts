import type { Sql } from "#src/store/db.js";

export type SigningKeyState = "published" | "active" | "retired";

/** A public JWK as published: Ed25519 with its kid, alg and use. */
export interface PublicJwk {
  readonly kty: "OKP";
  readonly crv: "Ed25519";
  readonly x: string;
  readonly kid: string;
  readonly alg: "EdDSA";
  readonly use: "sig";
}

export interface SigningKeyRow {
  readonly kid: string;
  readonly state: SigningKeyState;
  readonly publicJwk: PublicJwk;
  /** Sealed private part; empty once retired. */
  readonly privateSealed: string;
  readonly activateAfter: Date | null;
  readonly activatedAt: Date | null;
  readonly retiredAt: Date | null;
  readonly verifyUntil: Date | null;
  readonly createdAt: Date;
}

const COLUMNS = `kid, state, public_jwk AS "publicJwk", private_sealed AS "privateSealed",
  activate_after AS "activateAfter", activated_at AS "activatedAt", retired_at AS "retiredAt",
  verify_until AS "verifyUntil", created_at AS "createdAt"`;

/** Channel on which every change of `signing_keys` is announced (payload: the kid). */
export const SIGNING_KEYS_CHANNEL = "hallpass_signing_keys";

/**
 * Serialises every change of the key lifecycle (bootstrap, rotation,
 * promotion) across replicas, until the transaction ends.
 */
export async function lockSigningKeys(tx: Sql): Promise<void> {
  await tx.query(
    "SELECT pg_advisory_xact_lock(hashtextextended('hallpass.signing_keys.' || current_schema(), 0))",
  );
}

export async function listSigningKeys(sql: Sql): Promise<SigningKeyRow[]> {
  const { rows } = await sql.query<SigningKeyRow>(
    `SELECT ${COLUMNS} FROM signing_keys ORDER BY created_at, kid`,
  );
  return rows;
}

export interface NewSigningKey {
  readonly kid: string;
  readonly publicJwk: PublicJwk;
  readonly privateSealed: string;
}

export async function insertSigningKey(
  sql: Sql,
  key: NewSigningKey,
  lifecycle:
    | { readonly state: "active"; readonly at: Date }
    | { readonly state: "published"; readonly at: Date; readonly activateAfter: Date },
): Promise<void> {
  await sql.query(
    `INSERT INTO signing_keys (kid, public_jwk, private_sealed, state, activate_after, created_at, activated_at)
     VALUES ($1::text, $2::jsonb, $3::text, $4::text, $5::timestamptz, $6::timestamptz,
             CASE WHEN $4::text = 'active' THEN $6::timestamptz END)`,
    [
      key.kid,
      JSON.stringify(key.publicJwk),
      key.privateSealed,
      lifecycle.state,
      lifecycle.state === "published" ? lifecycle.activateAfter : null,
      lifecycle.at,
    ],
  );
}

/** What a signer needs: the active key, and when the next published key is due. */
export interface SigningSchedule {
  readonly active: { readonly kid: string; readonly privateSealed: string } | null;
  readonly nextActivation: Date | null;
}

export async function signingSchedule(sql: Sql): Promise<SigningSchedule> {
  const { rows } = await sql.query<{
    kid: string;
    state: "active" | "published";
    privateSealed: string;
    activateAfter: Date | null;
  }>(
    `SELECT kid, state, private_sealed AS "privateSealed", activate_after AS "activateAfter"
       FROM signing_keys WHERE state IN ('active', 'published')`,
  );
  const active = rows.find((r) => r.state === "active");
  const due = rows
    .filter((r) => r.state === "published" && r.activateAfter)
    .map((r) => (r.activateAfter as Date).getTime());
  return {
    active: active ? { kid: active.kid, privateSealed: active.privateSealed } : null,
    nextActivation: due.length > 0 ? new Date(Math.min(...due)) : null,
  };
}

/** Every key that may still verify a live token at `now`: published, active, retired until `verify_until`. */
export async function verificationKeys(
  sql: Sql,
  now: Date,
): Promise<Array<{ readonly publicJwk: PublicJwk; readonly verifyUntil: Date | null }>> {
  const { rows } = await sql.query<{ publicJwk: PublicJwk; verifyUntil: Date | null }>(
    `SELECT public_jwk AS "publicJwk", verify_until AS "verifyUntil"
       FROM signing_keys
      WHERE state <> 'retired' OR verify_until > $1::timestamptz
      ORDER BY created_at, kid`,
    [now],
  );
  return rows;
}

/**
 * Locks the active key's row against mints in flight (they hold `FOR KEY
 * SHARE` on it until they commit), so that what is read next about its
 * tokens is final. Call under `lockSigningKeys`.
 */
export async function lockActiveKey(tx: Sql): Promise<string | null> {
  const { rows } = await tx.query<{ kid: string }>(
    "SELECT kid FROM signing_keys WHERE state = 'active' FOR UPDATE",
  );
  return rows[0]?.kid ?? null;
}

/**
 * Retires a key: it signs no more and its private part is destroyed; it stays
 * published until `verify_until`, which is the latest expiry of the tokens it
 * signed (at least `at`), or exactly `verifyUntil` when given (an emergency
 * that must drop it now).
 */
export async function retireSigningKey(
  tx: Sql,
  kid: string,
  at: Date,
  verifyUntil?: Date,
): Promise<Date> {
  const { rows } = await tx.query<{ verifyUntil: Date }>(
    `UPDATE signing_keys
        SET state = 'retired', retired_at = $2::timestamptz, private_sealed = '',
            verify_until = coalesce($3::timestamptz, greatest(
              (SELECT max(expires_at) FROM tokens WHERE kid = $1::text), $2::timestamptz))
      WHERE kid = $1::text AND state <> 'retired'
      RETURNING verify_until AS "verifyUntil"`,
    [kid, at, verifyUntil ?? null],
  );
  if (!rows[0]) throw new Error(`signing key ${kid} is not retirable`);
  return rows[0].verifyUntil;
}

export async function activateSigningKey(tx: Sql, kid: string, at: Date): Promise<void> {
  const { rowCount } = await tx.query(
    `UPDATE signing_keys SET state = 'active', activated_at = $2::timestamptz
      WHERE kid = $1::text AND state = 'published'`,
    [kid, at],
  );
  if (rowCount !== 1) throw new Error(`signing key ${kid} is not published`);
}
