import { isIP } from "node:net";

/** A URL a client command sends a person's GitHub token to, and where it was given. */
export interface ServerUrl {
  /** Origin and path, without a trailing slash: `https://hallpass.example.com`. */
  readonly url: string;
  /** Where the URL came from, for every message about it: `--url` or `HALLPASS_URL`. */
  readonly source: string;
}

export type ServerUrlResult =
  | { readonly ok: true; readonly server: ServerUrl }
  | { readonly ok: false; readonly message: string };

/**
 * The hallpass server of a client command (`token`, `login`, `logout`):
 * `--url`, else `HALLPASS_URL` of the environment (never a `.env` file).
 * It receives the person's GitHub token, so it must be `https:`; plain
 * `http:` only for this machine (localhost, 127.0.0.0/8, ::1).
 *
 * @example
 * resolveServerUrl(undefined, { HALLPASS_URL: "http://hallpass.internal" });
 * // { ok: false, message: "refusing http://hallpass.internal (from HALLPASS_URL): ..." }
 */
export function resolveServerUrl(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
): ServerUrlResult {
  const fromEnv = env.HALLPASS_URL?.trim();
  const [text, source] = flag !== undefined ? [flag, "--url"] : [fromEnv, "HALLPASS_URL"];
  if (!text) return { ok: false, message: "no server: pass --url or set HALLPASS_URL" };
  const checked = checkUrl(text, `the server URL (from ${source})`);
  if (!checked.ok) return checked;
  return { ok: true, server: { url: checked.url, source } };
}

/**
 * `text` as a URL a token may be sent to: https, or http to this machine;
 * no credentials, query or fragment. `what` names it in the message.
 */
export function checkUrl(
  text: string,
  what: string,
): { ok: true; url: string } | { ok: false; message: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, message: `${what} is not a URL: ${JSON.stringify(text.slice(0, 200))}` };
  }
  const shown = `${url.protocol}//${url.host}${url.pathname}`.replace(/\/+$/, "");
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return { ok: false, message: `${what} must be an https:// URL, not ${url.protocol}` };
  }
  if (url.protocol === "http:" && !isLoopback(url.hostname)) {
    return {
      ok: false,
      message: `refusing ${shown}: ${what} must be https://, or your GitHub token would cross the network unencrypted (http:// only for localhost)`,
    };
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    return {
      ok: false,
      message: `${what} must not carry credentials, a query or a fragment (${shown})`,
    };
  }
  return { ok: true, url: shown };
}

/** localhost, 127.0.0.0/8 and ::1 (a URL's `hostname`, IPv6 in brackets). */
export function isLoopback(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === "localhost") return true;
  if (host === "[::1]") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}
