import { randomBytes } from "node:crypto";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isHallpassError } from "#src/errors.js";
import { createLogger } from "#src/log.js";
import { Runtime } from "#src/runtime.js";
import { bootstrapKeys, openSigningKey } from "#src/tokens/keys.js";
import { loadMasterKey, type MasterKey, seal, unseal } from "#src/tokens/master-key.js";
import { startTokenService } from "#src/tokens/service.js";
import { backends, createTestDb, type TestDb } from "../support/db.js";
import { tempDirs } from "../support/dirs.js";
import { testConfig } from "../support/token-service.js";

const tempDir = tempDirs("hallpass-mk-");
const key = (): MasterKey => ({ key: randomBytes(32), file: null });

describe("sealing", () => {
  it("opens what it sealed, with the same key and context only", () => {
    const master = randomBytes(32);
    const sealed = seal(master, Buffer.from("private part"), "signing-key:k1");
    expect(sealed).toMatch(/^v1\.[\w-]{16}\.[\w-]+\.[\w-]{22}$/);
    expect(unseal(master, sealed, "signing-key:k1")?.toString()).toBe("private part");
    expect(unseal(randomBytes(32), sealed, "signing-key:k1")).toBeNull();
    // Bound to the kid: a sealed value copied onto another key's row does not open.
    expect(unseal(master, sealed, "signing-key:k2")).toBeNull();
  });

  it("uses a fresh IV each time and refuses altered text", () => {
    const master = randomBytes(32);
    const a = seal(master, Buffer.from("same"), "c");
    const b = seal(master, Buffer.from("same"), "c");
    expect(a.split(".")[1]).not.toBe(b.split(".")[1]);
    const parts = a.split(".");
    const ciphertext = Buffer.from(parts[2] ?? "", "base64url");
    ciphertext[0] = (ciphertext[0] ?? 0) ^ 1;
    const altered = [parts[0], parts[1], ciphertext.toString("base64url"), parts[3]].join(".");
    expect(unseal(master, altered, "c")).toBeNull();
    expect(unseal(master, a.replace(/^v1/, "v2"), "c")).toBeNull();
    expect(unseal(master, "v1.garbage", "c")).toBeNull();
  });
});

describe("the embedded master key file", () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = tempDir();
  });

  it("is created once with mode 0600 and reused", async () => {
    const first = await loadMasterKey({ masterKey: null, dataDir });
    const file = path.join(dataDir, "master.key");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(first.key).toHaveLength(32);
    expect(first.file).toBe(file);
    const again = await loadMasterKey({ masterKey: null, dataDir });
    expect(again.key.equals(first.key)).toBe(true);
    expect(readFileSync(file, "utf8").trim()).toBe(first.key.toString("base64"));
  });

  it("gives the same key to starts racing each other", async () => {
    const keys = await Promise.all(
      Array.from({ length: 8 }, () => loadMasterKey({ masterKey: null, dataDir })),
    );
    for (const k of keys) expect(k.key.equals(keys[0]?.key as Buffer)).toBe(true);
  });

  it("is not used when HALLPASS_MASTER_KEY is set", async () => {
    const masterKey = randomBytes(32);
    const loaded = await loadMasterKey({ masterKey, dataDir });
    expect(loaded).toEqual({ key: masterKey, file: null });
  });

  it("is refused when other users can read it, or when it is not a key", async () => {
    const file = path.join(dataDir, "master.key");
    writeFileSync(file, `${randomBytes(32).toString("base64")}\n`, { mode: 0o644 });
    chmodSync(file, 0o644);
    await expect(loadMasterKey({ masterKey: null, dataDir })).rejects.toThrow(/chmod 600/);
    writeFileSync(file, "not a key\n", { mode: 0o600 });
    chmodSync(file, 0o600);
    await expect(loadMasterKey({ masterKey: null, dataDir })).rejects.toThrow(/not 32/);
  });
});

