import {
  createHash,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  timingSafeEqual,
} from "node:crypto";

const HIDDEN = "[secret]";

/**
 * A secret value (an upstream credential, an introspection secret) that
 * cannot end up in a log line, an error or a JSON body by accident:
 * `String()`, template literals, `JSON.stringify` and `util.inspect` (so
 * loggers and `console.log`) all show `[secret]`. The value comes out only
 * through {@link Secret.reveal}, at the one place that puts it on the wire.
 *
 * @example
 * const secret = new Secret(process.env.PAYMENTS_INTROSPECTION_SECRET ?? "");
 * secret.equals(presented); // constant time
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  /** The value itself: only for the header or comparison that needs it. */
  reveal(): string {
    return this.#value;
  }

  /** Compares in constant time (over sha256 digests, so lengths do not leak either). */
  equals(candidate: string): boolean {
    return timingSafeEqual(digest(this.#value), digest(candidate));
  }

  toString(): string {
    return HIDDEN;
  }

  toJSON(): string {
    return HIDDEN;
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return HIDDEN;
  }
}

function digest(value: string): Buffer {
  return createHash("sha256").update("hallpass.secret\0").update(value, "utf8").digest();
}

/**
 * A key for one purpose, derived from the master key (HKDF-SHA256), so that
 * no second secret is stored and a key of one purpose says nothing of the
 * master key or of another purpose's. A `KeyObject`: logging it shows no
 * key material.
 *
 * @example
 * const markers = deriveKey(masterKey.key, "outbox-marker");
 * createHmac("sha256", markers).update(dedupeKey).digest("hex");
 */
export function deriveKey(masterKey: Buffer, purpose: string): KeyObject {
  const info = Buffer.from(`hallpass/${purpose}`, "utf8");
  return createSecretKey(Buffer.from(hkdfSync("sha256", masterKey, "hallpass", info, 32)));
}
