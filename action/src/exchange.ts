import * as core from "@actions/core";
import type { HttpClient } from "@actions/http-client";
import * as z from "zod/mini";
import { Refusal } from "./errors.js";
import { postJson } from "./http.js";
import type { Inputs } from "./inputs.js";

export const EXCHANGE_PATH = "/v1/exchange";

const exchangedSchema = z.object({
  token: z.string().check(z.minLength(1)),
  expires_at: z.union([
    z.iso.datetime({ offset: true }),
    z.pipe(
      z.int().check(z.positive()),
      z.transform((s: number) => new Date(s * 1000).toISOString()),
    ),
  ]),
  grant: z.union([z.string().check(z.minLength(1)), z.pipe(z.int(), z.transform(String))]),
  scopes: z.array(z.string()),
});

/** A token of the ticket's grant, as the server minted it. */
export interface Exchanged {
  readonly token: string;
  /** ISO 8601. */
  readonly expiresAt: string;
  readonly grant: string;
  readonly scopes: readonly string[];
}

/**
 * One exchange: the job's ID token for a hallpass token. The token is masked
 * the moment the answer is read, before the answer is even checked, so that
 * nothing printed afterwards (errors included) can show it.
 *
 * @throws Unreachable, Refusal (see `postJson`)
 */
export async function exchange(
  client: HttpClient,
  inputs: Inputs,
  idToken: string,
): Promise<Exchanged> {
  const url = `${inputs.url}${EXCHANGE_PATH}`;
  const answer = await postJson(client, url, idToken, {
    resource: inputs.resource,
    ...(inputs.scopes.length > 0 ? { scopes: inputs.scopes } : {}),
    ...(inputs.ticket === undefined ? {} : { ticket: inputs.ticket }),
  });
  const token = (answer as { token?: unknown } | null)?.token;
  if (typeof token === "string" && token) core.setSecret(token);
  const parsed = exchangedSchema.safeParse(answer);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => i.path.join(".") || "body"))];
    throw new Refusal(
      200,
      "BAD_ANSWER",
      `${url} answered 200 without a usable token (${fields.join(", ")}): is this a hallpass server of the same version?`,
      undefined,
    );
  }
  const { expires_at, ...rest } = parsed.data;
  return { ...rest, expiresAt: expires_at };
}
