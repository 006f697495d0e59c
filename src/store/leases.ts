import { randomUUID } from "node:crypto";
import type { Sql } from "#src/store/db.js";

/** A lease held: give it back with {@link releaseLease}. */
export interface Lease {
  readonly name: string;
  readonly holder: string;
}

/**
 * Takes the lease `name` for `ttlMs` if nobody holds it (or theirs ran out);
 * null when another holder has it. One statement: nothing stays locked.
 */
export async function takeLease(sql: Sql, name: string, ttlMs: number): Promise<Lease | null> {
  const holder = randomUUID();
  const { rows } = await sql.query<{ holder: string }>(
    `INSERT INTO leases (name, holder, until) VALUES ($1::text, $2::text, now() + $3::int * interval '1 millisecond')
     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
       WHERE leases.until < now()
     RETURNING holder`,
    [name, holder, ttlMs],
  );
  return rows[0]?.holder === holder ? { name, holder } : null;
}

/** Gives a lease back (a no-op when it ran out and someone else took it). */
export async function releaseLease(sql: Sql, lease: Lease): Promise<void> {
  await sql.query("DELETE FROM leases WHERE name = $1::text AND holder = $2::text", [
    lease.name,
    lease.holder,
  ]);
}
