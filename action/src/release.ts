import type { HttpClient } from "@actions/http-client";
import { postJson } from "./http.js";

export const RELEASE_PATH = "/v1/release";

/**
 * Gives the token back: from now on introspection calls it inactive.
 * Idempotent on the server, so a retry after a lost answer is harmless.
 *
 * @returns the server's word on it (`released`, or `expired` when there was nothing left to give back)
 * @throws Unreachable, Refusal (see `postJson`)
 */
export async function release(
  client: HttpClient,
  url: string,
  token: string,
): Promise<{ jti: string; status: string }> {
  const answer = (await postJson(client, `${url}${RELEASE_PATH}`, token)) as {
    jti?: unknown;
    status?: unknown;
  } | null;
  return {
    jti: typeof answer?.jti === "string" ? answer.jti : "?",
    status: typeof answer?.status === "string" ? answer.status : "released",
  };
}
