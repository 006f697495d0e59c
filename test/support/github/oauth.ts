/**
 * The App's OAuth side: its client id and secret, the user tokens issued to
 * it (which "check a token" knows), and the device flow that issues them
 * (RFC 8628 as GitHub runs it).
 */
import { randomBytes } from "node:crypto";
import type { Credentials } from "./auth.js";

/** The App's OAuth client: the id `GET /app` shows, and a fresh secret. */
export function newClient(appId: number): { readonly id: string; readonly secret: string } {
  return {
    id: `Iv1.${appId.toString(16).padStart(16, "0")}`,
    secret: randomBytes(20).toString("hex"),
  };
}

export const DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code";

/** One device flow started by `POST /login/device/code`. */
export interface DeviceAuthorization {
  readonly deviceCode: string;
  /** What the person types at `verification_uri`: `ABCD-1234`. */
  readonly userCode: string;
  readonly scope: string;
  /** By the simulator's clock; a test may move it. */
  expiresAt: Date;
  /** Seconds the client must wait between polls; `slow_down` raises it. */
  interval: number;
  /** Wall-clock time of the last poll (ms), to tell a client that polls too fast. */
  lastPollAt: number | null;
  state: "pending" | "authorized" | "denied" | "issued";
  login: string | null;
}

/** What `POST /login/oauth/access_token` answers (always 200, as GitHub does). */
export type PollAnswer =
  | {
      readonly access_token: string;
      readonly token_type: "bearer";
      readonly scope: string;
      readonly expires_in: number;
      readonly refresh_token: string;
      readonly refresh_token_expires_in: number;
    }
  | {
      readonly error: string;
      readonly error_description: string;
      readonly error_uri: string;
      readonly interval?: number;
    };

const USER_TOKEN_TTL_S = 8 * 3600;
const REFRESH_TOKEN_TTL_S = 184 * 24 * 3600;

export class OAuthApp {
  readonly clientId: string;
  /** Never sent anywhere but in `GITHUB_CLIENT_SECRET`. */
  readonly clientSecret: string;
  /** Seconds between polls a new device flow asks for (GitHub: 5). Fractions keep tests fast. */
  deviceInterval = 5;
  /** Seconds a device code lives (GitHub: 900). */
  deviceExpiresIn = 900;
  /** Seconds `slow_down` adds to the interval (GitHub: 5). */
  slowDownBy = 5;
  /** The App's "Enable Device Flow" setting. */
  deviceFlowEnabled = true;
  /** The next this many polls of any device flow answer `slow_down`. */
  slowDownNext = 0;
  readonly #credentials: Credentials;
  readonly #now: () => Date;
  readonly #tokens = new Map<string, { login: string; issuedAt: Date }>();
  readonly #devices = new Map<string, DeviceAuthorization>();

  constructor(options: {
    client: { readonly id: string; readonly secret: string };
    credentials: Credentials;
    now: () => Date;
  }) {
    this.clientId = options.client.id;
    this.clientSecret = options.client.secret;
    this.#credentials = options.credentials;
    this.#now = options.now;
  }

  /** A user token of the App (`ghu_…`) for the login; every route a user token reads accepts it. */
  issueUserToken(login: string): string {
    const token = this.#credentials.issueUserToken(login);
    this.#tokens.set(token, { login, issuedAt: this.#now() });
    return token;
  }

  /** A user token of the App, as "check a token" finds it; null for any other token. */
  check(token: string): { login: string; issuedAt: Date } | null {
    return this.#tokens.get(token) ?? null;
  }

  /** Revokes a user token of the App: GitHub forgets it everywhere. */
  revoke(token: string): void {
    this.#tokens.delete(token);
    this.#credentials.revokeUserToken(token);
  }

  /** Starts a device flow. */
  startDevice(scope: string): DeviceAuthorization {
    const letters = "BCDFGHJKLMNPQRSTVWXZ";
    const pick = () => Array.from(randomBytes(4), (b) => letters[b % letters.length]).join("");
    const device: DeviceAuthorization = {
      deviceCode: randomBytes(20).toString("hex"),
      userCode: `${pick()}-${pick()}`,
      scope,
      expiresAt: new Date(this.#now().getTime() + this.deviceExpiresIn * 1000),
      interval: this.deviceInterval,
      lastPollAt: null,
      state: "pending",
      login: null,
    };
    this.#devices.set(device.deviceCode, device);
    return device;
  }

  /** The device flow whose user code a person typed (`ABCD-1234`). */
  device(userCode: string): DeviceAuthorization {
    const found = [...this.#devices.values()].find((d) => d.userCode === userCode);
    if (!found) throw new Error(`simulator: no device flow with user code ${userCode}`);
    return found;
  }

  /** The person enters the code and authorizes the App. */
  authorize(userCode: string, login: string): void {
    const found = this.device(userCode);
    found.state = "authorized";
    found.login = login;
  }

  /** The person enters the code and cancels. */
  deny(userCode: string): void {
    this.device(userCode).state = "denied";
  }

  /** One poll of `POST /login/oauth/access_token`, at wall-clock time `at` (ms). */
  poll(clientId: unknown, deviceCode: unknown, grantType: unknown, at: number): PollAnswer {
    const refuse = (error: string, description: string, interval?: number): PollAnswer => ({
      error,
      error_description: description,
      error_uri: `https://docs.github.com/developers/apps/authorizing-oauth-apps#${error}`,
      ...(interval === undefined ? {} : { interval }),
    });
    if (clientId !== this.clientId) {
      return refuse("incorrect_client_credentials", "The client_id is not valid.");
    }
    if (grantType !== DEVICE_GRANT_TYPE) {
      return refuse("unsupported_grant_type", "The grant type is not supported.");
    }
    const device = typeof deviceCode === "string" ? this.#devices.get(deviceCode) : undefined;
    if (!device || device.state === "issued") {
      return refuse("incorrect_device_code", "The device_code provided is not valid.");
    }
    if (device.expiresAt <= this.#now()) {
      return refuse("expired_token", "The device_code has expired.");
    }
    const tooSoon = device.lastPollAt !== null && at - device.lastPollAt < device.interval * 1000;
    device.lastPollAt = at;
    if (this.slowDownNext > 0 || tooSoon) {
      if (this.slowDownNext > 0) this.slowDownNext--;
      device.interval += this.slowDownBy;
      return refuse(
        "slow_down",
        "Too many requests have been made in the same timeframe.",
        device.interval,
      );
    }
    if (device.state === "denied") {
      return refuse("access_denied", "The authorization request was denied.");
    }
    if (device.state === "pending" || device.login === null) {
      return refuse("authorization_pending", "The authorization request is still pending.");
    }
    device.state = "issued";
    return {
      access_token: this.issueUserToken(device.login),
      token_type: "bearer",
      scope: "",
      expires_in: USER_TOKEN_TTL_S,
      refresh_token: `ghr_${randomBytes(30).toString("hex")}`,
      refresh_token_expires_in: REFRESH_TOKEN_TTL_S,
    };
  }
}