describe.each(backends)("master key check on %s", (backend) => {
  let db: TestDb;
  beforeEach(async () => {
    db = await createTestDb(backend);
  });
  afterEach(() => db.close());

  it("creates the first key active at once, sealed, and verifies the same master key later", async () => {
    const master = key();
    const first = await bootstrapKeys(db, master);
    expect(first).toMatchObject({ created: true, masterKeyCheck: "created" });
    const { rows } = await db.query<{
      kid: string;
      state: string;
      private_sealed: string;
      public_jwk: Record<string, unknown>;
    }>("SELECT kid, state, private_sealed, public_jwk FROM signing_keys");
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row.state).toBe("active");
    expect(row.public_jwk).toMatchObject({ kty: "OKP", crv: "Ed25519", kid: row.kid });
    expect(row.public_jwk).not.toHaveProperty("d");
    // The private part in the database is only the sealed text, never the key.
    const privateKey = openSigningKey(master, row.kid, row.private_sealed);
    const d = privateKey.export({ format: "jwk" }).d as string;
    const pkcs8 = privateKey.export({ format: "der", type: "pkcs8" });
    const dump = JSON.stringify(
      (await db.query("SELECT * FROM signing_keys")).rows.concat(
        (await db.query("SELECT * FROM server_meta")).rows,
        (await db.query("SELECT body FROM audit_events")).rows,
      ),
    );
    expect(dump).not.toContain(d);
    expect(dump).not.toContain(pkcs8.toString("base64"));
    expect(dump).not.toContain(master.key.toString("base64"));
    expect(dump).not.toContain(master.key.toString("hex"));

    const again = await bootstrapKeys(db, master);
    expect(again).toEqual({ created: false, masterKeyCheck: "verified", activeKid: row.kid });
  });

  it("refuses to start with another master key, instead of making a new signing key", async () => {
    await bootstrapKeys(db, key());
    const error = await bootstrapKeys(db, key()).catch((e: unknown) => e);
    expect(isHallpassError(error, "MASTER_KEY_MISMATCH")).toBe(true);
    expect((error as Error).message).toContain(
      "HALLPASS_MASTER_KEY does not open the signing keys in this database",
    );
    const { rows } = await db.query("SELECT kid FROM signing_keys");
    expect(rows).toHaveLength(1);
  });

  it("refuses a master key that opens the check value but not the active key", async () => {
    const master = key();
    await bootstrapKeys(db, master);
    // As if the keys had been copied in from another database.
    const other = key();
    const { rows } = await db.query<{ kid: string }>("SELECT kid FROM signing_keys");
    await db.query("UPDATE signing_keys SET private_sealed = $2::text WHERE kid = $1::text", [
      rows[0]?.kid,
      seal(other.key, Buffer.from("x"), `signing-key:${rows[0]?.kid}`),
    ]);
    await expect(bootstrapKeys(db, master)).rejects.toThrow(/does not open the signing keys/);
  });

  it("stops the server's start with that message when the master key is wrong", async () => {
    const log = createLogger("silent");
    await startTokenService(db, testConfig(), log).then((service) => service.stop());
    const runtime = new Runtime({
      database: { kind: "pglite", dataDir: "unused" },
      log,
      open: async () => db,
      components: [(opened) => startTokenService(opened, testConfig(), log)],
    });
    await expect(runtime.start()).rejects.toThrow(
      "HALLPASS_MASTER_KEY does not open the signing keys in this database",
    );
    expect(runtime.db).toBeNull();
  });

  it("names the embedded key file when the data directory's key is not the database's", async () => {
    const dataDir = tempDir();
    await bootstrapKeys(db, await loadMasterKey({ masterKey: null, dataDir }));
    // The file is deleted: a new one is made, and must not be silently accepted.
    const otherDir = tempDir();
    const error = await bootstrapKeys(
      db,
      await loadMasterKey({ masterKey: null, dataDir: otherDir }),
    )
      .then(() => null)
      .catch((e: Error) => e);
    expect(error?.message).toContain("does not open the signing keys in this database");
    expect(error?.message).toContain(path.join(otherDir, "master.key"));
  });
});
