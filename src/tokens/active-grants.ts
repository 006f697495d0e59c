import type { Sql } from "#src/store/db.js";
import { type TicketGrant, ticketGrant } from "#src/store/grants.js";

export interface ActiveGrantsOptions {
  /** How long a ticket with an active grant is not read again. */
  readonly ttlMs?: number;
  readonly maxEntries?: number;
}

/**
 * The exchange's ticket look-up (`ticketGrant`), remembered for a few
 * seconds when it found an active grant inside its window: repeated
 * exchanges of one ticket (a matrix of jobs, re-runs) skip a round trip.
 *
 * Safe because nothing is decided on a remembered entry but a mint, and the
 * mint reads the grant again, atomically: a grant revoked or expired
 * meanwhile refuses there (and the exchange then `forget`s the ticket). The
 * rest of what the exchange checks does not change while a grant is active:
 * its resource, scopes, requester, approved commit and policy rules are the
 * terms as approved, and the ticket's repository, kind and head repository
 * are fixed. A remembered window that has ended is never used: the ticket
 * is read again (a grant may have been extended). The exchange checks a
 * refusal decided on a remembered entry again on a fresh read (the ticket
 * may have a new grant), and forgets the ticket when its mint is refused.
 */
export class ActiveGrants {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, { found: TicketGrant; until: number }>();

  constructor(options: ActiveGrantsOptions = {}) {
    this.#ttlMs = options.ttlMs ?? 10_000;
    this.#maxEntries = options.maxEntries ?? 10_000;
  }

  /** The ticket and its grant; `remembered` when it was not read now. */
  async get(
    sql: Sql,
    repoId: number,
    number: number,
    now: Date,
  ): Promise<{ found: TicketGrant | null; remembered: boolean }> {
    const key = `${repoId}#${number}`;
    const at = now.getTime();
    const entry = this.#entries.get(key);
    if (entry && entry.until > at && usable(entry.found, now)) {
      return { found: entry.found, remembered: true };
    }
    const found = await ticketGrant(sql, repoId, number);
    if (found && usable(found, now)) {
      this.#entries.delete(key);
      this.#entries.set(key, { found, until: at + this.#ttlMs });
      for (const oldest of this.#entries.keys()) {
        if (this.#entries.size <= this.#maxEntries) break;
        this.#entries.delete(oldest);
      }
    } else {
      this.#entries.delete(key);
    }
    return { found, remembered: false };
  }

  /** Drops the ticket: its grant refused a mint. */
  forget(repoId: number, number: number): void {
    this.#entries.delete(`${repoId}#${number}`);
  }
}

function usable(found: TicketGrant, now: Date): boolean {
  const grant = found.grant;
  return (
    grant !== null &&
    grant.state === "active" &&
    grant.startsAt !== null &&
    grant.startsAt <= now &&
    grant.endsAt !== null &&
    grant.endsAt > now
  );
}
