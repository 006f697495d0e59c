/**
 * Credentials the simulated GitHub accepts: App JWTs (RS256, `iss` = App id,
 * signed with the App's private key), installation tokens it issued, user
 * tokens registered by tests, and HTTP Basic with the App's client id and secret.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject, randomBytes } from "node:crypto";
import { errors, jwtVerify } from "jose";

export type Credential =
  | { readonly kind: "none" }
  | { readonly kind: "invalid"; readonly message: string }
  | { readonly kind: "app" }
  /** HTTP Basic with the App's client id and secret (the OAuth endpoints). */
  | { readonly kind: "client" }
  | { readonly kind: "installation"; readonly installationId: number }
  | { readonly kind: "user"; readonly login: string };

export type AuthKind = Credential["kind"];

const TOKEN_TTL_MS = 60 * 60 * 1000;

/** A fresh RSA key pair for an App, the private half in PKCS#8 PEM as `PRIVATE_KEY` takes it. */
export function generateAppKey(): { privateKeyPem: string; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKey,
  };
}

export class Credentials {
  readonly #appId: number;
  readonly #publicKey: KeyObject;
  readonly #now: () => Date;
  readonly #installationLive: (installationId: number) => boolean;
  readonly #installationTokens = new Map<string, { installationId: number; expiresAt: Date }>();
  readonly #userTokens = new Map<string, string>();
  readonly #client: { readonly id: string; readonly secret: string };

  constructor(options: {
    appId: number;
    privateKeyPem: string;
    now: () => Date;
    /** False once the installation is deleted: its tokens stop working. */
    installationLive: (installationId: number) => boolean;
    /** The App's OAuth client, for HTTP Basic. */
    client: { readonly id: string; readonly secret: string };
  }) {
    this.#appId = options.appId;
    this.#client = options.client;
    this.#publicKey = createPublicKey(options.privateKeyPem);
    this.#now = options.now;
    this.#installationLive = options.installationLive;
  }

  /** A new installation access token (`ghs_…`), valid for an hour. */
  issueInstallationToken(installationId: number): { token: string; expiresAt: Date } {
    const token = `ghs_${randomBytes(18).toString("hex")}`;
    const expiresAt = new Date(this.#now().getTime() + TOKEN_TTL_MS);
    this.#installationTokens.set(token, { installationId, expiresAt });
    return { token, expiresAt };
  }

  /** Registers a user access token (`ghu_…`) for the login and returns it. */
  issueUserToken(login: string): string {
    const token = `ghu_${randomBytes(18).toString("hex")}`;
    this.#userTokens.set(token, login);
    return token;
  }

  revokeUserToken(token: string): void {
    this.#userTokens.delete(token);
  }

  /**
   * What an `Authorization` header proves. `token X` and `Bearer X` are both
   * accepted, as GitHub does; a JWT is checked as an App JWT.
   */
  async identify(header: string | undefined): Promise<Credential> {
    if (!header) return { kind: "none" };
    const basic = /^basic\s+(\S+)$/i.exec(header.trim())?.[1];
    if (basic !== undefined) {
      const pair = Buffer.from(basic, "base64").toString("utf8");
      return pair === `${this.#client.id}:${this.#client.secret}`
        ? { kind: "client" }
        : { kind: "invalid", message: "Bad credentials" };
    }
    const match = /^(?:token|bearer)\s+(\S+)$/i.exec(header.trim());
    const value = match?.[1];
    if (!value) return { kind: "invalid", message: "Bad credentials" };
    if (value.split(".").length === 3) return this.#verifyAppJwt(value);
    const installation = this.#installationTokens.get(value);
    if (
      installation &&
      installation.expiresAt > this.#now() &&
      this.#installationLive(installation.installationId)
    ) {
      return { kind: "installation", installationId: installation.installationId };
    }
    const login = this.#userTokens.get(value);
    if (login) return { kind: "user", login };
    return { kind: "invalid", message: "Bad credentials" };
  }

  async #verifyAppJwt(jwt: string): Promise<Credential> {
    try {
      const { payload } = await jwtVerify(jwt, this.#publicKey, {
        algorithms: ["RS256"],
        currentDate: this.#now(),
        clockTolerance: 60,
      });
      if (String(payload.iss) !== String(this.#appId)) {
        return { kind: "invalid", message: "'Issuer' claim ('iss') must be an Integer" };
      }
      if (typeof payload.exp !== "number" || typeof payload.iat !== "number") {
        return { kind: "invalid", message: "A JSON web token could not be decoded" };
      }
      if (payload.exp - payload.iat > 10 * 60 + 60) {
        return {
          kind: "invalid",
          message: "'Expiration time' claim ('exp') is too far in the future",
        };
      }
      return { kind: "app" };
    } catch (error) {
      if (error instanceof errors.JWTExpired) {
        return {
          kind: "invalid",
          message:
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        };
      }
      return { kind: "invalid", message: "A JSON web token could not be decoded" };
    }
  }
}
