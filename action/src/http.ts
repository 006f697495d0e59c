import { HttpClient } from "@actions/http-client";
import { Refusal, Unreachable } from "./errors.js";

/** Long enough for a mint behind a busy database, short enough to retry a hung server. */
const TIMEOUT_MS = 30_000;
/** Error bodies are small JSON; anything longer is not the server's. */
const MAX_ERROR_BODY = 16 * 1024;

/**
 * @actions/http-client rather than `fetch`: it honours the runner's
 * `https_proxy`/`no_proxy`, as the rest of the toolkit does. Redirects are not
 * followed (a bearer token goes only where the `url` input says) and its own
 * retries are off: `withRetry` decides what is worth another attempt.
 */
export function httpClient(): HttpClient {
  return new HttpClient("hallpass-action", [], {
    allowRedirects: false,
    allowRetries: false,
    socketTimeout: TIMEOUT_MS,
  });
}

/**
 * POSTs `body` (JSON) with a bearer token and returns the 2xx body, parsed.
 *
 * @throws Unreachable when no HTTP answer came back
 * @throws Refusal for any other status, with the server's code and message;
 *   the body of an answer is never echoed otherwise
 */
export async function postJson(
  client: HttpClient,
  url: string,
  bearer: string,
  body?: unknown,
): Promise<unknown> {
  let text: string;
  let status: number;
  let retryAfter: string | string[] | undefined;
  try {
    const response = await client.post(url, body === undefined ? "" : JSON.stringify(body), {
      authorization: `Bearer ${bearer}`,
      accept: "application/json",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    });
    status = response.message.statusCode ?? 0;
    retryAfter = response.message.headers["retry-after"];
    text = await response.readBody();
  } catch (error) {
    throw new Unreachable(`${url}: ${(error as Error).message}`, { cause: error });
  }
  if (status >= 200 && status < 300) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new Refusal(
        status,
        `HTTP_${status}`,
        `${url} answered ${status} without JSON`,
        undefined,
      );
    }
  }
  throw refusal(url, status, text, retryAfter);
}

function refusal(
  url: string,
  status: number,
  text: string,
  retryAfter: string | string[] | undefined,
): Refusal {
  const seconds = retryAfterSeconds(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
  let parsed: unknown;
  try {
    parsed = text.length <= MAX_ERROR_BODY ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  const { error, message } = (parsed ?? {}) as { error?: unknown; message?: unknown };
  if (typeof error === "string" && typeof message === "string") {
    return new Refusal(status, error.slice(0, 64), message.slice(0, 1000), seconds);
  }
  const hint = status >= 300 && status < 400 ? "a redirect; set url to the final address" : "";
  return new Refusal(
    status,
    `HTTP_${status}`,
    `${url} answered ${status}${hint ? ` (${hint})` : ""}, not a hallpass error`,
    seconds,
  );
}

/** `retry-after` in seconds (delta-seconds or an HTTP date), or undefined. */
function retryAfterSeconds(value: string | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
