/** The server answered with an error: its `{error, message}` body, or just the status. */
export class Refusal extends Error {
  override readonly name = "Refusal";
  constructor(
    readonly status: number,
    /** The server's stable code (`GRANT_NOT_ACTIVE`, ...), or `HTTP_<status>` without one. */
    readonly code: string,
    /** The server's sentence saying which check failed. */
    readonly serverMessage: string,
    /** Seconds from `retry-after`, when the server sent one. */
    readonly retryAfterS: number | undefined,
  ) {
    super(`${serverMessage} (${code})`);
  }
}

/** No HTTP answer at all: refused connection, DNS, TLS, timeout, reset. */
export class Unreachable extends Error {
  override readonly name = "Unreachable";
}

/** A transient failure that outlasted every attempt. */
export class GaveUp extends Error {
  override readonly name = "GaveUp";
  constructor(
    readonly attempts: number,
    readonly last: Refusal | Unreachable,
  ) {
    super(`${last.message} (gave up after ${attempts} attempts)`, { cause: last });
  }
}

/** `wait-for-approval` ran out while the grant was still not active. */
export class NotGrantedInTime extends Error {
  override readonly name = "NotGrantedInTime";
  constructor(
    /** The ticket as the job names it (`ticketOf`). */
    readonly ticket: string,
    /** The `wait-for-approval` input, in seconds. */
    readonly waitS: number,
    /** The last refusal: what the ticket still needs. */
    readonly last: Refusal,
  ) {
    super(`the grant on ${ticket} is still not active: ${last.message}`, { cause: last });
  }
}
