import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Config } from "#src/config.js";
import { HallpassError } from "#src/errors.js";
import type { Sql } from "#src/store/db.js";
import { insertMetaIfAbsent, readMeta } from "#src/store/meta.js";

/**
 * Sealed text: `v1.<iv>.<ciphertext>.<tag>`, each part base64url. AES-256-GCM
 * with a random 96-bit IV; the additional data binds the version and what the
 * plaintext is (`context`, e.g. `signing-key:<kid>`), so a sealed value moved
 * to another row does not open.
 */
const VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A master key as the embedded set-up keeps it: the file's name in the data directory. */
export const MASTER_KEY_FILE = "master.key";

const CHECK_META_KEY = "master_key_check";
const CHECK_CONTEXT = "master-key-check";
const CHECK_PLAINTEXT = "hallpass master key check";

export interface MasterKey {
  /** 32 bytes; never logged. */
  readonly key: Buffer;
  /** The embedded set-up's key file, when the key came from one (for error messages). */
  readonly file: string | null;
}

export function seal(masterKey: Buffer, plaintext: Uint8Array, context: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", masterKey, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(context));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return [VERSION, iv, ciphertext, cipher.getAuthTag()]
    .map((part) => (typeof part === "string" ? part : part.toString("base64url")))
    .join(".");
}

/**
 * Opens what `seal` sealed under the same key and context.
 *
 * @returns the plaintext, or null when the key or context is wrong, or the text was altered
 */
export function unseal(masterKey: Buffer, sealed: string, context: string): Buffer | null {
  const parts = sealed.split(".");
  if (parts.length !== 4 || parts[0] !== VERSION) return null;
  const [iv, ciphertext, tag] = parts.slice(1).map((part) => Buffer.from(part, "base64url"));
  if (!iv || !ciphertext || !tag || iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return null;
  try {
    const decipher = createDecipheriv("aes-256-gcm", masterKey, iv, {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(aad(context));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    return null;
  }
}

function aad(context: string): Buffer {
  return Buffer.from(`hallpass/${VERSION}/${context}`, "utf8");
}

/**
 * The master key: `HALLPASS_MASTER_KEY`, or in the embedded set-up (no
 * DATABASE_URL, not production: config refuses anything else) a key kept in
 * `<dataDir>/master.key`, created once with mode 0600 and reused.
 */
export async function loadMasterKey(
  config: Pick<Config, "masterKey" | "dataDir">,
): Promise<MasterKey> {
  if (config.masterKey) return { key: config.masterKey, file: null };
  const file = path.join(config.dataDir, MASTER_KEY_FILE);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const existing = await readKeyFile(file);
  if (existing) return { key: existing, file };
  // Written under a temporary name and linked into place: a second process
  // starting at the same time either wins the link or reads the complete file.
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString("hex")}`;
  await writeFile(temporary, `${randomBytes(32).toString("base64")}\n`, {
    mode: 0o600,
    flag: "wx",
  });
  try {
    await chmod(temporary, 0o600);
    await link(temporary, file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    });
  } finally {
    await unlink(temporary).catch(() => {});
  }
  const key = await readKeyFile(file);
  if (!key) throw new HallpassError("MASTER_KEY_FILE", `${file}: could not be created`);
  return { key, file };
}

async function readKeyFile(file: string): Promise<Buffer | null> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new HallpassError("MASTER_KEY_FILE", `${file}: cannot be read`, { cause: error });
  }
  const { mode } = await stat(file);
  if ((mode & 0o077) !== 0) {
    throw new HallpassError(
      "MASTER_KEY_FILE",
      `${file}: readable by other users (mode ${(mode & 0o777).toString(8)}); run chmod 600 on it`,
    );
  }
  const key = Buffer.from(text.trim(), "base64");
  if (key.length !== 32 || key.toString("base64") !== text.trim()) {
    throw new HallpassError("MASTER_KEY_FILE", `${file}: not 32 base64-encoded bytes`);
  }
  return key;
}

/**
 * Proves the master key is the one the database's signing keys were sealed
 * with, before anything is signed: `server_meta` keeps a value sealed under
 * it. On a database without one, the value is written now. Run it inside the
 * transaction that bootstraps the keys (and holds their lock).
 *
 * @throws MASTER_KEY_MISMATCH when the key does not open the check value
 */
export async function checkMasterKey(
  tx: Sql,
  masterKey: MasterKey,
): Promise<"created" | "verified"> {
  const stored = await readMeta(tx, CHECK_META_KEY);
  if (stored === null) {
    const sealed = seal(masterKey.key, Buffer.from(CHECK_PLAINTEXT), CHECK_CONTEXT);
    await insertMetaIfAbsent(tx, CHECK_META_KEY, { sealed });
    return "created";
  }
  const sealed = (stored as { sealed?: unknown }).sealed;
  const opened = typeof sealed === "string" ? unseal(masterKey.key, sealed, CHECK_CONTEXT) : null;
  if (opened?.toString("utf8") !== CHECK_PLAINTEXT) throw masterKeyMismatch(masterKey);
  return "verified";
}

export function masterKeyMismatch(masterKey: MasterKey): HallpassError {
  const where = masterKey.file
    ? ` (it is unset, and the embedded set-up's key in ${masterKey.file} is not the one they were sealed with: was the file replaced or deleted?)`
    : "; start with the master key they were sealed with";
  return new HallpassError(
    "MASTER_KEY_MISMATCH",
    `HALLPASS_MASTER_KEY does not open the signing keys in this database${where}`,
  );
}
