import { createHash, timingSafeEqual } from "node:crypto";
import { inspect } from "node:util";

const HIDDEN = "[secret]";

/**
 * A secret value (an introspection secret, ...) that cannot end up in a log
 * line, an error or a JSON body by accident: every way of printing it prints
 * `[secret]`. Only `matches` looks at the value.
 *
 * @example
 * const secret = new Secret(process.env.PAYMENTS_INTROSPECTION_SECRET ?? "");
 * secret.matches(presented); // constant time
 */
export class Secret {
  readonly #digest: Buffer;

  constructor(value: string) {
    // Only the digest is kept: comparing digests takes the same time whatever
    // the lengths, and the value itself is not held in memory longer than needed.
    this.#digest = digest(value);
  }

  /** Whether `candidate` is this secret, in time independent of where they differ. */
  matches(candidate: string): boolean {
    return timingSafeEqual(this.#digest, digest(candidate));
  }

  toString(): string {
    return HIDDEN;
  }

  toJSON(): string {
    return HIDDEN;
  }

  [inspect.custom](): string {
    return HIDDEN;
  }
}

function digest(value: string): Buffer {
  return createHash("sha256").update("hallpass.secret\0").update(value, "utf8").digest();
}
